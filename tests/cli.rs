//! The command line of the example binaries, run as a user would run them.

use std::path::PathBuf;
use std::process::{Command, Output};

/// `cargo test` builds the examples next to the test binaries' `deps` folder.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join(name)
}

fn run(name: &str, args: &[&str]) -> Output {
    run_env(name, args, None)
}

/// Runs an example with `SSH_CONNECTION` set as given (or unset, whatever the test
/// process inherited).
fn run_env(name: &str, args: &[&str], ssh: Option<&str>) -> Output {
    let mut cmd = Command::new(example(name));
    cmd.args(args)
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_CLIENT");
    if let Some(conn) = ssh {
        cmd.env("SSH_CONNECTION", conn);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("running example {name}: {e} (built by `cargo test`)"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn default_output_is_the_sh_script() {
    let o = run("web_server", &[]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.starts_with("#!/bin/sh\n"), "{text}");
    assert_eq!(text, stdout(&run("web_server", &["--format", "sh"])));
}

#[test]
fn every_format_is_offered() {
    for (format, marker) in [
        ("restore", "*filter\n"),
        ("restore6", "icmpv6-type 135"),
        ("commands", "iptables -t filter -A INPUT"),
    ] {
        let o = run("file_server", &["--format", format]);
        assert!(o.status.success(), "{format}");
        assert!(stdout(&o).contains(marker), "{format}");
    }
}

#[test]
fn check_prints_one_line_starting_with_the_verdict() {
    let o = run(
        "web_server",
        &["--check", "in tcp from 203.0.113.99:40000 to 192.0.2.1:22"],
    );
    assert!(o.status.success());
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("DROP "), "{text}");
    // The deciding rule is quoted as written in the example, with its group and line.
    let o = run(
        "web_server",
        &["--check", "in tcp from 203.0.113.99:40000 to 192.0.2.1:443"],
    );
    let text = stdout(&o);
    assert!(
        text.starts_with("ACCEPT by IPv4 rule 9 of INPUT (group server, line ")
            && text.ends_with("): allow in tcp from 1024: to [http, https] state new;\n"),
        "{text}"
    );
    let o = run(
        "internal_server",
        &[
            "--check",
            "in tcp from 192.0.2.200:40000 to 192.0.2.1:443",
            "--check",
            "in tcp from [2001:db8::99]:40000 to [2001:db8::1]:443",
        ],
    );
    let text = stdout(&o);
    let firsts: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(firsts, ["ACCEPT", "DROP"], "{text}");
}

#[test]
fn bad_input_exits_2_with_a_message() {
    for args in [
        &["--check", "in tcp from 203.0.113.99 to 192.0.2.1:22"][..],
        &[
            "--check",
            "sideways tcp from 203.0.113.99:1 to 192.0.2.1:22",
        ],
        &["--format", "yaml"],
        &["--bogus"],
    ] {
        let o = run("web_server", args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?} printed to stdout");
        assert!(!o.stderr.is_empty(), "{args:?} gave no message");
    }
}

#[test]
fn help_explains_the_outputs() {
    let o = run("web_server", &["--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for word in ["--format", "--check", "restore6", "sh"] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}

/// `cargo run --example web_server | sh` over ssh from an address the policy does not
/// let in prints nothing (so sh does nothing) and says why; from the admin's address it
/// prints the script.
#[test]
fn refuses_to_lock_out_the_ssh_session_it_runs_in() {
    let stranger = "203.0.113.99 40000 192.0.2.1 22";
    for format in ["sh", "commands"] {
        let o = run_env("web_server", &["--format", format], Some(stranger));
        assert_eq!(o.status.code(), Some(3), "{format}");
        assert!(o.stdout.is_empty(), "{format} printed rules");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("lock you out") && err.contains("203.0.113.99"),
            "{err}"
        );
    }
    // Files that do not load anything by themselves are still printed.
    assert!(
        run_env("web_server", &["--format", "restore"], Some(stranger))
            .status
            .success()
    );
    let o = run_env("web_server", &["--allow-lockout"], Some(stranger));
    assert!(o.status.success() && !o.stdout.is_empty());
    for admin in [
        "198.51.100.7 40000 192.0.2.1 22",
        "2001:db8:100::7 40000 2001:db8::1 22",
    ] {
        let o = run_env("web_server", &[], Some(admin));
        assert!(
            o.status.success(),
            "{admin}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The internal server lets offices in, the file server's branch reaches ssh only.
    assert!(run_env(
        "internal_server",
        &[],
        Some("203.0.113.140 5000 192.0.2.1 22")
    )
    .status
    .success());
    assert!(
        run_env("file_server", &[], Some("198.51.100.170 5000 192.0.2.1 22"))
            .status
            .success()
    );
    assert_eq!(
        run_env(
            "file_server",
            &[],
            Some("198.51.100.170 5000 192.0.2.1 2222")
        )
        .status
        .code(),
        Some(3)
    );
}

/// A temporary directory of this test process, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("vpsfw-cli-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn fleet_lists_its_hosts_and_needs_one() {
    let o = run("fleet", &["--list-hosts"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "web1\nweb2\nintranet-tokyo\nintranet-osaka\n");
    let o = run("fleet", &["--format", "restore"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--host NAME is required"));
    let o = run("fleet", &["--host", "web9", "--format", "restore"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no host 'web9'"));
    // Each host gets its own policy.
    let tokyo = stdout(&run(
        "fleet",
        &["--host", "intranet-tokyo", "-f", "restore"],
    ));
    let osaka = stdout(&run(
        "fleet",
        &["--host", "intranet-osaka", "-f", "restore"],
    ));
    assert!(tokyo.contains("-A INPUT -s 203.0.113.128/27"), "{tokyo}");
    assert!(osaka.contains("-A INPUT -s 198.51.100.160/27"), "{osaka}");
    assert!(!osaka.contains("203.0.113.128/27"), "{osaka}");
}

#[test]
fn fleet_flags_are_refused_by_a_single_policy_binary() {
    for args in [&["--host", "web1"][..], &["--list-hosts"][..]] {
        let o = run("web_server", args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stdout(&o).is_empty());
    }
}

#[test]
fn apply_options_need_apply_and_actions_exclude_each_other() {
    for args in [
        &["--no-rollback"][..],
        &["--rollback-after", "5"][..],
        &["--diff", "--apply"][..],
        &["--confirm", "--rollback"][..],
        &["--apply", "--rollback-after", "soon"][..],
    ] {
        let o = run("web_server", args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn confirm_and_rollback_with_nothing_pending_change_nothing() {
    let state = TempDir::new("state");
    let o = run("web_server", &["--confirm", "--state-dir", state.path()]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "nothing awaits confirmation\n");
    let o = run("web_server", &["--rollback", "--state-dir", state.path()]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("nothing awaits confirmation"));
    // A rollback recorded as the last event makes a late confirm fail.
    std::fs::write(
        state.0.join("last"),
        "rolled back policy 0123456789abcdef at 2026-11-25 20:00:00 UTC (not confirmed in time)\n",
    )
    .unwrap();
    let o = run("web_server", &["--confirm", "--state-dir", state.path()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("too late: rolled back"));
}

#[test]
fn persist_writes_the_restore_files_and_the_nft_include() {
    let etc = TempDir::new("persist");
    let o = run("blocklist", &["--persist", etc.path()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |p: &str| std::fs::read_to_string(etc.0.join(p)).expect(p);
    assert_eq!(
        read("iptables/rules.v4"),
        stdout(&run("blocklist", &["-f", "restore"]))
    );
    assert_eq!(
        read("iptables/rules.v6"),
        stdout(&run("blocklist", &["-f", "restore6"]))
    );
    assert_eq!(
        read("iptables/ipsets"),
        stdout(&run("blocklist", &["-f", "ipset"]))
    );
    let o = run("web_server", &["--persist", etc.path(), "--backend", "nft"]);
    assert!(o.status.success());
    assert_eq!(
        read("nftables.d/vpsfw.nft"),
        stdout(&run("web_server", &["-f", "nft"]))
    );
    let conf = read("nftables.conf");
    assert!(
        conf.contains(&format!("include \"{}/nftables.d/vpsfw.nft\"", etc.path())),
        "{conf}"
    );
}

#[test]
fn ssh_client_alone_is_enough_to_refuse_a_lockout() {
    // $SSH_CLIENT (no server address) of a client the web server does not admit to ssh.
    let mut cmd = Command::new(example("web_server"));
    let o = cmd
        .env_remove("SSH_CONNECTION")
        .env("SSH_CLIENT", "203.0.113.99 50000 22")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).is_empty());
    // The admin's own session passes.
    let o = Command::new(example("web_server"))
        .env_remove("SSH_CONNECTION")
        .env("SSH_CLIENT", "198.51.100.7 50000 22")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

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
    cmd.args(args).env_remove("SSH_CONNECTION");
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

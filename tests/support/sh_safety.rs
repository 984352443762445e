//! What the sh script promises when something goes wrong, tested in a namespace: a
//! ruleset the kernel refuses changes nothing, and an IPv6 load that fails after IPv4
//! loaded puts the previous IPv4 ruleset back. Failures are provoked by a stand-in
//! `ip6tables-restore` put first on `PATH` (the script appends the system directories
//! to `PATH`, so a caller's PATH is honoured).

use std::path::PathBuf;

use vpsfw::{render, Format, Policy};

use super::netns::Lab;

/// The rules a server had before: something recognisable in both families.
const BEFORE_V4: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s 198.51.100.99/32 -j DROP\nCOMMIT\n";
const BEFORE_V6: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s 2001:db8:99::/48 -j DROP\nCOMMIT\n";

/// A directory holding a fake `ip6tables-restore` that fails `--test` runs (`when` =
/// "test") or real loads (`when` = "load") and hands everything else to the real one.
struct Shim(PathBuf);

impl Shim {
    fn new(when: &str) -> Result<Shim, String> {
        let dir = std::env::temp_dir().join(format!(
            "vpsfw-shim-{}-{when}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let real = ["/usr/sbin/ip6tables-restore", "/sbin/ip6tables-restore"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .ok_or("no ip6tables-restore found")?;
        let fail_on_test = if when == "test" { "fail" } else { "pass" };
        let script = format!(
            "#!/bin/sh\n\
             testing=no\n\
             for a in \"$@\"; do [ \"$a\" = --test ] && testing=yes; done\n\
             if [ $testing = yes ] && [ {fail_on_test} = pass ]; then exec {real} \"$@\"; fi\n\
             if [ $testing = no ] && [ {fail_on_test} = fail ]; then exec {real} \"$@\"; fi\n\
             cat >/dev/null\n\
             echo 'shim: simulated ip6tables-restore failure' >&2\n\
             exit 1\n"
        );
        let path = dir.join("ip6tables-restore");
        std::fs::write(&path, script).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
        Ok(Shim(dir))
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rules(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("-A ") || l.starts_with(':'))
        .map(|l| l.split(" [").next().unwrap_or(l).to_owned())
        .collect()
}

/// Runs the policy's script with a failing ip6tables-restore and checks both families
/// still hold the rules from before.
fn run_failing(policy: &Policy, when: &str) -> Result<(), String> {
    let lab = Lab::try_new(&[])?;
    lab.load_restore(lab.vps(), BEFORE_V4, BEFORE_V6)?;
    let before = lab.save(lab.vps());
    let shim = Shim::new(when)?;
    let script = format!(
        "PATH={}:$PATH\nexport PATH\n{}",
        shim.0.display(),
        render(policy, Format::Sh)
    );
    match lab.run_sh(lab.vps(), &script) {
        Ok(_) => {
            return Err(format!(
                "the script succeeded although ip6tables-restore failed ({when})"
            ))
        }
        Err(e) if !e.contains("vpsfw:") => {
            return Err(format!("the script failed without saying why: {e}"))
        }
        Err(_) => {}
    }
    let after = lab.save(lab.vps());
    for (fam, b, a) in [("IPv4", &before.0, &after.0), ("IPv6", &before.1, &after.1)] {
        if rules(b) != rules(a) {
            return Err(format!(
                "{fam} rules changed although the script failed ({when}):\nbefore:\n{b}\nafter:\n{a}"
            ));
        }
    }
    Ok(())
}

/// `ip6tables-restore --test` refuses: neither family is touched.
pub fn refused_ruleset_changes_nothing(policy: &Policy) -> Result<(), String> {
    run_failing(policy, "test")
}

/// IPv6 fails to load after IPv4 loaded: IPv4 is put back as it was.
pub fn failed_ipv6_load_restores_ipv4(policy: &Policy) -> Result<(), String> {
    run_failing(policy, "load")
}

/// Every golden restore file goes through the kernel's own parser.
pub fn golden_files_parse() -> Result<(), String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let lab = Lab::try_new(&[])?;
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let tool = match path.extension().and_then(|e| e.to_str()) {
            Some("restore") => "iptables-restore",
            Some("restore6") => "ip6tables-restore",
            _ => continue,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        lab.exec_stdin(lab.vps(), &[tool, "--test"], Some(&text))
            .map_err(|e| format!("{} refused {}: {e}", tool, path.display()))?;
        seen += 1;
    }
    if seen < 6 {
        return Err(format!(
            "only {seen} golden restore files found in {}",
            dir.display()
        ));
    }
    Ok(())
}

//! `--persist`: the files the distribution loads at boot, so a reboot comes back to the
//! same firewall.
//!
//! - iptables: Debian's `iptables-persistent` (netfilter-persistent) loads
//!   `/etc/iptables/ipsets` (with `ipset-persistent`), then `rules.v4` and `rules.v6`,
//!   early in boot, before the network is up and before Docker or fail2ban start.
//! - nft: `nftables.service` loads `/etc/nftables.conf`; vpsfw writes
//!   `/etc/nftables.d/vpsfw.nft` and makes `nftables.conf` include it.
//!
//! Each file is written to a temporary name and renamed, so a crash leaves the old file
//! or the new one, never half of one.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::live::{Backend, Error, Managed};
use crate::model::Policy;
use crate::render::{self, Layout};
use crate::value::{Chain, Family};

/// What `--persist` wrote, and what the admin still has to know.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    pub files: Vec<PathBuf>,
    pub notes: Vec<String>,
}

fn write_atomically(path: &Path, text: &str) -> Result<(), Error> {
    let err = |e: std::io::Error| Error::new(format!("cannot write {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("vpsfw-tmp-{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            err(e)
        })
}

/// A restore file that a plain `iptables-restore` (no `--noflush`) loads at boot.
fn boot_restore(policy: &Policy, family: Family, layout: Layout) -> String {
    let text = render::restore(policy, family, layout);
    if layout == Layout::Table {
        return text;
    }
    // At boot the table is empty: the jumps to vpsfw's chains go in with the rules.
    let mut jumps = String::new();
    for c in Chain::ALL {
        jumps.push_str(&format!(
            "-A {} -j {}\n",
            c.iptables_name(),
            layout.chain_name(c)
        ));
    }
    let body = text.strip_suffix("COMMIT\n").unwrap_or(&text);
    format!("{body}{jumps}COMMIT\n")
}

/// Writes the boot files for `policy` under `etc` (normally `/etc`).
pub fn persist(policy: &Policy, managed: Managed, etc: &Path) -> Result<Persisted, Error> {
    let mut out = Persisted::default();
    match managed.backend {
        Backend::Iptables => {
            let dir = etc.join("iptables");
            if !dir.exists() {
                out.notes.push(
                    "install iptables-persistent (apt-get install iptables-persistent) so these files are loaded at boot"
                        .into(),
                );
            }
            if !policy.sets().is_empty() {
                let path = dir.join("ipsets");
                write_atomically(&path, &render::ipset_file(policy))?;
                out.files.push(path);
                out.notes.push(
                    "install ipset-persistent so the address sets are loaded before the rules"
                        .into(),
                );
            }
            for (family, name) in [(Family::V4, "rules.v4"), (Family::V6, "rules.v6")] {
                let path = dir.join(name);
                write_atomically(&path, &boot_restore(policy, family, managed.layout))?;
                out.files.push(path);
            }
        }
        Backend::Nft => {
            let path = etc.join("nftables.d").join("vpsfw.nft");
            let conf = etc.join("nftables.conf");
            // The include names the file where it will be at boot.
            let target = Path::new("/etc/nftables.d/vpsfw.nft");
            let shown = if etc == Path::new("/etc") {
                target
            } else {
                &path
            };
            let shown = shown.to_str().filter(|p| !p.contains(['"', '\n', '\\']));
            let Some(shown) = shown else {
                return Err(Error::new(format!(
                    "cannot include {} from nftables.conf: the path must be UTF-8 without quotes, backslashes or newlines",
                    path.display()
                )));
            };
            let include = format!("include \"{shown}\"");
            write_atomically(&path, &crate::nft::file(policy))?;
            out.files.push(path.clone());
            let current = fs::read_to_string(&conf).unwrap_or_default();
            if !current.lines().any(|l| l.trim() == include) {
                let mut text = if current.is_empty() {
                    "#!/usr/sbin/nft -f\n".to_owned()
                } else {
                    current.clone()
                };
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                text.push_str(&format!(
                    "# Added by vpsfw --persist: table inet vpsfw.\n{include}\n"
                ));
                write_atomically(&conf, &text)?;
                out.files.push(conf);
            }
            out.notes.push(
                "enable nftables.service (systemctl enable nftables) so it loads at boot".into(),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{Builder, RuleBuilder};

    fn policy() -> Policy {
        Builder::new()
            .rule(RuleBuilder::allow_in().on("lo"))
            .build()
            .unwrap()
    }

    #[test]
    fn chains_layout_boot_files_carry_the_jumps() {
        let text = boot_restore(&policy(), Family::V4, Layout::Chains);
        assert!(text.contains("-A INPUT -j vpsfw-INPUT\n"), "{text}");
        assert!(text.ends_with("COMMIT\n"), "{text}");
    }

    #[test]
    fn a_path_nft_cannot_include_is_refused_before_writing() {
        let etc = std::env::temp_dir().join(format!("vpsfw-persist-\"q-{}", std::process::id()));
        let m = Managed {
            backend: Backend::Nft,
            layout: Layout::Table,
        };
        assert!(persist(&policy(), m, &etc).is_err());
        assert!(!etc.exists(), "nothing is written");
    }

    #[test]
    fn nft_persist_includes_the_table_once() {
        let etc = std::env::temp_dir().join(format!("vpsfw-persist-{}", std::process::id()));
        let _ = fs::remove_dir_all(&etc);
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("nftables.conf"), "flush ruleset\n").unwrap();
        let m = Managed {
            backend: Backend::Nft,
            layout: Layout::Table,
        };
        let first = persist(&policy(), m, &etc).unwrap();
        assert_eq!(first.files.len(), 2);
        let second = persist(&policy(), m, &etc).unwrap();
        assert_eq!(
            second.files.len(),
            1,
            "nftables.conf is left alone the second time"
        );
        let conf = fs::read_to_string(etc.join("nftables.conf")).unwrap();
        assert!(conf.starts_with("flush ruleset\n"), "{conf}");
        assert_eq!(conf.matches("include").count(), 1, "{conf}");
        fs::remove_dir_all(&etc).unwrap();
    }
}

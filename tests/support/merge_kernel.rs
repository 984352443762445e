//! Merged rules in the kernel: neighbours that differ only in destination port are one
//! multiport line (iptables) or one `dport { ... }` rule (nft); each probe sent for real
//! must meet the fate the policy gives it, and the evaluator (which walks one line per
//! policy rule) must agree. The probes include a source with another rule's port: a
//! merge that widened a match would let it in.

use std::net::IpAddr;

use vpsfw::builder::{Builder, RuleBuilder};
use vpsfw::{render, Chain, Format, Policy, Protocol, State};

use super::netns::{Lab, Listener};
use super::probe::probe_all;

/// `allow in tcp from SRC to PORT state new;`
fn allow(src: &str, port: u16) -> RuleBuilder {
    RuleBuilder::allow_in()
        .proto(Protocol::Tcp)
        .from(src)
        .to_ports(&[&port.to_string()])
        .state(&[State::New])
}

fn build(rules: Vec<RuleBuilder>) -> Policy {
    let mut b = Builder::new()
        .console_only()
        .group("merge")
        .rule(RuleBuilder::allow_in().on("lo"))
        .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]));
    for r in rules {
        b = b.rule(r);
    }
    b.policy(Chain::Input, vpsfw::Verdict::Drop)
        .build()
        .unwrap_or_else(|e| panic!("policy: {e}"))
}

fn load(lab: &Lab, policy: &Policy, nft: bool) -> Result<(), String> {
    let script = render(policy, if nft { Format::NftSh } else { Format::Sh });
    lab.run_sh(lab.vps(), &script).map(drop)
}

fn peers(probes: &[(&str, u16, bool)]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for (a, _, _) in probes {
        let ip: IpAddr = a.parse().expect("probe address");
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

fn ports(probes: &[(&str, u16, bool)]) -> Vec<u16> {
    let mut out: Vec<u16> = probes.iter().map(|p| p.1).collect();
    out.sort_unstable();
    out.dedup();
    out
}

const PORT_PROBES: &[(&str, u16, bool)] = &[
    ("198.51.100.7", 8080, true),
    ("198.51.100.7", 8081, true),
    ("198.51.100.7", 8082, false),
    ("203.0.113.5", 8082, true),
    ("203.0.113.5", 8083, true),
    ("203.0.113.5", 8080, false),
    ("2001:db8:100::7", 8080, true),
    ("2001:db8:100::7", 8081, true),
    ("2001:db8:100::7", 8083, false),
];

/// Neighbours differing only in port, per source: rendered as one multiport line (nft:
/// one rule) per source and family; each source gets in on its own ports only.
pub fn ports_merged(nft: bool) -> Result<(), String> {
    let policy = build(vec![
        allow("198.51.100.7", 8080),
        allow("198.51.100.7", 8081),
        allow("203.0.113.5", 8082),
        allow("203.0.113.5", 8083),
        allow("2001:db8:100::7", 8080),
        allow("2001:db8:100::7", 8081),
    ]);
    let v4 = render(&policy, Format::Restore);
    let merged = v4
        .lines()
        .filter(|l| l.contains("-m multiport --dports "))
        .count();
    if merged != 2 || v4.lines().filter(|l| l.starts_with("-A ")).count() != 4 {
        return Err(format!("expected 4 IPv4 lines, 2 of them merged:\n{v4}"));
    }
    let file = render(&policy, Format::Nft);
    if !file.contains("ip saddr 198.51.100.7 tcp dport { 8080, 8081 } ct state { new }") {
        return Err(format!("the nft rules are not merged:\n{file}"));
    }
    let lab = Lab::try_new(&peers(PORT_PROBES))?;
    let _listener = Listener::start(lab.vps(), &ports(PORT_PROBES))?;
    load(&lab, &policy, nft)?;
    probe_all(&lab, &policy, PORT_PROBES, 45000)
}

/// `AUTO_SET_MIN + 6` rules, each one source and its own port (both families): one
/// rule per family in the kernel, matching a set of (source, port) pairs. The first
/// IPv4 rule's source is a network, 203.0.113.0/25.
fn pair_policy() -> Policy {
    pair_policy_with(9000)
}

/// [`pair_policy`] with the first IPv4 rule's port `first`.
fn pair_policy_with(first: u16) -> Policy {
    let n = vpsfw::ruleset::AUTO_SET_MIN + 6;
    let mut rules = Vec::new();
    for i in 0..n {
        let src = if i == 0 {
            "203.0.113.0/25".to_owned()
        } else {
            format!("198.51.100.{i}")
        };
        rules.push(allow(&src, if i == 0 { first } else { 9000 + i as u16 }));
    }
    for i in 0..n {
        rules.push(allow(
            &format!("2001:db8:100::{:x}", i + 1),
            9000 + i as u16,
        ));
    }
    build(rules)
}

const PAIR_PROBES: &[(&str, u16, bool)] = &[
    ("203.0.113.5", 9000, true),
    // Another rule's port: a set of sources times a set of ports would let it in.
    ("203.0.113.5", 9001, false),
    ("203.0.113.200", 9000, false),
    ("198.51.100.1", 9001, true),
    ("198.51.100.1", 9002, false),
    ("198.51.100.69", 9069, true),
    ("198.51.100.69", 9000, false),
    ("198.51.100.70", 9070, false),
    ("2001:db8:100::1", 9000, true),
    ("2001:db8:100::1", 9001, false),
    ("2001:db8:100::46", 9069, true),
    ("2001:db8:100::46", 9068, false),
];

/// A long run of rules as one pair-set rule per family (an ipset `hash:net,port`, or an
/// nft concatenated set): each source gets in on its own port only.
pub fn pair_set(nft: bool) -> Result<(), String> {
    let policy = pair_policy();
    for format in [Format::Restore, Format::Restore6] {
        let text = render(&policy, format);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("-m set --match-set vpsfw-in"))
            .collect();
        if lines.len() != 1
            || !lines[0].ends_with(
                " src,dst -m conntrack --ctstate NEW -m comment --comment merge -j ACCEPT",
            )
        {
            return Err(format!("expected one pair-set line:\n{text}"));
        }
    }
    let file = render(&policy, Format::Nft);
    for want in ["ip saddr . tcp dport { ", "ip6 saddr . tcp dport { "] {
        if file.matches(want).count() != 1 {
            return Err(format!("expected one `{want}` rule:\n{file}"));
        }
    }
    let lab = Lab::try_new(&peers(PAIR_PROBES))?;
    let _listener = Listener::start(lab.vps(), &ports(PAIR_PROBES))?;
    load(&lab, &policy, nft)?;
    if !nft {
        let out = lab.exec(lab.vps(), &["ipset", "list", "-n"])?;
        let names = String::from_utf8_lossy(&out.stdout).into_owned();
        if names.lines().filter(|l| l.starts_with("vpsfw-in")).count() != 2 {
            return Err(format!("expected two pair sets:\n{names}"));
        }
    }
    probe_all(&lab, &policy, PAIR_PROBES, 46000)?;
    // Loading again (the sh script swaps the sets' contents in) changes nothing.
    load(&lab, &policy, nft)?;
    probe_all(&lab, &policy, PAIR_PROBES, 47000)?;
    if !nft {
        // The one-command-per-rule listing creates the sets its rules name, into an
        // empty namespace.
        let fresh = Lab::try_new(&peers(PAIR_PROBES))?;
        let _listener = Listener::start(fresh.vps(), &ports(PAIR_PROBES))?;
        fresh
            .run_sh(fresh.vps(), &render(&policy, Format::Commands))
            .map_err(|e| format!("the commands listing failed: {e}"))?;
        probe_all(&fresh, &policy, PAIR_PROBES, 50000)?;
    }
    Ok(())
}

/// `--apply` then `--diff` at the library level (the example binaries have no
/// generated policy), inside the lab's vps namespace: the policy with pair sets loads,
/// the diff says unchanged, a second apply touches nothing; the kernel then holds the
/// pairs (a probe).
pub fn apply_then_diff_unchanged(nft: bool) -> Result<(), String> {
    use vpsfw::apply::{self, Applied, Options};
    use vpsfw::live::{Backend, Managed};
    let policy = pair_policy();
    let lab = Lab::try_new(&peers(PAIR_PROBES))?;
    let _listener = Listener::start(lab.vps(), &ports(PAIR_PROBES))?;
    let dir = std::env::temp_dir().join(format!("vpsfw-merge-apply-{}-{nft}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        managed: Managed {
            backend: if nft { Backend::Nft } else { Backend::Iptables },
            layout: vpsfw::Layout::Table,
        },
        rollback_after: None,
        state_dir: dir.join("state"),
    };
    let result = super::netns::in_netns(lab.vps(), || -> Result<(), String> {
        let first = apply::apply(&policy, &opts).map_err(|e| format!("apply: {e}"))?;
        if !matches!(first, Applied::Loaded { .. }) {
            return Err(format!("the first apply did not load: {first:?}"));
        }
        let diff = apply::diff(&policy, opts.managed).map_err(|e| format!("diff: {e}"))?;
        if !diff.is_unchanged() {
            return Err(format!("--diff after --apply:\n{diff}"));
        }
        let again = apply::apply(&policy, &opts).map_err(|e| format!("apply again: {e}"))?;
        if !matches!(again, Applied::Unchanged { .. }) {
            return Err(format!("the second apply was not a no-op: {again:?}"));
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result??;
    if !nft {
        // The temporary sets an apply fills (`NAME-new`) are gone, also after the
        // apply that found nothing to change.
        let out = lab.exec(lab.vps(), &["ipset", "list", "-n"])?;
        let names = String::from_utf8_lossy(&out.stdout).into_owned();
        if names.lines().any(|n| n.ends_with("-new")) {
            return Err(format!("temporary sets left behind:\n{names}"));
        }
    }
    probe_all(&lab, &policy, &PAIR_PROBES[..3], 48000)
}

/// Editing one rule of a long run changes its pair set's name (the name follows the
/// contents, so the new set and the rules using it load while the old set still
/// serves the old rules). `--apply` then removes the old set, with `--own-chains` too:
/// after an edit the namespace holds exactly the sets the policy names, and the edited
/// rule's new port gets in where the old one no longer does.
pub fn edited_run_leaves_no_stale_set(layout: vpsfw::Layout) -> Result<(), String> {
    use vpsfw::apply::{self, Options};
    use vpsfw::live::{Backend, Managed};
    let probes: &[(&str, u16, bool)] = &[("203.0.113.5", 9500, true), ("203.0.113.5", 9000, false)];
    let lab = Lab::try_new(&peers(PAIR_PROBES))?;
    let _listener = Listener::start(lab.vps(), &[9000, 9500])?;
    let dir = std::env::temp_dir().join(format!(
        "vpsfw-merge-stale-{}-{layout:?}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Options {
        managed: Managed {
            backend: Backend::Iptables,
            layout,
        },
        rollback_after: None,
        state_dir: dir.join("state"),
    };
    let (before, after) = (pair_policy(), pair_policy_with(9500));
    // IPv6 as loaded, counters included, without the stamp chain.
    let v6 = |lab: &Lab| -> Result<Vec<String>, String> {
        let out = lab.exec(lab.vps(), &["ip6tables-save", "-c", "-t", "filter"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with(":vpsfw-"))
            .map(str::to_owned)
            .collect())
    };
    let first = super::netns::in_netns(lab.vps(), || {
        apply::apply(&before, &opts).map_err(|e| format!("apply: {e}"))
    });
    let counted = first
        .and_then(|r| r.map(drop))
        .and_then(|()| probe_all(&lab, &before, &PAIR_PROBES[8..9], 49500))
        .and_then(|()| v6(&lab));
    let result = counted.and_then(|v6_before| {
        super::netns::in_netns(lab.vps(), || {
            apply::apply(&after, &opts).map_err(|e| format!("apply the edit: {e}"))
        })??;
        // The edit is in IPv4 only: IPv6 keeps its rules (it got only the new stamp) and
        // their counters, where a reload would have zeroed them. The namespace's own
        // IPv6 traffic (neighbour discovery) may count meanwhile: counters may grow.
        let v6_after = v6(&lab)?;
        let split = |l: &str| -> (u64, String) {
            match l.strip_prefix('[').and_then(|r| r.split_once("] ")) {
                Some((counts, rule)) => (
                    counts
                        .split(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0),
                    rule.to_owned(),
                ),
                None => (0, l.to_owned()),
            }
        };
        let (b, a): (Vec<_>, Vec<_>) = (
            v6_before.iter().map(|l| split(l)).collect(),
            v6_after.iter().map(|l| split(l)).collect(),
        );
        let same_rules = b.len() == a.len() && b.iter().zip(&a).all(|(x, y)| x.1 == y.1);
        let kept = b.iter().zip(&a).all(|(x, y)| y.0 >= x.0);
        if !same_rules || !kept {
            return Err(format!(
                "IPv6 changed with an IPv4 edit:\n{v6_before:#?}\n{v6_after:#?}"
            ));
        }
        if !b.iter().any(|(n, r)| r.contains("--match-set") && *n > 0) {
            return Err(format!("no IPv6 packet was counted:\n{v6_before:#?}"));
        }
        let stamp = format!(":vpsfw-{} ", vpsfw::render::stamp(&after));
        let out = lab.exec(lab.vps(), &["ip6tables-save", "-t", "filter"])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let stamps: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.strip_prefix(':')
                    .and_then(|l| l.split(' ').next())
                    .is_some_and(vpsfw::render::is_stamp_chain)
            })
            .collect();
        if stamps.len() != 1 || !stamps[0].starts_with(&stamp) {
            return Err(format!("IPv6 stamp chains after the edit: {stamps:?}"));
        }
        Ok(())
    });
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let wanted = |p: &Policy| -> Vec<String> {
        let mut names: Vec<String> = render(p, Format::Ipset)
            .lines()
            .filter_map(|l| l.strip_prefix("create "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    };
    if wanted(&before) == wanted(&after) {
        return Err("the edit did not change a pair set's name: nothing to test".into());
    }
    let out = lab.exec(lab.vps(), &["ipset", "list", "-n"])?;
    let mut live: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    live.sort();
    if live != wanted(&after) {
        return Err(format!(
            "sets after the edit: {live:?}, the policy's: {:?}",
            wanted(&after)
        ));
    }
    probe_all(&lab, &after, probes, 49000)
}

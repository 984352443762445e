//! Address sets in the kernel: a 10,000-network set with both backends (a member is
//! dropped, its neighbours are not), a reload that changes a set, and a benchmark of a
//! long address list as rules vs as a set.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use vpsfw::builder::{Builder, RuleBuilder};
use vpsfw::{render, Action, Chain, Direction, Format, Policy, Protocol, Verdict as Default_};

use super::netns::{tcp_connect, Lab, Listener, Outcome};
use super::probe::probe_all;

/// `n` IPv6 networks `2001:db8:a000::/48` upwards, plus IPv4 hosts of 203.0.113.0/24
/// (all documentation space).
pub fn big_list(n: usize) -> Vec<String> {
    let mut out: Vec<String> = (0..n)
        .map(|i| format!("2001:db8:{:x}::/48", 0xa000 + i))
        .collect();
    out.extend((0..200).map(|i| format!("203.0.113.{i}")));
    out
}

/// Drops the list (as a set, or as one rule per entry), allows tcp 8080, drops the rest.
pub fn policy(list: &[String], as_set: bool) -> Policy {
    let mut b = Builder::new();
    if as_set {
        b = b.set("big", list);
    }
    b = b.rule(RuleBuilder::allow_in().on("lo"));
    if as_set {
        b = b.rule(RuleBuilder::new(Action::Drop, Direction::In).from("big"));
    } else {
        for a in list {
            b = b.rule(RuleBuilder::new(Action::Drop, Direction::In).from(a));
        }
    }
    b.rule(RuleBuilder::allow_in().state(&[vpsfw::State::Established, vpsfw::State::Related]))
        .rule(
            RuleBuilder::allow_in()
                .proto(Protocol::Tcp)
                .to_ports(&["8080"]),
        )
        .policy(Chain::Input, Default_::Drop)
        .console_only()
        .build()
        .unwrap_or_else(|e| panic!("policy: {e}"))
}

/// Members and their neighbours, with what must happen to each.
const PROBES: &[(&str, u16, bool)] = &[
    ("2001:db8:a000::5", 8080, false),
    ("2001:db8:a123::5", 8080, false),
    ("2001:db8:c70f::5", 8080, false),
    ("2001:db8:9fff::5", 8080, true),
    ("2001:db8:c710::5", 8080, true),
    ("203.0.113.0", 8080, false),
    ("203.0.113.199", 8080, false),
    ("203.0.113.200", 8080, true),
];

fn load(lab: &Lab, policy: &Policy, nft: bool) -> Result<Duration, String> {
    let script = render(policy, if nft { Format::NftSh } else { Format::Sh });
    let t = Instant::now();
    lab.run_sh(lab.vps(), &script)?;
    Ok(t.elapsed())
}

fn peers() -> Vec<IpAddr> {
    PROBES
        .iter()
        .filter_map(|(a, _, _)| a.parse().ok())
        .collect()
}

/// A set of 10,000 IPv6 networks and 200 IPv4 hosts, loaded by the sh script of the
/// backend: members dropped, neighbours let in, and the evaluator agrees.
pub fn big_set(nft: bool) -> Result<(), String> {
    let list = big_list(10_000);
    let policy = policy(&list, true);
    let lab = Lab::try_new(&peers())?;
    let _listener = Listener::start(lab.vps(), &[8080])?;
    load(&lab, &policy, nft)?;
    probe_all(&lab, &policy, PROBES, 41000)
}

/// Reloading with changed set contents: a removed member gets in, an added one does not.
pub fn set_reload(nft: bool) -> Result<(), String> {
    let lab = Lab::try_new(&peers())?;
    let _listener = Listener::start(lab.vps(), &[8080])?;
    let first: Vec<String> = vec!["2001:db8:a123::/48".into(), "203.0.113.0/25".into()];
    let p1 = policy(&first, true);
    load(&lab, &p1, nft)?;
    probe_all(
        &lab,
        &p1,
        &[
            ("2001:db8:a123::5", 8080, false),
            ("203.0.113.200", 8080, true),
        ],
        42000,
    )?;
    let second: Vec<String> = vec!["2001:db8:c70f::/48".into(), "203.0.113.128/25".into()];
    let p2 = policy(&second, true);
    load(&lab, &p2, nft)?;
    probe_all(
        &lab,
        &p2,
        &[
            ("2001:db8:a123::5", 8080, true),
            ("2001:db8:c70f::5", 8080, false),
            ("203.0.113.200", 8080, false),
            ("203.0.113.0", 8080, true),
        ],
        43000,
    )?;
    if !nft {
        let out = lab.exec(lab.vps(), &["ipset", "list", "-n"])?;
        let names = String::from_utf8_lossy(&out.stdout).into_owned();
        if names.lines().any(|l| l.ends_with("-new")) {
            return Err(format!("temporary sets left behind:\n{names}"));
        }
        // A policy without sets: the sets of the one before go.
        let p3 = policy(&[], false);
        load(&lab, &p3, nft)?;
        probe_all(&lab, &p3, &[("2001:db8:c70f::5", 8080, true)], 44000)?;
        let out = lab.exec(lab.vps(), &["ipset", "list", "-n"])?;
        let names = String::from_utf8_lossy(&out.stdout).into_owned();
        if names.lines().any(|l| l.starts_with("vpsfw-")) {
            return Err(format!(
                "a policy without sets left the earlier policy's sets behind:\n{names}"
            ));
        }
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Benchmark (run with `cargo test --test kernel -- --ignored bench`): loading a
/// 10,000-network list as rules vs as a set, both backends, and the packet path: the
/// time for 300 TCP connections from a non-member, which every rule must look at.
pub fn bench_rules_vs_set() -> Result<(), String> {
    let list = big_list(10_000);
    println!("\n10,000 IPv6 networks + 200 IPv4 hosts, median of 3 (load) / 300 connections (packet path)");
    println!(
        "{:<10} {:<8} {:>10} {:>16}",
        "backend", "as", "load", "per connection"
    );
    for nft in [false, true] {
        for as_set in [false, true] {
            let policy = policy(&list, as_set);
            let lab = Lab::try_new(&peers())?;
            let _listener = Listener::start(lab.vps(), &[8080])?;
            let loads: Vec<Duration> = (0..3)
                .map(|_| load(&lab, &policy, nft))
                .collect::<Result<_, _>>()?;
            let src_ip: IpAddr = "2001:db8:9fff::5".parse().map_err(|e| format!("{e}"))?;
            let dst = SocketAddr::new("2001:db8::1".parse().map_err(|e| format!("{e}"))?, 8080);
            let t = Instant::now();
            for i in 0..300u16 {
                let got = tcp_connect(
                    lab.net(),
                    Some(SocketAddr::new(src_ip, 44000 + i)),
                    dst,
                    Duration::from_secs(2),
                );
                if got != Outcome::Connected {
                    return Err(format!("bench connection {i}: {got:?}"));
                }
            }
            let per = t.elapsed() / 300;
            println!(
                "{:<10} {:<8} {:>10.1?} {:>16.1?}",
                if nft { "nft" } else { "iptables" },
                if as_set { "set" } else { "rules" },
                median(loads),
                per
            );
        }
    }
    Ok(())
}

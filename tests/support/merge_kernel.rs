//! Merged rules in the kernel: neighbours that differ only in destination port are one
//! multiport line (iptables) or one `dport { ... }` rule (nft); each probe sent for real
//! must meet the fate the policy gives it, and the evaluator (which walks one line per
//! policy rule) must agree. The probes include a source with another rule's port: a
//! merge that widened a match would let it in.

use std::net::{IpAddr, SocketAddr};

use vpsfw::builder::{Builder, RuleBuilder};
use vpsfw::{render, Chain, Format, Outcome as Verdict, Packet, Policy, Protocol, State};

use super::netns::{tcp_connect, Lab, Listener, Outcome, PROBE_TIMEOUT};

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

/// Sends each probe (source address, destination port, whether it must get in) from
/// the lab's peer side, checks the kernel's answer and that the evaluator agrees.
fn probe_all(
    lab: &Lab,
    policy: &Policy,
    probes: &[(&str, u16, bool)],
    port_base: u16,
) -> Result<(), String> {
    for (i, &(addr, port, allowed)) in probes.iter().enumerate() {
        let ip: IpAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let vps: IpAddr = if ip.is_ipv4() {
            "192.0.2.1"
        } else {
            "2001:db8::1"
        }
        .parse()
        .map_err(|e| format!("{e}"))?;
        let src = SocketAddr::new(ip, port_base + i as u16);
        let dst = SocketAddr::new(vps, port);
        let got = tcp_connect(lab.net(), Some(src), dst, PROBE_TIMEOUT);
        let want = if allowed {
            Outcome::Connected
        } else {
            Outcome::TimedOut
        };
        if got != want {
            return Err(format!(
                "{src} -> {dst}: the kernel said {got:?}, the policy means {want:?}"
            ));
        }
        let packet: Packet = format!("in tcp from {src} to {dst}").parse()?;
        let predicted = policy.evaluate(&packet).outcome;
        let agrees = matches!(
            (&got, predicted),
            (Outcome::Connected, Verdict::Accept) | (Outcome::TimedOut, Verdict::Drop)
        );
        if !agrees {
            return Err(format!(
                "{src} -> {dst}: the evaluator says {predicted:?}, the kernel {got:?}"
            ));
        }
    }
    Ok(())
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

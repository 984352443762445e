//! Living beside other tools: with `Layout::Chains` (iptables) and with the nft backend,
//! rules another tool put there survive reloads, and vpsfw's rules still act.

use std::net::{IpAddr, SocketAddr};

use vpsfw::{render_with, Format, Layout, Policy};

use super::netns::{tcp_connect, Lab, Listener, Outcome, PROBE_TIMEOUT};

/// What fail2ban and Docker leave in the filter table: a chain of their own with a
/// rule, jumped to from INPUT, and a rule in FORWARD.
const FOREIGN_V4: &[&[&str]] = &[
    &["iptables", "-N", "f2b-sshd"],
    &[
        "iptables",
        "-A",
        "f2b-sshd",
        "-s",
        "203.0.113.66",
        "-j",
        "REJECT",
    ],
    &[
        "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "f2b-sshd",
    ],
    &["iptables", "-N", "DOCKER-USER"],
    &["iptables", "-A", "FORWARD", "-j", "DOCKER-USER"],
    &[
        "ip6tables",
        "-A",
        "INPUT",
        "-s",
        "2001:db8:66::1",
        "-j",
        "DROP",
    ],
];

fn foreign_lines(lab: &Lab) -> Vec<String> {
    let (v4, v6) = lab.save(lab.vps());
    v4.lines()
        .chain(v6.lines())
        .filter(|l| {
            l.contains("f2b-sshd") || l.contains("DOCKER-USER") || l.contains("2001:db8:66::1")
        })
        .map(str::to_owned)
        .collect()
}

/// `sh --own-chains` twice: the foreign chains and rules are still there, each once;
/// vpsfw's chains are jumped to once; the policy acts (admin in, stranger out) and the
/// foreign rule still acts (the banned address is refused on ssh).
pub fn iptables_chains_survive(policy: &Policy) -> Result<(), String> {
    let peers: Vec<IpAddr> = ["198.51.100.7", "203.0.113.66", "203.0.113.99"]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let lab = Lab::try_new(&peers)?;
    for cmd in FOREIGN_V4 {
        lab.exec(lab.vps(), cmd)?;
    }
    let before = foreign_lines(&lab);
    let script = render_with(policy, Format::Sh, Layout::Chains);
    for run in 1..=2 {
        lab.run_sh(lab.vps(), &script)
            .map_err(|e| format!("sh --own-chains run {run}: {e}"))?;
        let after = foreign_lines(&lab);
        if after != before {
            return Err(format!(
                "run {run} changed other tools' rules:\nbefore: {before:#?}\nafter: {after:#?}"
            ));
        }
    }
    let (v4, v6) = lab.save(lab.vps());
    for (text, fam) in [(&v4, "IPv4"), (&v6, "IPv6")] {
        for chain in ["INPUT", "FORWARD", "OUTPUT"] {
            let jump = format!("-A {chain} -j vpsfw-{chain}");
            let n = text.lines().filter(|l| *l == jump).count();
            if n != 1 {
                return Err(format!("{fam}: `{jump}` appears {n} times:\n{text}"));
            }
        }
    }
    let listener = Listener::start(lab.vps(), &[22, 8080])?;
    let vps = |port| SocketAddr::new("192.0.2.1".parse().expect("address"), port);
    let from = |a: &str, port| Some(SocketAddr::new(a.parse().expect("address"), port));
    let cases = [
        (
            "admin to ssh",
            from("198.51.100.7", 40001),
            vps(22),
            Outcome::Connected,
        ),
        (
            "stranger to 8080",
            from("203.0.113.99", 40002),
            vps(8080),
            Outcome::TimedOut,
        ),
        (
            "banned address to ssh (fail2ban's rule)",
            from("203.0.113.66", 40003),
            vps(22),
            Outcome::Refused,
        ),
    ];
    for (what, src, dst, want) in cases {
        let got = tcp_connect(lab.net(), src, dst, PROBE_TIMEOUT);
        if got != want {
            return Err(format!("{what}: expected {want:?}, got {got:?}"));
        }
    }
    drop(listener);
    Ok(())
}

/// The nft backend replaces only `table inet vpsfw`: another table and its rules
/// survive two loads.
pub fn nft_table_survives(policy: &Policy) -> Result<(), String> {
    let lab = Lab::try_new(&[])?;
    lab.exec_stdin(
        lab.vps(),
        &["nft", "-f", "-"],
        Some("table inet other {\n chain input { type filter hook input priority 10; policy accept; ip saddr 203.0.113.66 counter drop comment \"theirs\"\n }\n}\n"),
    )?;
    let script = render_with(policy, Format::NftSh, Layout::Table);
    for run in 1..=2 {
        lab.run_sh(lab.vps(), &script)
            .map_err(|e| format!("nft-sh run {run}: {e}"))?;
        let out = lab.exec(lab.vps(), &["nft", "list", "table", "inet", "other"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("ip saddr 203.0.113.66") || !text.contains("\"theirs\"") {
            return Err(format!("run {run} removed the other table's rule:\n{text}"));
        }
    }
    Ok(())
}

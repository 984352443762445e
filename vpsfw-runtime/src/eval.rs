//! The offline evaluator: what the rendered ruleset does with one packet.
//!
//! It walks the same [`Line`]s the renderers print, first match wins, per family and
//! chain, so its answer is the kernel's answer for the ruleset vpsfw loads (the kernel
//! tests hold it to that). `log` rules are not terminal: they are noted and the walk goes
//! on. A `limit` match is taken as matching: the answer is for a packet under the limit.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Serialize;

use crate::model::{Origin, Policy};
use crate::ruleset::{chain_lines, Line};
use crate::value::{Action, Chain, Direction, Family, IcmpType, Protocol, State, Verdict};

/// A packet as the filter table sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Packet {
    pub direction: Direction,
    /// The input interface (`in`, `forward`) or output interface (`out`).
    pub iface: String,
    pub proto: Protocol,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// ICMP or ICMPv6 type number.
    pub icmp_type: Option<u8>,
    pub state: State,
}

impl Packet {
    pub fn family(&self) -> Family {
        match self.src {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// What happens to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Outcome {
    Accept,
    Drop,
    Reject,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Accept => "ACCEPT",
            Outcome::Drop => "DROP",
            Outcome::Reject => "REJECT",
        })
    }
}

/// What decided a packet's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy<'p> {
    /// A rule: the rendered line, and its 1-based position in the chain of its family
    /// (the number `iptables -L --line-numbers` shows).
    Rule { line: Line<'p>, position: usize },
    /// No rule matched: the chain's default policy.
    Policy { chain: Chain },
}

/// The evaluator's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<'p> {
    pub outcome: Outcome,
    pub by: DecidedBy<'p>,
    pub family: Family,
    /// `log` rules the packet matched on the way, with their positions.
    pub logged: Vec<(Line<'p>, usize)>,
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.by {
            DecidedBy::Rule { line, position } => {
                let rule = line.rule;
                write!(
                    f,
                    "{} by {} rule {position} of {}",
                    self.outcome,
                    self.family,
                    rule.chain().iptables_name()
                )?;
                let mut about = Vec::new();
                if let Some(g) = rule.group() {
                    about.push(format!("group {g}"));
                }
                match rule.origin() {
                    Origin::Written { line: Some(l), .. } => about.push(format!("line {l}")),
                    Origin::Written { line: None, .. } => {}
                    Origin::Implicit { why } => about.push(format!("added by vpsfw: {why}")),
                }
                if !about.is_empty() {
                    write!(f, " ({})", about.join(", "))?;
                }
                write!(f, ": {}", rule.text())
            }
            DecidedBy::Policy { chain } => write!(
                f,
                "{} by the {} policy of {}: no rule matched",
                self.outcome,
                self.family,
                chain.iptables_name()
            ),
        }
    }
}

fn line_matches(line: &Line<'_>, p: &Packet) -> bool {
    let rule = line.rule;
    // Rates and history the evaluator cannot know: the answer is for a packet under
    // every rate, from a source not on the port-scan list.
    if rule.over().is_some() || matches!(rule.recent(), Some(crate::harden::Recent::Listed { .. }))
    {
        return false;
    }
    // A new TCP connection starts with a SYN; other packets are not SYNs.
    if rule.syn() && !(p.proto == Protocol::Tcp && p.state == State::New) {
        return false;
    }
    if let Some(i) = rule.iface() {
        if !i.matches(&p.iface) {
            return false;
        }
    }
    if let Some(t) = line.src {
        if !t.contains(p.src) {
            return false;
        }
    }
    if let Some(t) = line.dst {
        if !t.contains(p.dst) {
            return false;
        }
    }
    if let Some(proto) = rule.proto() {
        if proto != p.proto {
            return false;
        }
    }
    let port_ok = |ranges: Option<&[crate::value::PortRange]>, port: Option<u16>| match ranges {
        None => true,
        Some(rs) => port.is_some_and(|n| rs.iter().any(|r| r.contains(n))),
    };
    if !port_ok(line.sport, p.sport) || !port_ok(line.dport, p.dport) {
        return false;
    }
    if let Some(t) = rule.icmp_type() {
        if Some(t.code()) != p.icmp_type {
            return false;
        }
    }
    if let Some(s) = rule.states() {
        if !s.contains(p.state) {
            return false;
        }
    }
    true
}

impl Policy {
    /// What the rendered ruleset does with `packet`, and why.
    pub fn evaluate(&self, packet: &Packet) -> Decision<'_> {
        let family = packet.family();
        let chain = packet.direction.chain();
        let mut logged = Vec::new();
        for (i, line) in chain_lines(self, family, chain).into_iter().enumerate() {
            if !line_matches(&line, packet) {
                continue;
            }
            let position = i + 1;
            let outcome = match line.rule.action() {
                Action::Log => {
                    logged.push((line, position));
                    continue;
                }
                Action::Allow => Outcome::Accept,
                Action::Drop => Outcome::Drop,
                Action::Reject => Outcome::Reject,
            };
            return Decision {
                outcome,
                by: DecidedBy::Rule { line, position },
                family,
                logged,
            };
        }
        let outcome = match self.defaults().get(chain) {
            Verdict::Allow => Outcome::Accept,
            Verdict::Drop => Outcome::Drop,
        };
        Decision {
            outcome,
            by: DecidedBy::Policy { chain },
            family,
            logged,
        }
    }
}

/// Parses `in tcp from 203.0.113.99:40000 to 192.0.2.1:22 [on eth0] [state new]`.
///
/// IPv6 with a port is written `[2001:db8::1]:22`; `icmp`/`icmpv6` take `type NAME`.
/// The interface defaults to `lo` when either address is a loopback address, else `eth0`;
/// the state defaults to `new`.
impl FromStr for Packet {
    type Err = String;

    fn from_str(s: &str) -> Result<Packet, String> {
        let mut words = s.split_whitespace();
        let mut next = |what: &str| {
            words
                .next()
                .ok_or_else(|| format!("missing {what}; expected `DIRECTION PROTO from ADDR[:PORT] to ADDR[:PORT] [on IFACE] [state STATE]`"))
        };
        let direction: Direction = next("direction")?.parse()?;
        let proto: Protocol = next("protocol")?.parse()?;
        let mut icmp_type = None;
        let mut word = next("`from`")?;
        if word == "type" {
            let name = next("ICMP type")?;
            let fam = proto.family().ok_or("`type` needs `icmp` or `icmpv6`")?;
            icmp_type = Some(IcmpType::new(fam, name)?.code());
            word = next("`from`")?;
        }
        if word != "from" {
            return Err(format!(
                "expected `from`, found `{}`",
                crate::diag::shown(word)
            ));
        }
        let (src, sport) = endpoint(next("source address")?)?;
        let to = next("`to`")?;
        if to != "to" {
            return Err(format!("expected `to`, found `{}`", crate::diag::shown(to)));
        }
        let (dst, dport) = endpoint(next("destination address")?)?;
        let mut iface = None;
        let mut state = State::New;
        while let Ok(w) = next("clause") {
            match w {
                "on" => iface = Some(crate::value::Iface::new(next("interface")?)?.to_string()),
                "state" => state = next("state")?.parse()?,
                other => {
                    return Err(format!(
                        "unexpected `{}`; expected `on IFACE` or `state STATE`",
                        crate::diag::shown(other)
                    ))
                }
            }
        }
        if src.is_ipv4() != dst.is_ipv4() {
            return Err("the source and destination are of different address families".into());
        }
        if let Some(f) = proto.family() {
            let fam = if src.is_ipv4() {
                Family::V4
            } else {
                Family::V6
            };
            if f != fam {
                return Err(format!(
                    "`{proto}` is {f} only, but the addresses are {fam}"
                ));
            }
        }
        if proto.has_ports() {
            if sport.is_none() || dport.is_none() {
                return Err(format!("a `{proto}` packet needs both ports: ADDR:PORT"));
            }
        } else if sport.is_some() || dport.is_some() {
            return Err(format!("`{proto}` has no ports"));
        }
        let iface = iface.unwrap_or_else(|| {
            if src.is_loopback() || dst.is_loopback() {
                "lo".into()
            } else {
                "eth0".into()
            }
        });
        Ok(Packet {
            direction,
            iface,
            proto,
            src,
            dst,
            sport,
            dport,
            icmp_type,
            state,
        })
    }
}

fn endpoint(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    if let Ok(sa) = text.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err(format!(
                "port 0 in `{}` is not a valid port",
                crate::diag::shown(text)
            ));
        }
        return Ok((sa.ip(), Some(sa.port())));
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>().map(|a| (a, None)).map_err(|_| {
        format!(
            "malformed address `{}`; write 192.0.2.1, 192.0.2.1:22, 2001:db8::1 or [2001:db8::1]:22",
            crate::diag::shown(text)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_check_lines() {
        let p: Packet = "in tcp from 203.0.113.99:40000 to 192.0.2.1:22"
            .parse()
            .unwrap();
        assert_eq!(p.dport, Some(22));
        assert_eq!(p.state, State::New);
        assert_eq!(p.iface, "eth0");
        let p: Packet =
            "out udp from [2001:db8::1]:5353 to [2001:db8::53]:53 state established on eth1"
                .parse()
                .unwrap();
        assert_eq!(p.family(), Family::V6);
        assert_eq!(p.state, State::Established);
        assert_eq!(p.iface, "eth1");
        let p: Packet = "in icmpv6 type echo-request from 2001:db8::2 to ::1"
            .parse()
            .unwrap();
        assert_eq!((p.icmp_type, p.iface.as_str()), (Some(128), "lo"));
    }

    #[test]
    fn rejects_bad_check_lines() {
        for bad in [
            "",
            "in",
            "inn tcp from 192.0.2.2:1 to 192.0.2.1:2",
            "in tcp from 192.0.2.2 to 192.0.2.1:22",
            "in tcp from 192.0.2.2:1 to 2001:db8::1:22",
            "in tcp from 192.0.2.2:1 to [2001:db8::1]:22",
            "in icmp from 192.0.2.2:1 to 192.0.2.1",
            "in icmpv6 from 192.0.2.2 to 192.0.2.1",
            "in tcp from 192.0.2.2:1 to 192.0.2.1:22 state fresh",
            "in tcp from 192.0.2.2:0 to 192.0.2.1:22",
            "in tcp from 192.0.2.2:1 to 192.0.2.1:22 on eth0;reboot",
        ] {
            assert!(bad.parse::<Packet>().is_err(), "{bad:?} was accepted");
        }
    }
}

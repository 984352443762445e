//! The policy as the kernel will hold it: per family, per chain, one [`Line`] for each
//! policy rule (per multiport chunk). The evaluator and the analysis walk these lines;
//! the renderers print [`rendered_lines`], the same lines with adjacent ones that differ
//! only in destination port merged into one. Merging never changes what a packet meets:
//! only pure matches with a terminal action merge, and only neighbours.

use std::borrow::Cow;
use std::collections::HashSet;

use ipnet::IpNet;

use crate::model::{Policy, Rule, Target};
#[cfg(test)]
use crate::value::Protocol;
use crate::value::{Action, Chain, Family, PortRange};

/// `-m multiport` takes at most 15 ports, a range counting as two.
pub const MULTIPORT_MAX: usize = 15;

/// A source or destination as one family's rule matches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineTarget<'p> {
    Net(IpNet),
    /// A set of the policy, this family's half of it.
    Set(&'p crate::set::SetDef),
}

impl<'p> LineTarget<'p> {
    fn of(policy: &'p Policy, target: &'p Target, family: Family) -> Option<LineTarget<'p>> {
        match target {
            Target::Addr(a) => a.get(family).map(LineTarget::Net),
            Target::Set { name, .. } => policy.set(name).map(LineTarget::Set),
        }
    }

    /// Whether an address matches.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        match self {
            LineTarget::Net(n) => n.contains(&ip),
            LineTarget::Set(s) => s.contains(ip),
        }
    }
}

/// One rule as rendered for one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'p> {
    /// The policy rule it comes from, and its index in [`Policy::rules`].
    pub rule: &'p Rule,
    pub index: usize,
    pub family: Family,
    pub src: Option<LineTarget<'p>>,
    pub dst: Option<LineTarget<'p>>,
    pub sport: Option<&'p [PortRange]>,
    pub dport: Option<&'p [PortRange]>,
}

/// Splits a port list into chunks that one multiport match can take.
fn chunks(ranges: &[PortRange]) -> Vec<&[PortRange]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut weight = 0;
    for (i, r) in ranges.iter().enumerate() {
        let w = if r.is_single() { 1 } else { 2 };
        if weight + w > MULTIPORT_MAX {
            out.push(&ranges[start..i]);
            start = i;
            weight = 0;
        }
        weight += w;
    }
    out.push(&ranges[start..]);
    out
}

/// The lines of one chain of one family, in order.
pub fn chain_lines(policy: &Policy, family: Family, chain: Chain) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    for (index, rule) in policy.rules().iter().enumerate() {
        if rule.chain() != chain || !rule.in_family(family) {
            continue;
        }
        let src = rule.src().and_then(|t| LineTarget::of(policy, t, family));
        let dst = rule.dst().and_then(|t| LineTarget::of(policy, t, family));
        let sports: Vec<Option<&[PortRange]>> = match rule.sport() {
            Some(p) => chunks(p.ranges()).into_iter().map(Some).collect(),
            None => vec![None],
        };
        let dports: Vec<Option<&[PortRange]>> = match rule.dport() {
            Some(p) => chunks(p.ranges()).into_iter().map(Some).collect(),
            None => vec![None],
        };
        for sport in &sports {
            for dport in &dports {
                out.push(Line {
                    rule,
                    index,
                    family,
                    src,
                    dst,
                    sport: *sport,
                    dport: *dport,
                });
            }
        }
    }
    out
}

/// One rule as rendered for one family: a [`Line`], or adjacent lines merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered<'p> {
    /// The first line merged: every match but the destination ports (and, with
    /// `pairs`, the source) is this line's, and so are the other lines'.
    pub line: Line<'p>,
    /// The policy rules it stands for: indexes in [`Policy::rules`], in order, each once.
    pub origins: Vec<usize>,
    /// The destination ports: the line's own, or the union of the merged lines' (in
    /// order, without repeats, at most [`MULTIPORT_MAX`] weight).
    pub dport: Option<Cow<'p, [PortRange]>>,
}

impl<'p> Rendered<'p> {
    fn single(line: Line<'p>) -> Rendered<'p> {
        Rendered {
            line,
            origins: vec![line.index],
            dport: line.dport.map(Cow::Borrowed),
        }
    }
}

/// Whether a rule may merge with its neighbours: a terminal action (never `log`) and
/// pure matches only. A rate limit, a hashlimit or the recent list keeps state per
/// kernel rule: merged rules would share one bucket, so they never merge.
pub(crate) fn mergeable(rule: &Rule) -> bool {
    matches!(rule.action(), Action::Allow | Action::Drop | Action::Reject)
        && rule.limit().is_none()
        && rule.over().is_none()
        && rule.recent().is_none()
        && rule.log_prefix().is_none()
}

/// Whether two rules agree on everything but addresses and ports: chain, action,
/// protocol, states, interface, SYN flag and the rendered comment.
pub(crate) fn same_rest(a: &Rule, b: &Rule) -> bool {
    a.chain() == b.chain()
        && a.action() == b.action()
        && a.proto() == b.proto()
        && a.states() == b.states()
        && a.iface() == b.iface()
        && a.syn() == b.syn()
        && ((a.group() == b.group() && a.comment() == b.comment())
            || crate::render::comment_text(a) == crate::render::comment_text(b))
}

/// Whether `b` can join a port merge that `a` heads: same everything but the
/// destination ports, both with destination ports, no ICMP type.
fn ports_merge(a: &Line<'_>, b: &Line<'_>) -> bool {
    a.family == b.family
        && mergeable(a.rule)
        && mergeable(b.rule)
        && same_rest(a.rule, b.rule)
        && a.rule.icmp_type().is_none()
        && b.rule.icmp_type().is_none()
        && a.src == b.src
        && a.dst == b.dst
        && a.sport == b.sport
        && a.dport.is_some()
        && b.dport.is_some()
}

/// The union of port lists, in order, each range once.
pub(crate) fn port_union<'a>(lists: impl IntoIterator<Item = &'a [PortRange]>) -> Vec<PortRange> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for list in lists {
        for r in list {
            if seen.insert(*r) {
                out.push(*r);
            }
        }
    }
    out
}

/// Appends an index unless it is the last one already (origins come in rule order).
fn push_origin(origins: &mut Vec<usize>, index: usize) {
    if origins.last() != Some(&index) {
        origins.push(index);
    }
}

/// The lines of one chain of one family as the renderers print them: [`chain_lines`]
/// with adjacent lines that differ only in destination port merged (ports united and
/// chunked again for multiport).
pub fn rendered_lines(policy: &Policy, family: Family, chain: Chain) -> Vec<Rendered<'_>> {
    let lines = chain_lines(policy, family, chain);
    let mut merged: Vec<Rendered<'_>> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let head = lines[i];
        let mut j = i + 1;
        while j < lines.len() && ports_merge(&head, &lines[j]) {
            j += 1;
        }
        if j == i + 1 {
            merged.push(Rendered::single(head));
            i = j;
            continue;
        }
        let run = &lines[i..j];
        let union = port_union(run.iter().filter_map(|l| l.dport));
        for chunk in chunks(&union) {
            let mine: HashSet<&PortRange> = chunk.iter().collect();
            let mut origins = Vec::new();
            for l in run {
                if l.dport.is_some_and(|d| d.iter().any(|p| mine.contains(p))) {
                    push_origin(&mut origins, l.index);
                }
            }
            merged.push(Rendered {
                line: head,
                origins,
                dport: Some(Cow::Owned(chunk.to_vec())),
            });
        }
        i = j;
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::FindingKind;
    use crate::builder::{Builder, RuleBuilder};
    use crate::value::{Port, RateUnit, State};

    fn tcp_in(ports: &[&str]) -> RuleBuilder {
        RuleBuilder::allow_in()
            .proto(Protocol::Tcp)
            .to_ports(ports)
            .state(&[State::New])
    }

    fn build(rules: Vec<RuleBuilder>) -> Policy {
        let mut b = Builder::new()
            .console_only()
            .allow(&FindingKind::ALL)
            .group("web");
        for r in rules {
            b = b.rule(r);
        }
        b.build().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The IPv4 input chain as rendered: per line, its origins (counted from the first
    /// written rule) and its destination ports.
    fn shape(p: &Policy, written: usize) -> Vec<(Vec<usize>, String)> {
        let base = p.rules().len() - written;
        rendered_lines(p, Family::V4, Chain::Input)
            .iter()
            .map(|r| {
                let ports: Vec<String> = r
                    .dport
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                (
                    r.origins.iter().map(|o| o - base).collect(),
                    ports.join(","),
                )
            })
            .collect()
    }

    fn o(origins: &[usize], ports: &str) -> (Vec<usize>, String) {
        (origins.to_vec(), ports.to_owned())
    }

    #[test]
    fn neighbours_differing_only_in_port_merge() {
        let p = build(vec![
            tcp_in(&["80"]),
            tcp_in(&["443"]),
            tcp_in(&["80", "8000:8080"]),
        ]);
        assert_eq!(shape(&p, 3), vec![o(&[0, 1, 2], "80,443,8000:8080")]);
        // The evaluator's lines stay one per rule.
        assert_eq!(chain_lines(&p, Family::V4, Chain::Input).len(), 3);
        let v4 = crate::render::render(&p, crate::render::Format::Restore);
        assert!(
            v4.contains("-A INPUT -p tcp -m multiport --dports 80,443,8000:8080 -m conntrack --ctstate NEW -m comment --comment web -j ACCEPT\n"),
            "{v4}"
        );
        let nft = crate::nft::file(&p);
        assert!(
            nft.contains("\t\ttcp dport { 80, 443, 8000-8080 } ct state { new } counter accept comment \"web\"\n"),
            "{nft}"
        );
        let base = p.rules().len() - 3;
        let nft_rules = crate::nft::chain_rules(&p, Chain::Input);
        assert!(
            nft_rules
                .iter()
                .any(|r| r.origins == [base, base + 1, base + 2]),
            "{nft_rules:?}"
        );
    }

    #[test]
    fn merged_ports_are_chunked_again_with_their_origins() {
        let ten: Vec<String> = (1..=10).map(|n| (1000 + n).to_string()).collect();
        let ten2: Vec<String> = (1..=10).map(|n| (2000 + n).to_string()).collect();
        let (a, b): (Vec<&str>, Vec<&str>) = (
            ten.iter().map(String::as_str).collect(),
            ten2.iter().map(String::as_str).collect(),
        );
        let p = build(vec![tcp_in(&a), tcp_in(&b)]);
        let s = shape(&p, 2);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].0, vec![0, 1]);
        assert_eq!(s[0].1.split(',').count(), 15);
        assert_eq!(s[1], o(&[1], "2006,2007,2008,2009,2010"));
    }

    #[test]
    fn what_must_not_merge() {
        let log = |ports: &[&str]| {
            RuleBuilder::new(Action::Log, crate::value::Direction::In)
                .proto(Protocol::Tcp)
                .to_ports(ports)
                .log_prefix("x")
        };
        let cases: Vec<(&str, Vec<RuleBuilder>)> = vec![
            ("log rules", vec![log(&["80"]), log(&["443"])]),
            (
                "rate-limited rules",
                vec![
                    tcp_in(&["80"]).limit(5, RateUnit::Second, None),
                    tcp_in(&["443"]).limit(5, RateUnit::Second, None),
                ],
            ),
            (
                "one rate-limited",
                vec![
                    tcp_in(&["80"]),
                    tcp_in(&["443"]).limit(5, RateUnit::Second, None),
                ],
            ),
            (
                "different comments",
                vec![tcp_in(&["80"]).comment("a"), tcp_in(&["443"]).comment("b")],
            ),
            (
                "different states",
                vec![
                    tcp_in(&["80"]),
                    tcp_in(&["443"]).state(&[State::Established]),
                ],
            ),
            (
                "different protocols",
                vec![
                    tcp_in(&["80"]),
                    RuleBuilder::allow_in()
                        .proto(Protocol::Udp)
                        .to_ports(&["443"])
                        .state(&[State::New]),
                ],
            ),
            (
                "different interfaces",
                vec![tcp_in(&["80"]).on("eth0"), tcp_in(&["443"]).on("eth1")],
            ),
            (
                "different sources",
                vec![
                    tcp_in(&["80"]).from("198.51.100.7"),
                    tcp_in(&["443"]).from("198.51.100.8"),
                ],
            ),
            (
                "different source ports",
                vec![
                    tcp_in(&["80"]).from_ports(&["1024:"]),
                    tcp_in(&["443"]).from_ports(&["53"]),
                ],
            ),
            (
                "different actions",
                vec![
                    tcp_in(&["80"]),
                    RuleBuilder::new(Action::Reject, crate::value::Direction::In)
                        .proto(Protocol::Tcp)
                        .to_ports(&["443"])
                        .state(&[State::New]),
                ],
            ),
            (
                "a rule without ports",
                vec![
                    tcp_in(&["80"]),
                    RuleBuilder::allow_in()
                        .proto(Protocol::Tcp)
                        .state(&[State::New]),
                ],
            ),
        ];
        for (what, rules) in cases {
            let n = rules.len();
            let p = build(rules);
            let s = shape(&p, n);
            assert_eq!(s.len(), n, "{what}: {s:?}");
            let nft = crate::nft::chain_rules(&p, Chain::Input);
            let written = nft
                .iter()
                .filter(|r| r.origins.iter().all(|o| *o >= p.rules().len() - n));
            assert!(
                written.clone().all(|r| r.origins.len() == 1),
                "{what} (nft): {nft:?}"
            );
        }
    }

    #[test]
    fn only_neighbours_merge() {
        let p = build(vec![
            tcp_in(&["80"]),
            tcp_in(&["22"]).from("198.51.100.7"),
            tcp_in(&["443"]),
            tcp_in(&["8080"]),
        ]);
        assert_eq!(
            shape(&p, 4),
            vec![o(&[0], "80"), o(&[1], "22"), o(&[2, 3], "443,8080")]
        );
    }

    #[test]
    fn nft_merges_icmp_types_of_one_family_only() {
        let icmp = |p: Protocol, t: &str| RuleBuilder::allow_in().proto(p).icmp_type(t);
        let p = build(vec![
            icmp(Protocol::Icmp, "echo-request"),
            icmp(Protocol::Icmp, "destination-unreachable"),
            icmp(Protocol::Icmpv6, "echo-request"),
            icmp(Protocol::Icmpv6, "destination-unreachable"),
        ]);
        let base = p.rules().len() - 4;
        let rules = crate::nft::chain_rules(&p, Chain::Input);
        let written: Vec<(Vec<usize>, Option<Family>)> = rules
            .iter()
            .filter(|r| r.origins[0] >= base)
            .map(|r| (r.origins.iter().map(|o| o - base).collect(), r.family))
            .collect();
        assert_eq!(
            written,
            vec![
                (vec![0, 1], Some(Family::V4)),
                (vec![2, 3], Some(Family::V6))
            ]
        );
        let text = crate::nft::file(&p);
        assert!(
            text.contains("meta nfproto ipv4 icmp type { 8, 3 } counter accept"),
            "{text}"
        );
        // iptables has no match for several ICMP types: one rule each.
        assert_eq!(shape(&p, 4).len(), 2);
    }

    #[test]
    fn multiport_chunks_count_ranges_twice() {
        let p = |n| Port::new(n).unwrap();
        let singles: Vec<PortRange> = (1..=16).map(|n| PortRange::single(p(n))).collect();
        let c = chunks(&singles);
        assert_eq!(c.iter().map(|c| c.len()).collect::<Vec<_>>(), vec![15, 1]);
        let ranges: Vec<PortRange> = (0..8)
            .map(|n| PortRange::new(p(100 * n + 1), p(100 * n + 2)).unwrap())
            .collect();
        let c = chunks(&ranges);
        assert_eq!(c.iter().map(|c| c.len()).collect::<Vec<_>>(), vec![7, 1]);
    }
}

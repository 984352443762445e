//! The policy as the kernel will hold it: per family, per chain, one [`Line`] for each
//! policy rule (per multiport chunk). The evaluator and the analysis walk these lines;
//! the renderers print [`rendered_lines`], the same lines with adjacent ones that differ
//! only in destination port merged into one (and long runs that differ in source and
//! port merged into one set match). Merging never changes what a packet meets: only
//! pure matches with a terminal action merge, and only neighbours.

use std::borrow::Cow;
use std::collections::HashSet;

use ipnet::IpNet;

use crate::model::{Policy, Rule, Target};
use crate::value::{Action, Chain, Family, PortRange, Protocol};

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

/// A run of at least this many adjacent rules that differ only in source address and
/// destination port (after the port merge) is rendered as **one** rule matching a set of
/// (source, port) pairs: an ipset `hash:net,port` for iptables, an anonymous
/// concatenated set for nft. One hash lookup then replaces a walk over the run, and a
/// 5,000-rule list becomes one rule. Below it the rules stay rules: small policies (the
/// three roles, the examples) need no `ipset` tool they did not need before, and read in
/// `iptables -S` as written.
pub const AUTO_SET_MIN: usize = 64;

/// The (source network, destination port) pairs that stand for a long run of rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairSet {
    /// The ipset's name: `vpsfw-`, the chain and family (`in4`, `out6`, ...), `-` and 12
    /// hex digits of a hash of the run (see [`pair_set_name`]).
    pub name: String,
    /// `tcp` or `udp`.
    pub proto: Protocol,
    /// Sorted by port then network, without repeats or pairs another pair covers.
    pub pairs: Vec<(IpNet, u16)>,
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
    /// For a run of at least [`AUTO_SET_MIN`] lines: the (source, port) pairs matched
    /// through a set; `line.src` and `dport` are then `None`.
    pub pairs: Option<PairSet>,
}

impl<'p> Rendered<'p> {
    fn single(line: Line<'p>) -> Rendered<'p> {
        Rendered {
            line,
            origins: vec![line.index],
            dport: line.dport.map(Cow::Borrowed),
            pairs: None,
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

/// The source network a line contributes to a pair set, when it can: a terminal pure
/// match on tcp or udp with one network as source (not a set, not everything), single
/// destination ports and no source port.
fn pair_source(r: &Rendered<'_>) -> Option<IpNet> {
    let rule = r.line.rule;
    let ok = r.pairs.is_none()
        && mergeable(rule)
        && rule.icmp_type().is_none()
        && matches!(rule.proto(), Some(Protocol::Tcp | Protocol::Udp))
        && r.line.sport.is_none()
        && r.dport
            .as_ref()
            .is_some_and(|d| d.iter().all(|p| p.is_single()));
    match (ok, r.line.src) {
        (true, Some(LineTarget::Net(n))) if n.prefix_len() > 0 => Some(n),
        _ => None,
    }
}

/// The pairs of a run, sorted by port then network, without repeats and without pairs
/// that another pair of the same port covers (a network inside another): they match
/// nothing more, and nft refuses overlapping intervals in one set.
pub(crate) fn pair_elements(mut pairs: Vec<(IpNet, u16)>) -> Vec<(IpNet, u16)> {
    pairs.sort_by(|a, b| {
        (a.1, a.0.network(), a.0.prefix_len()).cmp(&(b.1, b.0.network(), b.0.prefix_len()))
    });
    let mut out: Vec<(IpNet, u16)> = Vec::with_capacity(pairs.len());
    for (net, port) in pairs {
        // Networks nest or are disjoint: sorted by address, a network is covered iff the
        // last one kept (for its port) contains it.
        match out.last() {
            Some(&(last, p)) if p == port && last.contains(&net) => {}
            _ => out.push((net, port)),
        }
    }
    out
}

/// FNV-1a, 64 bits.
pub(crate) fn fnv(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The ipset name of a pair set: `vpsfw-`, the chain and family, `-`, 12 hex digits of a
/// hash of the chain, family, the run's position among the chain's pair sets and its
/// pairs. At most 23 bytes, so `-new`/`-old` copies fit ipset's 31. It cannot be a
/// policy set's ipset (`vpsfw-NAME-4`, `vpsfw-NAME-6`, and those with `-new`/`-old`):
/// those end in `-4`/`-6` before any suffix, these in two hex digits. Nothing from the
/// policy's text is in it.
pub fn pair_set_name(
    chain: Chain,
    family: Family,
    ordinal: usize,
    proto: Protocol,
    pairs: &[(IpNet, u16)],
) -> String {
    let c = match chain {
        Chain::Input => "in",
        Chain::Forward => "fw",
        Chain::Output => "out",
    };
    let f = match family {
        Family::V4 => 4,
        Family::V6 => 6,
    };
    let mut bytes: Vec<u8> = format!("{c}{f} {ordinal} {proto:?}").into_bytes();
    for (net, port) in pairs {
        match net.network() {
            std::net::IpAddr::V4(a) => bytes.extend(a.octets()),
            std::net::IpAddr::V6(a) => bytes.extend(a.octets()),
        }
        bytes.push(net.prefix_len());
        bytes.extend(port.to_be_bytes());
    }
    let hash = fnv(bytes) >> 16;
    format!("vpsfw-{c}{f}-{hash:012x}")
}

/// The lines of one chain of one family as the renderers print them: [`chain_lines`]
/// with adjacent lines that differ only in destination port merged (ports united and
/// chunked again for multiport), then runs of at least [`AUTO_SET_MIN`] that differ in
/// source and port merged into one pair-set match.
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
                pairs: None,
            });
        }
        i = j;
    }
    pair_runs(merged, family, chain)
}

/// A rendered rule that may stand in a long run merged into one pair set (iptables
/// lines and nft rules alike).
pub(crate) trait PairItem {
    /// Its source network, when it can join a pair set at all.
    fn pair_source(&self) -> Option<IpNet>;
    /// Whether it can join the run that `head` starts.
    fn joins(&self, head: &Self) -> bool;
    /// Its destination ports (single ports when it has a pair source).
    fn pair_ports(&self) -> &[PortRange];
    /// The policy rules it stands for.
    fn pair_origins(&self) -> &[usize];
}

impl PairItem for Rendered<'_> {
    fn pair_source(&self) -> Option<IpNet> {
        pair_source(self)
    }

    fn joins(&self, head: &Self) -> bool {
        same_rest(head.line.rule, self.line.rule) && head.line.dst == self.line.dst
    }

    fn pair_ports(&self) -> &[PortRange] {
        self.dport.as_deref().unwrap_or_default()
    }

    fn pair_origins(&self) -> &[usize] {
        &self.origins
    }
}

/// The runs of at least [`AUTO_SET_MIN`] neighbours that one pair set can stand for,
/// in order.
pub(crate) fn long_runs<T: PairItem>(items: &[T]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    if items.len() < AUTO_SET_MIN {
        return out;
    }
    let mut i = 0;
    while i < items.len() {
        let mut j = i + 1;
        if items[i].pair_source().is_some() {
            while j < items.len() && items[j].pair_source().is_some() && items[j].joins(&items[i]) {
                j += 1;
            }
        }
        if j - i >= AUTO_SET_MIN {
            out.push(i..j);
        }
        i = j;
    }
    out
}

/// The (source, port) pairs of a run ([`pair_elements`]) and the rules it stands for.
pub(crate) fn run_pairs<T: PairItem>(run: &[T]) -> (Vec<(IpNet, u16)>, Vec<usize>) {
    let (mut pairs, mut origins) = (Vec::new(), Vec::new());
    for item in run {
        if let Some(net) = item.pair_source() {
            pairs.extend(item.pair_ports().iter().map(|p| (net, p.lo().get())));
        }
        for o in item.pair_origins() {
            push_origin(&mut origins, *o);
        }
    }
    (pair_elements(pairs), origins)
}

/// Replaces each run that [`long_runs`] finds in `items` by what `merge` makes of it
/// (given the run's ordinal); the rest stays as it is.
pub(crate) fn replace_runs<T: PairItem + Clone>(
    items: Vec<T>,
    mut merge: impl FnMut(usize, &[T]) -> Vec<T>,
) -> Vec<T> {
    let runs = long_runs(&items);
    if runs.is_empty() {
        return items;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut at = 0;
    for (ordinal, run) in runs.into_iter().enumerate() {
        out.extend_from_slice(&items[at..run.start]);
        out.extend(merge(ordinal, &items[run.clone()]));
        at = run.end;
    }
    out.extend_from_slice(&items[at..]);
    out
}

/// Replaces each run of at least [`AUTO_SET_MIN`] adjacent lines that differ only in
/// source network and single destination ports by one line matching a pair set.
fn pair_runs(lines: Vec<Rendered<'_>>, family: Family, chain: Chain) -> Vec<Rendered<'_>> {
    replace_runs(lines, |ordinal, items| {
        // A pair source implies tcp or udp.
        let Some(proto) = items[0].line.rule.proto() else {
            return items.to_vec();
        };
        let (pairs, origins) = run_pairs(items);
        let name = pair_set_name(chain, family, ordinal, proto, &pairs);
        let mut line = items[0].line;
        line.src = None;
        line.dport = None;
        vec![Rendered {
            line,
            origins,
            dport: None,
            pairs: Some(PairSet { name, proto, pairs }),
        }]
    })
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

    /// `n` rules `allow in tcp from 198.51.100.(i+1) to 9000+i state new`, in group web.
    fn long_run(n: usize) -> Vec<RuleBuilder> {
        (0..n)
            .map(|i| tcp_in(&[&(9000 + i).to_string()]).from(&format!("198.51.100.{}", i + 1)))
            .collect()
    }

    #[test]
    fn long_runs_become_one_pair_set_line() {
        let p = build(long_run(AUTO_SET_MIN + 6));
        let lines = rendered_lines(&p, Family::V4, Chain::Input);
        let base = p.rules().len() - (AUTO_SET_MIN + 6);
        let set_lines: Vec<&Rendered<'_>> = lines.iter().filter(|r| r.pairs.is_some()).collect();
        assert_eq!(set_lines.len(), 1, "{lines:?}");
        let r = set_lines[0];
        assert_eq!(
            r.origins,
            (base..base + AUTO_SET_MIN + 6).collect::<Vec<_>>()
        );
        let pairs = &r.pairs.as_ref().unwrap().pairs;
        assert_eq!(pairs.len(), AUTO_SET_MIN + 6);
        assert!(pairs.contains(&("198.51.100.1/32".parse().unwrap(), 9000)));
        // Pairs, not sources times ports.
        assert!(!pairs.contains(&("198.51.100.1/32".parse().unwrap(), 9001)));
        let v4 = crate::render::render(&p, crate::render::Format::Restore);
        let name = &r.pairs.as_ref().unwrap().name;
        assert!(
            v4.contains(&format!("-A INPUT -p tcp -m set --match-set {name} src,dst -m conntrack --ctstate NEW -m comment --comment web -j ACCEPT\n")),
            "{v4}"
        );
        assert_eq!(
            v4.lines().filter(|l| l.starts_with("-A ")).count(),
            1,
            "{v4}"
        );
        let ipset = crate::render::render(&p, crate::render::Format::Ipset);
        assert!(
            ipset.contains(&format!(
                "create {name} hash:net,port family inet maxelem 65536 -exist\n"
            )),
            "{ipset}"
        );
        assert!(
            ipset.contains(&format!("add {name} 198.51.100.1/32,6:9000\n")),
            "{ipset}"
        );
        let sh = crate::render::render(&p, crate::render::Format::Sh);
        assert!(
            sh.contains(&format!("ipset swap {name}-new {name}")),
            "{sh}"
        );
        assert!(sh.contains("(1 IPv4 and "), "{sh}");
        let nft = crate::nft::file(&p);
        assert!(
            nft.contains("\t\tip saddr . tcp dport { 198.51.100.1 . 9000, 198.51.100.2 . 9001, "),
            "{nft}"
        );
        let nft_rules = crate::nft::chain_rules(&p, Chain::Input);
        assert!(nft_rules.iter().any(|r| r
            .pairs
            .as_ref()
            .is_some_and(|p| p.len() == AUTO_SET_MIN + 6)));
    }

    #[test]
    fn short_or_broken_runs_stay_rules() {
        // One short of the threshold.
        let p = build(long_run(AUTO_SET_MIN - 1));
        let lines = rendered_lines(&p, Family::V4, Chain::Input);
        assert!(lines.iter().all(|r| r.pairs.is_none()));
        assert!(crate::nft::chain_rules(&p, Chain::Input)
            .iter()
            .all(|r| r.pairs.is_none()));
        // No set is made or matched (the script only removes earlier policies' sets).
        let sh = crate::render::render(&p, crate::render::Format::Sh);
        assert!(
            !sh.contains("ipset create") && !sh.contains("--match-set"),
            "{sh}"
        );
        // Long enough, but a log rule, a rate-limited rule, a rule with a source port, a
        // port range or another comment in the middle leaves two runs too short.
        let breakers = [
            RuleBuilder::new(Action::Log, crate::value::Direction::In)
                .proto(Protocol::Tcp)
                .from("198.51.100.200")
                .to_ports(&["22"]),
            tcp_in(&["22"])
                .from("198.51.100.200")
                .limit(5, RateUnit::Second, None),
            tcp_in(&["22"])
                .from("198.51.100.200")
                .from_ports(&["1024:"]),
            tcp_in(&["20:21"]).from("198.51.100.200"),
            tcp_in(&["22"]).from("198.51.100.200").comment("other"),
            tcp_in(&["22"])
                .from("198.51.100.200")
                .state(&[State::Established]),
        ];
        for breaker in breakers {
            let mut rules = long_run(AUTO_SET_MIN + 10);
            rules.insert(AUTO_SET_MIN / 2, breaker.clone());
            let p = build(rules);
            let lines = rendered_lines(&p, Family::V4, Chain::Input);
            assert!(lines.iter().all(|r| r.pairs.is_none()), "{breaker:?}");
            assert!(
                crate::nft::chain_rules(&p, Chain::Input)
                    .iter()
                    .all(|r| r.pairs.is_none()),
                "{breaker:?}"
            );
        }
    }

    #[test]
    fn pair_elements_drop_covered_pairs() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        let got = pair_elements(vec![
            (n("198.51.100.7/32"), 80),
            (n("198.51.100.0/24"), 80),
            (n("198.51.100.7/32"), 81),
            (n("198.51.100.0/24"), 80),
            (n("203.0.113.0/25"), 80),
        ]);
        assert_eq!(
            got,
            vec![
                (n("198.51.100.0/24"), 80),
                (n("203.0.113.0/25"), 80),
                (n("198.51.100.7/32"), 81)
            ]
        );
    }

    #[test]
    fn pair_set_names_fit_and_cannot_be_a_policy_sets() {
        let pairs = vec![("198.51.100.0/24".parse().unwrap(), 80)];
        for chain in Chain::ALL {
            for family in Family::ALL {
                let name = pair_set_name(chain, family, 3, Protocol::Tcp, &pairs);
                assert_eq!(name, pair_set_name(chain, family, 3, Protocol::Tcp, &pairs));
                assert!(format!("{name}-new").len() <= 31, "{name}");
                assert!(name.starts_with("vpsfw-"));
                assert!(name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
                // Policy sets' ipsets end in -4/-6 (before -new/-old): these never do.
                assert!(!name.ends_with("-4") && !name.ends_with("-6"), "{name}");
                assert_ne!(name, pair_set_name(chain, family, 4, Protocol::Tcp, &pairs));
            }
        }
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

//! The offline evaluator: what the rendered ruleset does with one packet.
//!
//! It walks the same [`Line`]s the renderers print, first match wins, per family and
//! chain, so its answer is the kernel's answer for the ruleset vpsfw loads (the kernel
//! tests hold it to that). `log` rules are not terminal: they are noted and the walk goes
//! on. A `limit` match is taken as matching: the answer is for a packet under the limit.
//!
//! The walk is compiled once per policy (see [`Evaluator`]): each chain's lines are
//! computed once, and indexed per protocol by destination port and by source network,
//! so a packet is matched only against lines it may match. The answer is the walk's,
//! first match and logged lines alike; the tests compare the two on random policies.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::OnceLock;

use ipnet::IpNet;
use serde::Serialize;

use crate::model::{Origin, Policy};
use crate::ruleset::{chain_lines, Line, LineTarget};
use crate::set::SetDef;
use crate::value::{
    Action, Chain, Direction, Family, IcmpType, Iface, PortRange, Protocol, State, States, Verdict,
};

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

/// Whether one line matches a packet: the meaning of a line, walked line by line. The
/// compiled evaluator ([`CLine::matches`]) must agree with it; the tests hold it to that.
#[cfg(test)]
fn line_matches(line: &Line<'_>, p: &Packet) -> bool {
    let rule = line.rule;
    // Rates and history the evaluator cannot know: the answer is for a packet under
    // every rate, from a source not on the port-scan list.
    if never_matches(rule) {
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
    let port_ok = |ranges: Option<&[PortRange]>, port: Option<u16>| match ranges {
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

/// The evaluation as the kernel does it: every line of the chain in order, first match
/// wins. The reference the compiled evaluator is tested against.
#[cfg(test)]
fn evaluate_linear<'p>(policy: &'p Policy, packet: &Packet) -> Decision<'p> {
    let family = packet.family();
    let chain = packet.direction.chain();
    let mut logged = Vec::new();
    for (i, line) in chain_lines(policy, family, chain).into_iter().enumerate() {
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
    Decision {
        outcome: default_outcome(policy, chain),
        by: DecidedBy::Policy { chain },
        family,
        logged,
    }
}

/// Rules that depend on rates or history the evaluator cannot know (a rate over which
/// they match, the list of recent port scanners): taken as not matching.
fn never_matches(rule: &crate::model::Rule) -> bool {
    rule.over().is_some() || matches!(rule.recent(), Some(crate::harden::Recent::Listed { .. }))
}

fn default_outcome(policy: &Policy, chain: Chain) -> Outcome {
    match policy.defaults().get(chain) {
        Verdict::Allow => Outcome::Accept,
        Verdict::Drop => Outcome::Drop,
    }
}

/// A port match of a line may span more intervals of its chain's port partition than
/// this; then the line is not indexed by port (it is looked at for every packet, or
/// indexed by source) and the index stays linear in the number of lines.
const MAX_PORT_SPAN: usize = 32;

const PROTOCOLS: [Protocol; 4] = [
    Protocol::Tcp,
    Protocol::Udp,
    Protocol::Icmp,
    Protocol::Icmpv6,
];

fn proto_slot(p: Protocol) -> usize {
    match p {
        Protocol::Tcp => 0,
        Protocol::Udp => 1,
        Protocol::Icmp => 2,
        Protocol::Icmpv6 => 3,
    }
}

fn family_slot(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

fn chain_slot(c: Chain) -> usize {
    match c {
        Chain::Input => 0,
        Chain::Forward => 1,
        Chain::Output => 2,
    }
}

/// An address as an integer, and the width of its family.
fn addr_bits(ip: IpAddr) -> (u128, u32) {
    match ip {
        IpAddr::V4(a) => (u32::from(a).into(), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

/// The first `len` bits of an address of `width` bits.
fn prefix_key(bits: u128, width: u32, len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        bits >> (width - len.min(width))
    }
}

/// What is derived from a policy once and kept: the evaluator's compiled chains, each
/// built on first use, and the policy's stamp. A field of [`Policy`] that is not part
/// of its value: it compares equal, hashes to nothing, is neither serialized nor
/// cloned (a clone builds its own).
#[derive(Default)]
pub(crate) struct EvalCache {
    /// Per family (IPv4, IPv6), per chain (input, forward, output).
    chains: [[OnceLock<Compiled>; 3]; 2],
    /// [`crate::render::stamp`].
    pub(crate) stamp: OnceLock<String>,
}

impl Clone for EvalCache {
    fn clone(&self) -> Self {
        EvalCache::default()
    }
}

impl fmt::Debug for EvalCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EvalCache")
    }
}

impl PartialEq for EvalCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EvalCache {}

impl std::hash::Hash for EvalCache {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// A source or destination of a compiled line.
#[derive(Clone, Copy, Debug)]
enum Addr {
    Any,
    Net(IpNet),
    /// An index into [`Policy::sets`].
    Set(usize),
}

impl Addr {
    fn contains(self, sets: &[SetDef], ip: IpAddr) -> bool {
        match self {
            Addr::Any => true,
            Addr::Net(n) => n.contains(&ip),
            Addr::Set(i) => sets[i].contains(ip),
        }
    }

    fn target(self, policy: &Policy) -> Option<LineTarget<'_>> {
        match self {
            Addr::Any => None,
            Addr::Net(n) => Some(LineTarget::Net(n)),
            Addr::Set(i) => policy.sets().get(i).map(LineTarget::Set),
        }
    }
}

/// A port match of a compiled line: its ranges, copied to [`Compiled::ports`] at `at`,
/// and where the same `len` ranges start in the rule's port list.
#[derive(Clone, Copy, Debug)]
struct PortMatch {
    at: usize,
    len: usize,
    in_rule: usize,
}

/// One line, with what matching it takes ready at hand.
#[derive(Debug)]
struct CLine {
    /// The rule's index in [`Policy::rules`].
    rule: usize,
    action: Action,
    syn: bool,
    iface: Option<Iface>,
    src: Addr,
    dst: Addr,
    sport: Option<PortMatch>,
    dport: Option<PortMatch>,
    icmp_type: Option<u8>,
    states: Option<States>,
}

impl CLine {
    /// [`line_matches`] but for the protocol, which the index has already checked.
    #[inline]
    fn matches(&self, ports: &[(u16, u16)], sets: &[SetDef], p: &Packet) -> bool {
        if let Some(s) = self.states {
            if !s.contains(p.state) {
                return false;
            }
        }
        if self.syn && !(p.proto == Protocol::Tcp && p.state == State::New) {
            return false;
        }
        let port_ok = |m: Option<PortMatch>, port: Option<u16>| match m {
            None => true,
            Some(m) => port.is_some_and(|n| {
                ports[m.at..m.at + m.len]
                    .iter()
                    .any(|&(lo, hi)| lo <= n && n <= hi)
            }),
        };
        if !port_ok(self.dport, p.dport) || !port_ok(self.sport, p.sport) {
            return false;
        }
        if let Some(t) = self.icmp_type {
            if Some(t) != p.icmp_type {
                return false;
            }
        }
        if let Some(i) = &self.iface {
            if !i.matches(&p.iface) {
                return false;
            }
        }
        self.src.contains(sets, p.src) && self.dst.contains(sets, p.dst)
    }
}

/// The lines of one interval of the port space, for each interval: a partition of
/// 0..=65535 at every bound of the indexed lines' port ranges.
#[derive(Debug, Default)]
struct PortIndex {
    /// Interval `k` starts at `starts[k]` and ends before `starts[k + 1]` (or at 65535);
    /// `starts[0]` is 0. Empty when no line is indexed.
    starts: Vec<u16>,
    /// The lines of interval `k`, ascending: `ids[bounds[k]..bounds[k + 1]]`.
    bounds: Vec<usize>,
    ids: Vec<u32>,
}

impl PortIndex {
    /// The partition at the bounds of these ranges.
    fn partition<'a>(ranges: impl Iterator<Item = &'a (u16, u16)>) -> Vec<u16> {
        let mut starts = vec![0u16];
        for &(lo, hi) in ranges {
            starts.push(lo);
            if let Some(next) = hi.checked_add(1) {
                starts.push(next);
            }
        }
        starts.sort_unstable();
        starts.dedup();
        starts
    }

    /// The intervals of `starts` a range covers.
    fn span(starts: &[u16], (lo, hi): (u16, u16)) -> std::ops::RangeInclusive<usize> {
        let first = starts.partition_point(|&s| s <= lo) - 1;
        let last = starts.partition_point(|&s| s <= hi) - 1;
        first..=last
    }

    /// Indexes `lines` (ascending ids, each with its port ranges).
    fn build(lines: &[(u32, &[(u16, u16)])]) -> PortIndex {
        if lines.is_empty() {
            return PortIndex::default();
        }
        let starts = Self::partition(lines.iter().flat_map(|(_, r)| r.iter()));
        let n = starts.len();
        // Two passes: count, then fill; `last` keeps a line out of an interval twice
        // when its ranges overlap.
        let mut counts = vec![0usize; n];
        let mut last = vec![u32::MAX; n];
        for &(id, ranges) in lines {
            for &r in ranges {
                for k in Self::span(&starts, r) {
                    if last[k] != id {
                        last[k] = id;
                        counts[k] += 1;
                    }
                }
            }
        }
        let mut bounds = Vec::with_capacity(n + 1);
        let mut total = 0;
        bounds.push(0);
        for c in &counts {
            total += c;
            bounds.push(total);
        }
        let mut ids = vec![0u32; total];
        let mut fill: Vec<usize> = bounds[..n].to_vec();
        last.fill(u32::MAX);
        for &(id, ranges) in lines {
            for &r in ranges {
                for k in Self::span(&starts, r) {
                    if last[k] != id {
                        last[k] = id;
                        ids[fill[k]] = id;
                        fill[k] += 1;
                    }
                }
            }
        }
        PortIndex {
            starts,
            bounds,
            ids,
        }
    }

    fn get(&self, port: u16) -> &[u32] {
        if self.starts.is_empty() {
            return &[];
        }
        let k = self.starts.partition_point(|&s| s <= port) - 1;
        &self.ids[self.bounds[k]..self.bounds[k + 1]]
    }
}

/// The lines whose source is a network of one prefix length, by network.
#[derive(Debug)]
struct PrefixTable {
    len: u32,
    /// Sorted network prefixes (the first `len` bits); the lines of `keys[i]` are
    /// `ids[bounds[i]..bounds[i + 1]]`, ascending.
    keys: Vec<u128>,
    bounds: Vec<usize>,
    ids: Vec<u32>,
}

impl PrefixTable {
    /// Tables from `(prefix length, prefix, line)`, one per length.
    fn build(mut entries: Vec<(u32, u128, u32)>) -> Vec<PrefixTable> {
        entries.sort_unstable();
        let mut tables: Vec<PrefixTable> = Vec::new();
        for (len, key, id) in entries {
            let table = match tables.last_mut() {
                Some(t) if t.len == len => t,
                _ => {
                    tables.push(PrefixTable {
                        len,
                        keys: Vec::new(),
                        bounds: vec![0],
                        ids: Vec::new(),
                    });
                    tables.last_mut().expect("just pushed")
                }
            };
            if table.keys.last() != Some(&key) {
                table.keys.push(key);
                table.bounds.push(table.ids.len());
            }
            table.ids.push(id);
            *table.bounds.last_mut().expect("bounds start with 0") = table.ids.len();
        }
        tables
    }

    fn get(&self, bits: u128, width: u32) -> &[u32] {
        let key = prefix_key(bits, width, self.len);
        match self.keys.binary_search(&key) {
            Ok(i) => &self.ids[self.bounds[i]..self.bounds[i + 1]],
            Err(_) => &[],
        }
    }
}

/// The lines a packet of one protocol may match, in three disjoint groups, each
/// ascending: indexed by destination port, indexed by source network, and the rest.
#[derive(Debug, Default)]
struct Candidates {
    by_dport: PortIndex,
    by_src: Vec<PrefixTable>,
    rest: Vec<u32>,
}

/// One chain of one family, compiled.
#[derive(Debug)]
struct Compiled {
    /// Every line of the chain, in order: line `i` has position `i + 1`.
    lines: Vec<CLine>,
    /// The port ranges of the lines' port matches.
    ports: Vec<(u16, u16)>,
    /// Per packet protocol (see [`proto_slot`]).
    by_proto: [Candidates; 4],
    /// The width of the family's addresses.
    width: u32,
}

impl Compiled {
    fn new(policy: &Policy, family: Family, chain: Chain) -> Compiled {
        let set_ids: HashMap<*const SetDef, usize> = policy
            .sets()
            .iter()
            .enumerate()
            .map(|(i, s)| (s as *const SetDef, i))
            .collect();
        let addr = |t: Option<LineTarget<'_>>| match t {
            None => Addr::Any,
            Some(LineTarget::Net(n)) => Addr::Net(n),
            Some(LineTarget::Set(s)) => Addr::Set(
                *set_ids
                    .get(&(s as *const SetDef))
                    .expect("a line's set is one of the policy's sets"),
            ),
        };
        let mut ports: Vec<(u16, u16)> = Vec::new();
        let mut port_match = |chunk: Option<&[PortRange]>, all: Option<&crate::value::Ports>| {
            let (chunk, all) = (chunk?, all?.ranges());
            // The chunk is a subslice of the rule's ranges (see `chain_lines`).
            let in_rule = (chunk.as_ptr() as usize).wrapping_sub(all.as_ptr() as usize)
                / std::mem::size_of::<PortRange>().max(1);
            assert!(
                all.get(in_rule..in_rule + chunk.len())
                    .is_some_and(|s| std::ptr::eq(s, chunk)),
                "a line's ports are a part of its rule's"
            );
            let at = ports.len();
            ports.extend(chunk.iter().map(|r| (r.lo().get(), r.hi().get())));
            Some(PortMatch {
                at,
                len: chunk.len(),
                in_rule,
            })
        };
        let lines: Vec<CLine> = chain_lines(policy, family, chain)
            .into_iter()
            .map(|line| CLine {
                rule: line.index,
                action: line.rule.action(),
                syn: line.rule.syn(),
                iface: line.rule.iface().cloned(),
                src: addr(line.src),
                dst: addr(line.dst),
                sport: port_match(line.sport, line.rule.sport()),
                dport: port_match(line.dport, line.rule.dport()),
                icmp_type: line.rule.icmp_type().map(|t| t.code()),
                states: line.rule.states(),
            })
            .collect();
        let width = match family {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        let rules = policy.rules();
        let by_proto = PROTOCOLS.map(|proto| {
            let members: Vec<u32> = (0..lines.len())
                .filter(|&i| {
                    let rule = &rules[lines[i].rule];
                    !never_matches(rule) && rule.proto().is_none_or(|p| p == proto)
                })
                .map(|i| i as u32)
                .collect();
            let ranges_of = |m: PortMatch| &ports[m.at..m.at + m.len];
            // Lines whose port match covers few intervals of the partition at every
            // line's bounds are indexed by port; the others are not (they would be in
            // too many intervals). Fewer bounds can only make the span of the rest
            // smaller, so it stays under the limit in the final index.
            let starts = PortIndex::partition(
                members
                    .iter()
                    .filter_map(|&i| lines[i as usize].dport)
                    .flat_map(|m| ranges_of(m).iter()),
            );
            let mut by_port: Vec<(u32, &[(u16, u16)])> = Vec::new();
            let mut by_src: Vec<(u32, u128, u32)> = Vec::new();
            let mut rest: Vec<u32> = Vec::new();
            for &i in &members {
                let line = &lines[i as usize];
                if let Some(m) = line.dport {
                    let span: usize = ranges_of(m)
                        .iter()
                        .map(|&r| PortIndex::span(&starts, r).count())
                        .sum();
                    if span <= MAX_PORT_SPAN {
                        by_port.push((i, ranges_of(m)));
                        continue;
                    }
                }
                match line.src {
                    Addr::Net(n) if n.prefix_len() > 0 && addr_bits(n.addr()).1 == width => {
                        let len = u32::from(n.prefix_len());
                        by_src.push((len, prefix_key(addr_bits(n.addr()).0, width, len), i));
                    }
                    _ => rest.push(i),
                }
            }
            Candidates {
                by_dport: PortIndex::build(&by_port),
                by_src: PrefixTable::build(by_src),
                rest,
            }
        });
        Compiled {
            lines,
            ports,
            by_proto,
            width,
        }
    }
}

/// A policy's evaluator: the policy's chains compiled into lines with indexes over
/// them, so that a packet is matched against the few lines it may match instead of
/// every line before the one that decides. Its answers are [`Policy::evaluate`]'s (which
/// uses it); get one with [`Policy::evaluator`], which compiles every chain up front.
/// The compiled chains are kept with the policy and shared by all its evaluators.
#[derive(Clone, Copy)]
pub struct Evaluator<'p> {
    policy: &'p Policy,
}

impl fmt::Debug for Evaluator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluator").finish_non_exhaustive()
    }
}

impl<'p> Evaluator<'p> {
    /// The policy evaluated.
    pub fn policy(&self) -> &'p Policy {
        self.policy
    }

    fn compiled(&self, family: Family, chain: Chain) -> &'p Compiled {
        self.policy.eval_cache.chains[family_slot(family)][chain_slot(chain)]
            .get_or_init(|| Compiled::new(self.policy, family, chain))
    }

    /// The line at `i` of a compiled chain, as [`chain_lines`] gives it.
    fn line(&self, c: &Compiled, family: Family, i: usize) -> Line<'p> {
        let l = &c.lines[i];
        let rule = &self.policy.rules()[l.rule];
        let chunk = |m: Option<PortMatch>, ports: Option<&'p crate::value::Ports>| {
            m.and_then(|m| ports?.ranges().get(m.in_rule..m.in_rule + m.len))
        };
        Line {
            rule,
            index: l.rule,
            family,
            src: l.src.target(self.policy),
            dst: l.dst.target(self.policy),
            sport: chunk(l.sport, rule.sport()),
            dport: chunk(l.dport, rule.dport()),
        }
    }

    /// What the rendered ruleset does with `packet`, and why.
    pub fn evaluate(&self, packet: &Packet) -> Decision<'p> {
        let family = packet.family();
        let chain = packet.direction.chain();
        let c = self.compiled(family, chain);
        let candidates = &c.by_proto[proto_slot(packet.proto)];
        let sets = self.policy.sets();
        // The first matching terminal line so far (`usize::MAX`: none); each group is
        // looked at only up to it. Log lines are noted as found, then put in order.
        let mut best = usize::MAX;
        let mut logged: Vec<(Line<'p>, usize)> = Vec::new();
        let mut scan = |ids: &[u32], best: &mut usize| {
            for &id in ids {
                let i = id as usize;
                if i >= *best {
                    return;
                }
                let line = &c.lines[i];
                if !line.matches(&c.ports, sets, packet) {
                    continue;
                }
                if line.action == Action::Log {
                    logged.push((self.line(c, family, i), i + 1));
                } else {
                    *best = i;
                    return;
                }
            }
        };
        scan(&candidates.rest, &mut best);
        if let Some(port) = packet.dport {
            scan(candidates.by_dport.get(port), &mut best);
        }
        if !candidates.by_src.is_empty() {
            let (bits, width) = addr_bits(packet.src);
            if width == c.width {
                for t in &candidates.by_src {
                    scan(t.get(bits, width), &mut best);
                }
            }
        }
        if !logged.is_empty() {
            logged.retain(|&(_, position)| position <= best);
            logged.sort_unstable_by_key(|&(_, position)| position);
        }
        if best == usize::MAX {
            return Decision {
                outcome: default_outcome(self.policy, chain),
                by: DecidedBy::Policy { chain },
                family,
                logged,
            };
        }
        let outcome = match c.lines[best].action {
            Action::Allow => Outcome::Accept,
            Action::Drop => Outcome::Drop,
            Action::Reject => Outcome::Reject,
            Action::Log => unreachable!("log lines are not terminal"),
        };
        Decision {
            outcome,
            by: DecidedBy::Rule {
                line: self.line(c, family, best),
                position: best + 1,
            },
            family,
            logged,
        }
    }
}

impl Policy {
    /// The policy's evaluator, every chain compiled (once per policy; later calls and
    /// [`Policy::evaluate`] reuse the compiled chains).
    pub fn evaluator(&self) -> Evaluator<'_> {
        let e = Evaluator { policy: self };
        for family in Family::ALL {
            for chain in Chain::ALL {
                e.compiled(family, chain);
            }
        }
        e
    }

    /// What the rendered ruleset does with `packet`, and why. The first call for a
    /// family and chain compiles it (see [`Evaluator`]); later calls reuse it.
    pub fn evaluate(&self, packet: &Packet) -> Decision<'_> {
        Evaluator { policy: self }.evaluate(packet)
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
    use crate::test_rng::Rng;

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

    const V4_BASES: [[u8; 4]; 4] = [
        [192, 0, 2, 0],
        [198, 51, 100, 0],
        [203, 0, 113, 0],
        [10, 0, 0, 0],
    ];
    const V6_BASES: [u16; 3] = [0x2001, 0xfd00, 0x2a00];
    const PORTS: [u16; 12] = [
        1, 22, 53, 80, 443, 1023, 1024, 5000, 8080, 40000, 65534, 65535,
    ];
    const IFACES: [&str; 6] = ["lo", "eth0", "eth1", "eth+", "wg0", "e+"];
    const STATES: [State; 5] = [
        State::Invalid,
        State::New,
        State::Related,
        State::Established,
        State::Untracked,
    ];

    fn v4_addr(rng: &mut Rng) -> std::net::Ipv4Addr {
        let [a, b, c, _] = rng.pick(&V4_BASES);
        let c = if rng.chance(50) {
            c
        } else {
            c.wrapping_add(rng.below(3) as u8)
        };
        std::net::Ipv4Addr::new(a, b, c, rng.below(8) as u8)
    }

    fn v6_addr(rng: &mut Rng) -> std::net::Ipv6Addr {
        let a = rng.pick(&V6_BASES);
        std::net::Ipv6Addr::new(
            a,
            0xdb8,
            rng.below(3) as u16,
            0,
            0,
            0,
            0,
            rng.below(8) as u16,
        )
    }

    fn v4_net(rng: &mut Rng) -> ipnet::Ipv4Net {
        let len = rng.pick(&[8u8, 16, 24, 24, 29, 30, 32, 32, 32]);
        ipnet::Ipv4Net::new(v4_addr(rng), len).unwrap().trunc()
    }

    fn v6_net(rng: &mut Rng) -> ipnet::Ipv6Net {
        let len = rng.pick(&[16u8, 32, 48, 64, 125, 128, 128]);
        ipnet::Ipv6Net::new(v6_addr(rng), len).unwrap().trunc()
    }

    fn port_range(rng: &mut Rng) -> PortRange {
        use crate::value::Port;
        let a = if rng.chance(70) {
            rng.pick(&PORTS)
        } else {
            1 + rng.below(65535) as u16
        };
        if rng.chance(70) {
            return PortRange::single(Port::raw(a));
        }
        let b = if rng.chance(50) {
            rng.pick(&PORTS)
        } else {
            1 + rng.below(65535) as u16
        };
        PortRange::raw(Port::raw(a.min(b)), Port::raw(a.max(b)))
    }

    fn ports(rng: &mut Rng) -> crate::value::Ports {
        // Up to 20 ranges: more than one multiport match takes.
        if rng.chance(1) {
            return crate::value::Ports::raw(Vec::new());
        }
        let n = if rng.chance(15) {
            10 + rng.below(11)
        } else {
            1 + rng.below(3)
        };
        crate::value::Ports::raw((0..n).map(|_| port_range(rng)).collect())
    }

    fn random_rule(rng: &mut Rng, sets: &[SetDef], many_ports: bool) -> crate::model::Rule {
        use crate::model::{Origin, Rule, Target};
        let proto = match rng.below(10) {
            0..=2 => None,
            3..=5 => Some(Protocol::Tcp),
            6..=7 => Some(Protocol::Udp),
            8 => Some(Protocol::Icmp),
            _ => Some(Protocol::Icmpv6),
        };
        let (mut v4, mut v6) = match proto {
            Some(Protocol::Icmp) => (true, false),
            Some(Protocol::Icmpv6) => (false, true),
            _ => match rng.below(3) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            },
        };
        let mut target = |rng: &mut Rng| -> Option<Target> {
            match rng.below(10) {
                0..=3 => None,
                4..=7 => {
                    let a = crate::addr::Address::raw(
                        None,
                        v4.then(|| v4_net(rng)),
                        v6.then(|| v6_net(rng)),
                    );
                    Some(Target::Addr(a))
                }
                _ => {
                    let s = rng.pick(sets);
                    let (h4, h6) = (s.has(Family::V4), s.has(Family::V6));
                    v4 &= h4;
                    v6 &= h6;
                    Some(Target::Set {
                        name: s.name().to_owned(),
                        v4: h4,
                        v6: h6,
                    })
                }
            }
        };
        let src = target(rng);
        let dst = target(rng);
        // Ports without a protocol, and empty port lists, are not written, but the
        // evaluator should not count on that.
        let has_ports =
            proto.is_some_and(Protocol::has_ports) || (proto.is_none() && rng.chance(10));
        let dport = (has_ports && (many_ports || rng.chance(60))).then(|| ports(rng));
        let sport = (has_ports && rng.chance(25)).then(|| ports(rng));
        let icmp_type = match proto {
            Some(Protocol::Icmp) if rng.chance(60) => {
                Some(IcmpType::from_code(Family::V4, rng.pick(&[0u8, 3, 8, 11])))
            }
            Some(Protocol::Icmpv6) if rng.chance(60) => Some(IcmpType::from_code(
                Family::V6,
                rng.pick(&[1u8, 2, 128, 135]),
            )),
            _ => None,
        };
        let states = rng.chance(40).then(|| {
            let mut s = States::empty();
            for st in STATES {
                if rng.chance(40) {
                    s = s.with(st);
                }
            }
            s
        });
        let action = rng.pick(&[
            Action::Allow,
            Action::Drop,
            Action::Reject,
            Action::Log,
            Action::Log,
        ]);
        let syn = proto == Some(Protocol::Tcp) && rng.chance(5);
        let over = rng.chance(3).then(|| crate::harden::Over {
            limit: crate::value::Limit::raw(1, crate::value::RateUnit::Second, 1),
            per_source: false,
            name: "vpsfw-test".into(),
        });
        let recent = match rng.below(30) {
            0 => Some(crate::harden::Recent::Listed { seconds: 60 }),
            1 => Some(crate::harden::Recent::Add),
            _ => None,
        };
        Rule {
            action,
            direction: rng.pick(&[Direction::In, Direction::Out, Direction::Forward]),
            v4,
            v6,
            iface: rng.chance(25).then(|| Iface::raw(rng.pick(&IFACES))),
            proto,
            src,
            dst,
            sport,
            dport,
            icmp_type,
            states,
            limit: None,
            log_prefix: None,
            group: None,
            comment: None,
            origin: Origin::Written {
                line: None,
                text: None,
            },
            allowed: Vec::new(),
            syn,
            over,
            recent,
        }
    }

    fn random_policy(rng: &mut Rng) -> Policy {
        let mut sets = Vec::new();
        for (i, name) in ["s1", "s2", "s3"].iter().enumerate() {
            let mut nets = Vec::new();
            for _ in 0..1 + rng.below(6) {
                if i != 1 || rng.chance(20) {
                    nets.push(IpNet::V4(v4_net(rng)));
                }
                if i != 2 || rng.chance(20) {
                    nets.push(IpNet::V6(v6_net(rng)));
                }
            }
            if nets.is_empty() {
                nets.push(IpNet::V4(v4_net(rng)));
            }
            sets.push(SetDef::new(name, nets).unwrap());
        }
        let n = match rng.below(10) {
            0 => 0,
            1..=6 => rng.below(40),
            7..=8 => rng.below(150),
            _ => 300 + rng.below(200),
        };
        // Some policies have mostly port rules, so that wide ranges exceed the span limit.
        let many_ports = rng.chance(30);
        let mut rules = if rng.chance(30) {
            crate::spec::implicit_rules()
        } else {
            Vec::new()
        };
        for _ in 0..n {
            let r = random_rule(rng, &sets, many_ports);
            if r.v4 || r.v6 {
                rules.push(r);
            }
        }
        let verdict = |rng: &mut Rng| rng.pick(&[Verdict::Allow, Verdict::Drop]);
        Policy {
            names: Vec::new(),
            sets,
            defaults: crate::model::Defaults {
                input: verdict(rng),
                forward: verdict(rng),
                output: verdict(rng),
            },
            rules,
            admins: Vec::new(),
            console_only: true,
            allowed: Vec::new(),
            presets: Vec::new(),
            eval_cache: Default::default(),
        }
    }

    /// A packet anywhere, or one aimed at a random line of the policy (it matches that
    /// line more often than not, then one of its fields is changed sometimes).
    fn random_packet(rng: &mut Rng, policy: &Policy) -> Packet {
        let family = rng.pick(&Family::ALL);
        let direction = rng.pick(&[Direction::In, Direction::Out, Direction::Forward]);
        let lines = chain_lines(policy, family, direction.chain());
        let aim = (!lines.is_empty() && rng.chance(80)).then(|| lines[rng.below(lines.len())]);
        let addr = |rng: &mut Rng, t: Option<LineTarget<'_>>| -> IpAddr {
            let inside = match t {
                Some(LineTarget::Net(n)) if rng.chance(85) => {
                    // An address in the network: its first, last or one near them.
                    let (lo, hi) = (n.network(), n.broadcast());
                    Some(if rng.chance(50) { lo } else { hi })
                }
                Some(LineTarget::Set(s)) if rng.chance(85) => {
                    let nets: Vec<IpNet> = match family {
                        Family::V4 => s.v4().iter().map(|n| IpNet::V4(*n)).collect(),
                        Family::V6 => s.v6().iter().map(|n| IpNet::V6(*n)).collect(),
                    };
                    (!nets.is_empty()).then(|| {
                        let n = rng.pick(&nets);
                        if rng.chance(50) {
                            n.network()
                        } else {
                            n.broadcast()
                        }
                    })
                }
                _ => None,
            };
            inside.unwrap_or_else(|| match family {
                Family::V4 => IpAddr::V4(v4_addr(rng)),
                Family::V6 => IpAddr::V6(v6_addr(rng)),
            })
        };
        let port = |rng: &mut Rng, ranges: Option<&[PortRange]>| -> u16 {
            match ranges {
                Some(rs) if !rs.is_empty() && rng.chance(85) => {
                    let r = rng.pick(rs);
                    rng.pick(&[
                        r.lo().get(),
                        r.hi().get(),
                        r.lo().get().saturating_sub(1).max(1),
                        r.hi().get().saturating_add(1),
                    ])
                }
                _ => {
                    if rng.chance(70) {
                        rng.pick(&PORTS)
                    } else {
                        1 + rng.below(65535) as u16
                    }
                }
            }
        };
        let rule = aim.map(|l| l.rule);
        let proto = match rule.and_then(|r| r.proto()) {
            Some(p) if rng.chance(90) => p,
            _ => rng.pick(&PROTOCOLS),
        };
        let src = addr(rng, aim.and_then(|l| l.src));
        let dst = addr(rng, aim.and_then(|l| l.dst));
        let (sport, dport) = if proto.has_ports() || rng.chance(3) {
            (
                Some(port(rng, aim.and_then(|l| l.sport))),
                Some(port(rng, aim.and_then(|l| l.dport))),
            )
        } else {
            (None, None)
        };
        let icmp_type = match rule.and_then(|r| r.icmp_type()) {
            Some(t) if rng.chance(85) => Some(t.code()),
            _ if matches!(proto, Protocol::Icmp | Protocol::Icmpv6) || rng.chance(3) => {
                Some(rng.pick(&[0u8, 1, 2, 3, 8, 11, 128, 135]))
            }
            _ => None,
        };
        let state = match rule.and_then(|r| r.states()) {
            Some(s) if rng.chance(85) => {
                let inside: Vec<State> = STATES.into_iter().filter(|st| s.contains(*st)).collect();
                if inside.is_empty() {
                    rng.pick(&STATES)
                } else {
                    rng.pick(&inside)
                }
            }
            _ => rng.pick(&STATES),
        };
        let iface = match rule.and_then(|r| r.iface()) {
            Some(i) if rng.chance(85) => i.to_string().replace('+', "0"),
            _ => rng
                .pick(&["lo", "eth0", "eth1", "eth7", "wg0", "ens3"])
                .to_owned(),
        };
        Packet {
            direction,
            iface,
            proto,
            src,
            dst,
            sport,
            dport,
            icmp_type,
            state,
        }
    }

    #[test]
    fn indexed_evaluator_agrees_with_the_linear_walk() {
        let mut rng = Rng(0x5eed_f00d_1234_5678);
        let (mut by_rule, mut with_logs, mut total) = (0, 0, 0);
        for round in 0..300 {
            let policy = random_policy(&mut rng);
            let evaluator = policy.evaluator();
            for _ in 0..200 {
                let packet = random_packet(&mut rng, &policy);
                let want = evaluate_linear(&policy, &packet);
                let got = policy.evaluate(&packet);
                assert_eq!(
                    got, want,
                    "policy {round} ({} rules), packet {packet:?}:\n  indexed: {got} (logged {:?})\n  linear:  {want} (logged {:?})",
                    policy.rules().len(),
                    got.logged.iter().map(|l| l.1).collect::<Vec<_>>(),
                    want.logged.iter().map(|l| l.1).collect::<Vec<_>>(),
                );
                assert_eq!(evaluator.evaluate(&packet), want);
                assert_eq!(got.to_string(), want.to_string());
                total += 1;
                by_rule += usize::from(matches!(want.by, DecidedBy::Rule { .. }));
                with_logs += usize::from(!want.logged.is_empty());
            }
        }
        // The packets reach rules and log lines, not only the chain policies.
        assert!(
            by_rule * 3 > total,
            "{by_rule} of {total} decided by a rule"
        );
        assert!(with_logs * 10 > total, "{with_logs} of {total} logged");
    }

    #[test]
    fn the_cache_is_not_part_of_the_policy_value() {
        let policy = bench_policy(50);
        let fresh = policy.clone();
        let p: Packet = "in tcp from 198.51.0.1:40000 to 192.0.2.1:1000"
            .parse()
            .unwrap();
        assert_eq!(policy.evaluate(&p).outcome, Outcome::Accept);
        assert_eq!(policy, fresh);
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(json, serde_json::to_string(&fresh).unwrap());
        assert!(!json.contains("eval_cache"));
        let back: Policy = serde_json::from_str(&json).unwrap();
        assert_eq!(back.evaluate(&p), policy.evaluate(&p));
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Policy>();
    }

    /// `n` allow rules with distinct sources and ports, shaped like the macro bench's
    /// generated policy (`vpsfw-macros/src/bench.rs`).
    fn bench_policy(n: usize) -> Policy {
        use crate::builder::{Builder, RuleBuilder};
        let mut b = Builder::new()
            .console_only()
            .policy(Chain::Input, Verdict::Drop)
            .group("common")
            .rule(RuleBuilder::allow_in().on("lo"))
            .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]))
            .group(None);
        for i in 0..n {
            let (a, c) = (i / 250 % 250, i % 250 + 1);
            let port = (1000 + i % 60000).to_string();
            let net = ["198.51", "203.0"][i % 2];
            b = b.rule(
                RuleBuilder::allow_in()
                    .from(&format!("{net}.{a}.{c}"))
                    .proto(Protocol::Tcp)
                    .to_ports(&[&port])
                    .state(&[State::New]),
            );
        }
        b.build().expect("bench policy builds")
    }

    /// Benchmark, not a test (nothing is timed against a limit):
    /// `cargo test -p vpsfw-runtime --release --lib -- --ignored --nocapture eval_throughput`
    #[test]
    #[ignore = "benchmark: run with --release -- --ignored --nocapture eval_throughput"]
    fn eval_throughput() {
        use std::time::{Duration, Instant};
        let sizes: Vec<usize> = std::env::var("VPSFW_BENCH_SIZES")
            .ok()
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_else(|| vec![100, 1_000, 5_000, 20_000]);
        for n in sizes {
            let policy = bench_policy(n);
            // The macro bench's packets (no rule but the default matches almost all), and
            // packets that each match one of the generated rules.
            let misses: Vec<Packet> = (0..1000)
                .map(|i| {
                    format!(
                        "in tcp from 198.51.{}.{}:40000 to 192.0.2.1:{}",
                        i % 20,
                        i % 250 + 1,
                        1000 + i * 7
                    )
                    .parse()
                    .expect("packet")
                })
                .collect();
            let hits: Vec<Packet> = (0..1000)
                .map(|i| {
                    let j = i * 7919 % n;
                    let net = ["198.51", "203.0"][j % 2];
                    format!(
                        "in tcp from {net}.{}.{}:40000 to 192.0.2.1:{}",
                        j / 250 % 250,
                        j % 250 + 1,
                        1000 + j % 60000
                    )
                    .parse()
                    .expect("packet")
                })
                .collect();
            // A clone has no compiled chains: compiling them all, once.
            let fresh = policy.clone();
            let t = Instant::now();
            std::hint::black_box(fresh.evaluator());
            let compile = t.elapsed();
            for (what, packets) in [("bench packets", &misses), ("matching packets", &hits)] {
                let rounds = if n <= 1_000 { 201 } else { 21 };
                let mut times: Vec<Duration> = Vec::new();
                let mut accepted = 0;
                for _ in 0..rounds {
                    let t = Instant::now();
                    for p in packets {
                        let d = std::hint::black_box(policy.evaluate(p));
                        accepted += usize::from(d.outcome == Outcome::Accept);
                    }
                    times.push(t.elapsed());
                }
                times.sort();
                let median = times[rounds / 2];
                println!(
                    "{n:>6} rules, {what:>16}: {:>12.0} packets/s (median of {rounds} x {}; {} accepted each; compiling every chain took {:.2}ms)",
                    packets.len() as f64 / median.as_secs_f64(),
                    packets.len(),
                    accepted / rounds,
                    compile.as_secs_f64() * 1e3,
                );
            }
        }
    }
}

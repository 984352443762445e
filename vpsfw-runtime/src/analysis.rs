//! Logical analysis of a policy: rules that can never match, rules that repeat earlier
//! ones, missing loopback or reply rules, a world-open admin port, unused names, and the
//! proof that every declared admin can still get in.
//!
//! Rules are compared as exact sets of packets, not as text: per family and chain, each
//! rule is a union of boxes over (protocol class) x source x destination x source port x
//! destination port x ICMP type x interface x conntrack state, and "never matches" means
//! its box is covered by the union of the earlier terminal rules' boxes (computed by box
//! subtraction). Rules vpsfw adds itself, rate-limited rules (which may not match) and
//! `log` rules (which decide nothing) never shadow another rule.
//!
//! Each rule is compared only with the earlier rules whose bounds overlap its own, found
//! through an interval index per dimension (`index`); each walk through a chain meets
//! only the lines that overlap the region walked. The tests hold this to the plain
//! pairwise comparison it replaces (`reference`): the same findings, byte for byte.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::eval::{Outcome, Packet};
use crate::model::{Origin, Policy, Rule, Target};
use crate::ruleset::{chain_lines, Line, LineTarget};
use crate::value::{Action, Chain, Direction, Family, Protocol, State, Verdict};

#[cfg(test)]
mod equivalence;
mod index;

use index::BoxIndex;

/// The kinds of finding; each can be silenced where it is intended
/// (`#[allow(NAME)]` on a rule, `#![allow(NAME)]` for the policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Every packet the rule matches is decided earlier by a rule with another action.
    Shadowed,
    /// Every packet the rule matches is decided earlier with the same action.
    Redundant,
    /// INPUT or OUTPUT drops by default and loopback traffic is not allowed.
    NoLoopback,
    /// Connections are allowed one way but their replies are dropped the other way.
    NoReplies,
    /// The admin port is open to any source while an admin is declared.
    OpenAdminPort,
    /// A name or set is declared and never used.
    UnusedName,
    /// A declared admin could not open a new connection to the admin port.
    Lockout,
    /// INPUT drops by default and no admin access is declared.
    NoAdmin,
}

impl FindingKind {
    pub const ALL: [FindingKind; 8] = [
        FindingKind::Shadowed,
        FindingKind::Redundant,
        FindingKind::NoLoopback,
        FindingKind::NoReplies,
        FindingKind::OpenAdminPort,
        FindingKind::UnusedName,
        FindingKind::Lockout,
        FindingKind::NoAdmin,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            FindingKind::Shadowed => "shadowed",
            FindingKind::Redundant => "redundant",
            FindingKind::NoLoopback => "no_loopback",
            FindingKind::NoReplies => "no_replies",
            FindingKind::OpenAdminPort => "open_admin_port",
            FindingKind::UnusedName => "unused_name",
            FindingKind::Lockout => "lockout",
            FindingKind::NoAdmin => "no_admin",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a finding points.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subject {
    /// A rule, by index into [`Policy::rules`].
    Rule(usize),
    /// A declared name or set.
    Name(String),
    /// The policy of a chain.
    ChainPolicy(Chain),
    /// An `admin` declaration, by its index among the policy's admins.
    Admin(usize),
}

/// One logical mistake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub subject: Subject,
    /// rustc style, names the other rule where there is one; ends with the opt-out.
    pub message: String,
}

/// Who administers the host: a declared name (or set) and the port that must stay open.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Admin {
    pub name: String,
    pub port: u16,
}

// ---------------------------------------------------------------------------
// Interval sets and boxes
// ---------------------------------------------------------------------------

/// A set of integers as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Ranges(Vec<(u128, u128)>);

impl Ranges {
    fn one(lo: u128, hi: u128) -> Self {
        Ranges(vec![(lo, hi)])
    }

    fn from_unsorted(mut v: Vec<(u128, u128)>) -> Self {
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Ranges(out)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn intersect(&self, other: &Ranges) -> Ranges {
        let (mut i, mut j, mut out) = (0, 0, Vec::new());
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (lo, hi) = (a.0.max(b.0), a.1.min(b.1));
            if lo <= hi {
                out.push((lo, hi));
            }
            if a.1 < b.1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        Ranges(out)
    }

    fn subtract(&self, other: &Ranges) -> Ranges {
        let mut out = Vec::new();
        for &(lo, hi) in &self.0 {
            let mut cur = lo;
            let mut done = false;
            for &(olo, ohi) in &other.0 {
                if ohi < cur || olo > hi {
                    continue;
                }
                if olo > cur {
                    out.push((cur, olo - 1));
                }
                if ohi >= hi {
                    done = true;
                    break;
                }
                cur = ohi + 1;
            }
            if !done {
                out.push((cur, hi));
            }
        }
        Ranges(out)
    }

    fn bounds(&self) -> (u128, u128) {
        match (self.0.first(), self.0.last()) {
            (Some(f), Some(l)) => (f.0, l.1),
            _ => (1, 0),
        }
    }
}

/// Dimensions, in order: source, destination, source port, destination port, ICMP type,
/// interface atom, conntrack state.
const DIMS: usize = 7;
const IFACE: usize = 5;

/// The packets of one protocol class a rule matches: a product of one set per dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cube([Ranges; DIMS]);

type Bounds = [(u128, u128); DIMS];

fn class_slot(c: Class) -> usize {
    match c {
        Class::Tcp => 0,
        Class::Udp => 1,
        Class::Icmp => 2,
        Class::Other => 3,
    }
}

fn overlaps(a: &Bounds, b: &Bounds) -> bool {
    a.iter().zip(b).all(|(x, y)| x.0 <= y.1 && y.0 <= x.1)
}

impl Cube {
    fn bounds(&self) -> Bounds {
        let mut b = [(0, 0); DIMS];
        for (out, r) in b.iter_mut().zip(&self.0) {
            *out = r.bounds();
        }
        b
    }

    fn intersects(&self, other: &Cube) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| {
            let ((alo, ahi), (blo, bhi)) = (a.bounds(), b.bounds());
            alo <= bhi && blo <= ahi && !a.intersect(b).is_empty()
        })
    }

    fn intersect(&self, other: &Cube) -> Option<Cube> {
        let mut out = self.clone();
        for (d, o) in out.0.iter_mut().zip(&other.0) {
            *d = d.intersect(o);
            if d.is_empty() {
                return None;
            }
        }
        Some(out)
    }

    /// `self - other` as disjoint boxes.
    fn subtract(&self, other: &Cube) -> Vec<Cube> {
        if !self.intersects(other) {
            return vec![self.clone()];
        }
        let mut out = Vec::new();
        let mut rest = self.clone();
        for d in 0..DIMS {
            let outside = rest.0[d].subtract(&other.0[d]);
            if !outside.is_empty() {
                let mut piece = rest.clone();
                piece.0[d] = outside;
                out.push(piece);
            }
            rest.0[d] = rest.0[d].intersect(&other.0[d]);
        }
        out
    }
}

/// Boxes beyond which a subtraction gives up (and reports nothing): keeps the analysis
/// linear-ish on pathological policies.
const MAX_PIECES: usize = 4096;

/// The protocol classes a family's packets fall in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Tcp,
    Udp,
    Icmp,
    Other,
}

fn classes() -> [Class; 4] {
    [Class::Tcp, Class::Udp, Class::Icmp, Class::Other]
}

fn class_of(p: Protocol) -> Class {
    match p {
        Protocol::Tcp => Class::Tcp,
        Protocol::Udp => Class::Udp,
        Protocol::Icmp | Protocol::Icmpv6 => Class::Icmp,
    }
}

/// Interface names as atoms: each exact name a rule mentions, for each `prefix+` one atom
/// for the names with that prefix no rule names exactly, and one atom for all others.
struct Ifaces {
    atoms: Vec<Atom>,
}

#[derive(Debug)]
enum Atom {
    Exact(String),
    PrefixRest(String),
    Other,
}

impl Ifaces {
    fn new(rules: &[&Rule]) -> Ifaces {
        let mut atoms = Vec::new();
        let mut seen = HashSet::new();
        for r in rules {
            if let Some(i) = r.iface() {
                let s = i.as_str();
                if seen.insert(s.to_owned()) {
                    atoms.push(match s.strip_suffix('+') {
                        Some(p) => Atom::PrefixRest(p.to_owned()),
                        None => Atom::Exact(s.to_owned()),
                    });
                }
            }
        }
        atoms.push(Atom::Other);
        Ifaces { atoms }
    }

    /// The atoms an interface match covers.
    fn ranges(&self, iface: Option<&crate::value::Iface>) -> Ranges {
        let n = self.atoms.len() as u128;
        let Some(iface) = iface else {
            return Ranges::one(0, n - 1);
        };
        let mut v = Vec::new();
        for (i, atom) in self.atoms.iter().enumerate() {
            let hit = match (atom, iface.as_str().strip_suffix('+')) {
                (Atom::Exact(name), None) => name == iface.as_str(),
                (Atom::Exact(name), Some(p)) => name.starts_with(p),
                // Names with prefix q no rule names exactly: inside `p+` if q starts with p.
                (Atom::PrefixRest(q), Some(p)) => q.starts_with(p),
                (Atom::PrefixRest(_), None) | (Atom::Other, _) => false,
            };
            if hit {
                v.push((i as u128, i as u128));
            }
        }
        Ranges::from_unsorted(v)
    }

    fn lo(&self) -> Option<u128> {
        self.atoms
            .iter()
            .position(|a| matches!(a, Atom::Exact(n) if n == "lo"))
            .map(|i| i as u128)
    }
}

fn addr_ranges(t: Option<LineTarget<'_>>, family: Family) -> Ranges {
    let full = match family {
        Family::V4 => u128::from(u32::MAX),
        Family::V6 => u128::MAX,
    };
    let net = |n: ipnet::IpNet| match n {
        ipnet::IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        ipnet::IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    };
    match t {
        None => Ranges::one(0, full),
        Some(LineTarget::Net(n)) => {
            let (lo, hi) = net(n);
            Ranges::one(lo, hi)
        }
        Some(LineTarget::Set(s)) => Ranges::from_unsorted(match family {
            Family::V4 => s.v4().iter().map(|n| net(ipnet::IpNet::V4(*n))).collect(),
            Family::V6 => s.v6().iter().map(|n| net(ipnet::IpNet::V6(*n))).collect(),
        }),
    }
}

fn port_ranges(ports: Option<&[crate::value::PortRange]>) -> Ranges {
    match ports {
        None => Ranges::one(1, 65535),
        Some(rs) => Ranges::from_unsorted(
            rs.iter()
                .map(|r| (u128::from(r.lo().get()), u128::from(r.hi().get())))
                .collect(),
        ),
    }
}

fn state_ranges(states: Option<crate::value::States>) -> Ranges {
    match states {
        None => Ranges::one(0, 4),
        Some(s) => Ranges::from_unsorted(s.iter().map(|st| (st as u128, st as u128)).collect()),
    }
}

/// The box of a rendered line in one protocol class, if the line matches that class.
fn line_cube(line: &Line<'_>, class: Class, ifaces: &Ifaces) -> Option<Cube> {
    let rule = line.rule;
    if let Some(p) = rule.proto() {
        if class_of(p) != class {
            return None;
        }
    }
    let (sport, dport) = match class {
        Class::Tcp | Class::Udp => (port_ranges(line.sport), port_ranges(line.dport)),
        _ => (Ranges::one(0, 0), Ranges::one(0, 0)),
    };
    let icmp = match (class, rule.icmp_type()) {
        (Class::Icmp, Some(t)) => Ranges::one(u128::from(t.code()), u128::from(t.code())),
        (Class::Icmp, None) => Ranges::one(0, 255),
        _ => Ranges::one(0, 0),
    };
    Some(Cube([
        addr_ranges(line.src, line.family),
        addr_ranges(line.dst, line.family),
        sport,
        dport,
        icmp,
        ifaces.ranges(rule.iface()),
        state_ranges(rule.states()),
    ]))
}

fn written(rule: &Rule) -> bool {
    matches!(rule.origin(), Origin::Written { .. })
}

/// Whether a line decides every packet it matches.
fn decides(line: &Line<'_>) -> bool {
    line.rule.action() != Action::Log && !line.rule.may_not_match() && written(line.rule)
}

fn describe(policy: &Policy, index: usize) -> String {
    let rule = &policy.rules()[index];
    match rule.line() {
        Some(l) => format!("the rule at line {l}: `{}`", rule.text()),
        None => format!("the rule `{}`", rule.text()),
    }
}

/// Per rule: whether it is dead in every family it exists in, and the earlier rules
/// that decide its packets.
/// Takes `e` out of every piece of `rest` it touches; whether it touched any.
fn carve(rest: &mut Vec<Cube>, e: &Cube) -> bool {
    if !rest.iter().any(|p| p.intersects(e)) {
        return false;
    }
    let mut next = Vec::with_capacity(rest.len());
    for piece in rest.drain(..) {
        if piece.intersects(e) {
            next.extend(piece.subtract(e));
        } else {
            next.push(piece);
        }
    }
    *rest = next;
    true
}

/// Per rule: whether it is dead in every family it exists in, and the earlier rules
/// that decide its packets. Each rule is compared with the earlier deciding lines the
/// index finds (with [`Engine::Reference`], with every earlier deciding line).
fn dead_rules(policy: &Policy, engine: Engine) -> Vec<(usize, Vec<usize>)> {
    // rule index -> (families checked, families dead, deciders)
    let n = policy.rules().len();
    let mut live = vec![false; n];
    let mut checked = vec![false; n];
    let mut deciders: Vec<Vec<usize>> = vec![Vec::new(); n];
    for family in Family::ALL {
        for chain in Chain::ALL {
            let lines = chain_lines(policy, family, chain);
            let rules: Vec<&Rule> = lines.iter().map(|l| l.rule).collect();
            let ifaces = Ifaces::new(&rules);
            let cubes: Vec<Vec<(Class, Cube)>> = lines
                .iter()
                .map(|l| {
                    classes()
                        .into_iter()
                        .filter_map(|c| line_cube(l, c, &ifaces).map(|cube| (c, cube)))
                        .collect()
                })
                .collect();
            // Earlier deciding boxes by protocol class, indexed by their bounds, so each
            // rule is compared only with the ones that can touch it.
            let mut index: [Vec<(usize, Bounds)>; 4] = Default::default();
            // Each rule's first deciding line: the one whose boxes name it below.
            let mut first = std::collections::HashMap::new();
            for (j, line) in lines.iter().enumerate() {
                if decides(line) {
                    first.entry(line.index).or_insert(j);
                    for (c, cube) in &cubes[j] {
                        index[class_slot(*c)].push((j, cube.bounds()));
                    }
                }
            }
            let mut index = index.map(BoxIndex::new);
            let mut near = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                for slot in &mut index {
                    slot.activate_before(i);
                }
                if !written(line.rule) {
                    continue;
                }
                checked[line.index] = true;
                let mut who = Vec::new();
                let mut dead = true;
                'classes: for (class, cube) in &cubes[i] {
                    let mut rest = vec![cube.clone()];
                    // Every piece lies inside the rule's own bounds: only earlier rules
                    // whose bounds overlap them can touch it.
                    match engine {
                        Engine::Indexed => {
                            index[class_slot(*class)].overlapping(&cube.bounds(), &mut near)
                        }
                        #[cfg(test)]
                        Engine::Reference => {
                            near.clear();
                            near.extend((0..i).filter(|j| decides(&lines[*j])));
                        }
                    }
                    for &j in &near {
                        let earlier = &lines[j];
                        for (c2, e) in &cubes[j] {
                            if c2 != class {
                                continue;
                            }
                            if !carve(&mut rest, e) {
                                continue;
                            }
                            if !who.contains(&earlier.index) {
                                who.push(earlier.index);
                            }
                            if rest.is_empty() {
                                continue 'classes;
                            }
                            if rest.len() > MAX_PIECES {
                                dead = false;
                                break 'classes;
                            }
                        }
                    }
                    dead = false;
                    break;
                }
                if dead {
                    // Name only the rules needed: drop each decider the others can do
                    // without (the rule alone when one alone decides everything).
                    let pos = |w: usize| first.get(&w).copied();
                    let mut keep: Vec<usize> = who.clone();
                    for w in who.iter().rev() {
                        let without: Vec<&Vec<(Class, Cube)>> = keep
                            .iter()
                            .filter(|k| *k != w)
                            .filter_map(|k| pos(*k).map(|j| &cubes[j]))
                            .collect();
                        if covered(&cubes[i], &without) {
                            keep.retain(|k| k != w);
                        }
                    }
                    who = keep;
                    for w in who {
                        if !deciders[line.index].contains(&w) {
                            deciders[line.index].push(w);
                        }
                    }
                } else {
                    live[line.index] = true;
                }
            }
        }
    }
    (0..n)
        .filter(|i| checked[*i] && !live[*i])
        .map(|i| (i, std::mem::take(&mut deciders[i])))
        .collect()
}

/// Whether the boxes of `rule` (per class) are covered by the union of `others`.
fn covered(rule: &[(Class, Cube)], others: &[&Vec<(Class, Cube)>]) -> bool {
    rule.iter().all(|(class, cube)| {
        let mut rest = vec![cube.clone()];
        for other in others {
            for (c2, e) in other.iter() {
                if c2 != class {
                    continue;
                }
                rest = rest.iter().flat_map(|p| p.subtract(e)).collect();
                if rest.is_empty() {
                    return true;
                }
                if rest.len() > MAX_PIECES {
                    return false;
                }
            }
        }
        rest.is_empty()
    })
}

fn shadow_findings(policy: &Policy, engine: Engine, out: &mut Vec<Finding>) {
    for (index, who) in dead_rules(policy, engine) {
        let rule = &policy.rules()[index];
        let differs = who
            .iter()
            .any(|w| policy.rules()[*w].action() != rule.action());
        let mut list: Vec<String> = who.iter().take(4).map(|w| describe(policy, *w)).collect();
        if who.len() > 4 {
            list.push(format!("{} more", who.len() - 4));
        }
        let by = list.join(" and ");
        let (kind, message) = if differs {
            (
                FindingKind::Shadowed,
                format!("this rule never matches: every packet it would match is decided earlier by {by}"),
            )
        } else {
            let done = match rule.action() {
                Action::Allow => "allowed",
                Action::Drop => "dropped",
                Action::Reject => "rejected",
                Action::Log => "decided",
            };
            (
                FindingKind::Redundant,
                format!(
                    "this rule is redundant: every packet it matches is already {done} by {by}"
                ),
            )
        };
        out.push(Finding {
            kind,
            subject: Subject::Rule(index),
            message,
        });
    }
}

fn loopback(family: Family) -> IpAddr {
    match family {
        Family::V4 => IpAddr::from([127, 0, 0, 1]),
        Family::V6 => IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1]),
    }
}

fn loopback_findings(policy: &Policy, out: &mut Vec<Finding>) {
    let d = policy.defaults();
    for (chain, direction) in [
        (Chain::Input, Direction::In),
        (Chain::Output, Direction::Out),
    ] {
        if d.get(chain) != Verdict::Drop {
            continue;
        }
        let dropped = Family::ALL.into_iter().find(|f| {
            let p = Packet {
                direction,
                iface: "lo".into(),
                proto: Protocol::Tcp,
                src: loopback(*f),
                dst: loopback(*f),
                sport: Some(40000),
                dport: Some(80),
                icmp_type: None,
                state: State::New,
            };
            policy.evaluate(&p).outcome != Outcome::Accept
        });
        if let Some(f) = dropped {
            let word = if direction == Direction::In {
                "in"
            } else {
                "out"
            };
            out.push(Finding {
                kind: FindingKind::NoLoopback,
                subject: Subject::ChainPolicy(chain),
                message: format!(
                    "{} drops by default but loopback traffic is not allowed ({f}): local services talking to each other will fail; add `allow {word} on lo;`",
                    chain.iptables_name()
                ),
            });
        }
    }
}

/// Connections a rule lets open whose replies the other chain drops, all of them: the
/// rule's whole reply region (its peers and ports, state established) is walked through
/// the other chain, and a finding is made only when no reply at all gets through.
fn reply_findings(policy: &Policy, chains: &Chains<'_>, out: &mut Vec<Finding>) {
    let ifaces = &chains.ifaces;
    for (index, rule) in policy.rules().iter().enumerate() {
        if !written(rule)
            || rule.action() != Action::Allow
            || rule.direction() == Direction::Forward
        {
            continue;
        }
        if rule.states().is_some_and(|s| !s.contains(State::New)) {
            continue;
        }
        let protos: &[Class] = match rule.proto() {
            Some(Protocol::Tcp) => &[Class::Tcp],
            Some(Protocol::Udp) => &[Class::Udp],
            Some(_) => continue,
            None => &[Class::Tcp, Class::Udp],
        };
        let (reply_chain, opened, fix) = match rule.direction() {
            Direction::Out => (
                Chain::Input,
                "the server opens",
                "allow in state established,related;",
            ),
            _ => (
                Chain::Output,
                "this rule lets in",
                "allow out state established,related;",
            ),
        };
        'families: for family in Family::ALL.into_iter().filter(|f| rule.in_family(*f)) {
            let peer_target = if rule.direction() == Direction::Out {
                rule.dst()
            } else {
                rule.src()
            };
            let Some(peer) = target_ranges(peer_target, policy, family) else {
                continue;
            };
            let any = addr_ranges(None, family);
            let service = port_ranges(rule.dport().map(|p| p.ranges()));
            let client = port_ranges(rule.sport().map(|p| p.ranges()));
            let iface = ifaces.ranges(rule.iface());
            let state = Ranges::one(State::Established as u128, State::Established as u128);
            let zero = Ranges::one(0, 0);
            let cube = match reply_chain {
                Chain::Input => Cube([peer, any, service, client, zero, iface, state]),
                _ => Cube([any, peer, service, client, zero, iface, state]),
            };
            for class in protos {
                let w = walk(policy, chains, family, reply_chain, cube.clone(), *class);
                // Replies an explicit rule drops are the admin's choice (a blocklist);
                // replies no rule lets back in, left to a drop policy, are the mistake.
                if w.reaches_drop_policy {
                    out.push(Finding {
                        kind: FindingKind::NoReplies,
                        subject: Subject::Rule(index),
                        message: format!(
                            "replies to the connections {opened} here are not let back in: no rule accepts them and the {} policy drops them ({family}); add `{fix}`",
                            reply_chain.iptables_name(),
                        ),
                    });
                    break 'families;
                }
            }
        }
    }
}

fn names_used(policy: &Policy, admins: &[Admin]) -> HashSet<String> {
    let mut used: HashSet<String> = admins.iter().map(|a| a.name.clone()).collect();
    for rule in policy.rules() {
        for t in [rule.src(), rule.dst()].into_iter().flatten() {
            let name = match t {
                Target::Addr(a) => a
                    .name()
                    .map(|n| n.split('/').next().unwrap_or(n).to_owned()),
                Target::Set { name, .. } => Some(name.clone()),
            };
            used.extend(name);
        }
    }
    used
}

fn unused_findings(policy: &Policy, admins: &[Admin], out: &mut Vec<Finding>) {
    let used = names_used(policy, admins);
    let declared = policy
        .names()
        .iter()
        .map(|n| n.name().to_owned())
        .chain(policy.sets().iter().map(|s| s.name().to_owned()));
    for name in declared {
        if !used.contains(&name) {
            out.push(Finding {
                kind: FindingKind::UnusedName,
                message: format!("`{name}` is declared but no rule uses it; remove it, or use it"),
                subject: Subject::Name(name),
            });
        }
    }
}

fn open_admin_port_findings(policy: &Policy, admins: &[Admin], out: &mut Vec<Finding>) {
    let Some(admin) = admins.first() else { return };
    for (index, rule) in policy.rules().iter().enumerate() {
        let opens = written(rule)
            && rule.action() == Action::Allow
            && rule.direction() == Direction::In
            && rule.src().is_none()
            && rule.iface().is_none_or(|i| i.as_str() != "lo")
            && rule.proto().is_none_or(|p| p == Protocol::Tcp)
            && rule.dport().is_none_or(|p| p.contains(admin.port))
            && rule.states().is_none_or(|s| s.contains(State::New));
        if opens {
            out.push(Finding {
                kind: FindingKind::OpenAdminPort,
                subject: Subject::Rule(index),
                message: format!(
                    "this rule opens port {} to any source, while `admin {}` says who administers this host; restrict it with `from {}`",
                    admin.port, admin.name, admin.name
                ),
            });
        }
    }
}

/// What a chain does with a region of packets (first match wins).
struct Walk {
    /// Some of the packets match no rule and meet a drop policy.
    reaches_drop_policy: bool,
    /// The first rule (or the policy) that drops or rejects some of them.
    dropped_by: Option<String>,
}

/// Every chain's lines and the interface atoms over every rule of the policy (so a
/// region built from one chain's rule can be walked through another chain), made once;
/// each chain's boxes indexed by protocol class when it is first walked.
struct Chains<'p> {
    ifaces: Ifaces,
    lines: std::collections::HashMap<(Family, Chain), Vec<Line<'p>>>,
    index: std::collections::HashMap<(Family, Chain), OnceCell<[BoxIndex; 4]>>,
    engine: Engine,
}

impl<'p> Chains<'p> {
    fn new(policy: &'p Policy, engine: Engine) -> Self {
        let rules: Vec<&Rule> = policy.rules().iter().collect();
        let mut lines = std::collections::HashMap::new();
        let mut index = std::collections::HashMap::new();
        for f in Family::ALL {
            for c in Chain::ALL {
                lines.insert((f, c), chain_lines(policy, f, c));
                index.insert((f, c), OnceCell::new());
            }
        }
        Chains {
            ifaces: Ifaces::new(&rules),
            lines,
            index,
            engine,
        }
    }

    fn get(&self, f: Family, c: Chain) -> &[Line<'p>] {
        self.lines.get(&(f, c)).map_or(&[], Vec::as_slice)
    }

    /// The boxes of the lines a walk through the chain may meet (not `log` rules, not
    /// those that may not match: neither changes what the walk finds), all active.
    fn index(&self, f: Family, c: Chain) -> &[BoxIndex; 4] {
        self.index[&(f, c)].get_or_init(|| {
            let mut boxes: [Vec<(usize, Bounds)>; 4] = Default::default();
            for (j, line) in self.get(f, c).iter().enumerate() {
                if line.rule.action() == Action::Log || line.rule.may_not_match() {
                    continue;
                }
                for class in classes() {
                    if let Some(cube) = line_cube(line, class, &self.ifaces) {
                        boxes[class_slot(class)].push((j, cube.bounds()));
                    }
                }
            }
            boxes.map(|b| {
                let mut index = BoxIndex::new(b);
                index.activate_before(usize::MAX);
                index
            })
        })
    }
}

/// How rules are compared: through the index, or (tests only) each with every earlier
/// one, the reference the indexed analysis must agree with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Indexed,
    #[cfg(test)]
    Reference,
}

/// What the chain does with the packets of `start` (of one protocol class).
fn walk(
    policy: &Policy,
    chains: &Chains<'_>,
    family: Family,
    chain: Chain,
    start: Cube,
    class: Class,
) -> Walk {
    let ifaces = &chains.ifaces;
    let lines = chains.get(family, chain);
    // Every piece stays inside `start`: only lines whose bounds overlap it can touch one
    // (with [`Engine::Reference`], every line is tried).
    let mut near = Vec::new();
    match chains.engine {
        Engine::Indexed => {
            chains.index(family, chain)[class_slot(class)].overlapping(&start.bounds(), &mut near)
        }
        #[cfg(test)]
        Engine::Reference => near.extend(0..lines.len()),
    }
    let mut rest = vec![start];
    let mut dropped_by = None;
    for line in near.into_iter().map(|j| &lines[j]) {
        if line.rule.action() == Action::Log {
            continue;
        }
        let Some(cube) = line_cube(line, class, ifaces) else {
            continue;
        };
        if !rest.iter().any(|p| p.intersect(&cube).is_some()) {
            continue;
        }
        let action = line.rule.action();
        if line.rule.may_not_match() {
            // A rate-limited rule may not match: the packets go on.
            continue;
        }
        if action != Action::Allow && dropped_by.is_none() {
            dropped_by = Some(describe(policy, line.index));
        }
        rest = rest.iter().flat_map(|p| p.subtract(&cube)).collect();
        if rest.len() > MAX_PIECES {
            return Walk {
                reaches_drop_policy: false,
                dropped_by: dropped_by
                    .or_else(|| Some(format!("too many cases to prove (over {MAX_PIECES})"))),
            };
        }
        if rest.is_empty() {
            return Walk {
                reaches_drop_policy: false,
                dropped_by,
            };
        }
    }
    end_of_chain(policy, chain, dropped_by)
}

/// A walk that went past every rule: the chain's policy decides the rest.
fn end_of_chain(policy: &Policy, chain: Chain, dropped_by: Option<String>) -> Walk {
    match policy.defaults().get(chain) {
        Verdict::Allow => Walk {
            reaches_drop_policy: false,
            dropped_by,
        },
        Verdict::Drop => Walk {
            reaches_drop_policy: true,
            dropped_by: dropped_by
                .or_else(|| Some(format!("the {} policy (drop)", chain.iptables_name()))),
        },
    }
}

fn target_ranges(t: Option<&Target>, policy: &Policy, family: Family) -> Option<Ranges> {
    match t {
        None => Some(addr_ranges(None, family)),
        Some(Target::Addr(a)) => a
            .get(family)
            .map(|n| addr_ranges(Some(LineTarget::Net(n)), family)),
        Some(Target::Set { name, .. }) => policy
            .set(name)
            .filter(|s| s.has(family))
            .map(|s| addr_ranges(Some(LineTarget::Set(s)), family)),
    }
}

fn admin_cube(
    t: &Target,
    policy: &Policy,
    family: Family,
    port: u16,
    state: State,
    inbound: bool,
) -> Option<Cube> {
    let peer = match t {
        Target::Addr(a) => a.get(family).map(LineTarget::Net),
        Target::Set { name, .. } => policy
            .set(name)
            .filter(|s| s.has(family))
            .map(LineTarget::Set),
    }?;
    let peer = addr_ranges(Some(peer), family);
    let any = addr_ranges(None, family);
    let port = Ranges::one(u128::from(port), u128::from(port));
    let high = Ranges::one(1, 65535);
    let state = Ranges::one(state as u128, state as u128);
    let zero = Ranges::one(0, 0);
    Some(Cube(if inbound {
        [peer, any, high, port, zero, Ranges::default(), state]
    } else {
        [any, peer, port, high, zero, Ranges::default(), state]
    }))
}

fn lockout_findings(
    policy: &Policy,
    chains: &Chains<'_>,
    admins: &[Admin],
    no_admin: bool,
    out: &mut Vec<Finding>,
) {
    let ifaces = &chains.ifaces;
    if admins.is_empty() {
        if !no_admin && policy.defaults().input == Verdict::Drop {
            out.push(Finding {
                kind: FindingKind::NoAdmin,
                subject: Subject::ChainPolicy(Chain::Input),
                message: "INPUT drops by default but no admin access is declared, so nothing proves you can still log in: add `admin NAME;` (a declared host, network or set, checked for access to ssh), or `admin none;` if this host is managed from a console".into(),
            });
        }
        return;
    }
    for (i, admin) in admins.iter().enumerate() {
        let target = policy
            .names()
            .iter()
            .find(|n| n.name() == admin.name)
            .map(|n| Target::Addr(n.address().clone()))
            .or_else(|| {
                policy.set(&admin.name).map(|s| Target::Set {
                    name: s.name().to_owned(),
                    v4: s.has(Family::V4),
                    v6: s.has(Family::V6),
                })
            });
        let Some(target) = target else { continue };
        'families: for family in Family::ALL {
            for (chain, inbound, state, what) in [
                (Chain::Input, true, State::New, "open a new connection to"),
                (
                    Chain::Input,
                    true,
                    State::Established,
                    "keep a connection to",
                ),
                (Chain::Output, false, State::Established, "get replies from"),
            ] {
                let Some(cube) = admin_cube(&target, policy, family, admin.port, state, inbound)
                else {
                    continue 'families;
                };
                let mut cube = cube;
                let all = ifaces.ranges(None);
                // The admin is never on `lo`.
                cube.0[IFACE] = match ifaces.lo() {
                    Some(lo) => all.subtract(&Ranges::one(lo, lo)),
                    None => all,
                };
                if let Some(by) = walk(policy, chains, family, chain, cube, Class::Tcp).dropped_by {
                    out.push(Finding {
                        kind: FindingKind::Lockout,
                        subject: Subject::Admin(i),
                        message: format!(
                            "lockout: `{}` could not {what} port {} over {family}: dropped by {by}",
                            admin.name, admin.port
                        ),
                    });
                    continue 'families;
                }
            }
        }
    }
}

/// Every finding of a policy, given its admin declarations.
pub fn analyze(policy: &Policy, admins: &[Admin], no_admin: bool) -> Vec<Finding> {
    analyze_with(policy, admins, no_admin, Engine::Indexed)
}

fn analyze_with(policy: &Policy, admins: &[Admin], no_admin: bool, engine: Engine) -> Vec<Finding> {
    let mut out = Vec::new();
    let chains = Chains::new(policy, engine);
    lockout_findings(policy, &chains, admins, no_admin, &mut out);
    shadow_findings(policy, engine, &mut out);
    loopback_findings(policy, &mut out);
    reply_findings(policy, &chains, &mut out);
    open_admin_port_findings(policy, admins, &mut out);
    unused_findings(policy, admins, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_subtract_and_intersect() {
        let a = Ranges::one(10, 20);
        assert_eq!(a.subtract(&Ranges::one(12, 14)).0, vec![(10, 11), (15, 20)]);
        assert_eq!(a.subtract(&Ranges::one(0, 100)).0, vec![]);
        assert_eq!(a.subtract(&Ranges::one(20, 30)).0, vec![(10, 19)]);
        assert_eq!(a.intersect(&Ranges::one(15, 30)).0, vec![(15, 20)]);
        let b = Ranges::from_unsorted(vec![(5, 6), (1, 3), (4, 4)]);
        assert_eq!(b.0, vec![(1, 6)]);
    }

    #[test]
    fn cube_difference_is_exact() {
        let full = |lo, hi| Ranges::one(lo, hi);
        let mk = |a: (u128, u128), b: (u128, u128)| {
            Cube([
                full(a.0, a.1),
                full(b.0, b.1),
                full(0, 0),
                full(0, 0),
                full(0, 0),
                full(0, 0),
                full(0, 0),
            ])
        };
        let big = mk((0, 9), (0, 9));
        let hole = mk((2, 3), (4, 5));
        let pieces = big.subtract(&hole);
        let area: u128 = pieces
            .iter()
            .map(|c| {
                c.0.iter()
                    .map(|r| r.0.iter().map(|(l, h)| h - l + 1).sum::<u128>())
                    .product::<u128>()
            })
            .sum();
        assert_eq!(area, 100 - 4);
        assert!(pieces.iter().all(|p| !p.intersects(&hole)));
    }
}

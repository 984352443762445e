//! The policy as the kernel will hold it: per family, per chain, one [`Line`] for each
//! rendered rule. Renderers print these lines; the evaluator walks them. Neither has a
//! second idea of what a rule means.

use ipnet::IpNet;

use crate::model::{Policy, Rule, Target};
use crate::value::{Chain, Family, PortRange};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Port;

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

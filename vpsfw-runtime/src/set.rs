//! Address sets: a named list of addresses and networks, matched in one lookup (an ipset
//! `hash:net` per family for iptables, an interval set for nft) instead of one rule per
//! address.

use std::fmt;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::value::Family;

/// The longest set name: ipset names are at most 31 bytes, and vpsfw's are
/// `vpsfw-NAME-4-new`.
pub const MAX_NAME: usize = 16;

/// A named set of networks; each family's elements kept sorted, with merged ranges for
/// lookups.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "SetRepr", into = "SetRepr")]
pub struct SetDef {
    name: String,
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
    ranges4: Vec<(u128, u128)>,
    ranges6: Vec<(u128, u128)>,
}

#[derive(Serialize, Deserialize)]
struct SetRepr {
    name: String,
    v4: Vec<Ipv4Net>,
    v6: Vec<Ipv6Net>,
}

impl TryFrom<SetRepr> for SetDef {
    type Error = String;
    fn try_from(r: SetRepr) -> Result<Self, String> {
        check_set_name(&r.name)?;
        let nets =
            r.v4.into_iter()
                .map(IpNet::V4)
                .chain(r.v6.into_iter().map(IpNet::V6));
        SetDef::new(&r.name, nets.collect())
    }
}

impl From<SetDef> for SetRepr {
    fn from(s: SetDef) -> Self {
        SetRepr {
            name: s.name,
            v4: s.v4,
            v6: s.v6,
        }
    }
}

/// Checks a set name: it becomes part of ipset and nft set names.
pub fn check_set_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME {
        return Err(format!(
            "set name `{name}` is {} bytes long; at most {MAX_NAME} fit in the kernel's set names",
            name.len()
        ));
    }
    Ok(())
}

/// Sorts ranges and merges overlapping or adjacent ones, for binary search.
fn merge(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn contains(ranges: &[(u128, u128)], x: u128) -> bool {
    let i = ranges.partition_point(|(lo, _)| *lo <= x);
    i > 0 && x <= ranges[i - 1].1
}

impl SetDef {
    /// A set of at least one network; repeats are dropped, `/0` is refused (use `any`).
    pub fn new(name: &str, nets: Vec<IpNet>) -> Result<Self, String> {
        if nets.is_empty() {
            return Err(format!("set `{name}` is empty"));
        }
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for n in nets {
            if n.prefix_len() == 0 {
                return Err(format!(
                    "`{n}` in set `{name}` matches every address; write `any` in the rule instead"
                ));
            }
            match n {
                IpNet::V4(a) => v4.push(a),
                IpNet::V6(a) => v6.push(a),
            }
        }
        v4.sort();
        v4.dedup();
        v6.sort();
        v6.dedup();
        let ranges4 = merge(
            v4.iter()
                .map(|n| {
                    (
                        u32::from(n.network()).into(),
                        u32::from(n.broadcast()).into(),
                    )
                })
                .collect(),
        );
        let ranges6 = merge(
            v6.iter()
                .map(|n| (u128::from(n.network()), u128::from(n.broadcast())))
                .collect(),
        );
        Ok(SetDef {
            name: name.to_owned(),
            v4,
            v6,
            ranges4,
            ranges6,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn v4(&self) -> &[Ipv4Net] {
        &self.v4
    }

    pub fn v6(&self) -> &[Ipv6Net] {
        &self.v6
    }

    pub fn has(&self, f: Family) -> bool {
        match f {
            Family::V4 => !self.v4.is_empty(),
            Family::V6 => !self.v6.is_empty(),
        }
    }

    /// Whether an address is in the set: a binary search over merged ranges.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(a) => contains(&self.ranges4, u32::from(a).into()),
            std::net::IpAddr::V6(a) => contains(&self.ranges6, u128::from(a)),
        }
    }

    /// The ipset holding one family's elements.
    pub fn ipset_name(&self, f: Family) -> String {
        match f {
            Family::V4 => format!("vpsfw-{}-4", self.name),
            Family::V6 => format!("vpsfw-{}-6", self.name),
        }
    }

    /// The nft set holding one family's elements, inside table inet vpsfw.
    pub fn nft_name(&self, f: Family) -> String {
        match f {
            Family::V4 => format!("{}_v4", self.name),
            Family::V6 => format!("{}_v6", self.name),
        }
    }
}

impl fmt::Display for SetDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> SetDef {
        SetDef::new("t", items.iter().map(|s| s.parse().unwrap()).collect()).unwrap()
    }

    #[test]
    fn lookups_follow_prefixes() {
        let s = set(&[
            "198.51.100.0/25",
            "198.51.100.128/26",
            "203.0.113.7/32",
            "2001:db8::/48",
        ]);
        assert!(s.contains("198.51.100.0".parse().unwrap()));
        assert!(s.contains("198.51.100.191".parse().unwrap()));
        assert!(!s.contains("198.51.100.192".parse().unwrap()));
        assert!(s.contains("203.0.113.7".parse().unwrap()));
        assert!(!s.contains("203.0.113.8".parse().unwrap()));
        assert!(!s.contains("203.0.113.6".parse().unwrap()));
        assert!(s.contains("2001:db8:0:ffff::1".parse().unwrap()));
        assert!(!s.contains("2001:db8:1::1".parse().unwrap()));
    }

    #[test]
    fn refuses_empty_and_everything() {
        assert!(SetDef::new("t", vec![]).is_err());
        assert!(SetDef::new("t", vec!["0.0.0.0/0".parse().unwrap()]).is_err());
    }
}

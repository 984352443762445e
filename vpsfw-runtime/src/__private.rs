//! What `firewall!` expansions call. Not public API: the macro has already run every
//! check of [`crate::spec`] on these values, so they are assembled without checking again
//! (and without anything that could panic).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

pub use crate::addr::Address;
pub use crate::analysis::{Admin, FindingKind};
pub use crate::harden::Preset;
pub use crate::model::{Defaults, NameDef, Origin, Policy, Rule, Target};
pub use crate::set::SetDef;
pub use crate::value::{
    Action, Direction, Family, IcmpType, Iface, Label, Limit, LogPrefix, Ports, Protocol, RateUnit,
    States, Verdict,
};
use crate::value::{Port, PortRange};

// Expansions name these through this module so they work without the prelude.
pub use std::convert::From;
pub use std::option::Option::{self, None, Some};
pub use std::vec::Vec;

/// The policy-wide parts of an expansion.
pub struct PolicyParts {
    pub names: Vec<NameDef>,
    pub sets: Vec<SetDef>,
    pub defaults: Defaults,
    pub admins: Vec<Admin>,
    pub console_only: bool,
    pub allowed: Vec<FindingKind>,
    /// Presets with the number of rules (vpsfw's own and written) before each.
    pub presets: Vec<(usize, Preset)>,
}

pub fn policy(p: PolicyParts, written: Vec<Rule>) -> Policy {
    let mut rules = crate::spec::implicit_rules();
    rules.extend(written);
    let rules = crate::harden::with_presets(rules, &p.presets);
    Policy {
        names: p.names,
        sets: p.sets,
        defaults: p.defaults,
        rules,
        admins: p.admins,
        console_only: p.console_only,
        allowed: p.allowed,
        presets: p.presets,
        eval_cache: Default::default(),
    }
}

pub fn admin(name: &str, port: u16) -> Admin {
    Admin {
        name: name.to_owned(),
        port,
    }
}

/// A set from `(address, prefix)` pairs as integers: compact to compile for large sets.
pub fn set(name: &str, v4: &[(u32, u8)], v6: &[(u128, u8)]) -> SetDef {
    let nets4 = v4.iter().filter_map(|&(a, l)| {
        Ipv4Net::new(Ipv4Addr::from(a), l)
            .ok()
            .map(ipnet::IpNet::V4)
    });
    let nets6 = v6.iter().filter_map(|&(a, l)| {
        Ipv6Net::new(Ipv6Addr::from(a), l)
            .ok()
            .map(ipnet::IpNet::V6)
    });
    let nets: Vec<ipnet::IpNet> = nets4.chain(nets6).collect();
    SetDef::new(name, nets).unwrap_or_else(|_| SetDef::placeholder(name))
}

pub fn addr_target(a: Address) -> Target {
    Target::Addr(a)
}

pub fn set_target(name: &str, v4: bool, v6: bool) -> Target {
    Target::Set {
        name: name.to_owned(),
        v4,
        v6,
    }
}

pub fn name(name: &str, address: Address) -> NameDef {
    NameDef {
        name: name.to_owned(),
        address,
    }
}

pub fn addr(name: Option<&str>, v4: Option<([u8; 4], u8)>, v6: Option<([u16; 8], u8)>) -> Address {
    let v4 = v4.map(|(o, len)| Ipv4Net::new(Ipv4Addr::from(o), len).unwrap_or_default());
    let v6 = v6.map(|(s, len)| {
        let [a, b, c, d, e, f, g, h] = s;
        Ipv6Net::new(Ipv6Addr::new(a, b, c, d, e, f, g, h), len).unwrap_or_default()
    });
    Address::raw(name.map(str::to_owned), v4, v6)
}

pub fn ports(list: &[(u16, u16)]) -> Ports {
    Ports::raw(
        list.iter()
            .map(|&(lo, hi)| PortRange::raw(Port::raw(lo), Port::raw(hi)))
            .collect(),
    )
}

pub fn iface(name: &str) -> Iface {
    Iface::raw(name)
}

pub fn label(text: &str) -> Label {
    Label::raw(text)
}

pub fn log_prefix(text: &str) -> LogPrefix {
    LogPrefix::raw(text)
}

pub fn states(bits: u8) -> States {
    States::raw(bits)
}

pub fn icmp_type(family: Family, code: u8) -> IcmpType {
    IcmpType::from_code(family, code)
}

pub fn limit(count: u32, unit: RateUnit, burst: u32) -> Limit {
    Limit::raw(count, unit, burst)
}

/// Every field of a written rule.
pub struct RuleParts {
    pub action: Action,
    pub direction: Direction,
    pub v4: bool,
    pub v6: bool,
    pub iface: Option<Iface>,
    pub proto: Option<Protocol>,
    pub src: Option<Target>,
    pub dst: Option<Target>,
    pub sport: Option<Ports>,
    pub dport: Option<Ports>,
    pub icmp_type: Option<IcmpType>,
    pub states: Option<States>,
    pub limit: Option<Limit>,
    pub log_prefix: Option<LogPrefix>,
    pub group: Option<Label>,
    pub comment: Option<Label>,
    pub line: Option<u32>,
    pub text: Option<&'static str>,
    pub allowed: Vec<FindingKind>,
}

pub fn rule(p: RuleParts) -> Rule {
    Rule {
        action: p.action,
        direction: p.direction,
        v4: p.v4,
        v6: p.v6,
        iface: p.iface,
        proto: p.proto,
        src: p.src,
        dst: p.dst,
        sport: p.sport,
        dport: p.dport,
        icmp_type: p.icmp_type,
        states: p.states,
        limit: p.limit,
        log_prefix: p.log_prefix,
        group: p.group,
        comment: p.comment,
        origin: Origin::Written {
            line: p.line,
            text: p.text.map(str::to_owned),
        },
        allowed: p.allowed,
        syn: false,
        over: None,
        recent: None,
    }
}

pub fn preset(
    name: &str,
    limit: Option<Limit>,
    seconds: Option<u32>,
    prefix: Option<&str>,
) -> Preset {
    Preset::new(name, limit, seconds, prefix.map(LogPrefix::raw)).unwrap_or(Preset::Invalid)
}

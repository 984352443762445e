//! A policy as written, before it is checked, and the one checker that turns it into a
//! [`Policy`].
//!
//! The `firewall!` macro fills a [`Spec`] from its tokens (every leaf carries the [`Loc`]
//! of the tokens it came from) and calls [`Spec::build`] at build time; code that makes
//! policies at run time fills the same structure, or uses [`crate::builder`], and gets
//! the same diagnostics as a `Result`. Leaves are the text as written, so every literal
//! check lives here and nowhere else.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::addr::{parse_net, with_prefix, Address};
use crate::analysis::{Admin, FindingKind, Subject};
use crate::diag::{did_you_mean, shown, Diagnostics, Loc, Sink, Spanned};
use crate::harden::Preset;
use crate::model::{Defaults, NameDef, Origin, Policy, Rule, Target};
use crate::set::{check_set_name, SetDef};
use crate::value::*;

/// A policy as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    pub items: Vec<Item>,
}

// Rules dominate a spec, so boxing them would only add an allocation per rule.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    /// `host admin = 198.51.100.7, "2001:db8:100::7";` or `net office = 203.0.113.128/27;`
    Name(NameSpec),
    /// `set blocklist = [198.51.100.0/24, "2001:db8:bad::/48"];` or
    /// `set blocklist from "sets/blocklist.txt";`
    Set(SetSpec),
    /// `policy input drop;`
    Default(DefaultSpec),
    /// `admin office;`, `admin office port 2222;`, `admin none;`
    Admin(AdminSpec),
    /// `#![allow(unused_name)]`: findings allowed for the whole policy.
    Allow(Vec<Spanned<String>>),
    /// `harden syn_flood limit 25/second burst 50;`, `harden port_scan for 60;`
    Harden(HardenSpec),
    Rule(RuleSpec),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameKind {
    /// Single addresses only.
    Host,
    /// Networks (a single address is a network too).
    Net,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameSpec {
    pub kind: NameKind,
    pub name: Spanned<String>,
    /// One address or network per family.
    pub values: Vec<Spanned<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetSpec {
    pub name: Spanned<String>,
    /// The file the elements were read from, as written, for messages.
    pub file: Option<String>,
    pub elements: Vec<SetElement>,
}

/// One element of a set: the text, and its line when it comes from a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetElement {
    pub text: Spanned<String>,
    pub line: Option<u32>,
}

/// Reads a set file: one address or network per line; blank lines and `#` comments
/// are skipped. Gives each element with its line number.
pub fn read_set_file(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.split('#').next().unwrap_or("").trim();
            (!l.is_empty()).then(|| (i as u32 + 1, l.to_owned()))
        })
        .collect()
}

/// A hardening preset and its settings, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardenSpec {
    pub at: Loc,
    pub name: Spanned<String>,
    pub limit: Option<LimitSpec>,
    /// `for N`: seconds, for `port_scan`.
    pub seconds: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
}

/// Who administers the host; `name: None` is `admin none;` (console only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSpec {
    pub at: Loc,
    pub name: Option<Spanned<String>>,
    /// The port that must stay open to the admin; ssh when not given.
    pub port: Option<Spanned<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultSpec {
    pub chain: Spanned<String>,
    pub verdict: Spanned<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// The whole rule.
    pub at: Loc,
    /// The source line, where the producer knows it.
    pub line: Option<u32>,
    /// The rule as written, where the producer has it.
    pub text: Option<String>,
    pub group: Option<Spanned<String>>,
    pub action: Spanned<String>,
    pub direction: Spanned<String>,
    pub iface: Option<Spanned<String>>,
    pub proto: Option<Spanned<String>>,
    pub from: Option<EndpointSpec>,
    pub to: Option<EndpointSpec>,
    pub icmp_type: Option<Spanned<String>>,
    pub states: Option<Vec<Spanned<String>>>,
    pub limit: Option<LimitSpec>,
    pub log_prefix: Option<Spanned<String>>,
    pub comment: Option<Spanned<String>>,
    /// `#[allow(shadowed)]`: findings this rule is meant to have.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
}

impl RuleSpec {
    /// A rule with nothing but an action and a direction.
    pub fn new(at: Loc, action: Spanned<String>, direction: Spanned<String>) -> Self {
        RuleSpec {
            at,
            line: None,
            text: None,
            group: None,
            action,
            direction,
            iface: None,
            proto: None,
            from: None,
            to: None,
            icmp_type: None,
            states: None,
            limit: None,
            log_prefix: None,
            comment: None,
            allow: Vec::new(),
        }
    }
}

/// `from`/`to`: an address, ports, or both.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSpec {
    pub at: Loc,
    pub addr: Option<AddrSpec>,
    pub ports: Option<Vec<PortSpec>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddrSpec {
    /// `any`: no address condition.
    Any(Loc),
    /// `198.51.100.7`, `"2001:db8::/32"`.
    Literal(Spanned<String>),
    /// A declared name, optionally widened: `office/27`.
    Name {
        name: Spanned<String>,
        prefix: Option<Spanned<String>>,
    },
    /// A lone word such as `to https` or `to web`: a declared name if there is one,
    /// otherwise a service, so both read naturally.
    NameOrService(Spanned<String>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortSpec {
    /// `22` or `https`.
    One(Spanned<String>),
    /// `1024:`, `:1023`, `1024:2048`.
    Range {
        at: Loc,
        lo: Option<Spanned<String>>,
        hi: Option<Spanned<String>>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitSpec {
    pub at: Loc,
    pub count: Spanned<String>,
    pub unit: Spanned<String>,
    pub burst: Option<Spanned<String>>,
}

/// The group of the rules vpsfw adds itself.
pub const COMMON_GROUP: &str = "common";

impl Spec {
    /// Checks everything, then analyses the policy; returns the policy, or every
    /// problem found (mistakes first; logical findings only for a policy without them).
    pub fn build(&self) -> Result<Policy, Diagnostics> {
        let mut sink = Sink::default();
        let names = check_names(&self.items, &mut sink);
        let mut defaults = Defaults::default();
        let mut seen_defaults: HashMap<Chain, Loc> = HashMap::new();
        let mut rules = implicit_rules();
        let mut rule_locs: Vec<Option<Loc>> = vec![None; rules.len()];
        let mut admins = Vec::new();
        let mut admin_locs = Vec::new();
        let mut console_only = false;
        let mut allowed = Vec::new();
        let mut presets: Vec<(usize, Preset)> = Vec::new();
        for item in &self.items {
            match item {
                Item::Name(_) | Item::Set(_) => {}
                Item::Default(d) => {
                    let chain = sink.take(d.chain.at, d.chain.value.parse::<Chain>());
                    let verdict = sink.take(d.verdict.at, parse_verdict(&d.verdict.value));
                    if let (Some(c), Some(v)) = (chain, verdict) {
                        if seen_defaults.insert(c, d.chain.at).is_some() {
                            sink.error(
                                d.chain.at,
                                format!("the policy of chain `{c}` is set twice"),
                            );
                        }
                        defaults.set(c, v);
                    }
                }
                Item::Admin(a) => match &a.name {
                    None => console_only = true,
                    Some(name) => {
                        let port = match &a.port {
                            Some(p) => sink.take(p.at, p.value.parse::<Port>()).map(Port::get),
                            None => Some(22),
                        };
                        match names.get(&name.value) {
                            Some((_, Some(_))) => {
                                if let Some(port) = port {
                                    admins.push(Admin {
                                        name: name.value.clone(),
                                        port,
                                    });
                                    admin_locs.push(a.at);
                                }
                            }
                            Some((_, None)) => {}
                            None => sink.error(name.at, undefined_name(&name.value, &names)),
                        }
                    }
                },
                Item::Allow(list) => allowed.extend(check_allows(list, &mut sink)),
                Item::Harden(h) => {
                    let limit = match &h.limit {
                        Some(l) => check_limit(l, &mut sink).map(Some),
                        None => Some(None),
                    };
                    let seconds = match &h.seconds {
                        Some(s) => sink
                            .take(
                                s.at,
                                parse_count(&s.value, "time")
                                    .map(|n| n.min(u64::from(u32::MAX)) as u32),
                            )
                            .map(Some),
                        None => Some(None),
                    };
                    let prefix = match &h.prefix {
                        Some(p) => sink.take(p.at, LogPrefix::new(&p.value)).map(Some),
                        None => Some(None),
                    };
                    if let (Some(limit), Some(seconds), Some(prefix)) = (limit, seconds, prefix) {
                        if let Some(preset) = sink.take(
                            h.name.at,
                            Preset::new(&h.name.value, limit, seconds, prefix),
                        ) {
                            if presets
                                .iter()
                                .any(|(_, p): &(usize, Preset)| p.name() == preset.name())
                            {
                                sink.error(
                                    h.name.at,
                                    format!("`harden {}` is given twice", preset.name()),
                                );
                            }
                            presets.push((rules.len(), preset));
                        }
                    }
                }
                Item::Rule(r) => {
                    let allow = check_allows(&r.allow, &mut sink);
                    if let Some(mut rule) = check_rule(r, &names, &mut sink) {
                        rule.allowed = allow;
                        rules.push(rule);
                        rule_locs.push(Some(r.at));
                    }
                }
            }
        }
        if console_only && !admins.is_empty() {
            if let Some(at) = admin_locs.first() {
                sink.error(*at, "`admin none;` says nobody administers this host over the network, but admins are declared");
            }
        }
        if !sink.is_empty() {
            return Err(sink.finish());
        }
        let name_locs: HashMap<String, Loc> =
            names.iter().map(|(n, (at, _))| (n.clone(), *at)).collect();
        let (names, sets) = sorted_declarations(names);
        let rules = crate::harden::with_presets(rules, &presets);
        let rule_locs = crate::harden::place(rule_locs, &presets, |p| {
            let (head, tail) = p.rules();
            (vec![None; head.len()], vec![None; tail.len()])
        });
        let policy = Policy {
            names,
            sets,
            defaults,
            rules,
            admins,
            console_only,
            allowed,
            presets,
            eval_cache: Default::default(),
        };
        let fallback = self.items.first().map_or(Loc::new(0), item_loc);
        for finding in policy.analyze() {
            let at = match &finding.subject {
                Subject::Rule(i) => rule_locs.get(*i).copied().flatten(),
                Subject::Name(n) => name_locs.get(n).copied(),
                Subject::ChainPolicy(c) => seen_defaults.get(c).copied(),
                Subject::Admin(i) => admin_locs.get(*i).copied(),
            };
            let message = match (finding.kind, &finding.subject) {
                (FindingKind::NoAdmin, _) => finding.message,
                (kind, Subject::Rule(_)) => format!(
                    "{}; if intended, say so with `#[allow({kind})]` on the rule",
                    finding.message
                ),
                (kind, _) => format!(
                    "{}; if intended, say so with `#![allow({kind})]` at the top of the policy",
                    finding.message
                ),
            };
            sink.error(at.unwrap_or(fallback), message);
        }
        if !sink.is_empty() {
            return Err(sink.finish());
        }
        Ok(policy)
    }
}

fn item_loc(item: &Item) -> Loc {
    match item {
        Item::Name(n) => n.name.at,
        Item::Set(s) => s.name.at,
        Item::Default(d) => d.chain.at,
        Item::Admin(a) => a.at,
        Item::Allow(l) => l.first().map_or(Loc::new(0), |s| s.at),
        Item::Harden(h) => h.at,
        Item::Rule(r) => r.at,
    }
}

fn check_limit(l: &LimitSpec, sink: &mut Sink) -> Option<Limit> {
    let count = sink.take(l.count.at, parse_count(&l.count.value, "rate"));
    let unit = sink.take(l.unit.at, l.unit.value.parse::<RateUnit>());
    let burst = match &l.burst {
        Some(b) => sink.take(b.at, parse_count(&b.value, "burst")).map(Some),
        None => Some(None),
    };
    sink.take(l.at, Limit::new(count?, unit?, burst?))
}

/// The finding names of an `allow(...)`.
fn check_allows(list: &[Spanned<String>], sink: &mut Sink) -> Vec<FindingKind> {
    list.iter()
        .filter_map(|s| match FindingKind::from_name(&s.value) {
            Some(k) => Some(k),
            None => {
                sink.error(
                    s.at,
                    format!(
                        "unknown finding `{}`{}",
                        shown(&s.value),
                        did_you_mean(&s.value, FindingKind::ALL.iter().map(|k| k.name()))
                    ),
                );
                None
            }
        })
        .collect()
}

fn sorted_declarations(names: Names) -> (Vec<NameDef>, Vec<SetDef>) {
    let mut defs: Vec<(Loc, Option<Declared>)> = names.into_values().collect();
    defs.sort_by_key(|(at, _)| *at);
    let (mut addrs, mut sets) = (Vec::new(), Vec::new());
    for (_, def) in defs {
        match def {
            Some(Declared::Addr(d)) => addrs.push(d),
            Some(Declared::Set(s)) => sets.push(s),
            None => {}
        }
    }
    (addrs, sets)
}

fn parse_verdict(s: &str) -> Result<Verdict, String> {
    if s == "reject" {
        return Err("a chain policy can only be `allow` or `drop`; the kernel has no default reject (add a final `reject` rule instead)".into());
    }
    s.parse()
}

/// What a name stands for.
enum Declared {
    Addr(NameDef),
    Set(SetDef),
}

/// Every declared name (addresses and sets share one namespace); `None` for a name
/// whose declaration has a mistake (already reported), so its uses add no "undefined
/// name" errors.
type Names = HashMap<String, (Loc, Option<Declared>)>;

fn check_set(n: &SetSpec, sink: &mut Sink) -> Option<SetDef> {
    let name = &n.name.value;
    let mut nets = Vec::with_capacity(n.elements.len());
    let mut ok = true;
    for e in &n.elements {
        let place = match (&n.file, e.line) {
            (Some(f), Some(l)) => format!("`{}` line {l}: ", shown(f)),
            _ => String::new(),
        };
        match parse_net(&e.text.value) {
            Ok(net) => nets.push(net),
            Err(m) => {
                sink.error(e.text.at, format!("{place}{m}"));
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    sink.take(
        n.name.at,
        check_set_name(name).and_then(|()| SetDef::new(name, nets)),
    )
}

fn check_names(items: &[Item], sink: &mut Sink) -> Names {
    let mut names: Names = HashMap::new();
    for item in items {
        if let Item::Set(set) = item {
            let name = &set.name.value;
            if let Err(e) = check_name_word(name) {
                sink.error(set.name.at, e);
                continue;
            }
            if names.contains_key(name) {
                sink.error(set.name.at, format!("name `{name}` is declared twice"));
                continue;
            }
            let def = check_set(set, sink).map(Declared::Set);
            names.insert(name.clone(), (set.name.at, def));
            continue;
        }
        let Item::Name(n) = item else { continue };
        let name = &n.name.value;
        if let Err(e) = check_name_word(name) {
            sink.error(n.name.at, e);
            continue;
        }
        if names.contains_key(name) {
            sink.error(n.name.at, format!("name `{name}` is declared twice"));
            continue;
        }
        let mut v4 = None;
        let mut v6 = None;
        let mut ok = true;
        for value in &n.values {
            let Some(net) = sink.take(value.at, parse_net(&value.value)) else {
                ok = false;
                continue;
            };
            if n.kind == NameKind::Host && net.prefix_len() != net.max_prefix_len() {
                sink.error(
                    value.at,
                    format!("`{net}` is a network, not a host; declare it with `net {name} = ...`"),
                );
                ok = false;
                continue;
            }
            let slot_taken = match net {
                IpNet::V4(a) => v4.replace(a).is_some(),
                IpNet::V6(a) => v6.replace(a).is_some(),
            };
            if slot_taken {
                sink.error(
                    value.at,
                    format!("`{name}` already has an {} address; a name stands for one address per family", family(net)),
                );
                ok = false;
            }
        }
        let def = match Address::new(Some(name.clone()), v4, v6) {
            Some(address) if ok => Some(Declared::Addr(NameDef {
                name: name.clone(),
                address,
            })),
            None if ok => {
                sink.error(n.name.at, format!("name `{name}` has no address"));
                None
            }
            _ => None,
        };
        names.insert(name.clone(), (n.name.at, def));
    }
    names
}

fn check_name_word(name: &str) -> Result<(), String> {
    // No `-`: the macro reads a name as one Rust identifier.
    let ok_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.is_empty() || !ok_chars || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "`{}` is not a valid name; use letters, digits and `_`",
            shown(name)
        ));
    }
    if name == "any" {
        return Err("`any` is a keyword and cannot be declared as a name".into());
    }
    if service_port(name).is_ok() {
        return Err(format!(
            "name `{name}` is also a service name, so `to {name}` would be ambiguous; choose another name"
        ));
    }
    Ok(())
}

fn family(net: IpNet) -> Family {
    match net {
        IpNet::V4(_) => Family::V4,
        IpNet::V6(_) => Family::V6,
    }
}

/// The ICMPv6 that IPv6 cannot work without (RFC 4890): neighbour discovery, router
/// advertisements (SLAAC), path MTU discovery and errors. vpsfw adds them to every
/// policy so a default-drop IPv6 side is closed but not broken.
pub(crate) fn implicit_rules() -> Vec<Rule> {
    const IN: &[u8] = &[1, 2, 3, 4, 133, 134, 135, 136];
    const OUT: &[u8] = &[1, 2, 3, 4, 133, 135, 136, 143];
    let mut rules = Vec::new();
    for (direction, types) in [(Direction::In, IN), (Direction::Out, OUT)] {
        for &code in types {
            rules.push(Rule {
                action: Action::Allow,
                direction,
                v4: false,
                v6: true,
                iface: None,
                proto: Some(Protocol::Icmpv6),
                src: None,
                dst: None,
                sport: None,
                dport: None,
                icmp_type: Some(IcmpType::from_code(Family::V6, code)),
                states: None,
                limit: None,
                log_prefix: None,
                group: Label::new(COMMON_GROUP).ok(),
                comment: Label::new("icmpv6 needed by ipv6").ok(),
                allowed: Vec::new(),
                syn: false,
                over: None,
                recent: None,
                origin: Origin::Implicit {
                    why: "IPv6 needs this ICMPv6 type to work (RFC 4890)".into(),
                },
            });
        }
    }
    rules
}

/// An endpoint's address and ports with where they were written, and whether every part
/// of it was valid.
type ResolvedEndpoint = (Option<(Target, Loc)>, Option<(Ports, Loc)>, bool);

fn target_of(def: &Declared) -> Target {
    match def {
        Declared::Addr(d) => Target::Addr(d.address.clone()),
        Declared::Set(s) => Target::Set {
            name: s.name().to_owned(),
            v4: s.has(Family::V4),
            v6: s.has(Family::V6),
        },
    }
}

/// Resolves one `from`/`to` into an address and ports.
fn check_endpoint(e: &EndpointSpec, names: &Names, sink: &mut Sink) -> ResolvedEndpoint {
    let mut ok = true;
    let mut address = None;
    let mut ports_from_word = None;
    match &e.addr {
        None | Some(AddrSpec::Any(_)) => {}
        Some(AddrSpec::Literal(lit)) => match parse_net(&lit.value) {
            Ok(net) => address = Some((Target::Addr(Address::from_net(None, net)), lit.at)),
            Err(m) => {
                sink.error(lit.at, m);
                ok = false;
            }
        },
        Some(AddrSpec::Name { name, prefix }) => match names.get(&name.value) {
            Some((_, None)) => ok = false,
            Some((_, Some(def))) => match (prefix, def) {
                (None, def) => address = Some((target_of(def), name.at)),
                (Some(p), Declared::Addr(def)) => {
                    match widen(&name.value, &def.address, &p.value) {
                        Ok(a) => address = Some((Target::Addr(a), name.at)),
                        Err(m) => {
                            sink.error(p.at, m);
                            ok = false;
                        }
                    }
                }
                (Some(p), Declared::Set(_)) => {
                    sink.error(
                        p.at,
                        format!(
                            "`{}` is a set; `/N` widens only a single address",
                            name.value
                        ),
                    );
                    ok = false;
                }
            },
            None => {
                sink.error(name.at, undefined_name(&name.value, names));
                ok = false;
            }
        },
        Some(AddrSpec::NameOrService(word)) => match names.get(&word.value) {
            Some((_, None)) => ok = false,
            Some((_, Some(def))) => address = Some((target_of(def), word.at)),
            None => match service_port(&word.value) {
                Ok(p) => ports_from_word = Some((vec![PortRange::single(p)], word.at)),
                Err(_) => {
                    let known = names
                        .keys()
                        .map(String::as_str)
                        .chain(SERVICES.iter().map(|(n, _)| *n));
                    sink.error(
                        word.at,
                        format!(
                            "`{}` is neither a declared name nor a known service{}",
                            shown(&word.value),
                            did_you_mean(&word.value, known)
                        ),
                    );
                    ok = false;
                }
            },
        },
    }
    let mut ranges = ports_from_word
        .as_ref()
        .map(|(r, _)| r.clone())
        .unwrap_or_default();
    if let Some(list) = &e.ports {
        for p in list {
            match check_port_spec(p) {
                Ok(r) if ranges.contains(&r) => {
                    sink.error(port_spec_at(p), format!("port {r} is listed twice"));
                    ok = false;
                }
                Ok(r) => ranges.push(r),
                Err(m) => {
                    sink.error(port_spec_at(p), m);
                    ok = false;
                }
            }
        }
    }
    let ports_at = ports_from_word.map(|(_, at)| at).unwrap_or(e.at);
    let ports = Ports::new(ranges).ok().map(|p| (p, ports_at));
    (address, ports, ok)
}

fn port_spec_at(p: &PortSpec) -> Loc {
    match p {
        PortSpec::One(s) => s.at,
        PortSpec::Range { at, .. } => *at,
    }
}

fn check_port_spec(p: &PortSpec) -> Result<PortRange, String> {
    match p {
        PortSpec::One(s) => s.value.parse::<Port>().map(PortRange::single),
        PortSpec::Range { lo, hi, .. } => {
            let lo = match lo {
                Some(s) => s.value.parse::<Port>()?,
                None => Port::new(1)?,
            };
            let hi = match hi {
                Some(s) => s.value.parse::<Port>()?,
                None => Port::new(65535)?,
            };
            PortRange::new(lo, hi)
        }
    }
}

fn undefined_name(name: &str, names: &Names) -> String {
    format!(
        "undefined name `{}`{}",
        shown(name),
        did_you_mean(name, names.keys().map(String::as_str))
    )
}

/// `office/27`: the declared address as a network of that length, host bits clear.
fn widen(name: &str, address: &Address, prefix: &str) -> Result<Address, String> {
    let n: u64 = prefix
        .parse()
        .map_err(|_| format!("malformed prefix length `/{}`", shown(prefix)))?;
    let addr: IpAddr = match (address.v4(), address.v6()) {
        (Some(a), None) => a.addr().into(),
        (None, Some(a)) => a.addr().into(),
        _ => {
            return Err(format!(
                "`{name}` has both an IPv4 and an IPv6 address, so `{name}/{n}` is ambiguous; declare the network with `net`"
            ))
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = u8::try_from(n).ok().filter(|n| *n <= max).ok_or_else(|| {
        format!(
            "prefix length /{n} is too long for an {} address; at most /{max}",
            family(IpNet::from(addr))
        )
    })?;
    let net = with_prefix(addr, len).map_err(|_| {
        format!(
            "`{name}/{n}` has host bits set (`{name}` is {addr}); did you mean the network `{}`?",
            IpNet::new(addr, len).map_or(IpNet::from(addr), |net| net.trunc())
        )
    })?;
    Ok(Address::from_net(Some(format!("{name}/{n}")), net))
}

fn check_rule(r: &RuleSpec, names: &Names, sink: &mut Sink) -> Option<Rule> {
    let before = sink.len();
    let action = sink.take(r.action.at, r.action.value.parse::<Action>());
    let direction = sink.take(r.direction.at, r.direction.value.parse::<Direction>());
    let group = r
        .group
        .as_ref()
        .and_then(|g| sink.take(g.at, Label::group(&g.value)));
    let comment = r
        .comment
        .as_ref()
        .and_then(|c| sink.take(c.at, Label::new(&c.value)));
    let iface = r
        .iface
        .as_ref()
        .and_then(|i| sink.take(i.at, Iface::new(&i.value)));
    let proto = r
        .proto
        .as_ref()
        .and_then(|p| sink.take(p.at, p.value.parse::<Protocol>()));
    let log_prefix = r
        .log_prefix
        .as_ref()
        .and_then(|p| sink.take(p.at, LogPrefix::new(&p.value)));

    let mut states = None;
    if let Some(list) = &r.states {
        let mut set = States::empty();
        for s in list {
            if let Some(st) = sink.take(s.at, s.value.parse::<State>()) {
                if set.contains(st) {
                    sink.error(s.at, format!("state `{st}` is listed twice"));
                }
                set = set.with(st);
            }
        }
        states = Some(set);
    }

    let limit = r.limit.as_ref().and_then(|l| check_limit(l, sink));

    let empty = (None, None, true);
    let (src, sport, src_ok) = r
        .from
        .as_ref()
        .map_or(empty.clone(), |e| check_endpoint(e, names, sink));
    let (dst, dport, dst_ok) =
        r.to.as_ref()
            .map_or(empty, |e| check_endpoint(e, names, sink));

    // Which families the rule exists in: every part that has a family narrows it.
    let mut v4 = true;
    let mut v6 = true;
    let mut narrowed_by: Vec<(String, Loc)> = Vec::new();
    if let (Some(p), Some(f)) = (proto, proto.and_then(Protocol::family)) {
        v4 &= f == Family::V4;
        v6 &= f == Family::V6;
        narrowed_by.push((
            format!("`{p}` is {f} only"),
            r.proto.as_ref().map_or(r.at, |s| s.at),
        ));
    }
    for (word, a) in [("from", &src), ("to", &dst)] {
        if let Some((addr, at)) = a {
            let (has4, has6) = (addr.has(Family::V4), addr.has(Family::V6));
            let fam = match (has4, has6) {
                (true, true) => continue,
                (true, false) => Family::V4,
                _ => Family::V6,
            };
            if (fam == Family::V4 && !v4) || (fam == Family::V6 && !v6) {
                let why = narrowed_by
                    .first()
                    .map(|(w, _)| w.clone())
                    .unwrap_or_default();
                sink.error(
                    *at,
                    format!(
                        "`{word} {addr}` is {fam} but {why}; one rule cannot mix IPv4 and IPv6"
                    ),
                );
            }
            v4 &= has4;
            v6 &= has6;
            narrowed_by.push((format!("`{word} {addr}` is {fam} only"), *at));
        }
    }
    if !v4 && !v6 && sink.len() == before {
        sink.error(
            r.at,
            "this rule matches no address family: its parts are IPv4 only and IPv6 only",
        );
    }

    let icmp_type = r.icmp_type.as_ref().and_then(|t| match proto {
        Some(p @ (Protocol::Icmp | Protocol::Icmpv6)) => {
            sink.take(t.at, IcmpType::new(p.family()?, &t.value))
        }
        _ => {
            sink.error(t.at, "`type` needs `icmp` or `icmpv6` before it");
            None
        }
    });
    for (p, word) in [(&sport, "source"), (&dport, "destination")] {
        if let Some((_, at)) = p {
            if !proto.is_some_and(Protocol::has_ports) {
                let what = match proto {
                    Some(p) => format!("`{p}` has no ports"),
                    None => "no protocol is given".into(),
                };
                sink.error(*at, format!("{word} ports need `tcp` or `udp`, but {what}"));
            }
        }
    }
    if let (Some(p), Some(a)) = (&r.log_prefix, action) {
        if a != Action::Log {
            sink.error(p.at, "`prefix` belongs to `log` rules");
        }
    }
    if sink.len() != before || !src_ok || !dst_ok {
        return None;
    }
    Some(Rule {
        action: action?,
        direction: direction?,
        v4,
        v6,
        iface,
        proto,
        src: src.map(|(a, _)| a),
        dst: dst.map(|(a, _)| a),
        sport: sport.map(|(p, _)| p),
        dport: dport.map(|(p, _)| p),
        icmp_type,
        states,
        limit,
        log_prefix,
        group,
        comment,
        origin: Origin::Written {
            line: r.line,
            text: r.text.clone(),
        },
        allowed: Vec::new(),
        syn: false,
        over: None,
        recent: None,
    })
}

fn parse_count(s: &str, what: &str) -> Result<u64, String> {
    s.parse::<u64>().map_err(|_| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            format!("malformed {what} `{}`; expected a whole number", shown(s))
        } else if what == "burst" {
            format!(
                "burst {} is out of range; bursts run from 1 to {}",
                shown(s),
                Limit::MAX_BURST
            )
        } else {
            format!(
                "{what} {} is too fast for the limit match; at most {}/second",
                shown(s),
                Limit::MAX_PER_SECOND
            )
        }
    })
}

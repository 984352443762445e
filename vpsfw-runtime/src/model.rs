//! The checked policy: what `firewall!` expands to and what every renderer reads.
//!
//! Fields are private; a `Policy` comes from [`crate::spec::Spec::build`] (the one
//! checker, used by the macro at build time and by run-time builders alike) or from
//! serde, which goes through the same checks.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::addr::Address;
use crate::analysis::{Admin, Finding, FindingKind, Subject};
use crate::harden::{Over, Preset, Recent};
use crate::set::SetDef;
use crate::value::*;

/// The default policies of the three built-in chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Defaults {
    pub input: Verdict,
    pub forward: Verdict,
    pub output: Verdict,
}

impl Default for Defaults {
    /// The kernel's own defaults: everything accepted.
    fn default() -> Self {
        Defaults {
            input: Verdict::Allow,
            forward: Verdict::Allow,
            output: Verdict::Allow,
        }
    }
}

impl Defaults {
    pub fn get(&self, chain: Chain) -> Verdict {
        match chain {
            Chain::Input => self.input,
            Chain::Forward => self.forward,
            Chain::Output => self.output,
        }
    }

    pub(crate) fn set(&mut self, chain: Chain, v: Verdict) {
        match chain {
            Chain::Input => self.input = v,
            Chain::Forward => self.forward = v,
            Chain::Output => self.output = v,
        }
    }
}

/// What a rule's source or destination matches: addresses, or a set by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Addr(Address),
    /// A set of the policy; `v4`/`v6` say which families it has elements in.
    Set {
        name: String,
        v4: bool,
        v6: bool,
    },
}

impl Target {
    /// Whether the target matches anything in this family.
    pub fn has(&self, f: Family) -> bool {
        match self {
            Target::Addr(a) => a.has(f),
            Target::Set { v4, v6, .. } => match f {
                Family::V4 => *v4,
                Family::V6 => *v6,
            },
        }
    }

    /// The address of this family, for an address target.
    pub fn net(&self, f: Family) -> Option<ipnet::IpNet> {
        match self {
            Target::Addr(a) => a.get(f),
            Target::Set { .. } => None,
        }
    }

    /// The set's name, for a set target.
    pub fn set_name(&self) -> Option<&str> {
        match self {
            Target::Set { name, .. } => Some(name),
            Target::Addr(_) => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => a.fmt(f),
            Target::Set { name, .. } => f.write_str(name),
        }
    }
}

/// Where a rule came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Origin {
    /// Written in the policy: its line and its text as written, where known.
    Written {
        line: Option<u32>,
        text: Option<String>,
    },
    /// Added by vpsfw itself; the text says why.
    Implicit { why: String },
}

/// One rule of the policy, before it is split per family.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rule {
    pub(crate) action: Action,
    pub(crate) direction: Direction,
    pub(crate) v4: bool,
    pub(crate) v6: bool,
    pub(crate) iface: Option<Iface>,
    pub(crate) proto: Option<Protocol>,
    pub(crate) src: Option<Target>,
    pub(crate) dst: Option<Target>,
    pub(crate) sport: Option<Ports>,
    pub(crate) dport: Option<Ports>,
    pub(crate) icmp_type: Option<IcmpType>,
    pub(crate) states: Option<States>,
    pub(crate) limit: Option<Limit>,
    pub(crate) log_prefix: Option<LogPrefix>,
    pub(crate) group: Option<Label>,
    pub(crate) comment: Option<Label>,
    pub(crate) origin: Origin,
    /// Findings of the analysis this rule is meant to have (`#[allow(...)]`).
    #[serde(default)]
    pub(crate) allowed: Vec<FindingKind>,
    /// Hardening presets only: TCP SYN, a rate over which the rule matches, the list of
    /// recent port scanners.
    #[serde(default)]
    pub(crate) syn: bool,
    #[serde(default)]
    pub(crate) over: Option<Over>,
    #[serde(default)]
    pub(crate) recent: Option<Recent>,
}

impl Rule {
    pub fn action(&self) -> Action {
        self.action
    }
    pub fn direction(&self) -> Direction {
        self.direction
    }
    pub fn chain(&self) -> Chain {
        self.direction.chain()
    }
    /// Whether the rule exists in this family's ruleset.
    pub fn in_family(&self, f: Family) -> bool {
        match f {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
    pub fn iface(&self) -> Option<&Iface> {
        self.iface.as_ref()
    }
    pub fn proto(&self) -> Option<Protocol> {
        self.proto
    }
    pub fn src(&self) -> Option<&Target> {
        self.src.as_ref()
    }
    pub fn dst(&self) -> Option<&Target> {
        self.dst.as_ref()
    }
    pub fn sport(&self) -> Option<&Ports> {
        self.sport.as_ref()
    }
    pub fn dport(&self) -> Option<&Ports> {
        self.dport.as_ref()
    }
    pub fn icmp_type(&self) -> Option<IcmpType> {
        self.icmp_type
    }
    pub fn states(&self) -> Option<States> {
        self.states
    }
    pub fn limit(&self) -> Option<Limit> {
        self.limit
    }
    pub fn log_prefix(&self) -> Option<&LogPrefix> {
        self.log_prefix.as_ref()
    }
    pub fn group(&self) -> Option<&Label> {
        self.group.as_ref()
    }
    pub fn comment(&self) -> Option<&Label> {
        self.comment.as_ref()
    }
    pub fn origin(&self) -> &Origin {
        &self.origin
    }
    /// Findings this rule is meant to have (`#[allow(...)]`).
    pub fn allowed(&self) -> &[FindingKind] {
        &self.allowed
    }
    /// Matches TCP SYN packets only (hardening presets).
    pub fn syn(&self) -> bool {
        self.syn
    }
    /// Matches only packets over this rate (hardening presets).
    pub fn over(&self) -> Option<&Over> {
        self.over.as_ref()
    }
    /// Matches by the list of recent port scanners (hardening presets).
    pub fn recent(&self) -> Option<&Recent> {
        self.recent.as_ref()
    }
    /// Whether the rule may not match a packet it otherwise matches, depending on rates
    /// or history the policy cannot know: the analysis never counts on it.
    pub fn may_not_match(&self) -> bool {
        self.limit.is_some()
            || self.over.is_some()
            || matches!(self.recent, Some(Recent::Listed { .. }))
    }
    /// The rule as written in the policy, or in canonical form when that is not known.
    pub fn text(&self) -> String {
        match &self.origin {
            Origin::Written { text: Some(t), .. } => t.clone(),
            _ => self.to_string(),
        }
    }

    pub fn line(&self) -> Option<u32> {
        match self.origin {
            Origin::Written { line, .. } => line,
            Origin::Implicit { .. } => None,
        }
    }
}

/// The rule in the language's own words, canonical form.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.action, self.direction)?;
        if let Some(i) = &self.iface {
            write!(f, " on {i}")?;
        }
        if let Some(p) = self.proto {
            write!(f, " {p}")?;
        }
        let ports = |f: &mut fmt::Formatter<'_>, p: &Ports| {
            let list: Vec<String> = p.ranges().iter().map(ToString::to_string).collect();
            if list.len() == 1 {
                write!(f, "{}", list[0])
            } else {
                write!(f, "[{}]", list.join(", "))
            }
        };
        for (word, addr, port) in [
            ("from", &self.src, &self.sport),
            ("to", &self.dst, &self.dport),
        ] {
            if addr.is_none() && port.is_none() {
                continue;
            }
            write!(f, " {word}")?;
            if let Some(a) = addr {
                write!(f, " {a}")?;
            }
            if let Some(p) = port {
                f.write_str(if addr.is_some() { " port " } else { " " })?;
                ports(f, p)?;
            }
        }
        if let Some(t) = self.icmp_type {
            write!(f, " type {}", t.name())?;
        }
        if let Some(s) = self.states {
            write!(f, " state {s}")?;
        }
        if let Some(l) = self.limit {
            write!(f, " limit {}/{} burst {}", l.count(), l.unit(), l.burst())?;
        }
        if let Some(p) = &self.log_prefix {
            write!(f, " prefix {:?}", p.as_str())?;
        }
        if let Some(c) = &self.comment {
            write!(f, " comment {:?}", c.as_str())?;
        }
        f.write_str(";")
    }
}

/// A name declared in the policy and the address(es) it stands for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NameDef {
    pub(crate) name: String,
    pub(crate) address: Address,
}

impl NameDef {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn address(&self) -> &Address {
        &self.address
    }
}

/// A whole, checked firewall policy for one host.
///
/// Deserializing runs the checks that span several fields (a rule's families against its
/// addresses and protocol, ports only with tcp/udp, ...); each field's own type checks
/// itself.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "PolicyRepr")]
pub struct Policy {
    pub(crate) names: Vec<NameDef>,
    pub(crate) sets: Vec<SetDef>,
    pub(crate) defaults: Defaults,
    pub(crate) rules: Vec<Rule>,
    pub(crate) admins: Vec<Admin>,
    /// `admin none;`: managed from a console, no admin access to prove.
    pub(crate) console_only: bool,
    /// Findings allowed for the whole policy (`#![allow(...)]`).
    pub(crate) allowed: Vec<FindingKind>,
    /// Hardening presets, each with the number of rules before its statement.
    pub(crate) presets: Vec<(usize, Preset)>,
    /// The evaluator's compiled chains, built on first use; not part of the policy's
    /// value (never serialized, always equal).
    #[serde(skip)]
    pub(crate) eval_cache: crate::eval::EvalCache,
}

/// The policy's value; the evaluator's cache is not part of it.
impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("names", &self.names)
            .field("sets", &self.sets)
            .field("defaults", &self.defaults)
            .field("rules", &self.rules)
            .field("admins", &self.admins)
            .field("console_only", &self.console_only)
            .field("allowed", &self.allowed)
            .field("presets", &self.presets)
            .finish()
    }
}

#[derive(Deserialize)]
struct PolicyRepr {
    names: Vec<NameDef>,
    #[serde(default)]
    sets: Vec<SetDef>,
    defaults: Defaults,
    rules: Vec<Rule>,
    #[serde(default)]
    admins: Vec<Admin>,
    #[serde(default)]
    console_only: bool,
    #[serde(default)]
    allowed: Vec<FindingKind>,
    #[serde(default)]
    presets: Vec<(usize, Preset)>,
}

impl TryFrom<PolicyRepr> for Policy {
    type Error = String;

    fn try_from(r: PolicyRepr) -> Result<Self, String> {
        let mut seen = std::collections::HashSet::new();
        let declared = r.names.iter().map(|n| n.name.as_str());
        for name in declared.chain(r.sets.iter().map(SetDef::name)) {
            if !seen.insert(name) {
                return Err(format!("name `{name}` is declared twice"));
            }
        }
        for (i, rule) in r.rules.iter().enumerate() {
            rule.check().map_err(|e| format!("rule {}: {e}", i + 1))?;
            for t in [&rule.src, &rule.dst].into_iter().flatten() {
                if let Target::Set { name, v4, v6 } = t {
                    let set = r.sets.iter().find(|s| s.name() == name);
                    let ok =
                        set.is_some_and(|s| s.has(Family::V4) == *v4 && s.has(Family::V6) == *v6);
                    if !ok {
                        return Err(format!(
                            "rule {}: set `{name}` is not declared as used",
                            i + 1
                        ));
                    }
                }
            }
        }
        for a in &r.admins {
            let known = r.names.iter().any(|n| n.name == a.name)
                || r.sets.iter().any(|s| s.name() == a.name);
            if !known {
                return Err(format!("admin `{}` is not a declared name", a.name));
            }
        }
        Ok(Policy {
            names: r.names,
            sets: r.sets,
            defaults: r.defaults,
            rules: r.rules,
            admins: r.admins,
            console_only: r.console_only,
            allowed: r.allowed,
            presets: r.presets,
            eval_cache: Default::default(),
        })
    }
}

impl Rule {
    /// The invariants that tie a rule's fields together; [`crate::spec`] establishes them
    /// for written rules, deserialization checks them here.
    fn check(&self) -> Result<(), String> {
        if !self.v4 && !self.v6 {
            return Err("the rule is in no address family".into());
        }
        for (f, on) in [(Family::V4, self.v4), (Family::V6, self.v6)] {
            let addr_missing = [&self.src, &self.dst]
                .into_iter()
                .flatten()
                .any(|a| !a.has(f));
            let proto_other = self
                .proto
                .and_then(Protocol::family)
                .is_some_and(|pf| pf != f);
            if on && (addr_missing || proto_other) {
                return Err(format!("the rule is marked {f} but has no {f} match"));
            }
        }
        for t in [&self.src, &self.dst].into_iter().flatten() {
            if !t.has(Family::V4) && !t.has(Family::V6) {
                return Err("an address has neither an IPv4 nor an IPv6 part".into());
            }
        }
        if (self.sport.is_some() || self.dport.is_some())
            && !self.proto.is_some_and(Protocol::has_ports)
        {
            return Err("ports need tcp or udp".into());
        }
        if let Some(t) = self.icmp_type {
            if self.proto.and_then(Protocol::family) != Some(t.family()) {
                return Err("an icmp type needs the icmp protocol of its family".into());
            }
        }
        if self.log_prefix.is_some() && self.action != Action::Log {
            return Err("a log prefix belongs to a log rule".into());
        }
        if self.syn && self.proto != Some(Protocol::Tcp) {
            return Err("a SYN match needs tcp".into());
        }
        Ok(())
    }
}

impl Policy {
    pub fn names(&self) -> &[NameDef] {
        &self.names
    }
    pub fn defaults(&self) -> Defaults {
        self.defaults
    }
    /// Every rule in order, the ones vpsfw adds included.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
    /// The address sets, in the order declared.
    pub fn sets(&self) -> &[SetDef] {
        &self.sets
    }
    pub fn set(&self, name: &str) -> Option<&SetDef> {
        self.sets.iter().find(|s| s.name() == name)
    }
    /// `admin none;`: managed from a console.
    pub fn console_only(&self) -> bool {
        self.console_only
    }
    /// Findings allowed for the whole policy (`#![allow(...)]`).
    pub fn allowed_findings(&self) -> &[FindingKind] {
        &self.allowed
    }
    /// The hardening presets, each with the number of rules (vpsfw's own and written)
    /// before its statement.
    pub fn presets(&self) -> &[(usize, Preset)] {
        &self.presets
    }
    /// Who administers the host (`admin NAME;`).
    pub fn admins(&self) -> &[Admin] {
        &self.admins
    }

    /// The logical mistakes in the policy, less those it allows where they occur. The
    /// macro and the builder refuse a policy with any; this is for policies that come
    /// from elsewhere (serde) and for tools.
    pub fn analyze(&self) -> Vec<Finding> {
        crate::analysis::analyze(self, &self.admins, self.console_only)
            .into_iter()
            .filter(|f| !self.allows(f))
            .collect()
    }

    /// Whether a finding is silenced where it occurs.
    pub fn allows(&self, f: &Finding) -> bool {
        if self.allowed.contains(&f.kind) {
            return true;
        }
        match f.subject {
            Subject::Rule(i) => self
                .rules
                .get(i)
                .is_some_and(|r| r.allowed.contains(&f.kind)),
            _ => false,
        }
    }
}

//! Building a policy at run time (from a database, an inventory, a config file...).
//!
//! The builder fills the same [`Spec`] the `firewall!` macro fills and runs the same
//! checker, so a run-time policy gets exactly the build-time diagnostics, as a `Result`,
//! never a panic:
//!
//! ```
//! use vpsfw_runtime::builder::{Builder, RuleBuilder};
//! use vpsfw_runtime::{Chain, Protocol, State, Verdict};
//!
//! let policy = Builder::new()
//!     .host("admin", &["198.51.100.7", "2001:db8:100::7"])
//!     .group("common")
//!     .rule(RuleBuilder::allow_in().on("lo"))
//!     .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]))
//!     .group("server")
//!     .rule(RuleBuilder::allow_in().from("admin").state(&[State::New]))
//!     .rule(RuleBuilder::allow_in().proto(Protocol::Tcp).to_ports(&["http", "https"]))
//!     .admin("admin", None)
//!     .policy(Chain::Input, Verdict::Drop)
//!     .build()
//!     .unwrap();
//! assert_eq!(policy.rules().iter().filter(|r| r.line().is_none()).count(), 16 + 4);
//!
//! // The same analysis as at build time: here the admin could not get back in.
//! let err = Builder::new()
//!     .host("admin", &["198.51.100.7"])
//!     .rule(RuleBuilder::allow_in().on("lo"))
//!     .rule(RuleBuilder::allow_in().from("admin").state(&[State::New]))
//!     .admin("admin", None)
//!     .policy(Chain::Input, Verdict::Drop)
//!     .build()
//!     .unwrap_err();
//! assert!(err.to_string().starts_with("admin `admin`: lockout: `admin` could not keep a connection to port 22 over IPv4"));
//!
//! let err = Builder::new()
//!     .rule(RuleBuilder::allow_in().from("admn"))
//!     .rule(RuleBuilder::allow_in().proto(Protocol::Tcp).to_ports(&["htps", "0"]))
//!     .build()
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "\
//! rule 1, from: undefined name `admn`
//! rule 2, port: unknown service `htps`; did you mean `https`?
//! rule 2, port: port 0 is not a valid port; ports run from 1 to 65535");
//! ```

use std::fmt;

use crate::analysis::FindingKind;
use crate::diag::{Diagnostics, Loc, Spanned};
use crate::model::Policy;
use crate::spec::{
    read_set_file, AddrSpec, AdminSpec, DefaultSpec, EndpointSpec, Item, LimitSpec, NameKind,
    NameSpec, PortSpec, RuleSpec, SetElement, SetSpec, Spec,
};
use crate::value::{Action, Chain, Direction, Protocol, RateUnit, State, Verdict};

/// What went wrong, each problem with the place it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    pub problems: Vec<(String, String)>,
    pub diagnostics: Diagnostics,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (place, message)) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{place}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildError {}

/// Assembles a policy statement by statement; see the module docs.
#[derive(Default)]
pub struct Builder {
    spec: Spec,
    places: Vec<String>,
    group: Option<String>,
    rules: usize,
    /// Problems found before checking (a set file that cannot be read).
    unreadable: Vec<(String, String)>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    fn at(&mut self, place: String) -> Loc {
        self.places.push(place);
        Loc::new(self.places.len() as u32 - 1)
    }

    fn text(&mut self, place: String, text: &str) -> Spanned<String> {
        Spanned::new(text.to_owned(), self.at(place))
    }

    fn name(mut self, kind: NameKind, name: &str, addresses: &[&str]) -> Self {
        let place = format!("name `{name}`");
        let name = self.text(place.clone(), name);
        let values = addresses
            .iter()
            .map(|a| self.text(place.clone(), a))
            .collect();
        self.spec
            .items
            .push(Item::Name(NameSpec { kind, name, values }));
        self
    }

    /// `host NAME = ADDR, ...`: single addresses, at most one per family.
    pub fn host(self, name: &str, addresses: &[&str]) -> Self {
        self.name(NameKind::Host, name, addresses)
    }

    /// `net NAME = NET, ...`: networks, at most one per family.
    pub fn net(self, name: &str, networks: &[&str]) -> Self {
        self.name(NameKind::Net, name, networks)
    }

    /// `set NAME = [ADDR, ...]`: addresses and networks of both families, matched in
    /// one lookup.
    pub fn set<S: AsRef<str>>(mut self, name: &str, elements: &[S]) -> Self {
        let place = format!("set `{name}`");
        let name = self.text(place.clone(), name);
        let elements = elements
            .iter()
            .map(|e| SetElement {
                text: self.text(place.clone(), e.as_ref()),
                line: None,
            })
            .collect();
        self.spec.items.push(Item::Set(SetSpec {
            name,
            file: None,
            elements,
        }));
        self
    }

    /// `set NAME from "path"`: one address or network per line, `#` comments. A file
    /// that cannot be read is reported by [`Builder::build`].
    pub fn set_file(mut self, name: &str, path: impl AsRef<std::path::Path>) -> Self {
        let path = path.as_ref();
        let place = format!("set `{name}`, file `{}`", path.display());
        let name_s = self.text(place.clone(), name);
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let elements = read_set_file(&text)
                    .into_iter()
                    .map(|(line, t)| SetElement {
                        text: self.text(format!("{place} line {line}"), &t),
                        line: Some(line),
                    })
                    .collect();
                self.spec.items.push(Item::Set(SetSpec {
                    name: name_s,
                    file: Some(path.display().to_string()),
                    elements,
                }));
            }
            Err(e) => self
                .unreadable
                .push((place, format!("cannot read the set file: {e}"))),
        }
        self
    }

    /// `admin NAME [port PORT]`: a declared name whose access to the port (ssh when
    /// `None`) is proved when the policy is built.
    pub fn admin(mut self, name: &str, port: Option<&str>) -> Self {
        let place = format!("admin `{name}`");
        let at = self.at(place.clone());
        let name = Some(self.text(place.clone(), name));
        let port = port.map(|p| self.text(place, p));
        self.spec
            .items
            .push(Item::Admin(AdminSpec { at, name, port }));
        self
    }

    /// `admin none`: the host is managed from a console; no admin access to prove.
    pub fn console_only(mut self) -> Self {
        let at = self.at("admin none".into());
        self.spec.items.push(Item::Admin(AdminSpec {
            at,
            name: None,
            port: None,
        }));
        self
    }

    /// `#![allow(...)]`: findings of the analysis allowed for the whole policy.
    pub fn allow(mut self, findings: &[FindingKind]) -> Self {
        let list = findings
            .iter()
            .map(|k| self.text("allow".into(), k.name()))
            .collect();
        self.spec.items.push(Item::Allow(list));
        self
    }

    /// `policy CHAIN VERDICT`.
    pub fn policy(mut self, chain: Chain, verdict: Verdict) -> Self {
        let place = format!("policy {chain}");
        let chain = self.text(place.clone(), chain.word());
        let verdict = self.text(place, verdict.word());
        self.spec
            .items
            .push(Item::Default(DefaultSpec { chain, verdict }));
        self
    }

    /// Puts the following rules in a group (`None`: outside any group).
    pub fn group(mut self, name: impl Into<Option<&'static str>>) -> Self {
        self.group = name.into().map(str::to_owned);
        self
    }

    pub fn rule(mut self, r: RuleBuilder) -> Self {
        self.rules += 1;
        let mut p = RulePlaces {
            places: &mut self.places,
            rule: self.rules,
        };
        let mut spec = RuleSpec::new(
            Loc::new(0),
            p.text("action", r.action.word()),
            p.text("direction", r.direction.word()),
        );
        spec.group = self.group.as_deref().map(|g| p.text("group", g));
        spec.iface = r.iface.as_deref().map(|i| p.text("on", i));
        spec.proto = r.proto.map(|pr| p.text("protocol", pr.word()));
        spec.from = p.endpoint("from", r.from.as_deref(), &r.from_ports);
        spec.to = p.endpoint("to", r.to.as_deref(), &r.to_ports);
        spec.icmp_type = r.icmp_type.as_deref().map(|t| p.text("type", t));
        spec.states = r
            .states
            .map(|s| s.iter().map(|st| p.text("state", st.word())).collect());
        spec.limit = r.limit.map(|(count, unit, burst)| LimitSpec {
            at: p.at("limit"),
            count: p.text("limit", &count.to_string()),
            unit: p.text("limit", unit.word()),
            burst: burst.map(|b| p.text("burst", &b.to_string())),
        });
        spec.log_prefix = r.log_prefix.as_deref().map(|x| p.text("prefix", x));
        spec.comment = r.comment.as_deref().map(|c| p.text("comment", c));
        spec.allow = r.allow.iter().map(|k| p.text("allow", k.name())).collect();
        spec.at = p.at("rule");
        self.spec.items.push(Item::Rule(spec));
        self
    }

    /// Runs every check; the error lists every problem with its place.
    pub fn build(self) -> Result<Policy, BuildError> {
        let result = self.spec.build();
        if self.unreadable.is_empty() {
            if let Ok(policy) = result {
                return Ok(policy);
            }
        }
        let diagnostics = result.err().unwrap_or(Diagnostics(Vec::new()));
        let mut problems = self.unreadable.clone();
        problems.extend(diagnostics.0.iter().map(|d| {
            let place = self
                .places
                .get(d.at.index() as usize)
                .cloned()
                .unwrap_or_default();
            (place, d.message.clone())
        }));
        Err(BuildError {
            problems,
            diagnostics,
        })
    }
}

/// Numbers the parts of one rule, so a diagnostic can say "rule 3, from".
struct RulePlaces<'a> {
    places: &'a mut Vec<String>,
    rule: usize,
}

impl RulePlaces<'_> {
    fn at(&mut self, what: &str) -> Loc {
        self.places.push(format!("rule {}, {what}", self.rule));
        Loc::new(self.places.len() as u32 - 1)
    }

    fn text(&mut self, what: &str, t: &str) -> Spanned<String> {
        Spanned::new(t.to_owned(), self.at(what))
    }

    fn endpoint(
        &mut self,
        word: &str,
        addr: Option<&str>,
        ports: &[String],
    ) -> Option<EndpointSpec> {
        if addr.is_none() && ports.is_empty() {
            return None;
        }
        let addr = addr.map(|a| {
            if a == "any" {
                AddrSpec::Any(self.at(word))
            } else if a.starts_with(|c: char| c.is_ascii_digit()) || a.contains(':') {
                AddrSpec::Literal(self.text(word, a))
            } else if let Some((name, prefix)) = a.split_once('/') {
                AddrSpec::Name {
                    name: self.text(word, name),
                    prefix: Some(self.text(word, prefix)),
                }
            } else {
                AddrSpec::Name {
                    name: self.text(word, a),
                    prefix: None,
                }
            }
        });
        let ports = (!ports.is_empty()).then(|| ports.iter().map(|p| self.port_spec(p)).collect());
        Some(EndpointSpec {
            at: self.at("port"),
            addr,
            ports,
        })
    }

    /// `22`, `https`, `1024:`, `:1023`, `1024:2048`.
    fn port_spec(&mut self, p: &str) -> PortSpec {
        match p.split_once(':') {
            None => PortSpec::One(self.text("port", p)),
            Some((lo, hi)) => PortSpec::Range {
                at: self.at("port"),
                lo: (!lo.is_empty()).then(|| self.text("port", lo)),
                hi: (!hi.is_empty()).then(|| self.text("port", hi)),
            },
        }
    }
}

/// One rule; every part is optional but the action and direction.
#[derive(Clone, Debug)]
pub struct RuleBuilder {
    action: Action,
    direction: Direction,
    iface: Option<String>,
    proto: Option<Protocol>,
    from: Option<String>,
    from_ports: Vec<String>,
    to: Option<String>,
    to_ports: Vec<String>,
    icmp_type: Option<String>,
    states: Option<Vec<State>>,
    limit: Option<(u64, RateUnit, Option<u64>)>,
    log_prefix: Option<String>,
    comment: Option<String>,
    allow: Vec<FindingKind>,
}

impl RuleBuilder {
    pub fn new(action: Action, direction: Direction) -> Self {
        RuleBuilder {
            action,
            direction,
            iface: None,
            proto: None,
            from: None,
            from_ports: Vec::new(),
            to: None,
            to_ports: Vec::new(),
            icmp_type: None,
            states: None,
            limit: None,
            log_prefix: None,
            comment: None,
            allow: Vec::new(),
        }
    }

    /// `#[allow(...)]`: a finding this rule is meant to have.
    pub fn allow(mut self, finding: FindingKind) -> Self {
        self.allow.push(finding);
        self
    }

    pub fn allow_in() -> Self {
        Self::new(Action::Allow, Direction::In)
    }

    pub fn allow_out() -> Self {
        Self::new(Action::Allow, Direction::Out)
    }

    /// `on IFACE`.
    pub fn on(mut self, iface: &str) -> Self {
        self.iface = Some(iface.to_owned());
        self
    }

    pub fn proto(mut self, p: Protocol) -> Self {
        self.proto = Some(p);
        self
    }

    /// `from ADDR`: an address or network (`198.51.100.7`, `2001:db8::/32`), a declared
    /// name (`office`, `office/27`) or `any`.
    pub fn from(mut self, addr: &str) -> Self {
        self.from = Some(addr.to_owned());
        self
    }

    /// Source ports: `22`, `https`, `1024:`, `:1023`, `1024:2048`.
    pub fn from_ports(mut self, ports: &[&str]) -> Self {
        self.from_ports = ports.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// `to ADDR`, as [`RuleBuilder::from`].
    pub fn to(mut self, addr: &str) -> Self {
        self.to = Some(addr.to_owned());
        self
    }

    /// Destination ports, as [`RuleBuilder::from_ports`].
    pub fn to_ports(mut self, ports: &[&str]) -> Self {
        self.to_ports = ports.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// `type NAME` (with `icmp` or `icmpv6`).
    pub fn icmp_type(mut self, name: &str) -> Self {
        self.icmp_type = Some(name.to_owned());
        self
    }

    pub fn state(mut self, states: &[State]) -> Self {
        self.states = Some(states.to_vec());
        self
    }

    /// `limit COUNT/UNIT [burst BURST]`.
    pub fn limit(mut self, count: u64, unit: RateUnit, burst: Option<u64>) -> Self {
        self.limit = Some((count, unit, burst));
        self
    }

    /// `prefix "..."` (`log` rules).
    pub fn log_prefix(mut self, prefix: &str) -> Self {
        self.log_prefix = Some(prefix.to_owned());
        self
    }

    pub fn comment(mut self, comment: &str) -> Self {
        self.comment = Some(comment.to_owned());
        self
    }
}

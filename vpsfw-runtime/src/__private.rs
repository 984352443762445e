//! What `firewall!` expansions call. Not public API.
//!
//! The macro checks a policy at build time, then writes it as one string literal, its
//! *table* ([`table`]), and the expansion is `__private::from_table("...")`: one call and
//! one token, whatever the size of the policy, so rustc has almost nothing to compile
//! (a table of typed structs, or a call per rule, costs rustc seconds at a few thousand
//! rules). [`from_table`] rebuilds exactly the checked [`Policy`] without checking it
//! again, and never panics.
//!
//! # The table
//!
//! Fields separated by a space (a newline before each rule, for whoever reads an
//! expansion): a *word* runs to the next separator; a *string* is `LEN:BYTES` (LEN in
//! bytes, so any text fits); `_` is an absent optional value; a *list* is its length,
//! then its items; a *bool* is `0` or `1`; keywords are their canonical words; networks
//! are `ADDR/LEN`.
//!
//! ```text
//! table    = VERSION verdict{3} bool(console_only) list(name) list(set) list(admin)
//!            list(finding) list(preset) list(rule)
//! name     = string address
//! address  = ?string(name) ?net4 ?net6
//! set      = string list(net4) list(net6)
//! admin    = string port
//! finding  = word                                   (shadowed, no_loopback, ...)
//! preset   = number(rules before it) word ?limit ?number(seconds) ?string(prefix)
//! rule     = action direction bool(v4) bool(v6) ?string(iface) ?protocol
//!            ?target(src) ?target(dst) ?ports(sport) ?ports(dport) ?icmp ?number(states)
//!            ?limit ?string(log prefix) ?string(group) ?string(comment) ?number(line)
//!            ?string(text) list(finding)
//! target   = "a" address | "s" string bool(v4) bool(v6)
//! ports    = list(number(lo) number(hi))
//! icmp     = ("4" | "6") number(code)
//! limit    = number(count) unit number(burst)
//! ```
//!
//! Only written rules are in the table; vpsfw's own rules (ICMPv6, presets) are added
//! again as [`crate::spec::Spec::build`] adds them.

use std::fmt::Write;
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::addr::Address;
use crate::analysis::{Admin, FindingKind};
use crate::harden::Preset;
use crate::model::{Defaults, NameDef, Origin, Policy, Rule, Target};
use crate::set::SetDef;
use crate::value::{
    Action, Direction, Family, IcmpType, Iface, Label, Limit, LogPrefix, Port, PortRange, Ports,
    Protocol, RateUnit, States, Verdict,
};

// Expansions name macros through this module so they work without the prelude.
pub use core::include_str;

/// The first word of every table: the format and the crate version that wrote it (the
/// facade pins the macro and the runtime to one version, so they always agree).
pub const VERSION: &str = concat!("vpsfw-table-", env!("CARGO_PKG_VERSION"));

/// The table of a checked policy (the macro calls this at build time).
pub fn table(policy: &Policy) -> String {
    let written = || {
        policy
            .rules
            .iter()
            .filter(|r| matches!(r.origin, Origin::Written { .. }))
    };
    // A rule is about 40 bytes plus its text.
    let text: usize = written().map(|r| r.text().len()).sum();
    let mut w = Writer(String::with_capacity(256 + 48 * policy.rules.len() + text));
    w.word(VERSION);
    let d = policy.defaults;
    for v in [d.input, d.forward, d.output] {
        w.word(v.word());
    }
    w.bool(policy.console_only);
    w.list(&policy.names, |w, n| {
        w.string(&n.name);
        w.address(&n.address);
    });
    w.list(&policy.sets, |w, s| {
        w.string(s.name());
        w.list(s.v4(), |w, n| w.word(n));
        w.list(s.v6(), |w, n| w.word(n));
    });
    w.list(&policy.admins, |w, a| {
        w.string(&a.name);
        w.word(a.port);
    });
    w.list(&policy.allowed, |w, k| w.word(k.name()));
    w.list(&policy.presets, |w, (at, p)| {
        w.word(at);
        w.word(p.name());
        let (limit, seconds, prefix) = match p {
            Preset::Invalid => (None, None, None),
            Preset::SynFlood(l) | Preset::ConnRate(l) | Preset::Ping(l) => (Some(*l), None, None),
            Preset::PortScan { seconds } => (None, Some(*seconds), None),
            Preset::LogDrops { limit, prefix } => (Some(*limit), None, Some(prefix.as_str())),
        };
        w.opt(limit, Writer::limit);
        w.opt(seconds, |w, s| w.word(s));
        w.opt(prefix, Writer::string);
    });
    w.word(written().count());
    for r in written() {
        w.0.push('\n');
        w.rule(r);
    }
    w.0
}

/// The policy of a table written by [`table`]. A table that [`table`] did not write
/// (which `firewall!` never emits) gives a closed policy, every chain dropping with only
/// vpsfw's own ICMPv6 rules: never a panic, never an open firewall.
pub fn from_table(table: &str) -> Policy {
    decode(table).unwrap_or_else(closed)
}

/// What a broken table becomes: every chain drops, no written rule.
fn closed() -> Policy {
    Policy {
        names: Vec::new(),
        sets: Vec::new(),
        defaults: Defaults {
            input: Verdict::Drop,
            forward: Verdict::Drop,
            output: Verdict::Drop,
        },
        rules: crate::spec::implicit_rules(),
        admins: Vec::new(),
        console_only: true,
        allowed: Vec::new(),
        presets: Vec::new(),
        eval_cache: Default::default(),
    }
}

struct Writer(String);

impl Writer {
    fn word(&mut self, w: impl std::fmt::Display) {
        let _ = write!(self.0, "{w} ");
    }

    fn string(&mut self, s: &str) {
        let _ = write!(self.0, "{}:{s} ", s.len());
    }

    fn bool(&mut self, b: bool) {
        self.0.push_str(if b { "1 " } else { "0 " });
    }

    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            Some(v) => f(self, v),
            None => self.0.push_str("_ "),
        }
    }

    fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.word(items.len());
        for item in items {
            f(self, item);
        }
    }

    fn address(&mut self, a: &Address) {
        self.opt(a.name(), Writer::string);
        self.opt(a.v4(), |w, n| w.word(n));
        self.opt(a.v6(), |w, n| w.word(n));
    }

    fn target(&mut self, t: &Target) {
        match t {
            Target::Addr(a) => {
                self.word("a");
                self.address(a);
            }
            Target::Set { name, v4, v6 } => {
                self.word("s");
                self.string(name);
                self.bool(*v4);
                self.bool(*v6);
            }
        }
    }

    fn ports(&mut self, p: &Ports) {
        self.list(p.ranges(), |w, r| {
            w.word(r.lo().get());
            w.word(r.hi().get());
        });
    }

    fn limit(&mut self, l: Limit) {
        self.word(l.count());
        self.word(l.unit().word());
        self.word(l.burst());
    }

    fn rule(&mut self, r: &Rule) {
        self.word(r.action.word());
        self.word(r.direction.word());
        self.bool(r.v4);
        self.bool(r.v6);
        self.opt(r.iface.as_ref(), |w, i| w.string(i.as_str()));
        self.opt(r.proto, |w, p| w.word(p.word()));
        self.opt(r.src.as_ref(), Writer::target);
        self.opt(r.dst.as_ref(), Writer::target);
        self.opt(r.sport.as_ref(), Writer::ports);
        self.opt(r.dport.as_ref(), Writer::ports);
        self.opt(r.icmp_type, |w, t| {
            w.word(match t.family() {
                Family::V4 => 4,
                Family::V6 => 6,
            });
            w.word(t.code());
        });
        self.opt(r.states, |w, s| w.word(s.bits()));
        self.opt(r.limit, Writer::limit);
        self.opt(r.log_prefix.as_ref(), |w, p| w.string(p.as_str()));
        self.opt(r.group.as_ref(), |w, g| w.string(g.as_str()));
        self.opt(r.comment.as_ref(), |w, c| w.string(c.as_str()));
        let (line, text) = match &r.origin {
            Origin::Written { line, text } => (*line, text.as_deref()),
            Origin::Implicit { .. } => (None, None),
        };
        self.opt(line, |w, l| w.word(l));
        self.opt(text, Writer::string);
        self.list(&r.allowed, |w, k| w.word(k.name()));
    }
}

/// Reads a table; every step gives `None` on anything unexpected, nothing panics.
struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'\n'
}

impl<'a> Reader<'a> {
    fn skip(&mut self) {
        while self.s.as_bytes().get(self.pos).copied().is_some_and(is_sep) {
            self.pos += 1;
        }
    }

    fn word(&mut self) -> Option<&'a str> {
        self.skip();
        let rest = self.s.get(self.pos..)?;
        let len = rest.bytes().position(is_sep).unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        self.pos += len;
        rest.get(..len)
    }

    fn parse<T: FromStr>(&mut self) -> Option<T> {
        self.word()?.parse().ok()
    }

    fn string(&mut self) -> Option<&'a str> {
        self.skip();
        let rest = self.s.get(self.pos..)?;
        let colon = rest.bytes().take(20).position(|b| b == b':')?;
        let len: usize = rest.get(..colon)?.parse().ok()?;
        let start = self.pos.checked_add(colon + 1)?;
        let end = start.checked_add(len)?;
        let value = self.s.get(start..end)?;
        self.pos = end;
        Some(value)
    }

    fn bool(&mut self) -> Option<bool> {
        match self.word()? {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        }
    }

    /// `Some(None)` for `_`, `Some(Some(v))` for a value, `None` if it cannot be read.
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        self.skip();
        let rest = &self.s.as_bytes()[self.pos.min(self.s.len())..];
        if rest.first() == Some(&b'_') && rest.get(1).is_none_or(|b| is_sep(*b)) {
            self.pos += 1;
            return Some(None);
        }
        f(self).map(Some)
    }

    fn list<T>(&mut self, f: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut items = Vec::new();
        self.list_into(&mut items, f)?;
        Some(items)
    }

    /// [`Reader::list`] appending to `items` (a policy's rules go straight after vpsfw's
    /// own: one allocation, no copy).
    fn list_into<T>(
        &mut self,
        items: &mut Vec<T>,
        mut f: impl FnMut(&mut Self) -> Option<T>,
    ) -> Option<()> {
        let n: usize = self.parse()?;
        // Each item takes at least two bytes: a huge count in a short table is broken.
        if n > self.s.len().saturating_sub(self.pos) {
            return None;
        }
        items.reserve_exact(n);
        for _ in 0..n {
            items.push(f(self)?);
        }
        Some(())
    }

    fn address(&mut self) -> Option<Address> {
        let name = self.opt(Self::string)?.map(str::to_owned);
        let v4 = self.opt(Self::parse::<Ipv4Net>)?;
        let v6 = self.opt(Self::parse::<Ipv6Net>)?;
        Some(Address::raw(name, v4, v6))
    }

    fn target(&mut self) -> Option<Target> {
        match self.word()? {
            "a" => Some(Target::Addr(self.address()?)),
            "s" => Some(Target::Set {
                name: self.string()?.to_owned(),
                v4: self.bool()?,
                v6: self.bool()?,
            }),
            _ => None,
        }
    }

    fn ports(&mut self) -> Option<Ports> {
        let ranges = self.list(|r| {
            let lo = r.parse::<u16>()?;
            let hi = r.parse::<u16>()?;
            Some(PortRange::raw(Port::raw(lo), Port::raw(hi)))
        })?;
        Some(Ports::raw(ranges))
    }

    fn limit(&mut self) -> Option<Limit> {
        let count = self.parse::<u32>()?;
        let unit = self.parse::<RateUnit>()?;
        let burst = self.parse::<u32>()?;
        Some(Limit::raw(count, unit, burst))
    }

    fn finding(&mut self) -> Option<FindingKind> {
        FindingKind::from_name(self.word()?)
    }

    fn set(&mut self) -> Option<SetDef> {
        let name = self.string()?;
        let v4 = self.list(|r| r.parse::<Ipv4Net>().map(IpNet::V4))?;
        let v6 = self.list(|r| r.parse::<Ipv6Net>().map(IpNet::V6))?;
        let mut nets = v4;
        nets.extend(v6);
        SetDef::new(name, nets).ok()
    }

    fn preset(&mut self) -> Option<(usize, Preset)> {
        let at = self.parse::<usize>()?;
        let name = self.word()?;
        let limit = self.opt(Self::limit)?;
        let seconds = self.opt(Self::parse::<u32>)?;
        let prefix = self.opt(Self::string)?.map(LogPrefix::raw);
        Some((at, Preset::new(name, limit, seconds, prefix).ok()?))
    }

    fn rule(&mut self) -> Option<Rule> {
        let action = self.parse::<Action>()?;
        let direction = self.parse::<Direction>()?;
        let v4 = self.bool()?;
        let v6 = self.bool()?;
        let iface = self.opt(Self::string)?.map(Iface::raw);
        let proto = self.opt(Self::parse::<Protocol>)?;
        let src = self.opt(Self::target)?;
        let dst = self.opt(Self::target)?;
        let sport = self.opt(Self::ports)?;
        let dport = self.opt(Self::ports)?;
        let icmp_type = self.opt(|r| {
            let family = match r.word()? {
                "4" => Family::V4,
                "6" => Family::V6,
                _ => return None,
            };
            Some(IcmpType::from_code(family, r.parse::<u8>()?))
        })?;
        let states = self.opt(Self::parse::<u8>)?.map(States::raw);
        let limit = self.opt(Self::limit)?;
        let log_prefix = self.opt(Self::string)?.map(LogPrefix::raw);
        let group = self.opt(Self::string)?.map(Label::raw);
        let comment = self.opt(Self::string)?.map(Label::raw);
        let line = self.opt(Self::parse::<u32>)?;
        let text = self.opt(Self::string)?.map(str::to_owned);
        let allowed = self.list(Self::finding)?;
        Some(Rule {
            action,
            direction,
            v4,
            v6,
            iface,
            proto,
            src,
            dst,
            sport,
            dport,
            icmp_type,
            states,
            limit,
            log_prefix,
            group,
            comment,
            origin: Origin::Written { line, text },
            allowed,
            syn: false,
            over: None,
            recent: None,
        })
    }

    fn verdict(&mut self) -> Option<Verdict> {
        self.parse::<Verdict>()
    }
}

fn decode(table: &str) -> Option<Policy> {
    let mut r = Reader { s: table, pos: 0 };
    if r.word()? != VERSION {
        return None;
    }
    let defaults = Defaults {
        input: r.verdict()?,
        forward: r.verdict()?,
        output: r.verdict()?,
    };
    let console_only = r.bool()?;
    let names = r.list(|r| {
        Some(NameDef {
            name: r.string()?.to_owned(),
            address: r.address()?,
        })
    })?;
    let sets = r.list(Reader::set)?;
    let admins = r.list(|r| {
        Some(Admin {
            name: r.string()?.to_owned(),
            port: r.parse::<u16>()?,
        })
    })?;
    let allowed = r.list(Reader::finding)?;
    let presets = r.list(Reader::preset)?;
    let mut rules = crate::spec::implicit_rules();
    r.list_into(&mut rules, Reader::rule)?;
    r.skip();
    if r.pos != table.len() {
        return None;
    }
    let rules = crate::harden::with_presets(rules, &presets);
    Some(Policy {
        names,
        sets,
        defaults,
        rules,
        admins,
        console_only,
        allowed,
        presets,
        eval_cache: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{Builder, RuleBuilder};
    use crate::value::{Chain, State};

    fn json(p: &Policy) -> String {
        serde_json::to_string(p).expect("serialize")
    }

    fn round_trip(p: &Policy) {
        let t = table(p);
        let back = from_table(&t);
        assert_eq!(json(&back), json(p), "table:\n{t}");
        assert_eq!(&back, p);
    }

    /// Every field the table carries, through the run-time builder (the macro's own
    /// policies are checked in vpsfw-codegen and tests/expansion.rs).
    #[test]
    fn policies_round_trip() {
        let p = Builder::new()
            .host("admin", &["198.51.100.7", "2001:db8:100::7"])
            .net("office", &["203.0.113.128/27", "2001:db8:200::/48"])
            .set(
                "bad",
                &["192.0.2.0/24", "198.51.100.99", "2001:db8:bad::/48"],
            )
            .set("bad4", &["203.0.113.0/28"])
            .admin("admin", Some("2222"))
            .allow(&[FindingKind::UnusedName, FindingKind::Redundant])
            .policy(Chain::Input, Verdict::Drop)
            .policy(Chain::Output, Verdict::Drop)
            .group("common")
            .rule(RuleBuilder::allow_in().on("lo"))
            .rule(RuleBuilder::allow_out().on("lo"))
            .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]))
            .rule(RuleBuilder::allow_out().state(&[State::Established, State::Related]))
            .rule(RuleBuilder::new(Action::Drop, Direction::In).from("bad"))
            .rule(RuleBuilder::new(Action::Reject, Direction::In).from("bad4"))
            .group("web (public)")
            .rule(
                RuleBuilder::allow_in()
                    .from("admin")
                    .proto(Protocol::Tcp)
                    .to_ports(&["2222"])
                    .allow(FindingKind::Shadowed),
            )
            .rule(
                RuleBuilder::allow_in()
                    .on("eth+")
                    .proto(Protocol::Tcp)
                    .from("office")
                    .from_ports(&["1024:"])
                    .to_ports(&["http", "https", ":1023", "6000:6010"])
                    .comment("lan: (a) [b] 1/2 + 3 = @x"),
            )
            .rule(
                RuleBuilder::new(Action::Log, Direction::In)
                    .proto(Protocol::Icmpv6)
                    .icmp_type("neighbour-solicitation")
                    .limit(5, RateUnit::Minute, Some(10))
                    .log_prefix("ND: "),
            )
            .rule(
                RuleBuilder::new(Action::Drop, Direction::Forward)
                    .proto(Protocol::Icmp)
                    .icmp_type("echo-request"),
            )
            .group(None)
            .rule(
                RuleBuilder::allow_out()
                    .proto(Protocol::Udp)
                    .to_ports(&["dns", "ntp"])
                    .state(&[State::New]),
            )
            .build();
        let p = match p {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        round_trip(&p);
        round_trip(&closed());
    }

    #[test]
    fn presets_and_text_round_trip() {
        use crate::diag::{Loc, Spanned};
        use crate::spec::{AdminSpec, DefaultSpec, HardenSpec, Item, LimitSpec, RuleSpec, Spec};
        let s = |v: &str| Spanned::new(v.to_owned(), Loc::new(0));
        let mut spec = Spec::default();
        spec.items.push(Item::Admin(AdminSpec {
            at: Loc::new(0),
            name: None,
            port: None,
        }));
        spec.items.push(Item::Default(DefaultSpec {
            chain: s("input"),
            verdict: s("drop"),
        }));
        let mut lo = RuleSpec::new(Loc::new(0), s("allow"), s("in"));
        lo.iface = Some(s("lo"));
        lo.line = Some(7);
        lo.text = Some("allow in on lo; // ünïcödé, 12:34 _ \n \"".into());
        spec.items.push(Item::Rule(lo));
        for (name, limit, seconds, prefix) in [
            ("ping", None, None, None),
            ("invalid", None, None, None),
            (
                "syn_flood",
                Some(("200", "second", Some("400"))),
                None,
                None,
            ),
            ("conn_rate", None, None, None),
            ("port_scan", None, Some("90"), None),
            (
                "log_drops",
                Some(("3", "minute", None)),
                None,
                Some("DROP: "),
            ),
        ] {
            spec.items.push(Item::Harden(HardenSpec {
                at: Loc::new(0),
                name: s(name),
                limit: limit.map(|(c, u, b)| LimitSpec {
                    at: Loc::new(0),
                    count: s(c),
                    unit: s(u),
                    burst: b.map(s),
                }),
                seconds: seconds.map(s),
                prefix: prefix.map(s),
            }));
        }
        let mut replies = RuleSpec::new(Loc::new(0), s("allow"), s("in"));
        replies.states = Some(vec![s("established"), s("related")]);
        spec.items.push(Item::Rule(replies));
        let p = match spec.build() {
            Ok(p) => p,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(p.presets().len(), 6);
        round_trip(&p);
    }

    /// Whatever the table, `from_table` gives a policy: the decoder's every read is
    /// checked. Truncations, and every byte changed in a few ways.
    #[test]
    fn broken_tables_never_panic() {
        let p = Builder::new()
            .host("admin", &["198.51.100.7", "2001:db8:100::7"])
            .set("bad", &["192.0.2.0/24", "2001:db8:bad::/48"])
            .admin("admin", None)
            .policy(Chain::Input, Verdict::Drop)
            .rule(RuleBuilder::allow_in().on("lo"))
            .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]))
            .rule(RuleBuilder::new(Action::Drop, Direction::In).from("bad"))
            .rule(
                RuleBuilder::allow_in()
                    .from("admin")
                    .proto(Protocol::Tcp)
                    .to_ports(&["ssh"])
                    .comment("admin"),
            )
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let t = table(&p);
        for end in 0..t.trim_end().len() {
            if let Some(prefix) = t.get(..end) {
                // A cut table is never read as the whole policy.
                assert_ne!(from_table(prefix), p, "{prefix}");
            }
        }
        let bytes = t.as_bytes();
        for i in 0..bytes.len() {
            for b in [b'0', b'9', b' ', b'_', b':', b'x', b'\n', 0xff] {
                let mut changed = bytes.to_vec();
                changed[i] = b;
                std::hint::black_box(from_table(&String::from_utf8_lossy(&changed)));
            }
        }
        let closed = closed();
        assert_eq!(from_table(""), closed);
        assert_eq!(
            from_table(&t.replacen(VERSION, "vpsfw-table-0.0.0", 1)),
            closed
        );
        // A count far beyond what the table holds is refused before allocating.
        let huge = format!("{VERSION} allow allow allow 0 999999999 ");
        assert_eq!(from_table(&huge), closed);
        assert_eq!(from_table(&t), p);
    }
}

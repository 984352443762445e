//! The small value types of a policy, each built only through a checked constructor.
//!
//! Every `FromStr` here is the one validator of its kind: the `firewall!` macro calls it at
//! build time, the run-time builder calls it at run time. Errors are rustc-style messages.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::diag::{did_you_mean, shown, shown_char};

macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($variant:ident = $($word:literal)|+),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every spelling the language accepts.
            pub const WORDS: &'static [&'static str] = &[$($($word),+),+];

            /// The canonical spellings, one per value.
            const CANONICAL: &'static [&'static str] = &[$(keyword_enum!(@first $($word)+)),+];

            /// The canonical spelling, as the language writes it.
            pub const fn word(self) -> &'static str {
                match self { $(Self::$variant => keyword_enum!(@first $($word)+)),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($($word)|+ => Ok(Self::$variant),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " `{}`{}"),
                        shown(s),
                        did_you_mean_or_list(s, Self::WORDS, Self::CANONICAL)
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.word())
            }
        }
    };
    (@first $first:literal $($rest:literal)*) => { $first };
}

/// `; did you mean `x`?` for a likely typo, else `; expected `a`, `b` or `c``.
fn did_you_mean_or_list(s: &str, words: &[&str], canonical: &[&str]) -> String {
    let hint = did_you_mean(s, words.iter().copied());
    if !hint.is_empty() {
        return hint;
    }
    let quoted: Vec<String> = canonical.iter().map(|w| format!("`{w}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => format!("; expected {last}"),
        Some((last, rest)) => format!("; expected {} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

keyword_enum!(
    /// What a matching rule does with a packet.
    Action, "action" { Allow = "allow" | "accept", Drop = "drop", Reject = "reject", Log = "log" }
);

keyword_enum!(
    /// Which way a packet goes relative to the host; picks the built-in chain.
    Direction, "direction" { In = "in", Out = "out", Forward = "forward" }
);

keyword_enum!(
    /// A built-in chain of the filter table, as named in a `policy` statement.
    Chain, "chain" { Input = "input", Output = "output", Forward = "forward" }
);

keyword_enum!(
    /// A chain's default policy. The kernel's built-in chains take only these two.
    Verdict, "chain policy" { Allow = "allow" | "accept", Drop = "drop" }
);

keyword_enum!(
    /// A layer-4 protocol a rule can match.
    Protocol, "protocol" { Tcp = "tcp", Udp = "udp", Icmp = "icmp", Icmpv6 = "icmpv6" | "ipv6-icmp" }
);

keyword_enum!(
    /// A conntrack state.
    State, "state" {
        Invalid = "invalid",
        New = "new",
        Related = "related",
        Established = "established",
        Untracked = "untracked",
    }
);

impl Chain {
    pub const ALL: [Chain; 3] = [Chain::Input, Chain::Forward, Chain::Output];

    /// The kernel's name for the chain.
    pub const fn iptables_name(self) -> &'static str {
        match self {
            Chain::Input => "INPUT",
            Chain::Forward => "FORWARD",
            Chain::Output => "OUTPUT",
        }
    }
}

impl Direction {
    pub const fn chain(self) -> Chain {
        match self {
            Direction::In => Chain::Input,
            Direction::Out => Chain::Output,
            Direction::Forward => Chain::Forward,
        }
    }
}

impl Protocol {
    pub const fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }

    /// The family a protocol ties a rule to, if any.
    pub const fn family(self) -> Option<Family> {
        match self {
            Protocol::Icmp => Some(Family::V4),
            Protocol::Icmpv6 => Some(Family::V6),
            Protocol::Tcp | Protocol::Udp => None,
        }
    }
}

/// An address family; the kernel keeps one ruleset per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A set of conntrack states, kept in the kernel's bit order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(into = "Vec<State>", from = "Vec<State>")]
pub struct States(u8);

impl States {
    const ORDER: [State; 5] = [
        State::Invalid,
        State::New,
        State::Related,
        State::Established,
        State::Untracked,
    ];

    pub const fn empty() -> Self {
        States(0)
    }

    const fn bit(s: State) -> u8 {
        1 << (s as u8)
    }

    pub const fn with(self, s: State) -> Self {
        States(self.0 | Self::bit(s))
    }

    pub const fn contains(self, s: State) -> bool {
        self.0 & Self::bit(s) != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kernel's bit order: invalid, new, related, established, untracked.
    pub const fn bits(self) -> u8 {
        self.0
    }

    pub(crate) const fn raw(bits: u8) -> Self {
        States(bits & 0x1f)
    }

    pub fn iter(self) -> impl Iterator<Item = State> {
        Self::ORDER.into_iter().filter(move |s| self.contains(*s))
    }

    /// `NEW,ESTABLISHED`, as `-m conntrack --ctstate` takes it.
    pub fn iptables_list(self) -> String {
        let words: Vec<String> = self.iter().map(|s| s.word().to_ascii_uppercase()).collect();
        words.join(",")
    }
}

impl From<Vec<State>> for States {
    fn from(v: Vec<State>) -> Self {
        v.into_iter().fold(States::empty(), States::with)
    }
}

impl From<States> for Vec<State> {
    fn from(s: States) -> Self {
        s.iter().collect()
    }
}

impl fmt::Display for States {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<&str> = self.iter().map(State::word).collect();
        f.write_str(&words.join(","))
    }
}

/// A TCP or UDP port, 1 to 65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Port(u16);

impl Port {
    /// Checks a number as written (it may not even fit in 16 bits).
    pub fn new(n: u64) -> Result<Port, String> {
        match n {
            0 => Err("port 0 is not a valid port; ports run from 1 to 65535".into()),
            1..=65535 => Ok(Port(n as u16)),
            _ => Err(format!(
                "port {n} is out of range; ports run from 1 to 65535"
            )),
        }
    }

    pub const fn get(self) -> u16 {
        self.0
    }

    pub(crate) const fn raw(n: u16) -> Self {
        Port(n)
    }
}

impl TryFrom<u16> for Port {
    type Error = String;
    fn try_from(n: u16) -> Result<Self, String> {
        Port::new(n.into())
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Port, String> {
        if let Ok(n) = s.parse::<u64>() {
            return Port::new(n);
        }
        if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            return Err(format!(
                "port {} is out of range; ports run from 1 to 65535",
                shown(s)
            ));
        }
        service_port(s)
    }
}

/// An inclusive range of ports; a single port is a range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "(u16, u16)", into = "(u16, u16)")]
pub struct PortRange {
    lo: Port,
    hi: Port,
}

impl PortRange {
    pub fn new(lo: Port, hi: Port) -> Result<Self, String> {
        if lo > hi {
            return Err(format!(
                "port range {lo}:{hi} is reversed; did you mean `{hi}:{lo}`?"
            ));
        }
        Ok(PortRange { lo, hi })
    }

    pub(crate) const fn raw(lo: Port, hi: Port) -> Self {
        PortRange { lo, hi }
    }

    pub const fn single(p: Port) -> Self {
        PortRange { lo: p, hi: p }
    }

    pub const fn lo(self) -> Port {
        self.lo
    }

    pub const fn hi(self) -> Port {
        self.hi
    }

    pub fn contains(self, port: u16) -> bool {
        (self.lo.0..=self.hi.0).contains(&port)
    }

    pub const fn is_single(self) -> bool {
        self.lo.0 == self.hi.0
    }
}

impl TryFrom<(u16, u16)> for PortRange {
    type Error = String;
    fn try_from((lo, hi): (u16, u16)) -> Result<Self, String> {
        PortRange::new(Port::try_from(lo)?, Port::try_from(hi)?)
    }
}

impl From<PortRange> for (u16, u16) {
    fn from(r: PortRange) -> Self {
        (r.lo.0, r.hi.0)
    }
}

/// `22` or `1024:65535`, the way iptables writes ports.
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}:{}", self.lo, self.hi)
        }
    }
}

/// A non-empty list of port ranges, without repeats, in the order written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<PortRange>", into = "Vec<PortRange>")]
pub struct Ports(Vec<PortRange>);

impl Ports {
    pub fn new(ranges: Vec<PortRange>) -> Result<Self, String> {
        let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
        for r in ranges {
            if out.contains(&r) {
                return Err(format!("port {r} is listed twice"));
            }
            out.push(r);
        }
        if out.is_empty() {
            return Err("empty port list".into());
        }
        Ok(Ports(out))
    }

    pub(crate) fn raw(ranges: Vec<PortRange>) -> Self {
        Ports(ranges)
    }

    pub fn ranges(&self) -> &[PortRange] {
        &self.0
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|r| r.contains(port))
    }
}

impl TryFrom<Vec<PortRange>> for Ports {
    type Error = String;
    fn try_from(v: Vec<PortRange>) -> Result<Self, String> {
        Ports::new(v)
    }
}

impl From<Ports> for Vec<PortRange> {
    fn from(p: Ports) -> Self {
        p.0
    }
}

/// The service names the language knows, pinned here so a policy means the same on every
/// machine: the target's `/etc/services` is never consulted, and output carries numbers.
pub const SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("dns", 53),
    ("domain", 53),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("ntp", 123),
    ("imap", 143),
    ("snmp", 161),
    ("ldap", 389),
    ("https", 443),
    ("smtps", 465),
    ("submissions", 465),
    ("syslog", 514),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("imaps", 993),
    ("pop3s", 995),
    ("openvpn", 1194),
    ("mysql", 3306),
    ("rdp", 3389),
    ("postgresql", 5432),
    ("postgres", 5432),
    ("redis", 6379),
    ("http-alt", 8080),
    ("wireguard", 51820),
];

/// Looks a service name up in [`SERVICES`].
pub fn service_port(name: &str) -> Result<Port, String> {
    SERVICES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| Port(*p))
        .ok_or_else(|| {
            format!(
                "unknown service `{}`{}",
                shown(name),
                did_you_mean(name, SERVICES.iter().map(|(n, _)| *n))
            )
        })
}

/// An ICMP or ICMPv6 message type, by name from a pinned table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IcmpType {
    family: Family,
    code: u8,
}

/// ICMP (IPv4) message types by name.
pub const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
];

/// ICMPv6 message types by name.
pub const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-listener-query", 130),
    ("mld-listener-report", 131),
    ("mld-listener-done", 132),
    ("router-solicitation", 133),
    ("router-advertisement", 134),
    ("neighbour-solicitation", 135),
    ("neighbor-solicitation", 135),
    ("neighbour-advertisement", 136),
    ("neighbor-advertisement", 136),
    ("redirect", 137),
    ("mld2-listener-report", 143),
];

impl IcmpType {
    pub fn new(family: Family, name: &str) -> Result<Self, String> {
        let (table, proto, other_table, other) = match family {
            Family::V4 => (ICMP_TYPES, "icmp", ICMPV6_TYPES, "icmpv6"),
            Family::V6 => (ICMPV6_TYPES, "icmpv6", ICMP_TYPES, "icmp"),
        };
        table
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, code)| IcmpType {
                family,
                code: *code,
            })
            .ok_or_else(|| {
                if other_table.iter().any(|(n, _)| *n == name) {
                    return format!(
                        "`{name}` is an {other} type, not an {proto} type; write `{other} type {name}`"
                    );
                }
                format!(
                    "unknown {proto} type `{}`{}",
                    shown(name),
                    did_you_mean(name, table.iter().map(|(n, _)| *n))
                )
            })
    }

    pub(crate) const fn from_code(family: Family, code: u8) -> Self {
        IcmpType { family, code }
    }

    pub const fn family(self) -> Family {
        self.family
    }

    pub const fn code(self) -> u8 {
        self.code
    }

    pub fn name(self) -> &'static str {
        let table = match self.family {
            Family::V4 => ICMP_TYPES,
            Family::V6 => ICMPV6_TYPES,
        };
        table
            .iter()
            .find(|(_, c)| *c == self.code)
            .map_or("?", |(n, _)| n)
    }
}

/// A network interface name the kernel accepts, optionally ending in iptables' `+` wildcard.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Iface(String);

impl Iface {
    pub fn new(name: &str) -> Result<Self, String> {
        let stem = name.strip_suffix('+').unwrap_or(name);
        if name.len() > 15 {
            return Err(format!(
                "interface name `{}` is {} bytes long; the kernel allows at most 15",
                shown(name),
                name.len()
            ));
        }
        if stem.is_empty() && name != "+" {
            return Err("empty interface name".into());
        }
        if name.starts_with('-') {
            return Err(format!(
                "interface name `{}` starts with `-`, which iptables would read as an option",
                shown(name)
            ));
        }
        if stem == "." || stem == ".." {
            return Err(format!("interface name `{stem}` is reserved by the kernel"));
        }
        if let Some(c) = stem
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@')))
        {
            return Err(format!(
                "interface name `{}` contains {}; use letters, digits, `_`, `-`, `.` and `@` (a final `+` matches a prefix)",
                shown(name),
                shown_char(c)
            ));
        }
        Ok(Iface(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn raw(name: &str) -> Self {
        Iface(name.to_owned())
    }

    /// Whether a real interface name matches this one (with iptables' `+` wildcard).
    pub fn matches(&self, real: &str) -> bool {
        match self.0.strip_suffix('+') {
            Some(prefix) => real.starts_with(prefix),
            None => real == self.0,
        }
    }
}

impl TryFrom<String> for Iface {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Iface::new(&s)
    }
}

impl From<Iface> for String {
    fn from(i: Iface) -> String {
        i.0
    }
}

impl fmt::Display for Iface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters allowed in text that reaches rendered rules (group names, comments, log
/// prefixes). The set leaves out everything a shell, a restore file's quoting or a
/// terminal would read as syntax, so no policy text can break out of the output.
fn text_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '_' | '-' | '.' | ',' | ':' | '/' | '+' | '=' | '@' | '(' | ')' | '[' | ']'
        )
}

fn check_text(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("empty {what}"));
    }
    if s.len() > max {
        return Err(format!(
            "{what} `{}` is {} bytes long; at most {max} fit",
            shown(s),
            s.len()
        ));
    }
    if let Some(c) = s.chars().find(|c| !text_char_ok(*c)) {
        return Err(format!(
            "{what} `{}` contains {}, which cannot be rendered safely; use letters, digits, spaces and _ - . , : / + = @ ( ) [ ]",
            shown(s),
            shown_char(c)
        ));
    }
    if s.starts_with(' ') || s.ends_with(' ') && what != "log prefix" {
        return Err(format!("{what} `{}` starts or ends with a space", shown(s)));
    }
    Ok(())
}

/// A group name or comment: safe to render inside quotes in a shell script or restore file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Label(String);

impl Label {
    /// A rendered rule carries `group: comment`, and nft takes at most 128 bytes of
    /// comment: 63 + 2 + 63.
    pub const MAX: usize = 63;

    pub fn new(s: &str) -> Result<Self, String> {
        check_text("comment", s, Self::MAX)?;
        Ok(Label(s.to_owned()))
    }

    /// A group name: checked as a comment is, and named as a group name in errors.
    pub fn group(s: &str) -> Result<Self, String> {
        check_text("group name", s, Self::MAX)?;
        Ok(Label(s.to_owned()))
    }

    pub(crate) fn raw(s: &str) -> Self {
        Label(s.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Label {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Label::new(&s)
    }
}

impl From<Label> for String {
    fn from(l: Label) -> String {
        l.0
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A LOG target prefix: at most 29 bytes (the kernel's limit), safe characters only.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LogPrefix(String);

impl LogPrefix {
    pub const MAX: usize = 29;

    pub fn new(s: &str) -> Result<Self, String> {
        check_text("log prefix", s, Self::MAX)?;
        Ok(LogPrefix(s.to_owned()))
    }

    pub(crate) fn raw(s: &str) -> Self {
        LogPrefix(s.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LogPrefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        LogPrefix::new(&s)
    }
}

impl From<LogPrefix> for String {
    fn from(l: LogPrefix) -> String {
        l.0
    }
}

keyword_enum!(
    /// The unit of a rate limit.
    RateUnit, "time unit" { Second = "second" | "sec" | "s", Minute = "minute" | "min" | "m", Hour = "hour" | "h", Day = "day" | "d" }
);

impl RateUnit {
    const fn seconds(self) -> u64 {
        match self {
            RateUnit::Second => 1,
            RateUnit::Minute => 60,
            RateUnit::Hour => 3600,
            RateUnit::Day => 86400,
        }
    }

    /// The unit as iptables-save prints it.
    pub const fn iptables(self) -> &'static str {
        match self {
            RateUnit::Second => "sec",
            RateUnit::Minute => "min",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        }
    }
}

/// A `limit` match: at most `count` per `unit`, with bursts of up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limit {
    count: u32,
    unit: RateUnit,
    burst: u32,
}

impl Limit {
    /// iptables' `limit` counts in 1/10000 s, so it cannot go faster than this.
    pub const MAX_PER_SECOND: u64 = 10_000;
    pub const MAX_BURST: u64 = 10_000;
    pub const DEFAULT_BURST: u32 = 5;

    pub fn new(count: u64, unit: RateUnit, burst: Option<u64>) -> Result<Self, String> {
        if count == 0 {
            return Err("a rate of 0 never lets anything through; use `drop` instead".into());
        }
        if count > Self::MAX_PER_SECOND * unit.seconds() {
            return Err(format!(
                "rate {count}/{} is too fast for the limit match; at most {}/second",
                unit.word(),
                Self::MAX_PER_SECOND
            ));
        }
        let burst = burst.unwrap_or(Self::DEFAULT_BURST.into());
        if burst == 0 || burst > Self::MAX_BURST {
            return Err(format!(
                "burst {burst} is out of range; bursts run from 1 to {}",
                Self::MAX_BURST
            ));
        }
        Ok(Limit {
            count: count as u32,
            unit,
            burst: burst as u32,
        })
    }

    pub(crate) const fn raw(count: u32, unit: RateUnit, burst: u32) -> Self {
        Limit { count, unit, burst }
    }

    pub const fn count(self) -> u32 {
        self.count
    }

    pub const fn unit(self) -> RateUnit {
        self.unit
    }

    pub const fn burst(self) -> u32 {
        self.burst
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_checked() {
        assert!(Port::new(0).is_err());
        assert!(Port::new(65536).is_err());
        assert_eq!(Port::new(65535).map(Port::get), Ok(65535));
        assert_eq!("https".parse::<Port>().map(Port::get), Ok(443));
        assert_eq!(
            "htps".parse::<Port>().unwrap_err(),
            "unknown service `htps`; did you mean `https`?"
        );
        assert!("99999999999999999999999"
            .parse::<Port>()
            .unwrap_err()
            .contains("out of range"));
    }

    #[test]
    fn ranges_and_lists() {
        let p = |n| Port::new(n).unwrap();
        assert!(PortRange::new(p(2048), p(1024))
            .unwrap_err()
            .contains("`1024:2048`"));
        assert_eq!(
            PortRange::new(p(1024), p(65535)).unwrap().to_string(),
            "1024:65535"
        );
        let r = PortRange::single(p(80));
        assert!(Ports::new(vec![r, r]).is_err());
        assert!(Ports::new(vec![]).is_err());
    }

    #[test]
    fn keywords_suggest() {
        assert_eq!(
            "alow".parse::<Action>().unwrap_err(),
            "unknown action `alow`; did you mean `allow`?"
        );
        assert_eq!(
            "tpc".parse::<Protocol>().unwrap_err(),
            "unknown protocol `tpc`; did you mean `tcp`?"
        );
        assert_eq!("accept".parse::<Action>(), Ok(Action::Allow));
        assert!("reject".parse::<Verdict>().is_err());
    }

    #[test]
    fn states_keep_kernel_order() {
        let s = States::empty().with(State::Established).with(State::New);
        assert_eq!(s.iptables_list(), "NEW,ESTABLISHED");
        assert_eq!(s.to_string(), "new,established");
    }

    #[test]
    fn interfaces() {
        assert!(Iface::new("eth0").is_ok());
        assert!(Iface::new("eth+").is_ok());
        assert!(Iface::new("averyveryverylongname")
            .unwrap_err()
            .contains("15"));
        assert!(Iface::new("eth0;rm").is_err());
        assert!(Iface::new("a/b").is_err());
        assert!(Iface::new("..").is_err());
        assert!(Iface::new("-j").is_err());
        assert!(Iface::new("eth+").unwrap().matches("eth7"));
    }

    #[test]
    fn text_cannot_break_out() {
        for bad in ["a\"b", "a'b", "a$b", "a`b", "a\\b", "a\nb", "a;b", "a#b"] {
            assert!(Label::new(bad).is_err(), "{bad:?}");
            assert!(LogPrefix::new(bad).is_err(), "{bad:?}");
        }
        assert!(LogPrefix::new("DROP-IN: ").is_ok());
        assert!(LogPrefix::new(&"x".repeat(30)).unwrap_err().contains("29"));
        assert!(Label::new("server: web (public)").is_ok());
    }

    #[test]
    fn limits() {
        assert!(Limit::new(0, RateUnit::Second, None).is_err());
        assert!(Limit::new(10_001, RateUnit::Second, None).is_err());
        assert!(Limit::new(5, RateUnit::Minute, Some(0)).is_err());
        assert_eq!(Limit::new(5, RateUnit::Minute, None).unwrap().burst(), 5);
    }

    #[test]
    fn icmp_types() {
        assert_eq!(
            IcmpType::new(Family::V6, "neighbour-solicitation")
                .unwrap()
                .code(),
            135
        );
        assert!(IcmpType::new(Family::V4, "packet-too-big").is_err());
    }
}

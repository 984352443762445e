//! The nftables backend: one `table inet vpsfw` holding both families, loaded by one
//! `nft -f` transaction.
//!
//! Same rules, same order, same comments as the iptables output. A rule that matches no
//! address is written once for both families; a rule with addresses once per family it
//! exists in (`ip saddr` / `ip6 saddr`), in policy order, so each family sees its rules
//! in the same order as its iptables chain. Port lists need no multiport splitting:
//! nft takes anonymous sets of any size.
//!
//! Adjacent rules that differ only in destination ports, or only in ICMP type, are
//! written as one rule with an anonymous set (`tcp dport { 80, 443 }`, `icmpv6 type {
//! 1, 2, 3 }`); a run of at least [`crate::ruleset::AUTO_SET_MIN`] that differ in source
//! and port, as one rule matching a concatenated set (`ip saddr . tcp dport { ... }`).
//! Same conditions as the iptables merge (see [`crate::ruleset::rendered_lines`]).

use std::borrow::Cow;
use std::fmt::Write as _;

use ipnet::IpNet;

use crate::model::{Policy, Rule, Target};
use crate::render::{comment_text, header, EOF_MARK};
use crate::ruleset::{mergeable, port_union, replace_runs, run_pairs, same_rest, PairItem};
use crate::value::{Action, Chain, Family, IcmpType, PortRange, Protocol, Verdict};

/// The table vpsfw owns; nothing outside it is touched.
pub const TABLE: &str = "vpsfw";

fn chain_name(c: Chain) -> &'static str {
    match c {
        Chain::Input => "input",
        Chain::Forward => "forward",
        Chain::Output => "output",
    }
}

fn ports(ranges: &[PortRange]) -> String {
    let one = |r: &PortRange| {
        if r.is_single() {
            r.lo().to_string()
        } else {
            format!("{}-{}", r.lo(), r.hi())
        }
    };
    match ranges {
        [r] => one(r),
        _ => {
            let items: Vec<String> = ranges.iter().map(one).collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}

fn addr(out: &mut String, word: &str, target: Option<&Target>, policy: &Policy, f: Family) {
    let Some(target) = target else { return };
    if let Some(set) = target.set_name().and_then(|n| policy.set(n)) {
        let fam = match f {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        };
        let _ = write!(out, " {fam} {word} @{}", set.nft_name(f));
        return;
    }
    let Some(net) = target.net(f) else { return };
    let fam = match net {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    };
    if net.prefix_len() == net.max_prefix_len() {
        let _ = write!(out, " {fam} {word} {}", net.addr());
    } else {
        let _ = write!(out, " {fam} {word} {net}");
    }
}

/// A set element: a bare address for a host, a prefix otherwise.
fn elem(net: IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

/// One nft rule: a policy rule, or adjacent ones merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftRule<'p> {
    /// The first rule merged: every match but the merged ones is this rule's (and the
    /// others').
    pub rule: &'p Rule,
    /// The family it is written for; `None`: both.
    pub family: Option<Family>,
    /// The policy rules it stands for: indexes in [`Policy::rules`], in order, each once.
    pub origins: Vec<usize>,
    /// The destination ports: the rule's own, or the union of the merged rules'.
    pub dport: Option<Cow<'p, [PortRange]>>,
    /// The ICMP types: the rule's own, or those of the merged rules.
    pub icmp_types: Vec<IcmpType>,
    /// For a long run: the (source, port) pairs, matched as one concatenated set; the
    /// source and `dport` are then not written.
    pub pairs: Option<Vec<(IpNet, u16)>>,
}

impl<'p> NftRule<'p> {
    /// The index in [`Policy::rules`] of the first rule it stands for.
    pub fn index(&self) -> usize {
        self.origins[0]
    }
}

/// Whether `b` can join a merge `a` heads: same family, same everything but the
/// destination ports (both with ports) or but the ICMP type (both with one).
fn nft_merge(a: &NftRule<'_>, b: &NftRule<'_>) -> bool {
    let (x, y) = (a.rule, b.rule);
    let base = a.family == b.family
        && a.pairs.is_none()
        && b.pairs.is_none()
        && mergeable(x)
        && mergeable(y)
        && same_rest(x, y)
        && x.src() == y.src()
        && x.dst() == y.dst()
        && x.sport() == y.sport();
    base && ((x.dport().is_some()
        && y.dport().is_some()
        && x.icmp_type().is_none()
        && y.icmp_type().is_none())
        || (x.icmp_type().is_some()
            && y.icmp_type().is_some()
            && x.dport().is_none()
            && y.dport().is_none()
            && x.sport().is_none()))
}

/// The source network of a rule that can join a pair set (see
/// `ruleset::pair_source`): per family, tcp/udp, one network as source, single
/// destination ports, no source port.
fn pair_source(r: &NftRule<'_>) -> Option<IpNet> {
    let rule = r.rule;
    let f = r.family?;
    let ok = r.pairs.is_none()
        && mergeable(rule)
        && rule.icmp_type().is_none()
        && matches!(rule.proto(), Some(Protocol::Tcp | Protocol::Udp))
        && rule.sport().is_none()
        && r.dport
            .as_ref()
            .is_some_and(|d| d.iter().all(|p| p.is_single()));
    match (ok, rule.src()) {
        (true, Some(Target::Addr(a))) => a.get(f).filter(|n| n.prefix_len() > 0),
        _ => None,
    }
}

/// One nft rule; `family` is `None` for a rule written once for both families.
fn write_rule(out: &mut String, policy: &Policy, nr: &NftRule<'_>) {
    let (rule, family) = (nr.rule, nr.family);
    out.push_str("\t\t");
    let mut parts = String::new();
    // `+` (any interface) has no nft spelling: nft refuses the all-wildcard "*". Every
    // packet in these hooks has the interface, so leaving the match out is the same match.
    if let Some(i) = rule.iface().filter(|i| i.as_str() != "+") {
        let word = match rule.chain() {
            Chain::Output => "oifname",
            Chain::Input | Chain::Forward => "iifname",
        };
        let name = i.as_str().replace('+', "*");
        let _ = write!(parts, " {word} \"{name}\"");
    }
    if let Some(f) = family {
        if rule.src().is_none() && rule.dst().is_none() {
            // `meta l4proto icmp` alone would also match IPv6 packets carrying protocol 1.
            let _ = write!(
                parts,
                " meta nfproto {}",
                if f == Family::V4 { "ipv4" } else { "ipv6" }
            );
        }
        if nr.pairs.is_none() {
            addr(&mut parts, "saddr", rule.src(), policy, f);
        }
        addr(&mut parts, "daddr", rule.dst(), policy, f);
    }
    if let Some(p) = rule.proto() {
        let name = match p {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Icmpv6 => "icmpv6",
        };
        let mut matched = false;
        if let (Some(pairs), Some(f)) = (&nr.pairs, family) {
            let ip = if f == Family::V4 { "ip" } else { "ip6" };
            let _ = write!(parts, " {ip} saddr . {name} dport {{ ");
            for (i, (net, port)) in pairs.iter().enumerate() {
                if i > 0 {
                    parts.push_str(", ");
                }
                let _ = write!(parts, "{} . {port}", elem(*net));
            }
            parts.push_str(" }");
            matched = true;
        }
        if let Some(sp) = rule.sport() {
            let _ = write!(parts, " {name} sport {}", ports(sp.ranges()));
            matched = true;
        }
        if let Some(dp) = &nr.dport {
            let _ = write!(parts, " {name} dport {}", ports(dp));
            matched = true;
        }
        match nr.icmp_types.as_slice() {
            [] => {}
            [t] => {
                let _ = write!(parts, " {name} type {}", t.code());
                matched = true;
            }
            many => {
                let codes: Vec<String> = many.iter().map(|t| t.code().to_string()).collect();
                let _ = write!(parts, " {name} type {{ {} }}", codes.join(", "));
                matched = true;
            }
        }
        if !matched {
            let l4 = if p == Protocol::Icmpv6 {
                "ipv6-icmp"
            } else {
                name
            };
            let _ = write!(parts, " meta l4proto {l4}");
        }
    }
    if rule.syn() {
        parts.push_str(" tcp flags & (fin | syn | rst | ack) == syn");
    }
    if let Some(s) = rule.states() {
        let _ = write!(
            parts,
            " ct state {{ {} }}",
            s.iter().map(|s| s.word()).collect::<Vec<_>>().join(", ")
        );
    }
    let ip = match family {
        Some(Family::V6) => "ip6",
        _ => "ip",
    };
    if let Some(o) = rule.over() {
        let l = o.limit;
        let rate = format!(
            "limit rate over {}/{} burst {} packets",
            l.count(),
            l.unit().word(),
            l.burst()
        );
        match family.filter(|_| o.per_source) {
            Some(f) => {
                let _ = write!(
                    parts,
                    " add @{} {{ {ip} saddr {rate} }}",
                    dynamic_set(&o.name, f)
                );
            }
            None => {
                let _ = write!(parts, " {rate}");
            }
        }
    }
    if let (Some(recent), Some(f)) = (rule.recent(), family) {
        let set = dynamic_set(crate::harden::SCAN_LIST, f);
        match recent {
            crate::harden::Recent::Listed { .. } => {
                let _ = write!(parts, " {ip} saddr @{set}");
            }
            crate::harden::Recent::Add => {
                let _ = write!(parts, " update @{set} {{ {ip} saddr }}");
            }
        }
    }
    if let Some(l) = rule.limit() {
        let _ = write!(
            parts,
            " limit rate {}/{} burst {} packets",
            l.count(),
            l.unit().word(),
            l.burst()
        );
    }
    parts.push_str(" counter");
    match rule.action() {
        Action::Allow => parts.push_str(" accept"),
        Action::Drop => parts.push_str(" drop"),
        Action::Reject => parts.push_str(if rule.proto() == Some(Protocol::Tcp) {
            " reject with tcp reset"
        } else {
            " reject"
        }),
        Action::Log => {
            parts.push_str(" log");
            if let Some(p) = rule.log_prefix() {
                let _ = write!(parts, " prefix \"{}\"", p.as_str());
            }
        }
    }
    if let Some(c) = comment_text(rule) {
        let _ = write!(parts, " comment \"{c}\"");
    }
    out.push_str(parts.trim_start());
    out.push('\n');
}

/// Whether a rule needs one nft rule per family: it names addresses.
/// Whether a rule needs one nft rule per family: it names addresses, or it exists in
/// one family only (an inet table sees both).
fn per_family(rule: &Rule) -> bool {
    rule.src().is_some()
        || rule.dst().is_some()
        || !(rule.in_family(Family::V4) && rule.in_family(Family::V6))
        || rule.recent().is_some()
        // One rate per family, as iptables has one rule in each family's table.
        || rule.over().is_some()
}

/// The dynamic set of a per-source rate or of the port-scan list, for one family.
fn dynamic_set(stem: &str, f: Family) -> String {
    let stem = stem.replace('-', "_");
    match f {
        Family::V4 => format!("{stem}_v4"),
        Family::V6 => format!("{stem}_v6"),
    }
}

/// The `nft -f` file: creates (or replaces, in the same transaction) `table inet vpsfw`.
pub fn file(policy: &Policy) -> String {
    let mut out = String::from("#!/usr/sbin/nft -f\n");
    out.push_str(&header(
        policy,
        "table inet vpsfw, load with nft -f (one transaction, both families)",
    ));
    body(&mut out, policy);
    out
}

/// The nft rules of one chain, in order, as written: each with the policy rules it
/// stands for and the family it is written for (`None`: both). Adjacent rules that
/// differ only in destination ports or only in ICMP type are merged, and runs of at
/// least [`AUTO_SET_MIN`] that differ in source and port become one pair-set rule.
pub fn chain_rules(policy: &Policy, chain: Chain) -> Vec<NftRule<'_>> {
    let mut raw = Vec::new();
    for (index, rule) in policy.rules().iter().enumerate() {
        if rule.chain() != chain {
            continue;
        }
        let one = |family| NftRule {
            rule,
            family,
            origins: vec![index],
            dport: rule.dport().map(|d| Cow::Borrowed(d.ranges())),
            icmp_types: rule.icmp_type().into_iter().collect(),
            pairs: None,
        };
        if per_family(rule) {
            let families = Family::ALL.into_iter().filter(|f| rule.in_family(*f));
            raw.extend(families.map(|f| one(Some(f))));
        } else {
            raw.push(one(None));
        }
    }
    let mut merged: Vec<NftRule<'_>> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let mut j = i + 1;
        while j < raw.len() && nft_merge(&raw[i], &raw[j]) {
            j += 1;
        }
        let mut head = raw[i].clone();
        if j > i + 1 {
            let run = &raw[i..j];
            head.origins = run.iter().map(|r| r.origins[0]).collect();
            if head.dport.is_some() {
                let union = port_union(run.iter().filter_map(|r| r.dport.as_deref()));
                head.dport = Some(Cow::Owned(union));
            } else {
                head.icmp_types = Vec::new();
                for t in run.iter().flat_map(|r| r.icmp_types.iter()) {
                    if !head.icmp_types.contains(t) {
                        head.icmp_types.push(*t);
                    }
                }
            }
        }
        merged.push(head);
        i = j;
    }
    nft_pair_runs(merged)
}

impl PairItem for NftRule<'_> {
    fn pair_source(&self) -> Option<IpNet> {
        pair_source(self)
    }

    fn joins(&self, head: &Self) -> bool {
        self.family == head.family
            && same_rest(head.rule, self.rule)
            && head.rule.dst() == self.rule.dst()
    }

    fn pair_ports(&self) -> &[PortRange] {
        self.dport.as_deref().unwrap_or_default()
    }

    fn pair_origins(&self) -> &[usize] {
        &self.origins
    }
}

/// Replaces each run of at least [`AUTO_SET_MIN`] adjacent rules that differ only in
/// source network and single destination ports by one concatenated-set rule.
fn nft_pair_runs(rules: Vec<NftRule<'_>>) -> Vec<NftRule<'_>> {
    replace_runs(rules, |_, items| {
        let (pairs, origins) = run_pairs(items);
        let mut head = items[0].clone();
        head.origins = origins;
        head.dport = None;
        head.pairs = Some(pairs);
        vec![head]
    })
}

/// The rules count, as `nft list` will show them.
pub fn rule_count(policy: &Policy) -> usize {
    Chain::ALL
        .into_iter()
        .map(|c| chain_rules(policy, c).len())
        .sum()
}

fn body(out: &mut String, policy: &Policy) {
    // Declaring the table first makes the delete valid when it does not exist yet; both
    // and the new definition are one transaction.
    let _ = writeln!(
        out,
        "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n\tcomment \"vpsfw {}\"",
        crate::render::stamp(policy)
    );
    for set in policy.sets() {
        for f in Family::ALL.into_iter().filter(|f| set.has(*f)) {
            let (ty, elements): (&str, Vec<String>) = match f {
                Family::V4 => (
                    "ipv4_addr",
                    set.v4().iter().map(|n| elem(IpNet::V4(*n))).collect(),
                ),
                Family::V6 => (
                    "ipv6_addr",
                    set.v6().iter().map(|n| elem(IpNet::V6(*n))).collect(),
                ),
            };
            let _ = write!(
                out,
                "\tset {} {{\n\t\ttype {ty}\n\t\tflags interval\n\t\tauto-merge\n\t\telements = {{ ",
                set.nft_name(f)
            );
            for (i, e) in elements.iter().enumerate() {
                if i > 0 {
                    out.push_str(if i % 8 == 0 { ",\n\t\t\t" } else { ", " });
                }
                out.push_str(e);
            }
            out.push_str(" }\n\t}\n\n");
        }
    }
    // The hardening presets' dynamic sets: per-source rate buckets and the port-scan list.
    for rule in policy.rules() {
        let (stem, timeout) = match (rule.over(), rule.recent()) {
            (Some(o), _) if o.per_source => (o.name.clone(), 60),
            (_, Some(crate::harden::Recent::Listed { seconds })) => {
                (crate::harden::SCAN_LIST.to_owned(), *seconds)
            }
            _ => continue,
        };
        for f in Family::ALL.into_iter().filter(|f| rule.in_family(*f)) {
            let ty = if f == Family::V4 {
                "ipv4_addr"
            } else {
                "ipv6_addr"
            };
            let _ = write!(
                out,
                "\tset {} {{\n\t\ttype {ty}\n\t\tsize 65535\n\t\tflags dynamic,timeout\n\t\ttimeout {timeout}s\n\t}}\n\n",
                dynamic_set(&stem, f)
            );
        }
    }
    let d = policy.defaults();
    for (i, chain) in Chain::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let policy_word = match d.get(chain) {
            Verdict::Allow => "accept",
            Verdict::Drop => "drop",
        };
        let name = chain_name(chain);
        let _ = writeln!(
            out,
            "\tchain {name} {{\n\t\ttype filter hook {name} priority filter; policy {policy_word};"
        );
        for r in chain_rules(policy, chain) {
            write_rule(out, policy, &r);
        }
        out.push_str("\t}\n");
    }
    out.push_str("}\n");
}

/// A POSIX sh script that checks the nft file with `nft -c` and loads it with `nft -f`:
/// one transaction for both families, so a failure changes nothing.
pub fn sh(policy: &Policy) -> String {
    let mut out = String::from("#!/bin/sh\n");
    out.push_str(&header(
        policy,
        "loads table inet vpsfw with nft, both families in one transaction",
    ));
    out.push_str(
        r#"# The ruleset is checked by nft before it is loaded, and loaded in one transaction:
# if anything fails, the previous ruleset stays in force. Only table inet vpsfw is
# replaced; other tables (iptables-nft's, Docker's, fail2ban's) are left alone.
set -u
PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

die() {
    printf 'vpsfw: %s\n' "$*" >&2
    exit 1
}

command -v nft >/dev/null 2>&1 ||
    die "nft not found; install the nftables package (nothing was changed)"

rules() {
"#,
    );
    let _ = writeln!(out, "    cat <<'{EOF_MARK}'");
    body(&mut out, policy);
    let _ = writeln!(out, "{EOF_MARK}\n}}");
    out.push_str(
        r#"
rules | nft -c -f - || die "nft refused the ruleset (nothing was changed)"
rules | nft -f - || die "loading the ruleset failed (nothing was changed)"
"#,
    );
    let _ = writeln!(
        out,
        "printf 'vpsfw: loaded policy {} ({} nft rules in table inet {TABLE})\\n' >&2",
        crate::render::stamp(policy),
        rule_count(policy)
    );
    out
}

#[cfg(test)]
mod tests {
    use crate::builder::{Builder, RuleBuilder};
    use crate::value::{Action, Direction};

    /// Regression (found by the differential test): nft refuses the all-wildcard
    /// `iifname "*"` that `on +` would become; every packet has an interface, so the
    /// match is left out.
    #[test]
    fn on_plus_matches_every_interface() {
        let p = Builder::new()
            .rule(
                RuleBuilder::new(Action::Drop, Direction::In)
                    .on("+")
                    .from("203.0.113.5"),
            )
            .build()
            .unwrap();
        let text = super::file(&p);
        assert!(
            text.contains("\t\tip saddr 203.0.113.5 counter drop\n"),
            "{text}"
        );
        assert!(!text.contains("\"*\""), "{text}");
    }

    /// A single-family rule without addresses says its family: an inet table sees both.
    #[test]
    fn single_family_rules_carry_nfproto() {
        let p = Builder::new()
            .rule(RuleBuilder::allow_in().proto(crate::value::Protocol::Icmp))
            .build()
            .unwrap();
        assert!(super::file(&p).contains("meta nfproto ipv4 meta l4proto icmp counter accept"));
    }
}

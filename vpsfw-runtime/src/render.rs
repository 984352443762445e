//! Renderers: pure functions from a [`Policy`] to text. One per-rule writer
//! ([`write_rule`]) serves every format; the formats differ only in framing.
//!
//! Output is written the way `iptables-save` prints it (option order, `/32` on hosts,
//! numeric ports and ICMP types), so the text compares equal to what the kernel reports.

use std::fmt::Write as _;

use crate::model::Policy;
use crate::ruleset::{chain_lines, Line};
use crate::value::{Action, Chain, Family, PortRange, Protocol, Verdict};

/// The output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Format {
    /// A POSIX sh script that loads both families atomically (the default).
    Sh,
    /// One `iptables`/`ip6tables` command per line, like the article's listings.
    Commands,
    /// The `iptables-restore` file (IPv4).
    Restore,
    /// The `ip6tables-restore` file (IPv6).
    Restore6,
    /// The `nft -f` file: `table inet vpsfw`, both families.
    Nft,
    /// A POSIX sh script that loads the nft file in one transaction.
    NftSh,
}

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Sh,
        Format::Commands,
        Format::Restore,
        Format::Restore6,
        Format::Nft,
        Format::NftSh,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Format::Sh => "sh",
            Format::Commands => "commands",
            Format::Restore => "restore",
            Format::Restore6 => "restore6",
            Format::Nft => "nft",
            Format::NftSh => "nft-sh",
        }
    }
}

/// Renders the policy in one format.
pub fn render(policy: &Policy, format: Format) -> String {
    match format {
        Format::Sh => sh(policy),
        Format::Commands => commands(policy),
        Format::Restore => restore(policy, Family::V4),
        Format::Restore6 => restore(policy, Family::V6),
        Format::Nft => crate::nft::file(policy),
        Format::NftSh => crate::nft::sh(policy),
    }
}

/// How text arguments (comments, log prefixes) are quoted.
#[derive(Clone, Copy)]
enum Quote {
    /// `"..."`, as in restore files.
    Double,
    /// `'...'`, as in shell commands.
    Single,
}

fn target(policy_verdict: Verdict) -> &'static str {
    match policy_verdict {
        Verdict::Allow => "ACCEPT",
        Verdict::Drop => "DROP",
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::Icmpv6 => "ipv6-icmp",
    }
}

fn port_list(ranges: &[PortRange]) -> String {
    let parts: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    parts.join(",")
}

/// Writes a comment or log prefix the way iptables-save does: bare when it is only
/// letters, digits, `_` and `-`, quoted otherwise.
fn quoted(out: &mut String, text: &str, quote: Quote) {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        out.push_str(text);
        return;
    }
    // Label and LogPrefix admit no quote, backslash, `$` or newline, so wrapping is enough.
    let q = match quote {
        Quote::Double => '"',
        Quote::Single => '\'',
    };
    out.push(q);
    out.push_str(text);
    out.push(q);
}

/// The comment a rendered rule carries: its group and its own comment.
pub(crate) fn comment_text(rule: &crate::model::Rule) -> Option<String> {
    match (rule.group(), rule.comment()) {
        (Some(g), Some(c)) => Some(format!("{g}: {c}")),
        (Some(g), None) => Some(g.to_string()),
        (None, Some(c)) => Some(c.to_string()),
        (None, None) => None,
    }
}

/// Writes one rule's arguments, from `-A CHAIN` to the target, in iptables-save order.
fn write_rule(out: &mut String, line: &Line<'_>, quote: Quote) {
    let rule = line.rule;
    let _ = write!(out, "-A {}", rule.chain().iptables_name());
    if let Some(s) = line.src {
        let _ = write!(out, " -s {s}");
    }
    if let Some(d) = line.dst {
        let _ = write!(out, " -d {d}");
    }
    if let Some(i) = rule.iface() {
        let flag = match rule.chain() {
            Chain::Output => "-o",
            Chain::Input | Chain::Forward => "-i",
        };
        let _ = write!(out, " {flag} {i}");
    }
    if let Some(p) = rule.proto() {
        let _ = write!(out, " -p {}", proto_name(p));
        if p.has_ports()
            && (line.sport.is_some_and(|s| s.len() == 1)
                || line.dport.is_some_and(|d| d.len() == 1))
        {
            let _ = write!(out, " -m {}", proto_name(p));
            if let Some([one]) = line.sport {
                let _ = write!(out, " --sport {one}");
            }
            if let Some([one]) = line.dport {
                let _ = write!(out, " --dport {one}");
            }
        }
        for (ports, flag) in [(line.sport, "--sports"), (line.dport, "--dports")] {
            if let Some(list) = ports.filter(|l| l.len() > 1) {
                let _ = write!(out, " -m multiport {flag} {}", port_list(list));
            }
        }
        if let Some(t) = rule.icmp_type() {
            match p {
                Protocol::Icmpv6 => {
                    let _ = write!(out, " -m icmp6 --icmpv6-type {}", t.code());
                }
                _ => {
                    let _ = write!(out, " -m icmp --icmp-type {}", t.code());
                }
            }
        }
    }
    if let Some(s) = rule.states() {
        let _ = write!(out, " -m conntrack --ctstate {}", s.iptables_list());
    }
    if let Some(l) = rule.limit() {
        let _ = write!(
            out,
            " -m limit --limit {}/{} --limit-burst {}",
            l.count(),
            l.unit().iptables(),
            l.burst()
        );
    }
    if let Some(c) = comment_text(rule) {
        out.push_str(" -m comment --comment ");
        quoted(out, &c, quote);
    }
    match rule.action() {
        Action::Allow => out.push_str(" -j ACCEPT"),
        Action::Drop => out.push_str(" -j DROP"),
        Action::Reject => {
            let with = match (rule.proto(), line.family) {
                (Some(Protocol::Tcp), _) => "tcp-reset",
                (_, Family::V4) => "icmp-port-unreachable",
                (_, Family::V6) => "icmp6-port-unreachable",
            };
            let _ = write!(out, " -j REJECT --reject-with {with}");
        }
        Action::Log => {
            out.push_str(" -j LOG");
            if let Some(p) = rule.log_prefix() {
                out.push_str(" --log-prefix ");
                quoted(out, p.as_str(), quote);
            }
        }
    }
}

/// Every line of a family, chains in the kernel's order (INPUT, FORWARD, OUTPUT).
pub fn family_lines(policy: &Policy, family: Family) -> Vec<Line<'_>> {
    Chain::ALL
        .into_iter()
        .flat_map(|c| chain_lines(policy, family, c))
        .collect()
}

/// The `-A ...` text of one line, as in a restore file.
pub fn rule_text(line: &Line<'_>) -> String {
    let mut s = String::new();
    write_rule(&mut s, line, Quote::Double);
    s
}

/// The body of a restore file: `*filter` to `COMMIT`.
fn restore_body(out: &mut String, policy: &Policy, family: Family) {
    out.push_str("*filter\n");
    let d = policy.defaults();
    for chain in Chain::ALL {
        let _ = writeln!(
            out,
            ":{} {} [0:0]",
            chain.iptables_name(),
            target(d.get(chain))
        );
    }
    for line in family_lines(policy, family) {
        write_rule(out, &line, Quote::Double);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
}

/// A short, stable fingerprint of the rendered rulesets (FNV-1a, 64 bits), printed in
/// every output so an admin can tell which policy a server runs.
pub fn stamp(policy: &Policy) -> String {
    let mut body = String::new();
    restore_body(&mut body, policy, Family::V4);
    restore_body(&mut body, policy, Family::V6);
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

pub(crate) fn header(policy: &Policy, what: &str) -> String {
    format!(
        "# vpsfw {} policy {}: {what}\n",
        env!("CARGO_PKG_VERSION"),
        stamp(policy)
    )
}

/// The `iptables-restore` (IPv4) or `ip6tables-restore` (IPv6) file. It replaces the
/// whole filter table, so loading it twice gives the same ruleset as once.
pub fn restore(policy: &Policy, family: Family) -> String {
    let tool = match family {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    };
    let mut out = header(policy, &format!("{family} filter table, load with {tool}"));
    restore_body(&mut out, policy, family);
    out
}

/// One command per rule, in the style of the article's listings, for reading or for
/// systems without the restore tools. Not atomic: apply with the `sh` format.
pub fn commands(policy: &Policy) -> String {
    let mut out = header(policy, "one command per rule");
    out.push_str(
        "# Not atomic: while these run the firewall is open. Use the default `sh` format to apply.\n",
    );
    for (family, tool) in [(Family::V4, "iptables"), (Family::V6, "ip6tables")] {
        let _ = writeln!(out, "\n# {family}");
        for chain in Chain::ALL {
            let _ = writeln!(out, "{tool} -t filter -P {} ACCEPT", chain.iptables_name());
        }
        let _ = writeln!(out, "{tool} -t filter -F");
        let _ = writeln!(out, "{tool} -t filter -X");
        for line in family_lines(policy, family) {
            let _ = write!(out, "{tool} -t filter ");
            write_rule(&mut out, &line, Quote::Single);
            out.push('\n');
        }
        let d = policy.defaults();
        for chain in Chain::ALL {
            let _ = writeln!(
                out,
                "{tool} -t filter -P {} {}",
                chain.iptables_name(),
                target(d.get(chain))
            );
        }
    }
    out
}

/// The heredoc delimiter. No rendered line can equal it: rule lines start with `-A`,
/// `:`, `*`, `#` or `COMMIT`, and policy text cannot contain a newline.
pub(crate) const EOF_MARK: &str = "VPSFW_END_OF_RULES";

/// The default output: a POSIX sh script, safe to pipe into `sh` as root.
///
/// Both families are tested with `--test` before either is loaded; each is loaded with
/// one restore (atomic per table); if IPv6 fails after IPv4 loaded, the saved IPv4
/// ruleset is put back. Rule text sits in quoted heredocs, so nothing in it is expanded.
pub fn sh(policy: &Policy) -> String {
    let stamp = stamp(policy);
    let count = |f| family_lines(policy, f).len();
    let mut out = String::from("#!/bin/sh\n");
    out.push_str(&header(
        policy,
        "loads the IPv4 and IPv6 filter tables atomically",
    ));
    out.push_str(
        r#"# Both rulesets are checked by the kernel's own parser before either is loaded, each
# is loaded in one transaction, and if IPv6 fails the previous IPv4 ruleset is put
# back. The filter tables are replaced, not appended to: running this twice gives the
# same ruleset as running it once. Needs POSIX sh and the iptables tools, nothing else.
set -u
PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

die() {
    printf 'vpsfw: %s\n' "$*" >&2
    exit 1
}

for tool in iptables-restore ip6tables-restore iptables-save; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found; install the iptables package (nothing was changed)"
done
"#,
    );
    for (family, name) in [(Family::V4, "rules_v4"), (Family::V6, "rules_v6")] {
        let _ = writeln!(out, "\n{name}() {{\n    cat <<'{EOF_MARK}'");
        restore_body(&mut out, policy, family);
        let _ = writeln!(out, "{EOF_MARK}\n}}");
    }
    out.push_str(
        r#"
rules_v4 | iptables-restore -w 10 --test ||
    die "the IPv4 ruleset was refused by iptables-restore (nothing was changed)"
rules_v6 | ip6tables-restore -w 10 --test ||
    die "the IPv6 ruleset was refused by ip6tables-restore (nothing was changed)"

saved_v4=$(iptables-save -t filter) ||
    die "could not save the current IPv4 ruleset (nothing was changed)"
if [ -z "$saved_v4" ]; then
    # No filter table yet: the previous state was "accept everything".
    saved_v4=$(printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT')
fi

rules_v4 | iptables-restore -w 10 ||
    die "loading the IPv4 ruleset failed (nothing was changed)"
if ! rules_v6 | ip6tables-restore -w 10; then
    printf '%s\n' "$saved_v4" | iptables-restore -w 10 ||
        die "loading the IPv6 ruleset failed, and so did putting the previous IPv4 ruleset back: check iptables -S now"
    die "loading the IPv6 ruleset failed; the previous IPv4 ruleset was put back"
fi
"#,
    );
    let _ = writeln!(
        out,
        "printf 'vpsfw: loaded policy {stamp} ({} IPv4 and {} IPv6 rules)\\n' >&2",
        count(Family::V4),
        count(Family::V6)
    );
    out
}

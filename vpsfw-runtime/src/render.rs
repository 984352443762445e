//! Renderers: pure functions from a [`Policy`] to text. One per-rule writer
//! (`write_rule`) serves every format; the formats differ only in framing.
//!
//! Output is written the way `iptables-save` prints it (option order, `/32` on hosts,
//! numeric ports and ICMP types), so the text compares equal to what the kernel reports.

use std::fmt::Write as _;

use crate::model::Policy;
use crate::ruleset::{rendered_lines, LineTarget, Rendered};
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
    /// The `ipset restore` file of the policy's address sets.
    Ipset,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::Sh,
        Format::Commands,
        Format::Restore,
        Format::Restore6,
        Format::Nft,
        Format::NftSh,
        Format::Ipset,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Format::Sh => "sh",
            Format::Commands => "commands",
            Format::Restore => "restore",
            Format::Restore6 => "restore6",
            Format::Nft => "nft",
            Format::NftSh => "nft-sh",
            Format::Ipset => "ipset",
        }
    }
}

/// What part of the kernel's filter table the iptables output owns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Layout {
    /// The whole filter table (the default): a load replaces every rule in it, so the
    /// ruleset is exactly the policy and no rule left by hand can open a hole.
    #[default]
    Table,
    /// Only vpsfw's own chains `vpsfw-INPUT`, `vpsfw-FORWARD` and `vpsfw-OUTPUT`, each
    /// jumped to from the top of its built-in chain and loaded with `--noflush`, so
    /// other tools' rules (Docker, fail2ban, libvirt) survive a reload. A packet no
    /// vpsfw rule decides goes on to those rules, then to the chain policy.
    Chains,
}

impl Layout {
    /// The chain the rules of a built-in chain are written to.
    pub fn chain_name(self, chain: Chain) -> &'static str {
        match (self, chain) {
            (Layout::Table, c) => c.iptables_name(),
            (Layout::Chains, Chain::Input) => "vpsfw-INPUT",
            (Layout::Chains, Chain::Forward) => "vpsfw-FORWARD",
            (Layout::Chains, Chain::Output) => "vpsfw-OUTPUT",
        }
    }
}

/// Renders the policy in one format, owning the whole filter table.
pub fn render(policy: &Policy, format: Format) -> String {
    render_with(policy, format, Layout::Table)
}

/// Renders the policy in one format; `layout` applies to the iptables formats (nft
/// always owns only its own table).
pub fn render_with(policy: &Policy, format: Format, layout: Layout) -> String {
    match format {
        Format::Sh => sh(policy, layout),
        Format::Commands => commands(policy, layout),
        Format::Restore => restore(policy, Family::V4, layout),
        Format::Restore6 => restore(policy, Family::V6, layout),
        Format::Nft => crate::nft::file(policy),
        Format::NftSh => crate::nft::sh(policy),
        Format::Ipset => ipset_file(policy),
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

/// The protocol number of a pair set's elements (`PROTO:PORT`).
pub(crate) fn ipset_proto(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Icmp => 1,
        Protocol::Icmpv6 => 58,
    }
}

fn write_port_list(out: &mut String, ranges: &[PortRange]) {
    for (i, r) in ranges.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{r}");
    }
}

/// Writes a comment or log prefix the way iptables-save does: bare when it is only
/// letters, digits, `_` and `-`, quoted otherwise.
fn quoted(out: &mut String, text: &str, quote: Quote) {
    // A leading `-` is quoted too, so no text can read as an option.
    if !text.is_empty()
        && !text.starts_with('-')
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

/// One line as a restore file (and `iptables-save`) writes it.
#[cfg(feature = "cli")]
pub(crate) fn rule_line(line: &Rendered<'_>, layout: Layout) -> String {
    let mut out = String::new();
    write_rule(&mut out, line, Quote::Double, layout);
    out
}

/// Writes one rule's arguments, from `-A CHAIN` to the target, in iptables-save order.
fn write_rule(out: &mut String, rendered: &Rendered<'_>, quote: Quote, layout: Layout) {
    let line = &rendered.line;
    let dport = rendered.dport.as_deref();
    let rule = line.rule;
    let _ = write!(out, "-A {}", layout.chain_name(rule.chain()));
    let mut sets = Vec::new();
    for (target, flag, dir) in [(line.src, "-s", "src"), (line.dst, "-d", "dst")] {
        match target {
            Some(LineTarget::Net(n)) => {
                let _ = write!(out, " {flag} {n}");
            }
            Some(LineTarget::Set(set)) => sets.push((set.ipset_name(line.family), dir)),
            None => {}
        }
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
    }
    for (name, dir) in &sets {
        let _ = write!(out, " -m set --match-set {name} {dir}");
    }
    if let Some(p) = &rendered.pairs {
        let _ = write!(out, " -m set --match-set {} src,dst", p.name);
    }
    if rule.syn() {
        out.push_str(" -m tcp --tcp-flags FIN,SYN,RST,ACK SYN");
    }
    if let Some(p) = rule.proto() {
        if p.has_ports()
            && (line.sport.is_some_and(|s| s.len() == 1) || dport.is_some_and(|d| d.len() == 1))
        {
            let _ = write!(out, " -m {}", proto_name(p));
            if let Some([one]) = line.sport {
                let _ = write!(out, " --sport {one}");
            }
            if let Some([one]) = dport {
                let _ = write!(out, " --dport {one}");
            }
        }
        for (ports, flag) in [(line.sport, "--sports"), (dport, "--dports")] {
            if let Some(list) = ports.filter(|l| l.len() > 1) {
                let _ = write!(out, " -m multiport {flag} ");
                write_port_list(out, list);
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
    if let Some(o) = rule.over() {
        let l = o.limit;
        let _ = write!(
            out,
            " -m hashlimit --hashlimit-above {}/{} --hashlimit-burst {}",
            l.count(),
            l.unit().iptables(),
            l.burst()
        );
        if o.per_source {
            out.push_str(" --hashlimit-mode srcip");
        }
        let _ = write!(out, " --hashlimit-name {}", o.name);
    }
    match rule.recent() {
        Some(crate::harden::Recent::Listed { seconds }) => {
            let _ = write!(
                out,
                " -m recent --rcheck --seconds {seconds} --name {}",
                crate::harden::SCAN_LIST
            );
        }
        Some(crate::harden::Recent::Add) => {
            let _ = write!(out, " -m recent --set --name {}", crate::harden::SCAN_LIST);
        }
        None => {}
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

/// Every rendered line of a family, chains in the kernel's order (INPUT, FORWARD,
/// OUTPUT): [`rendered_lines`], the one source of what the iptables outputs hold and
/// of how many rules they load.
pub fn family_lines(policy: &Policy, family: Family) -> Vec<Rendered<'_>> {
    Chain::ALL
        .into_iter()
        .flat_map(|c| rendered_lines(policy, family, c))
        .collect()
}

/// The name of the empty chain that carries a policy's stamp into the kernel, so
/// `--diff` can tell "this policy" from "another policy" and "changed by hand since".
/// It holds no rule and nothing jumps to it: it costs no packet anything.
pub fn stamp_chain(stamp: &str) -> String {
    format!("vpsfw-{stamp}")
}

/// Whether a chain name is a stamp chain: `vpsfw-` and 16 lowercase hex digits.
pub fn is_stamp_chain(name: &str) -> bool {
    name.strip_prefix("vpsfw-").is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Both families' rendered lines, worked out once for a whole output.
pub(crate) fn all_lines(policy: &Policy) -> [Vec<Rendered<'_>>; 2] {
    Family::ALL.map(|f| family_lines(policy, f))
}

/// The body of a restore file, `*filter` to `COMMIT`, of lines already worked out
/// ([`family_lines`]). With [`Layout::Chains`] it is meant for `--noflush`: the built-in
/// chains' lines set their policies only, vpsfw's chain lines flush and refill vpsfw's
/// chains. `stamp` adds the stamp chain.
pub(crate) fn restore_body_of(
    out: &mut String,
    policy: &Policy,
    lines: &[Rendered<'_>],
    layout: Layout,
    stamp: Option<&str>,
) {
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
    if layout == Layout::Chains {
        for chain in Chain::ALL {
            let _ = writeln!(out, ":{} - [0:0]", layout.chain_name(chain));
        }
    }
    if let Some(stamp) = stamp {
        let _ = writeln!(out, ":{} - [0:0]", stamp_chain(stamp));
    }
    for line in lines {
        write_rule(out, line, Quote::Double, layout);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
}

/// A short, stable fingerprint of the rendered rulesets (FNV-1a, 64 bits), printed in
/// every output so an admin can tell which policy a server runs.
pub fn stamp(policy: &Policy) -> String {
    match policy.eval_cache.stamp.get() {
        Some(s) => s.clone(),
        None => Worked::new(policy).stamp,
    }
}

/// What every iptables output is written from, worked out once: both families' rendered
/// lines, the sets, and the stamp (which hashes the text they render to).
pub(crate) struct Worked<'p> {
    pub(crate) lines: [Vec<Rendered<'p>>; 2],
    pub(crate) sets: Vec<Ipset>,
    pub(crate) stamp: String,
}

impl<'p> Worked<'p> {
    pub(crate) fn new(policy: &'p Policy) -> Worked<'p> {
        let lines = all_lines(policy);
        let sets = ipsets_of(policy, &lines);
        let stamp = policy
            .eval_cache
            .stamp
            .get_or_init(|| {
                let mut body = String::new();
                for l in &lines {
                    restore_body_of(&mut body, policy, l, Layout::Table, None);
                }
                for set in &sets {
                    ipset_restore_lines(&mut body, set, &set.name);
                }
                format!("{:016x}", crate::ruleset::fnv(body.bytes()))
            })
            .clone();
        Worked { lines, sets, stamp }
    }

    fn header(&self, what: &str) -> String {
        header_of(&self.stamp, what)
    }
}

pub(crate) fn header(policy: &Policy, what: &str) -> String {
    header_of(&stamp(policy), what)
}

fn header_of(stamp: &str, what: &str) -> String {
    format!(
        "# vpsfw {} policy {stamp}: {what}\n",
        env!("CARGO_PKG_VERSION"),
    )
}

/// The `iptables-restore` (IPv4) or `ip6tables-restore` (IPv6) file. With
/// [`Layout::Table`] it replaces the whole filter table; with [`Layout::Chains`] it must
/// be loaded with `--noflush` after vpsfw's chains and jumps exist (the sh output does
/// both). Either way, loading it twice gives the same ruleset as once.
pub fn restore(policy: &Policy, family: Family, layout: Layout) -> String {
    let tool = match (family, layout) {
        (Family::V4, Layout::Table) => "iptables-restore",
        (Family::V6, Layout::Table) => "ip6tables-restore",
        (Family::V4, Layout::Chains) => "iptables-restore --noflush",
        (Family::V6, Layout::Chains) => "ip6tables-restore --noflush",
    };
    let w = Worked::new(policy);
    let mut out = w.header(&format!("{family} filter table, load with {tool}"));
    restore_body_of(
        &mut out,
        policy,
        &w.lines[family as usize],
        layout,
        Some(&w.stamp),
    );
    out
}

/// One command per rule, in the style of the article's listings, for reading or for
/// systems without the restore tools. Not atomic: apply with the `sh` format.
pub fn commands(policy: &Policy, layout: Layout) -> String {
    let Worked { lines, sets, stamp } = Worked::new(policy);
    let mut out = header_of(&stamp, "one command per rule");
    let stamp = stamp_chain(&stamp);
    out.push_str(
        "# Not atomic: while these run the firewall is open. Use the default `sh` format to apply.\n",
    );
    if !sets.is_empty() {
        // The rules name the sets: they must exist (and hold their elements) first.
        let _ = writeln!(out, "\n# address sets\nipset -exist restore <<'{EOF_MARK}'");
        for set in &sets {
            ipset_restore_lines(&mut out, set, &set.name);
        }
        let _ = writeln!(out, "{EOF_MARK}");
    }
    for (family, tool) in [(Family::V4, "iptables"), (Family::V6, "ip6tables")] {
        let _ = writeln!(out, "\n# {family}");
        match layout {
            Layout::Table => {
                for chain in Chain::ALL {
                    let _ = writeln!(out, "{tool} -t filter -P {} ACCEPT", chain.iptables_name());
                }
                let _ = writeln!(out, "{tool} -t filter -F");
                let _ = writeln!(out, "{tool} -t filter -X");
                let _ = writeln!(out, "{tool} -t filter -N {stamp}");
            }
            Layout::Chains => {
                for chain in Chain::ALL {
                    let (own, builtin) = (layout.chain_name(chain), chain.iptables_name());
                    let _ = writeln!(out, "{tool} -t filter -N {own} 2>/dev/null || true");
                    let _ = writeln!(out, "{tool} -t filter -F {own}");
                    let _ = writeln!(
                        out,
                        "{tool} -t filter -C {builtin} -j {own} 2>/dev/null || {tool} -t filter -I {builtin} 1 -j {own}"
                    );
                }
                let _ = writeln!(out, "{tool} -t filter -N {stamp} 2>/dev/null || true");
            }
        }
        for line in &lines[family as usize] {
            let _ = write!(out, "{tool} -t filter ");
            write_rule(&mut out, line, Quote::Single, layout);
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

/// One ipset: its name, type, family word and elements.
pub(crate) struct Ipset {
    pub(crate) name: String,
    /// `hash:net` for a policy's address set, `hash:net,port` for the (source, port)
    /// pairs of a merged run of rules.
    pub(crate) kind: &'static str,
    pub(crate) family: &'static str,
    pub(crate) maxelem: usize,
    pub(crate) elements: Vec<String>,
}

/// The ipsets a policy needs: one per address set and family it has elements in, and
/// the pair sets of long runs of rules, from lines already worked out ([`all_lines`]).
pub(crate) fn ipsets_of(policy: &Policy, lines: &[Vec<Rendered<'_>>; 2]) -> Vec<Ipset> {
    let mut out = Vec::new();
    for set in policy.sets() {
        for f in Family::ALL.into_iter().filter(|f| set.has(*f)) {
            let elements: Vec<String> = match f {
                Family::V4 => set.v4().iter().map(ToString::to_string).collect(),
                Family::V6 => set.v6().iter().map(ToString::to_string).collect(),
            };
            out.push(Ipset {
                name: set.ipset_name(f),
                kind: "hash:net",
                family: if f == Family::V4 { "inet" } else { "inet6" },
                maxelem: elements.len().next_power_of_two().max(65536),
                elements,
            });
        }
    }
    // The pair sets of long runs of rules (see `ruleset::AUTO_SET_MIN`).
    for f in Family::ALL {
        for line in &lines[f as usize] {
            let Some(p) = &line.pairs else { continue };
            // The protocol by number: given by name, `ipset restore` looks it up in
            // /etc/protocols once per element, which doubles the time a large set takes
            // to load (`ipset save` prints the name; `live::canonical_elem` maps both).
            let proto = ipset_proto(p.proto);
            let elements: Vec<String> = p
                .pairs
                .iter()
                .map(|(net, port)| format!("{net},{proto}:{port}"))
                .collect();
            out.push(Ipset {
                name: p.name.clone(),
                kind: "hash:net,port",
                family: if f == Family::V4 { "inet" } else { "inet6" },
                maxelem: elements.len().next_power_of_two().max(65536),
                elements,
            });
        }
    }
    out
}

impl Ipset {
    /// What follows `create NAME` (without `-exist`).
    pub(crate) fn create_args(&self) -> String {
        format!(
            "{} family {} maxelem {}",
            self.kind, self.family, self.maxelem
        )
    }
}

pub(crate) fn ipset_restore_lines(out: &mut String, set: &Ipset, name: &str) {
    let _ = writeln!(
        out,
        "create {name} {} -exist\nflush {name}",
        set.create_args()
    );
    for e in &set.elements {
        let _ = writeln!(out, "add {name} {e}");
    }
}

/// The `ipset restore` file of a policy's sets (its address sets, and the (source,
/// port) pair sets of long runs of rules, see [`crate::ruleset::AUTO_SET_MIN`]), for
/// loading by hand before the restore files (the sh output does this itself, atomically).
pub fn ipset_file(policy: &Policy) -> String {
    let w = Worked::new(policy);
    let mut out = w.header("address sets, load with ipset -exist restore before the rules");
    for set in &w.sets {
        ipset_restore_lines(&mut out, set, &set.name);
    }
    out
}

/// The sh functions that make the sets exist, fill new copies, swap them in (a swap is
/// its own undo) and clean up.
fn write_set_functions(out: &mut String, sets: &[Ipset]) {
    out.push_str(
        "\ncommand -v ipset >/dev/null 2>&1 ||\n    die \"ipset not found; install the ipset package (nothing was changed)\"\n\n# The rules can be tested only once the sets they use exist; a new, empty set\n# changes nothing, as no loaded rule uses it yet.\n",
    );
    for set in sets {
        let _ = writeln!(
            out,
            "ipset list -n {n} >/dev/null 2>&1 || ipset create {n} {} ||\n    die \"could not create the address set {n} (nothing was changed)\"",
            set.create_args(),
            n = set.name
        );
    }
    let _ = writeln!(out, "\nnew_sets() {{\n    cat <<'{EOF_MARK}'");
    for set in sets {
        ipset_restore_lines(out, set, &format!("{}-new", set.name));
    }
    let _ = writeln!(out, "{EOF_MARK}\n}}\n\nswap_sets() {{");
    for (i, set) in sets.iter().enumerate() {
        let and = if i + 1 < sets.len() { " &&" } else { "" };
        let _ = writeln!(out, "    ipset swap {n}-new {n}{and}", n = set.name);
    }
    out.push_str("}\n\ndrop_new_sets() {\n");
    for set in sets {
        let _ = writeln!(out, "    ipset destroy {}-new 2>/dev/null", set.name);
    }
    out.push_str("    return 0\n}\n\n# Sets of earlier policies that no rule uses any more.\nremove_old_sets() {\n    for s in $(ipset list -n); do\n        case $s in\n");
    let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    let _ = writeln!(out, "        {}) ;;", names.join(" | "));
    out.push_str("        vpsfw-*) ipset destroy \"$s\" 2>/dev/null ;;\n        esac\n    done\n    return 0\n}\n");
}

/// The heredoc delimiter. No rendered line can equal it: rule lines start with `-A`,
/// `:`, `*`, `#` or `COMMIT`, and policy text cannot contain a newline.
pub(crate) const EOF_MARK: &str = "VPSFW_END_OF_RULES";

/// The default output: a POSIX sh script, safe to pipe into `sh` as root.
///
/// Both families are tested with `--test` before either is loaded; each is loaded with
/// one restore (atomic per table); if IPv6 fails after IPv4 loaded, the saved IPv4
/// ruleset is put back. Rule text sits in quoted heredocs, so nothing in it is expanded.
/// With [`Layout::Chains`], vpsfw's chains and the jumps to them are created first
/// (empty chains change nothing), then filled with `--noflush`.
pub fn sh(policy: &Policy, layout: Layout) -> String {
    let Worked { lines, sets, stamp } = Worked::new(policy);
    let count = |f: Family| lines[f as usize].len();
    let mut out = String::from("#!/bin/sh\n");
    out.push_str(&header_of(
        &stamp,
        "loads the IPv4 and IPv6 filter tables atomically",
    ));
    out.push_str(
        r#"# Both rulesets are checked by the kernel's own parser before either is loaded, each
# is loaded in one transaction, and if IPv6 fails the previous IPv4 ruleset is put
# back. Loading replaces rules instead of appending: running this twice gives the
# same ruleset as running it once. Needs POSIX sh and the iptables tools, nothing else.
set -u
PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

die() {
    printf 'vpsfw: %s\n' "$*" >&2
    exit 1
}

"#,
    );
    let tools = match layout {
        Layout::Table => "iptables-restore ip6tables-restore iptables-save",
        Layout::Chains => {
            "iptables iptables-restore ip6tables ip6tables-restore iptables-save ip6tables-save sed"
        }
    };
    let _ = write!(
        out,
        r#"for tool in {tools}; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found; install the iptables package (nothing was changed)"
done
"#
    );
    let noflush = match layout {
        Layout::Table => "",
        Layout::Chains => {
            out.push_str(
                "\n# vpsfw owns only its chains: create them and the jumps to them (an empty\n# chain returns at once, so this changes no packet's fate).\n",
            );
            for tool in ["iptables", "ip6tables"] {
                for chain in Chain::ALL {
                    let (own, builtin) = (layout.chain_name(chain), chain.iptables_name());
                    let _ = writeln!(
                        out,
                        "{tool} -w 10 -t filter -N {own} 2>/dev/null\n{tool} -w 10 -t filter -C {builtin} -j {own} 2>/dev/null ||\n    {tool} -w 10 -t filter -I {builtin} 1 -j {own} ||\n    die \"could not add the jump from {builtin} to {own} ({tool})\""
                    );
                }
            }
            " --noflush"
        }
    };
    if !sets.is_empty() {
        write_set_functions(&mut out, &sets);
    }
    for (family, name) in [(Family::V4, "rules_v4"), (Family::V6, "rules_v6")] {
        let _ = writeln!(out, "\n{name}() {{\n    cat <<'{EOF_MARK}'");
        restore_body_of(
            &mut out,
            policy,
            &lines[family as usize],
            layout,
            Some(&stamp),
        );
        let _ = writeln!(out, "{EOF_MARK}\n}}");
    }
    // With sets, every way out after the swap puts the old set contents back.
    let (fill, undo) = if sets.is_empty() {
        (String::new(), "")
    } else {
        (
            "\nnew_sets | ipset -exist restore || {\n    drop_new_sets\n    die \"filling the address sets failed (nothing was changed)\"\n}\nswap_sets || die \"swapping in the new address sets failed: check ipset list\"\n".to_owned(),
            "swap_sets; drop_new_sets; ",
        )
    };
    let _ = write!(
        out,
        r#"
rules_v4 | iptables-restore -w 10{noflush} --test ||
    die "the IPv4 ruleset was refused by iptables-restore (nothing was changed)"
rules_v6 | ip6tables-restore -w 10{noflush} --test ||
    die "the IPv6 ruleset was refused by ip6tables-restore (nothing was changed)"

saved_v4=$(iptables-save -t filter) ||
    die "could not save the current IPv4 ruleset (nothing was changed)"
if [ -z "$saved_v4" ]; then
    # No filter table yet: the previous state was "accept everything".
    saved_v4=$(printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT')
fi
{fill}
rules_v4 | iptables-restore -w 10{noflush} ||
    {{ {undo}die "loading the IPv4 ruleset failed (nothing was changed)"; }}
if ! rules_v6 | ip6tables-restore -w 10{noflush}; then
    printf '%s\n' "$saved_v4" | iptables-restore -w 10 ||
        die "loading the IPv6 ruleset failed, and so did putting the previous IPv4 ruleset back: check iptables -S now"
    {undo}die "loading the IPv6 ruleset failed; the previous IPv4 ruleset was put back"
fi
"#
    );
    if sets.is_empty() {
        // Sets of earlier policies: no rule of this one uses a set.
        out.push_str(
            "if command -v ipset >/dev/null 2>&1; then
    for s in $(ipset list -n 2>/dev/null); do
        case $s in
        vpsfw-*) ipset destroy \"$s\" 2>/dev/null ;;
        esac
    done
fi
",
        );
    } else {
        out.push_str(
            "drop_new_sets
remove_old_sets
",
        );
    }
    if layout == Layout::Chains {
        // With --noflush, the stamp chains of earlier policies stay behind: remove them.
        let _ = write!(
            out,
            r#"for tool in iptables ip6tables; do
    for chain in $("$tool-save" -t filter | sed -n 's/^:\(vpsfw-[0-9a-f]\{{16\}}\) .*/\1/p'); do
        [ "$chain" = {} ] || "$tool" -w 10 -t filter -X "$chain"
    done
done
"#,
            stamp_chain(&stamp)
        );
    }
    let _ = writeln!(
        out,
        "printf 'vpsfw: loaded policy {stamp} ({} IPv4 and {} IPv6 rules)\\n' >&2",
        count(Family::V4),
        count(Family::V6)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{Builder, RuleBuilder};

    /// Text that looks like an option stays an argument: quoted in restore files and
    /// commands, so `-j` in a comment cannot become a target.
    #[test]
    fn option_like_text_is_quoted() {
        let p = Builder::new()
            .rule(RuleBuilder::allow_in().comment("-j").on("lo"))
            .build()
            .unwrap();
        let v4 = render(&p, Format::Restore);
        assert!(v4.contains("--comment \"-j\" -j ACCEPT"), "{v4}");
        let cmds = render(&p, Format::Commands);
        assert!(cmds.contains("--comment '-j' -j ACCEPT"), "{cmds}");
    }
}

//! nftables helpers for kernel tests: check, load and list rulesets inside a [`Lab`]'s
//! namespaces, and read per-rule counters.
//!
//! Every command goes through [`Lab::exec_stdin`], i.e. `ip netns exec <lab namespace>
//! nft ...`: nothing here can touch the host's ruleset.

use std::collections::HashMap;

use super::netns::Lab;

/// How a policy gets into the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The `iptables-restore` / `ip6tables-restore` pair.
    Iptables,
    /// The `nft -f` file (`table inet vpsfw`).
    Nft,
}

/// `nft -c -f -` in `ns`: parse and check `text` against the kernel without loading it.
pub fn check(lab: &Lab, ns: &str, text: &str) -> Result<(), String> {
    lab.exec_stdin(ns, &["nft", "-c", "-f", "-"], Some(text))
        .map(|_| ())
}

/// `nft -f -` in `ns`: load `text` (one transaction).
pub fn load(lab: &Lab, ns: &str, text: &str) -> Result<(), String> {
    lab.exec_stdin(ns, &["nft", "-f", "-"], Some(text))
        .map(|_| ())
}

/// `nft -s list ruleset` in `ns`: the whole ruleset without counter values (stateless).
pub fn ruleset_stateless(lab: &Lab, ns: &str) -> Result<String, String> {
    let out = lab.exec(ns, &["nft", "-s", "list", "ruleset"])?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The tables of `ns`, as `family name` (`inet vpsfw`), in listing order.
pub fn tables(lab: &Lab, ns: &str) -> Result<Vec<String>, String> {
    let out = lab.exec(ns, &["nft", "list", "tables"])?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table "))
        .map(str::to_owned)
        .collect())
}

/// Per-rule packet counters of every chain of every table in `ns`, from one `nft list
/// ruleset`: key `(table, chain)`, the rules' packet counts in rule order (`None` for a
/// rule without a `counter`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters(HashMap<(String, String), Vec<Option<u64>>>);

impl Counters {
    /// The rules of `table`'s `chain` (empty if there is no such chain or no rule).
    pub fn chain(&self, table: &str, chain: &str) -> &[Option<u64>] {
        self.0
            .get(&(table.to_owned(), chain.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// The packets counted by all the rules of `table`'s `chain`.
    pub fn total(&self, table: &str, chain: &str) -> u64 {
        self.chain(table, chain).iter().flatten().sum()
    }
}

/// Reads [`Counters`] in `ns`.
///
/// The text form, not `nft -j`: with a few hundred rules, building a JSON tree in a debug
/// build costs as much as the listing itself, and the differential test reads the
/// counters once per packet.
pub fn counters(lab: &Lab, ns: &str) -> Result<Counters, String> {
    let out = lab.exec(ns, &["nft", "list", "ruleset"])?;
    parse_counters(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `nft list ruleset`: `table FAMILY NAME {` blocks holding `chain NAME {` blocks
/// (and others: sets, maps, ..., skipped by counting braces), one rule a line, its counter
/// written `counter packets N bytes M` before any trailing `comment "..."`.
fn parse_counters(text: &str) -> Result<Counters, String> {
    let mut map: HashMap<(String, String), Vec<Option<u64>>> = HashMap::new();
    let mut depth = 0usize;
    let mut table = String::new();
    let mut chain: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        let opens = t.matches('{').count();
        let closes = t.matches('}').count();
        match depth {
            0 => {
                if let Some(rest) = t.strip_prefix("table ") {
                    // `table inet vpsfw {`: the name is the last word before the brace.
                    let head = rest.trim_end_matches('{').trim_end();
                    table = head.rsplit(' ').next().unwrap_or(head).to_owned();
                }
            }
            1 => {
                chain = t
                    .strip_prefix("chain ")
                    .map(|rest| rest.trim_end_matches('{').trim_end().to_owned());
                if let Some(c) = &chain {
                    map.entry((table.clone(), c.clone())).or_default();
                }
            }
            2 => {
                if let Some(c) = &chain {
                    let declaration = ["type ", "policy ", "comment ", "devices "]
                        .iter()
                        .any(|d| t.starts_with(d));
                    if !t.is_empty() && t != "}" && !declaration {
                        map.entry((table.clone(), c.clone()))
                            .or_default()
                            .push(rule_packets(t)?);
                    }
                }
            }
            _ => {}
        }
        depth = (depth + opens)
            .checked_sub(closes)
            .ok_or_else(|| format!("nft list ruleset: unbalanced braces at {line:?}"))?;
    }
    if depth != 0 {
        return Err("nft list ruleset: unbalanced braces at the end".to_owned());
    }
    Ok(Counters(map))
}

/// The packet count of one rule line, `None` if it has no counter.
fn rule_packets(rule: &str) -> Result<Option<u64>, String> {
    let body = rule.split(" comment \"").next().unwrap_or(rule);
    let Some((_, rest)) = body.split_once("counter packets ") else {
        return Ok(None);
    };
    rest.split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or_else(|| format!("nft list ruleset: unreadable counter in {rule:?}"))
}

/// Checks [`parse_counters`] on a listing with the shapes it must handle: two tables,
/// anonymous sets in rules, a multi-line named set, a rule without a counter, a comment
/// that looks like a counter.
pub fn parser_self_test() -> Result<(), String> {
    let text = "\
table inet vpsfw {
\tset admins {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 192.0.2.0/24,
\t\t\t     198.51.100.0/24 }
\t}

\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\ttcp dport { 80, 443 } ct state { new } counter packets 3 bytes 180 accept comment \"web\"
\t\tiifname \"lo\" accept comment \"counter packets 9 bytes 9\"
\t\tip saddr @admins counter packets 0 bytes 0 drop
\t}

\tchain output {
\t\ttype filter hook output priority filter; policy accept;
\t}
}
table inet vpsfwtest {
\tchain input_before {
\t\ttype filter hook input priority filter - 10; policy accept;
\t\tiifname \"eth0\" meta l4proto { tcp, udp } counter packets 12 bytes 700
\t}
}
";
    let c = parse_counters(text)?;
    let checks: [(&str, &str, &[Option<u64>]); 4] = [
        ("vpsfw", "input", &[Some(3), None, Some(0)]),
        ("vpsfw", "output", &[]),
        ("vpsfw", "forward", &[]),
        ("vpsfwtest", "input_before", &[Some(12)]),
    ];
    for (table, chain, want) in checks {
        if c.chain(table, chain) != want {
            return Err(format!(
                "{table}/{chain}: parsed {:?}, expected {want:?} (all: {c:?})",
                c.chain(table, chain)
            ));
        }
    }
    if c.total("vpsfw", "input") != 3 {
        return Err(format!("total of vpsfw/input is not 3: {c:?}"));
    }
    Ok(())
}

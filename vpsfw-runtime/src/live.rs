//! The firewall the kernel holds now: reading it, comparing it with a policy, loading a
//! policy into it, and putting a saved state back.
//!
//! Every tool is run directly (no shell), with the policy's text on its stdin; nothing a
//! policy contains reaches a command line. The iptables side is compared as
//! `iptables-save` prints it, which is how the renderers write it. The nft side is
//! compared as `nft list table` prints it: the policy's file is loaded into a scratch
//! network namespace (`unshare --net`) and listed back, so both sides are in the
//! kernel's own words.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::process::{Command, Stdio};

use ipnet::IpNet;

use crate::model::Policy;
use crate::render::{self, Layout};
use crate::value::{Chain, Family};

/// Which kernel interface vpsfw manages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Backend {
    /// iptables-restore / ip6tables-restore, with ipset for address sets.
    #[default]
    Iptables,
    /// One nft transaction for table inet vpsfw.
    Nft,
}

/// What vpsfw owns in the kernel: the backend, and for iptables the layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Managed {
    pub backend: Backend,
    pub layout: Layout,
}

/// A failure talking to the kernel's tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl Error {
    pub(crate) fn new(text: impl Into<String>) -> Error {
        Error(text.into())
    }
}

/// The search path for the tools: the caller's, then the sbin directories `sudo` and
/// cron often leave out.
fn search_path() -> String {
    let mut path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    path.push_str(":/usr/local/sbin:/usr/sbin:/sbin");
    path
}

/// Runs a tool, `input` on its stdin; its stdout, or an error carrying its stderr.
pub(crate) fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, Error> {
    let shown = || {
        let mut s = program.to_owned();
        for a in args {
            s.push(' ');
            s.push_str(a);
        }
        s
    };
    let mut child = Command::new(program)
        .args(args)
        .env("PATH", search_path())
        .env("LC_ALL", "C")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error(format!("{program} not found: {}", install_hint(program)))
            } else {
                Error(format!("cannot run {}: {e}", shown()))
            }
        })?;
    // Write stdin from another thread: a tool may fill its stdout pipe before it has
    // read all of its input.
    let writer = match (input, child.stdin.take()) {
        (Some(text), Some(mut stdin)) => {
            let text = text.to_owned();
            Some(std::thread::spawn(move || stdin.write_all(text.as_bytes())))
        }
        _ => None,
    };
    let out = child
        .wait_with_output()
        .map_err(|e| Error(format!("cannot run {}: {e}", shown())))?;
    let wrote = writer.map(|w| w.join());
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        return Err(Error(format!(
            "{} failed ({}){}{}",
            shown(),
            out.status,
            if err.is_empty() { "" } else { ": " },
            err
        )));
    }
    match wrote {
        Some(Ok(Err(e))) => return Err(Error(format!("cannot write to {}: {e}", shown()))),
        Some(Err(_)) => return Err(Error(format!("cannot write to {}", shown()))),
        _ => {}
    }
    String::from_utf8(out.stdout).map_err(|_| Error(format!("{} printed non-UTF-8 text", shown())))
}

fn install_hint(program: &str) -> &'static str {
    match program {
        "nft" => "install the nftables package",
        "ipset" => "install the ipset package",
        "unshare" => "install the util-linux package",
        _ => "install the iptables package",
    }
}

/// Runs closures on their own threads and waits for all of them.
pub(crate) fn parallel<T: Send>(jobs: Vec<Box<dyn FnOnce() -> T + Send + '_>>) -> Vec<T> {
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs.into_iter().map(|j| s.spawn(j)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

pub(crate) fn save_tool(f: Family) -> &'static str {
    match f {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    }
}

pub(crate) fn restore_tool(f: Family) -> &'static str {
    match f {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    }
}

/// A filter table with nothing in it: what a kernel without rules does.
pub(crate) const EMPTY_FILTER: &str =
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

/// One family's filter table as `iptables-save` prints it, counters left out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    /// Chains in the order printed, with their policy (`-` for user chains).
    pub(crate) chains: Vec<(String, String)>,
    /// `-A ...` lines in the order printed.
    pub(crate) rules: Vec<String>,
}

impl Table {
    pub(crate) fn parse(text: &str) -> Table {
        let mut t = Table::default();
        let mut in_filter = false;
        for line in text.lines().map(str::trim_end) {
            if line.starts_with('*') {
                in_filter = line == "*filter";
                continue;
            }
            if !in_filter || line.is_empty() || line.starts_with('#') || line == "COMMIT" {
                continue;
            }
            if let Some(decl) = line.strip_prefix(':') {
                let mut words = decl.split_whitespace();
                let name = words.next().unwrap_or_default().to_owned();
                let policy = words.next().unwrap_or("-").to_owned();
                t.chains.push((name, policy));
            } else {
                // `iptables-save -c` puts `[packets:bytes]` before each rule.
                let rule = match line.strip_prefix('[') {
                    Some(rest) => rest.split_once("] ").map_or(line, |(_, r)| r),
                    None => line,
                };
                t.rules.push(rule.to_owned());
            }
        }
        t
    }

    /// The stamp chains present: the stamps of the policies loaded.
    pub(crate) fn stamps(&self) -> Vec<String> {
        self.chains
            .iter()
            .filter(|(n, _)| render::is_stamp_chain(n))
            .map(|(n, _)| n["vpsfw-".len()..].to_owned())
            .collect()
    }

    /// Whether `chain` jumps to `target` anywhere.
    pub(crate) fn jumps(&self, chain: &str, target: &str) -> bool {
        let want = format!("-A {chain} -j {target}");
        self.rules.contains(&want)
    }

    /// The lines that matter for comparing with a policy, in a canonical order: chain
    /// declarations (built-ins first), then each chain's rules in order. With
    /// [`Layout::Chains`] only vpsfw's chains, the built-ins' policies and the jumps
    /// to vpsfw's chains count. Stamp chains are left out (they are compared apart).
    pub(crate) fn view(&self, layout: Layout) -> Vec<String> {
        let builtin = |n: &str| Chain::ALL.iter().position(|c| c.iptables_name() == n);
        let ours = |n: &str| match layout {
            Layout::Table => !render::is_stamp_chain(n),
            Layout::Chains => {
                builtin(n).is_some() || Chain::ALL.iter().any(|c| layout.chain_name(*c) == n)
            }
        };
        let mut chains: Vec<&(String, String)> =
            self.chains.iter().filter(|(n, _)| ours(n)).collect();
        chains.sort_by(|a, b| {
            (builtin(&a.0).unwrap_or(usize::MAX), &a.0)
                .cmp(&(builtin(&b.0).unwrap_or(usize::MAX), &b.0))
        });
        let mut out: Vec<String> = chains.iter().map(|(n, p)| format!(":{n} {p}")).collect();
        for (name, _) in chains {
            let prefix = format!("-A {name} ");
            let rules = self.rules.iter().filter(|r| r.starts_with(&prefix));
            match (layout, builtin(name)) {
                (Layout::Chains, Some(i)) => {
                    let own = layout.chain_name(Chain::ALL[i]);
                    if self.jumps(name, own) {
                        out.push(format!("-A {name} -j {own}"));
                    }
                }
                _ => out.extend(rules.cloned()),
            }
        }
        out
    }
}

/// What a rendered line stands for, for people: the rule it comes from, or for merged
/// lines the first rule, how many more, and where they are (policy lines and groups).
pub(crate) fn describe_all(policy: &Policy, origins: &[usize]) -> String {
    let rules: Vec<&crate::model::Rule> = origins
        .iter()
        .filter_map(|i| policy.rules().get(*i))
        .collect();
    let [first, rest @ ..] = rules.as_slice() else {
        return String::new();
    };
    if rest.is_empty() {
        return describe(first);
    }
    let mut s = first.text();
    let _ = write!(s, "  (and {} more rules", rest.len());
    let lines: Vec<u32> = rules.iter().filter_map(|r| r.line()).collect();
    if !lines.is_empty() {
        let shown: Vec<String> = if lines.len() <= 6 {
            lines.iter().map(u32::to_string).collect()
        } else {
            let mut v: Vec<String> = lines[..3].iter().map(u32::to_string).collect();
            v.push(format!("... {}", lines[lines.len() - 1]));
            v
        };
        let _ = write!(s, ": lines {}", shown.join(", "));
    }
    let mut groups: Vec<String> = Vec::new();
    for g in rules.iter().filter_map(|r| r.group()) {
        let g = g.to_string();
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    match groups.as_slice() {
        [] => {}
        [g] => {
            let _ = write!(s, ", group {g}");
        }
        many => {
            let _ = write!(s, ", groups {}", many.join(", "));
        }
    }
    if lines.is_empty() {
        if let crate::model::Origin::Implicit { why } = first.origin() {
            let _ = write!(s, "; vpsfw: {why}");
        }
    }
    s.push(')');
    s
}

/// What a line of a policy's ruleset stands for, for people.
fn describe(rule: &crate::model::Rule) -> String {
    let mut s = rule.text();
    if let Some(line) = rule.line() {
        let _ = write!(s, "  (line {line}");
        if let Some(g) = rule.group() {
            let _ = write!(s, ", group {g}");
        }
        s.push(')');
    } else if let crate::model::Origin::Implicit { why } = rule.origin() {
        let _ = write!(s, "  (vpsfw: {why})");
    }
    s
}

/// One difference between the live firewall and the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// In the policy, not live: loading would add it.
    Add { line: String, rule: Option<String> },
    /// Live, not in the policy: loading would remove it.
    Remove { line: String, rule: Option<String> },
}

/// The differences in one part of the firewall (a family's table, a set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub changes: Vec<Change>,
}

/// How the live firewall compares with a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// The policy's stamp.
    pub stamp: String,
    /// The stamps found live (none: not loaded by vpsfw; several: a stale leftover).
    pub live_stamps: Vec<String>,
    pub sections: Vec<Section>,
}

impl Diff {
    /// True when loading the policy would change nothing.
    pub fn is_unchanged(&self) -> bool {
        self.sections.iter().all(|s| s.changes.is_empty())
            && self.live_stamps == [self.stamp.clone()]
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules_equal = self.sections.iter().all(|s| s.changes.is_empty());
        let live = match self.live_stamps.as_slice() {
            [] => "no vpsfw policy is loaded".to_owned(),
            [one] if *one == self.stamp && rules_equal => {
                return writeln!(f, "unchanged: policy {} is loaded as it is", self.stamp)
            }
            [one] if *one == self.stamp => format!(
                "policy {} is loaded, but the rules were changed by hand since",
                self.stamp
            ),
            [one] => format!("policy {one} is loaded, not this one ({})", self.stamp),
            many => format!("stamps of several policies are loaded: {}", many.join(", ")),
        };
        writeln!(f, "differs: {live}")?;
        if rules_equal {
            writeln!(
                f,
                "(the rules are the same; loading would only update the stamp)"
            )?;
        }
        for s in self.sections.iter().filter(|s| !s.changes.is_empty()) {
            writeln!(f, "\n{}:", s.title)?;
            for c in &s.changes {
                let (sign, line, rule) = match c {
                    Change::Add { line, rule } => ('+', line, rule),
                    Change::Remove { line, rule } => ('-', line, rule),
                };
                match rule {
                    Some(r) => writeln!(f, "{sign} {r}\n      {line}")?,
                    None => writeln!(f, "{sign} {line}")?,
                }
            }
        }
        Ok(())
    }
}

/// Line-level changes from `live` to `want`; `rules` names the wanted lines' rules.
fn changes(live: &[String], want: &[String], rules: &BTreeMap<String, String>) -> Vec<Change> {
    let live: Vec<&str> = live.iter().map(String::as_str).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, &live, &want);
    let mut out = Vec::new();
    for op in ops {
        for change in op.iter_changes(&live, &want) {
            let line = change.value().to_owned();
            let rule = rules.get(&line).cloned();
            match change.tag() {
                similar::ChangeTag::Equal => {}
                similar::ChangeTag::Delete => out.push(Change::Remove { line, rule }),
                similar::ChangeTag::Insert => out.push(Change::Add { line, rule }),
            }
        }
    }
    out
}

/// The iptables side of a policy: the tables it wants and what each line stands for.
pub(crate) struct Wanted<'p> {
    policy: &'p Policy,
    layout: Layout,
    pub(crate) stamp: String,
    /// The restore text per family, with the stamp chain.
    pub(crate) restore: [String; 2],
    /// The restore texts parsed; worked out only when compared line by line.
    tables: std::sync::OnceLock<[Table; 2]>,
    /// What each rendered line stands for; worked out only when a diff is shown.
    rules: std::sync::OnceLock<BTreeMap<String, String>>,
    pub(crate) sets: Vec<render::Ipset>,
}

impl<'p> Wanted<'p> {
    pub(crate) fn new(policy: &'p Policy, layout: Layout) -> Wanted<'p> {
        let render::Worked { lines, sets, stamp } = render::Worked::new(policy);
        let restore = Family::ALL.map(|f| {
            let mut body = String::new();
            render::restore_body_of(&mut body, policy, &lines[f as usize], layout, Some(&stamp));
            body
        });
        Wanted {
            policy,
            layout,
            stamp,
            restore,
            tables: std::sync::OnceLock::new(),
            rules: std::sync::OnceLock::new(),
            sets,
        }
    }

    /// The wanted tables, with the jumps to vpsfw's chains under [`Layout::Chains`].
    pub(crate) fn tables(&self) -> &[Table; 2] {
        self.tables.get_or_init(|| {
            Family::ALL.map(|f| {
                let mut t = Table::parse(&self.restore[f as usize]);
                if self.layout == Layout::Chains {
                    for c in Chain::ALL {
                        let (b, own) = (c.iptables_name(), self.layout.chain_name(c));
                        t.rules.push(format!("-A {b} -j {own}"));
                    }
                }
                t
            })
        })
    }

    /// Rendered line to the policy rule it comes from, in words.
    pub(crate) fn rules(&self) -> &BTreeMap<String, String> {
        self.rules.get_or_init(|| {
            let mut rules = BTreeMap::new();
            for f in Family::ALL {
                for line in render::family_lines(self.policy, f) {
                    rules
                        .entry(render::rule_line(&line, self.layout))
                        .or_insert_with(|| describe_all(self.policy, &line.origins));
                }
            }
            rules
        })
    }
}

/// The live iptables state vpsfw compares with and can restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesState {
    /// `iptables-save -c -t filter` and `ip6tables-save -c -t filter` (an empty filter
    /// table when the kernel has none).
    pub saved: [String; 2],
    /// `ipset save` lines of vpsfw's sets (`vpsfw-*`).
    pub ipsets: String,
    /// vpsfw's live sets whose contents were not read (not in `ipsets`): a restore
    /// leaves them as they are. Empty after [`IptablesState::read`].
    pub other_sets: Vec<String>,
}

impl IptablesState {
    /// Reads both families and vpsfw's sets, in parallel.
    pub fn read() -> Result<IptablesState, Error> {
        let ([v4, v6], ipsets) = read_tables_and(read_ipsets)?;
        Ok(IptablesState {
            saved: [v4, v6],
            ipsets,
            other_sets: Vec::new(),
        })
    }

    /// Both families and the names of vpsfw's sets, in parallel, without the sets'
    /// contents: `ipset save` prints a large set slowly (it looks every element's
    /// protocol up in /etc/protocols), so an apply reads only the contents it needs
    /// ([`IptablesState::read_sets`]).
    pub(crate) fn read_names() -> Result<IptablesState, Error> {
        let (saved, names) = read_tables_and(|| {
            Ok(read_set_names()?
                .into_iter()
                .filter(|n| !n.ends_with("-new"))
                .map(|n| n + "\n")
                .collect())
        })?;
        Ok(IptablesState {
            saved,
            ipsets: String::new(),
            other_sets: names.lines().map(str::to_owned).collect(),
        })
    }

    /// Reads the contents of those `names` whose contents were not read yet, in
    /// parallel.
    pub(crate) fn read_sets<'n>(
        &mut self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<(), Error> {
        let wanted: Vec<String> = names
            .into_iter()
            .filter(|n| self.other_sets.iter().any(|o| o == n))
            .map(str::to_owned)
            .collect();
        self.ipsets.push_str(&save_sets(&wanted)?);
        self.other_sets.retain(|o| !wanted.contains(o));
        Ok(())
    }

    /// The names of vpsfw's live sets, whether their contents were read or not.
    pub(crate) fn set_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.sets().into_keys().collect();
        names.extend(self.other_sets.iter().cloned());
        names
    }

    pub(crate) fn tables(&self) -> [Table; 2] {
        [Table::parse(&self.saved[0]), Table::parse(&self.saved[1])]
    }

    /// Live vpsfw sets: name to elements, each in [`canonical_elem`] form.
    pub(crate) fn sets(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in self.ipsets.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("create"), Some(name), _) => {
                    out.entry(name.to_owned()).or_default();
                }
                (Some("add"), Some(name), Some(elem)) => {
                    if let Some(e) = canonical_elem(elem) {
                        out.entry(name.to_owned()).or_default().insert(e);
                    }
                }
                _ => {}
            }
        }
        out
    }
}

fn parse_elem(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

/// A set element as vpsfw writes it and as `ipset save` prints it, in one form: the
/// network with its prefix (`ipset save` leaves `/32` out), then for `hash:net,port`
/// `,proto:port` with the protocol by name (vpsfw writes its number, `ipset save`
/// prints the name).
fn canonical_elem(text: &str) -> Option<String> {
    match text.split_once(',') {
        Some((net, rest)) => {
            let rest = rest.to_ascii_lowercase();
            let rest = match rest.split_once(':') {
                Some(("6", port)) => format!("tcp:{port}"),
                Some(("17", port)) => format!("udp:{port}"),
                _ => rest,
            };
            Some(format!("{},{rest}", parse_elem(net)?))
        }
        None => parse_elem(text).map(|n| n.to_string()),
    }
}

fn read_table(f: Family) -> Result<String, Error> {
    let text = run(save_tool(f), &["-c", "-t", "filter"], None)?;
    Ok(if text.contains("*filter") {
        text
    } else {
        EMPTY_FILTER.to_owned()
    })
}

/// Both families' filter tables and what `sets` reads, in parallel.
fn read_tables_and(
    sets: impl FnOnce() -> Result<String, Error> + Send + 'static,
) -> Result<([String; 2], String), Error> {
    let jobs: Vec<Box<dyn FnOnce() -> Result<String, Error> + Send>> = vec![
        Box::new(|| read_table(Family::V4)),
        Box::new(|| read_table(Family::V6)),
        Box::new(sets),
    ];
    let mut results = parallel(jobs).into_iter();
    let mut next = || {
        results
            .next()
            .unwrap_or_else(|| Err(Error::new("missing result")))
    };
    Ok(([next()?, next()?], next()?))
}

/// `ipset save NAME` of each of `names`, in parallel.
pub(crate) fn save_sets(names: &[String]) -> Result<String, Error> {
    let jobs: Vec<Box<dyn FnOnce() -> Result<String, Error> + Send + '_>> = names
        .iter()
        .map(
            |name| -> Box<dyn FnOnce() -> Result<String, Error> + Send + '_> {
                Box::new(move || run("ipset", &["save", name], None))
            },
        )
        .collect();
    parallel(jobs).into_iter().collect()
}

/// The names of vpsfw's live sets (`vpsfw-*`, the temporary `NAME-new` an apply fills
/// included); none when ipset is not installed.
pub(crate) fn read_set_names() -> Result<Vec<String>, Error> {
    match run("ipset", &["list", "-n"], None) {
        Ok(t) => Ok(t
            .lines()
            .filter(|n| n.starts_with("vpsfw-"))
            .map(str::to_owned)
            .collect()),
        Err(e) if e.0.contains("not found") => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `ipset save` lines of vpsfw's sets; nothing when ipset is not installed.
fn read_ipsets() -> Result<String, Error> {
    let text = match run("ipset", &["save"], None) {
        Ok(t) => t,
        Err(e) if e.0.contains("not found") => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let mut out = String::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(_), Some(name)) = (words.next(), words.next()) {
            // `NAME-new`: the temporary copy an apply is filling, not live.
            if name.starts_with("vpsfw-") && !name.ends_with("-new") {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

/// Compares the live iptables state with a policy.
pub(crate) fn diff_iptables(live: &IptablesState, want: &Wanted, layout: Layout) -> Diff {
    let tables = live.tables();
    let mut sections = Vec::new();
    let mut stamps = BTreeSet::new();
    for f in Family::ALL {
        let t = &tables[f as usize];
        stamps.extend(t.stamps());
        sections.push(Section {
            title: format!("{f} filter table"),
            changes: changes(
                &t.view(layout),
                &want.tables()[f as usize].view(layout),
                want.rules(),
            ),
        });
    }
    let live_sets = live.sets();
    for set in &want.sets {
        let wanted: BTreeSet<String> = set
            .elements
            .iter()
            .filter_map(|e| canonical_elem(e))
            .collect();
        let title = format!("address set {}", set.name);
        let changes = match live_sets.get(&set.name) {
            None => vec![Change::Add {
                line: format!("create {} ({} elements)", set.name, wanted.len()),
                rule: None,
            }],
            Some(have) => element_changes(have, &wanted),
        };
        sections.push(Section { title, changes });
    }
    if layout == Layout::Table {
        let stale: Vec<Change> = live_sets
            .iter()
            .filter(|(name, _)| !want.sets.iter().any(|s| s.name == **name))
            .map(|(name, have)| Change::Remove {
                line: format!("destroy {name} ({} elements)", have.len()),
                rule: None,
            })
            .collect();
        sections.push(Section {
            title: "address sets no rule uses".into(),
            changes: stale,
        });
    }
    // One stamp per family when loaded; the two agree unless loaded by hand.
    Diff {
        stamp: want.stamp.clone(),
        live_stamps: stamps.into_iter().collect(),
        sections,
    }
}

/// Whether loading would change nothing: [`diff_iptables`] without working out what
/// differs (the stamp is compared first, then the lines, then the sets).
pub(crate) fn iptables_unchanged(live: &IptablesState, want: &Wanted, layout: Layout) -> bool {
    let tables = live.tables();
    let stamped = Family::ALL
        .into_iter()
        .all(|f| tables[f as usize].stamps() == [want.stamp.clone()]);
    if !stamped {
        return false;
    }
    let same_rules = Family::ALL
        .into_iter()
        .all(|f| tables[f as usize].view(layout) == want.tables()[f as usize].view(layout));
    if !same_rules {
        return false;
    }
    let live_sets = live.sets();
    let sets_match = want.sets.iter().all(|set| set_is_live(&live_sets, set));
    // Without --own-chains a load also removes the sets of earlier policies.
    let no_stale = layout == Layout::Chains
        || live
            .set_names()
            .iter()
            .all(|name| want.sets.iter().any(|s| s.name == *name));
    sets_match && no_stale
}

/// Whether the live sets ([`IptablesState::sets`]) hold `set` with exactly its elements.
pub(crate) fn set_is_live(
    live_sets: &BTreeMap<String, BTreeSet<String>>,
    set: &render::Ipset,
) -> bool {
    let wanted: BTreeSet<String> = set
        .elements
        .iter()
        .filter_map(|e| canonical_elem(e))
        .collect();
    live_sets.get(&set.name) == Some(&wanted)
}

/// Element changes of a set, at most ten shown each way.
fn element_changes(have: &BTreeSet<String>, want: &BTreeSet<String>) -> Vec<Change> {
    let mut out = Vec::new();
    for (side, add) in [
        (want.difference(have), true),
        (have.difference(want), false),
    ] {
        let all: Vec<&String> = side.collect();
        for net in all.iter().take(10) {
            let line = format!("element {net}");
            out.push(if add {
                Change::Add { line, rule: None }
            } else {
                Change::Remove { line, rule: None }
            });
        }
        if all.len() > 10 {
            let line = format!("... and {} more elements", all.len() - 10);
            out.push(if add {
                Change::Add { line, rule: None }
            } else {
                Change::Remove { line, rule: None }
            });
        }
    }
    out
}

/// `nft list table inet vpsfw` as loaded, or `None` when there is no such table.
pub fn read_nft() -> Result<Option<String>, Error> {
    match run("nft", &["list", "table", "inet", crate::nft::TABLE], None) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.0.contains("No such file or directory") => Ok(None),
        Err(e) => Err(e),
    }
}

/// An nft listing without what traffic changes: the elements of dynamic sets (rate
/// buckets, the port-scan list) and the counters' counts. For comparing.
pub(crate) fn nft_static(listing: &str) -> String {
    let mut out = String::new();
    for line in without_dynamic_elements(listing).lines() {
        push_without_counts(&mut out, line);
        out.push('\n');
    }
    out
}

/// An nft listing without the elements of dynamic sets, which carry expiry times that
/// cannot be loaded back. For saving and restoring (the counters stay).
pub(crate) fn without_dynamic_elements(listing: &str) -> String {
    let mut out = String::new();
    let mut dynamic = false;
    let mut skipping = false;
    for line in listing.lines() {
        let t = line.trim();
        if skipping {
            if t.ends_with('}') {
                skipping = false;
            }
            continue;
        }
        if t.starts_with("set ") || t.starts_with("map ") {
            dynamic = false;
        }
        if t.starts_with("flags ") && t.contains("dynamic") {
            dynamic = true;
        }
        if dynamic && t.starts_with("elements = {") {
            skipping = !t.ends_with('}');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Appends a listing line with every `counter packets N bytes M` reduced to `counter`.
fn push_without_counts(out: &mut String, line: &str) {
    let mut rest = line;
    while let Some(at) = rest.find("counter packets ") {
        out.push_str(&rest[..at + "counter".len()]);
        let after = &rest[at + "counter packets ".len()..];
        // Skip "N bytes M".
        let mut words = after.splitn(4, ' ');
        let (_, bytes, _) = (words.next(), words.next(), words.next());
        if bytes != Some("bytes") {
            out.push_str(" packets ");
            rest = after;
            continue;
        }
        rest = words.next().map_or("", |r| r);
        if !rest.is_empty() {
            out.push(' ');
        }
    }
    out.push_str(rest);
}

/// The stamp in an nft listing's table comment.
fn nft_stamp(listing: &str) -> Option<String> {
    listing.lines().find_map(|l| {
        l.trim()
            .strip_prefix("comment \"vpsfw ")
            .and_then(|r| r.strip_suffix('"'))
            .map(str::to_owned)
    })
}

/// The policy's table as the kernel lists it: loaded into a scratch network namespace
/// and listed back.
pub fn nft_canonical(policy: &Policy) -> Result<String, Error> {
    let file = crate::nft::file(policy);
    run(
        "unshare",
        &[
            "--net",
            "--",
            "sh",
            "-c",
            "nft -f - && nft list table inet vpsfw",
        ],
        Some(&file),
    )
    .map(|t| nft_static(&t))
    .map_err(|e| {
        Error(format!(
            "cannot list the policy's nft table in a scratch network namespace: {e}"
        ))
    })
}

/// Compares the live nft table with the policy's.
pub(crate) fn diff_nft(live: Option<&str>, policy: &Policy) -> Result<Diff, Error> {
    let stamp = render::stamp(policy);
    let want = nft_canonical(policy)?;
    let live_text = live.map(nft_static).unwrap_or_default();
    let lines = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty() && !l.starts_with("comment \"vpsfw "))
            .collect()
    };
    let (live_lines, want_lines) = (lines(&live_text), lines(&want));
    // Name each wanted rule line by its chain and position. A rule whose set nft lists
    // over several lines (a long pair set) is named on its first line.
    let mut rules = BTreeMap::new();
    let mut chain: Option<Chain> = None;
    let mut chain_rules = Vec::new();
    let mut pos = 0;
    let mut in_rules = false;
    let mut open = 0i64;
    let depth = |l: &str| l.matches('{').count() as i64 - l.matches('}').count() as i64;
    for l in &want_lines {
        if open > 0 {
            open += depth(l);
            continue;
        }
        if let Some(name) = l.strip_prefix("chain ").and_then(|r| r.strip_suffix(" {")) {
            chain = Chain::ALL
                .into_iter()
                .find(|c| c.iptables_name().eq_ignore_ascii_case(name));
            chain_rules = chain.map_or_else(Vec::new, |c| crate::nft::chain_rules(policy, c));
            pos = 0;
            in_rules = false;
        } else if l.starts_with("type filter hook") {
            in_rules = true;
        } else if l == "}" {
            in_rules = false;
        } else if in_rules && chain.is_some() {
            if let Some(r) = chain_rules.get(pos) {
                rules
                    .entry(l.clone())
                    .or_insert_with(|| describe_all(policy, &r.origins));
            }
            pos += 1;
            open = depth(l);
        }
    }
    Ok(Diff {
        stamp,
        live_stamps: live.and_then(nft_stamp).into_iter().collect(),
        sections: vec![Section {
            title: "table inet vpsfw".into(),
            changes: changes(&live_lines, &want_lines, &rules),
        }],
    })
}

/// Compares the live firewall with a policy.
pub fn diff(policy: &Policy, managed: Managed) -> Result<Diff, Error> {
    match managed.backend {
        Backend::Iptables => {
            let live = IptablesState::read()?;
            Ok(diff_iptables(
                &live,
                &Wanted::new(policy, managed.layout),
                managed.layout,
            ))
        }
        Backend::Nft => diff_nft(read_nft()?.as_deref(), policy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy with a pair set compares equal to what the kernel reports after loading
    /// it: `ipset save` leaves `/32` out and writes `hash:net,port` elements its way.
    #[test]
    fn pair_sets_compare_as_ipset_save_prints_them() {
        let mut b = crate::builder::Builder::new().console_only();
        for i in 0..crate::ruleset::AUTO_SET_MIN {
            b = b.rule(
                crate::builder::RuleBuilder::allow_in()
                    .proto(crate::value::Protocol::Tcp)
                    .from(&format!("198.51.100.{}", i + 1))
                    .to_ports(&[&(9000 + i).to_string()]),
            );
        }
        let policy = b.build().unwrap();
        let want = Wanted::new(&policy, Layout::Table);
        let [set] = want.sets.as_slice() else {
            panic!("one pair set expected")
        };
        let mut ipsets = format!(
            "create {} hash:net,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x1\n",
            set.name
        );
        for i in 0..crate::ruleset::AUTO_SET_MIN {
            ipsets.push_str(&format!(
                "add {} 198.51.100.{},tcp:{}\n",
                set.name,
                i + 1,
                9000 + i
            ));
        }
        let live = IptablesState {
            saved: want.restore.clone(),
            ipsets: ipsets.clone(),
            other_sets: Vec::new(),
        };
        assert!(iptables_unchanged(&live, &want, Layout::Table));
        assert!(diff_iptables(&live, &want, Layout::Table).is_unchanged());
        // Another port for one source is a change.
        let changed = IptablesState {
            saved: want.restore.clone(),
            ipsets: ipsets.replace("198.51.100.1,tcp:9000", "198.51.100.1,tcp:9001"),
            other_sets: Vec::new(),
        };
        assert!(!iptables_unchanged(&changed, &want, Layout::Table));
        let d = diff_iptables(&changed, &want, Layout::Table);
        assert!(
            d.to_string().contains("+ element 198.51.100.1/32,tcp:9000"),
            "{d}"
        );
        // The set's line names the rules it stands for.
        let empty = IptablesState {
            saved: [EMPTY_FILTER.into(), EMPTY_FILTER.into()],
            ipsets: String::new(),
            other_sets: Vec::new(),
        };
        let d = diff_iptables(&empty, &want, Layout::Table).to_string();
        assert!(d.contains("(and 63 more rules)"), "{d}");
    }

    #[test]
    fn save_output_parses_without_counters() {
        let t = Table::parse(
            "# Generated\n*nat\n:PREROUTING ACCEPT [1:2]\n-A PREROUTING -j X\nCOMMIT\n*filter\n:INPUT DROP [5:300]\n:vpsfw-0123456789abcdef - [0:0]\n[3:120] -A INPUT -i lo -j ACCEPT\nCOMMIT\n",
        );
        assert_eq!(
            t.chains,
            vec![
                ("INPUT".into(), "DROP".into()),
                ("vpsfw-0123456789abcdef".into(), "-".into())
            ]
        );
        assert_eq!(t.rules, vec!["-A INPUT -i lo -j ACCEPT".to_owned()]);
        assert_eq!(t.stamps(), vec!["0123456789abcdef".to_owned()]);
        assert_eq!(
            t.view(Layout::Table),
            vec![":INPUT DROP", "-A INPUT -i lo -j ACCEPT"]
        );
    }

    #[test]
    fn chains_view_keeps_only_vpsfw_chains_and_jumps() {
        let t = Table::parse(
            "*filter\n:INPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n:vpsfw-INPUT - [0:0]\n-A INPUT -p tcp -j f2b-sshd\n-A INPUT -j vpsfw-INPUT\n-A f2b-sshd -s 203.0.113.9/32 -j REJECT\n-A vpsfw-INPUT -i lo -j ACCEPT\nCOMMIT\n",
        );
        assert_eq!(
            t.view(Layout::Chains),
            vec![
                ":INPUT ACCEPT",
                ":vpsfw-INPUT -",
                "-A INPUT -j vpsfw-INPUT",
                "-A vpsfw-INPUT -i lo -j ACCEPT"
            ]
        );
    }

    #[test]
    fn dynamic_set_elements_are_not_compared() {
        let listing = "table inet vpsfw {\n\tset scan_v4 {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\telements = { 192.0.2.1 timeout 1m expires 30s,\n\t\t\t     192.0.2.2 timeout 1m expires 10s }\n\t}\n\tset allow_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 198.51.100.0/24 }\n\t}\n}\n";
        let s = nft_static(listing);
        assert!(!s.contains("192.0.2.1"), "{s}");
        assert!(s.contains("198.51.100.0/24"), "{s}");
        assert!(s.contains("flags dynamic,timeout"), "{s}");
    }

    #[test]
    fn nft_counters_are_not_compared() {
        let s = nft_static("\t\tiifname \"lo\" counter packets 2 bytes 86 accept\n\t\tcounter packets 0 bytes 0\n\t\tlog prefix \"counter packets \" drop\n");
        assert_eq!(
            s,
            "\t\tiifname \"lo\" counter accept\n\t\tcounter\n\t\tlog prefix \"counter packets \" drop\n"
        );
    }

    #[test]
    fn a_hand_added_rule_shows_as_removed_and_policy_lines_name_their_rule() {
        let policy = crate::builder::Builder::new()
            .rule(crate::builder::RuleBuilder::allow_in().on("lo"))
            .build()
            .unwrap();
        let want = Wanted::new(&policy, Layout::Table);
        let mut saved = want.restore.clone();
        saved[0] = saved[0].replace("COMMIT", "-A INPUT -s 203.0.113.5/32 -j ACCEPT\nCOMMIT");
        let live = IptablesState {
            saved,
            ipsets: String::new(),
            other_sets: Vec::new(),
        };
        let d = diff_iptables(&live, &want, Layout::Table);
        assert!(!d.is_unchanged());
        assert_eq!(
            d.sections[0].changes,
            vec![Change::Remove {
                line: "-A INPUT -s 203.0.113.5/32 -j ACCEPT".into(),
                rule: None
            }]
        );
        assert!(d.to_string().contains("changed by hand since"), "{d}");
        let same = IptablesState {
            saved: want.restore.clone(),
            ipsets: String::new(),
            other_sets: Vec::new(),
        };
        assert!(diff_iptables(&same, &want, Layout::Table).is_unchanged());
        assert!(iptables_unchanged(&same, &want, Layout::Table));
        assert!(!iptables_unchanged(&live, &want, Layout::Table));
        let stale = IptablesState {
            saved: want.restore.clone(),
            ipsets: "create vpsfw-old-v4 hash:net family inet\n".into(),
            other_sets: Vec::new(),
        };
        assert!(!iptables_unchanged(&stale, &want, Layout::Table));
        assert!(!diff_iptables(&stale, &want, Layout::Table).is_unchanged());
        let empty = IptablesState {
            saved: [EMPTY_FILTER.into(), EMPTY_FILTER.into()],
            ipsets: String::new(),
            other_sets: Vec::new(),
        };
        let d = diff_iptables(&empty, &want, Layout::Table);
        assert!(d.to_string().contains("+ allow in on lo"), "{d}");
    }
}

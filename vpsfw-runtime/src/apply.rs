//! Putting a policy into the kernel safely: read the live rulesets, stop if they
//! already match, test the new ones, save the old ones, commit, and put the old ones
//! back unless the change is confirmed in time.
//!
//! The rollback is a detached process of the same binary (`--rollback-watch`), in its
//! own session with SIGHUP ignored, so neither a dead ssh session nor a killed caller
//! stops it, and it needs no TTY. The saved rulesets and the deadline live in the state
//! directory (`/run/vpsfw` by default):
//!
//! - `pending/` — the apply that awaits confirmation: `meta` and the saved rulesets.
//!   Whoever renames it first wins: `--confirm` (kept) or the watcher (rolled back), so
//!   the two can never both act.
//! - `last` — one line saying how the last apply ended.
//! - `lock` — held (flock) while rulesets change, so two applies never interleave.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::os::unix::io::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::live::{
    self, parallel, restore_tool, run, Backend, Diff, Error, IptablesState, Managed, Wanted,
};
use crate::model::Policy;
use crate::render::{self, Layout};
use crate::value::{Chain, Family};

/// Where apply keeps its state unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/run/vpsfw";

/// How to apply.
#[derive(Clone, Debug)]
pub struct Options {
    pub managed: Managed,
    /// Roll back unless confirmed within this time; `None`: keep the change at once.
    pub rollback_after: Option<Duration>,
    pub state_dir: PathBuf,
}

/// What an apply did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The live firewall already matched: nothing was touched.
    Unchanged { stamp: String },
    /// The policy is loaded; unless confirmed, it is rolled back at `rollback_at`.
    Loaded {
        stamp: String,
        rollback_at: Option<SystemTime>,
    },
}

/// What `--confirm` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// The pending apply is kept.
    Kept { stamp: String },
    /// Nothing was pending (and the last apply was not rolled back).
    Nothing,
    /// Nothing was pending: the last apply was rolled back (`last` says when).
    RolledBack { last: String },
}

/// The saved state of what vpsfw manages.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Snapshot {
    /// The live state, and the layout the apply owns: with [`Layout::Chains`] only
    /// vpsfw's chains, the jumps to them and the built-in chains' policies go back.
    Iptables(IptablesState, Layout),
    /// `nft list table inet vpsfw`, or `None` when there was no table.
    Nft(Option<String>),
}

impl Snapshot {
    fn write(&self, dir: &Path) -> Result<(), Error> {
        match self {
            Snapshot::Iptables(s, layout) => {
                let layout = match layout {
                    Layout::Table => "table",
                    Layout::Chains => "chains",
                };
                write_file(&dir.join("layout"), layout)?;
                write_file(&dir.join("v4"), &s.saved[0])?;
                write_file(&dir.join("v6"), &s.saved[1])?;
                write_file(&dir.join("ipsets"), &s.ipsets)?;
                write_file(&dir.join("other-sets"), &s.other_sets.join("\n"))
            }
            Snapshot::Nft(Some(t)) => write_file(&dir.join("nft"), t),
            Snapshot::Nft(None) => Ok(()),
        }
    }

    fn read(dir: &Path, backend: Backend) -> Result<Snapshot, Error> {
        let read = |name: &str| {
            fs::read_to_string(dir.join(name))
                .map_err(|e| Error::new(format!("cannot read {}: {e}", dir.join(name).display())))
        };
        Ok(match backend {
            Backend::Iptables => Snapshot::Iptables(
                IptablesState {
                    saved: [read("v4")?, read("v6")?],
                    ipsets: read("ipsets")?,
                    // Written by every version that leaves sets out of `ipsets`.
                    other_sets: read("other-sets")
                        .unwrap_or_default()
                        .lines()
                        .map(str::to_owned)
                        .collect(),
                },
                if read("layout")? == "chains" {
                    Layout::Chains
                } else {
                    Layout::Table
                },
            ),
            Backend::Nft => {
                Snapshot::Nft(dir.join("nft").exists().then(|| read("nft")).transpose()?)
            }
        })
    }

    /// Puts the saved state back.
    fn restore(&self) -> Result<(), Error> {
        match self {
            Snapshot::Iptables(s, layout) => restore_iptables(s, *layout),
            Snapshot::Nft(saved) => {
                let mut script = format!(
                    "table inet {t}\ndelete table inet {t}\n",
                    t = crate::nft::TABLE
                );
                if let Some(text) = saved {
                    script.push_str(&live::without_dynamic_elements(text));
                }
                run("nft", &["-f", "-"], Some(&script)).map(drop)
            }
        }
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}

/// The `--noflush` restore text that puts vpsfw's part of a saved table back over the
/// live one, leaving every other chain and rule as it is now: the built-in chains'
/// policies, vpsfw's chains with their rules (and counters), and the jumps to them.
fn chains_restore(saved: &live::Table, saved_text: &str, now: &live::Table) -> String {
    let ours = |n: &str| n.starts_with("vpsfw-");
    let builtin = |n: &str| Chain::ALL.iter().any(|c| c.iptables_name() == n);
    let mut out = String::from("*filter\n");
    for line in saved_text.lines() {
        if let Some(decl) = line.strip_prefix(':') {
            let name = decl.split_whitespace().next().unwrap_or_default();
            if builtin(name) || ours(name) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    let jump = |r: &str| {
        r.split_once(" -j ")
            .filter(|(head, target)| {
                ours(target)
                    && head
                        .strip_prefix("-A ")
                        .is_some_and(|c| builtin(c) && !c.contains(' '))
            })
            .map(|(head, target)| (head["-A ".len()..].to_owned(), target.to_owned()))
    };
    // Jumps: drop the ones added since, put back the ones removed since.
    let saved_jumps: Vec<(String, String)> = saved.rules.iter().filter_map(|r| jump(r)).collect();
    let now_jumps: Vec<(String, String)> = now.rules.iter().filter_map(|r| jump(r)).collect();
    for (chain, target) in now_jumps.iter().filter(|j| !saved_jumps.contains(j)) {
        out.push_str(&format!("-D {chain} -j {target}\n"));
    }
    for (chain, target) in saved_jumps.iter().filter(|j| !now_jumps.contains(j)) {
        out.push_str(&format!("-I {chain} 1 -j {target}\n"));
    }
    for line in saved_text.lines() {
        let rule = match line.strip_prefix('[') {
            Some(rest) => rest.split_once("] ").map_or(line, |(_, r)| r),
            None => line,
        };
        let chain = rule
            .strip_prefix("-A ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_default();
        if ours(chain) {
            out.push_str(line);
            out.push('\n');
        }
    }
    // vpsfw chains created since: empty them, then remove them (their jumps are gone).
    for (name, _) in now.chains.iter().filter(|(n, _)| ours(n)) {
        if !saved.chains.iter().any(|(s, _)| s == name) {
            out.push_str(&format!("-F {name}\n-X {name}\n"));
        }
    }
    out.push_str("COMMIT\n");
    out
}

/// Puts saved iptables rulesets and vpsfw's sets back: the sets first (the saved rules
/// may use them), then both families, then sets no saved rule uses.
fn restore_iptables(s: &IptablesState, layout: Layout) -> Result<(), Error> {
    let have = live::read_set_names()?;
    let mut script = String::new();
    let mut saved_names = Vec::new();
    for line in s.ipsets.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("create"), Some(name)) => {
                saved_names.push(name.to_owned());
                let rest: Vec<&str> = words.collect();
                script.push_str(&format!(
                    "create {name}-old {}\nflush {name}-old\n",
                    rest.join(" ")
                ));
            }
            (Some("add"), Some(name)) => {
                let rest: Vec<&str> = words.collect();
                script.push_str(&format!("add {name}-old {}\n", rest.join(" ")));
            }
            _ => {}
        }
    }
    for name in &saved_names {
        if have.contains(name) {
            script.push_str(&format!("swap {name}-old {name}\ndestroy {name}-old\n"));
        } else {
            script.push_str(&format!("rename {name}-old {name}\n"));
        }
    }
    if !script.is_empty() {
        run("ipset", &["-exist", "restore"], Some(&script))?;
    }
    let texts: [String; 2] = match layout {
        Layout::Table => s.saved.clone(),
        Layout::Chains => {
            let now = IptablesState::read()?.tables();
            let saved = s.tables();
            Family::ALL.map(|f| {
                let i = f as usize;
                chains_restore(&saved[i], &s.saved[i], &now[i])
            })
        }
    };
    let args: &[&str] = match layout {
        Layout::Table => &["-w", "10", "-c"],
        Layout::Chains => &["-w", "10", "-c", "--noflush"],
    };
    let jobs: Vec<Box<dyn FnOnce() -> Result<String, Error> + Send + '_>> = Family::ALL
        .into_iter()
        .map(
            |f| -> Box<dyn FnOnce() -> Result<String, Error> + Send + '_> {
                let text = &texts[f as usize];
                Box::new(move || run(restore_tool(f), args, Some(text)))
            },
        )
        .collect();
    for r in parallel(jobs) {
        r?;
    }
    // Sets whose contents were not saved were never changed: they stay.
    let kept = |n: &String| saved_names.contains(n) || s.other_sets.contains(n);
    for name in have.iter().filter(|n| !kept(n)) {
        // Still used by a rule only if someone else uses it; then it stays.
        let _ = run("ipset", &["destroy", name], None);
    }
    Ok(())
}

/// The restore text of one family as loaded over `live`: with [`Layout::Chains`] it
/// also adds missing jumps and removes the stamp chains of earlier policies.
fn load_text(want: &Wanted, live: &live::Table, f: Family, layout: Layout) -> String {
    let text = &want.restore[f as usize];
    if layout == Layout::Table {
        return text.clone();
    }
    let mut extra = String::new();
    for c in Chain::ALL {
        let (b, own) = (c.iptables_name(), layout.chain_name(c));
        if !live.jumps(b, own) {
            extra.push_str(&format!("-I {b} 1 -j {own}\n"));
        }
    }
    for s in live.stamps().into_iter().filter(|s| *s != want.stamp) {
        extra.push_str(&format!("-X {}\n", render::stamp_chain(&s)));
    }
    let body = text.strip_suffix("COMMIT\n").unwrap_or(text);
    format!("{body}{extra}COMMIT\n")
}

/// What `commit` loads into one family.
enum Load {
    /// The whole ruleset ([`load_text`]).
    Full(String),
    /// The family already holds the policy's rules: only its stamp chain changes, with
    /// `--noflush`, so its counters stay (an edit of IPv4 rules leaves IPv6 alone).
    Stamp(String),
    /// The family is as the policy has it, stamp included.
    Nothing,
}

/// The stamp update of a family whose rules are already the policy's.
fn stamp_load(live: &live::Table, stamp: &str) -> Load {
    let stamps = live.stamps();
    let mut body = String::new();
    if !stamps.iter().any(|s| s == stamp) {
        body.push_str(&format!(":{} - [0:0]\n", render::stamp_chain(stamp)));
    }
    for s in stamps.iter().filter(|s| *s != stamp) {
        body.push_str(&format!("-X {}\n", render::stamp_chain(s)));
    }
    if body.is_empty() {
        Load::Nothing
    } else {
        Load::Stamp(format!("*filter\n{body}COMMIT\n"))
    }
}

/// Loads one family.
fn load(f: Family, what: &Load, layout: Layout) -> Result<(), Error> {
    match what {
        Load::Full(text) => run(restore_tool(f), &restore_args(layout, false), Some(text)),
        Load::Stamp(text) => run(restore_tool(f), &["-w", "10", "--noflush"], Some(text)),
        Load::Nothing => return Ok(()),
    }
    .map(drop)
}

fn restore_args(layout: Layout, test: bool) -> Vec<&'static str> {
    let mut args = vec!["-w", "10"];
    if layout == Layout::Chains {
        args.push("--noflush");
    }
    if test {
        args.push("--test");
    }
    args
}

/// `ip6tables-restore --test` of the IPv6 text.
///
/// Only IPv6 is tested: IPv4 is loaded first, in one transaction, so a refused IPv4
/// ruleset changes nothing by itself, and IPv6, loaded second, is known to pass by
/// then. Either way a ruleset the kernel refuses leaves both families as they were,
/// at the cost of one test pass instead of two.
fn test_v6(text: &str, layout: Layout) -> Result<String, Error> {
    run(
        restore_tool(Family::V6),
        &restore_args(layout, true),
        Some(text),
    )
}

/// Where each set's new contents went before `commit`.
#[derive(Default)]
struct SetPlan {
    /// Not live: created and filled under their own name (no loaded rule uses them).
    fresh: Vec<String>,
    /// Live with other contents: filled into `NAME-new`, swapped in by `commit`.
    swapped: Vec<String>,
}

impl SetPlan {
    /// Works out the plan, and the `ipset restore` script that carries it out.
    fn new(want: &Wanted, live: &IptablesState) -> (SetPlan, String) {
        let live_sets = live.sets();
        let mut plan = SetPlan::default();
        let mut script = String::new();
        for set in &want.sets {
            if !live_sets.contains_key(&set.name) {
                render::ipset_restore_lines(&mut script, set, &set.name);
                plan.fresh.push(set.name.clone());
            } else if !live::set_is_live(&live_sets, set) {
                render::ipset_restore_lines(&mut script, set, &format!("{}-new", set.name));
                plan.swapped.push(set.name.clone());
            }
        }
        (plan, script)
    }

    /// Removes what the plan created: the fresh sets (no loaded rule uses them) and the
    /// temporary `NAME-new` copies, each on its own, so one a failed fill never created
    /// does not keep the others.
    fn drop_created(&self) {
        let temporary = self.swapped.iter().map(|n| format!("{n}-new"));
        for name in self.fresh.iter().cloned().chain(temporary) {
            let _ = run("ipset", &["destroy", &name], None);
        }
    }
}

/// The live state, and the diff against the policy.
struct Prepared {
    snapshot: Snapshot,
    unchanged: bool,
    /// iptables: what to load, per family.
    texts: Option<[Load; 2]>,
    sets: SetPlan,
    /// nft: the file to load.
    nft: Option<String>,
}

/// What to load into each family, once the live state is known.
fn load_texts(live: &IptablesState, want: &Wanted, layout: Layout) -> [Load; 2] {
    let tables = live.tables();
    // A family whose rules are already the policy's only gets the new stamp.
    Family::ALL.map(|f| {
        let live = &tables[f as usize];
        if live.view(layout) == want.tables()[f as usize].view(layout) {
            stamp_load(live, &want.stamp)
        } else {
            Load::Full(load_text(want, live, f, layout))
        }
    })
}

/// `ipset restore` of the sets' new contents ([`SetPlan`]); this changes nothing a
/// loaded rule sees.
fn fill(script: &str) -> Result<(), Error> {
    if script.is_empty() {
        return Ok(());
    }
    run("ipset", &["-exist", "restore"], Some(script))
        .map(drop)
        .map_err(|e| {
            Error::new(format!(
                "filling the address sets failed (nothing was changed): {e}"
            ))
        })
}

/// Reads the live state and gets the load ready; `snapshot_all` reads the contents of
/// every vpsfw set for the snapshot (a rollback may need to recreate one the load
/// removes), else only of the policy's own sets (what an undo within the load needs).
fn prepare(
    policy: &Policy,
    managed: Managed,
    snapshot_all: bool,
) -> Result<(Prepared, Option<Wanted<'_>>), Error> {
    match managed.backend {
        Backend::Iptables => {
            let layout = managed.layout;
            std::thread::scope(|s| {
                // The live state is read while the policy is rendered; of the sets'
                // contents, first only those of the policy's own sets. The IPv6 ruleset
                // is tested alongside the slowest step that does not need its result:
                // that read when there are no sets to fill and its text does not depend
                // on the live state (the whole table); else the filling of the sets,
                // which leaves a core free; after it when an IPv6 rule names a set (the
                // kernel checks that the sets a rule names exist).
                let reading = s.spawn(IptablesState::read_names);
                let want = Wanted::new(policy, layout);
                let v6_sets = want.sets.iter().any(|set| set.family == "inet6");
                let test = |text: String| s.spawn(move || test_v6(&text, layout));
                let early = (layout == Layout::Table && want.sets.is_empty())
                    .then(|| test(want.restore[Family::V6 as usize].clone()));
                let mut live = reading
                    .join()
                    .unwrap_or_else(|_| Err(Error::new("reading the live rulesets panicked")))?;
                live.read_sets(want.sets.iter().map(|set| set.name.as_str()))?;
                let unchanged = live::iptables_unchanged(&live, &want, layout);
                let (texts, sets) = if unchanged {
                    (None, SetPlan::default())
                } else {
                    let texts = load_texts(&live, &want, layout);
                    let (sets, script) = SetPlan::new(&want, &live);
                    // The other sets' contents, for the snapshot, while the sets fill.
                    let rest = (snapshot_all && !live.other_sets.is_empty()).then(|| {
                        let names = live.other_sets.clone();
                        s.spawn(move || live::save_sets(&names))
                    });
                    let v6 = match &texts[Family::V6 as usize] {
                        Load::Full(text) => Some(text),
                        Load::Stamp(_) | Load::Nothing => None,
                    };
                    let testing = v6
                        .and_then(|text| early.or_else(|| (!v6_sets).then(|| test(text.clone()))));
                    let filled = fill(&script);
                    let tested = match (testing, v6) {
                        (Some(t), _) => t.join().unwrap_or_else(|_| {
                            Err(Error::new("testing the IPv6 ruleset panicked"))
                        }),
                        (None, Some(text)) if filled.is_ok() => test_v6(text, layout),
                        (None, _) => Ok(String::new()),
                    }
                    .map_err(|e| {
                        Error::new(format!(
                            "the IPv6 ruleset was refused (nothing was changed): {e}"
                        ))
                    });
                    let read = rest.map_or(Ok(()), |r| {
                        let text = r.join().unwrap_or_else(|_| {
                            Err(Error::new("reading the live sets panicked"))
                        })?;
                        live.ipsets.push_str(&text);
                        live.other_sets.clear();
                        Ok(())
                    });
                    let tested = filled.and(tested.map(drop)).and(read);
                    if let Err(e) = tested {
                        sets.drop_created();
                        return Err(e);
                    }
                    (Some(texts), sets)
                };
                Ok((
                    Prepared {
                        snapshot: Snapshot::Iptables(live, layout),
                        unchanged,
                        texts,
                        sets,
                        nft: None,
                    },
                    Some(want),
                ))
            })
        }
        Backend::Nft => {
            // The live table is read while the policy's file is rendered.
            let (live, file, stamp) = std::thread::scope(|s| {
                let reading = s.spawn(live::read_nft);
                let stamp = render::stamp(policy);
                let file = crate::nft::file(policy);
                let live = reading
                    .join()
                    .unwrap_or_else(|_| Err(Error::new("reading the live table panicked")));
                (live, file, stamp)
            });
            let live = live?;
            // Only a table stamped with this policy can be unchanged; then compare it
            // rule by rule, in the kernel's words.
            let unchanged = live
                .as_deref()
                .is_some_and(|l| l.contains(&format!("comment \"vpsfw {stamp}\"")))
                && live::diff_nft(live.as_deref(), policy)
                    .map(|d| d.is_unchanged())
                    .unwrap_or(false);
            Ok((
                Prepared {
                    snapshot: Snapshot::Nft(live),
                    unchanged,
                    texts: None,
                    sets: SetPlan::default(),
                    nft: Some(file),
                },
                None,
            ))
        }
    }
}

/// Loads the policy over a prepared state; on failure, puts the snapshot back.
fn commit(
    policy: &Policy,
    managed: Managed,
    prepared: &Prepared,
    want: Option<&Wanted>,
) -> Result<(), Error> {
    match (managed.backend, &prepared.texts, want) {
        (Backend::Iptables, Some(texts), Some(want)) => {
            let undo = |e: Error| {
                match prepared.snapshot.restore() {
                Ok(()) => Error::new(format!("{e}; the previous rulesets were put back")),
                Err(r) => Error::new(format!(
                    "{e}; putting the previous rulesets back failed too ({r}): check iptables-save now"
                )),
            }
            };
            let sets = &prepared.sets;
            if !sets.swapped.is_empty() {
                // `prepare` filled the new contents of the live sets that differ into
                // `NAME-new`: swap them in (fresh sets are already in place).
                let mut script = String::new();
                for n in &sets.swapped {
                    script.push_str(&format!("swap {n}-new {n}\ndestroy {n}-new\n"));
                }
                run("ipset", &["-exist", "restore"], Some(&script)).map_err(|e| {
                    sets.drop_created();
                    undo(Error::new(format!("loading the address sets failed: {e}")))
                })?;
            }
            // IPv4 first: refused, it changed nothing (one transaction); only the sets,
            // if any were swapped in, go back. IPv6 was tested before anything changed.
            let layout = managed.layout;
            if let Err(e) = load(Family::V4, &texts[Family::V4 as usize], layout) {
                let e = Error::new(format!("the IPv4 ruleset was refused: {e}"));
                return Err(if sets.swapped.is_empty() {
                    sets.drop_created();
                    Error::new(format!("{e} (nothing was changed)"))
                } else {
                    undo(e)
                });
            }
            load(Family::V6, &texts[Family::V6 as usize], layout)
                .map_err(|e| undo(Error::new(format!("loading the IPv6 ruleset failed: {e}"))))?;
            // vpsfw's sets (`vpsfw-*`) that this policy does not have: an earlier
            // policy's, or a long run's pair set whose contents (so name) changed. With
            // `--own-chains` too: the kernel refuses to destroy a set a rule still uses,
            // so only the unused ones go.
            if let Snapshot::Iptables(before, _) = &prepared.snapshot {
                for name in &before.set_names() {
                    if !want.sets.iter().any(|s| s.name == *name) {
                        let _ = run("ipset", &["destroy", name], None);
                    }
                }
            }
            Ok(())
        }
        _ => {
            let rendered;
            let file = match &prepared.nft {
                Some(file) => file.as_str(),
                None => {
                    rendered = crate::nft::file(policy);
                    &rendered
                }
            };
            run("nft", &["-f", "-"], Some(file)).map(drop).map_err(|e| {
                Error::new(format!(
                    "nft refused the ruleset (nothing was changed): {e}"
                ))
            })
        }
    }
}

/// Refuses a state directory someone else could write to: the rollback timer loads the
/// rulesets saved there, as root.
fn trusted(state_dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::metadata(state_dir)
        .map_err(|e| Error::new(format!("cannot read {}: {e}", state_dir.display())))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(Error::new(format!(
            "{} must belong to the user running vpsfw and be writable by no one else (it holds the rulesets a rollback loads)",
            state_dir.display()
        )));
    }
    Ok(())
}

/// The state directory's lock, held while rulesets change.
struct Lock(#[allow(dead_code)] fs::File);

fn lock(state_dir: &Path, wait: bool) -> Result<Lock, Error> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", state_dir.display())))?;
    trusted(state_dir)?;
    let path = state_dir.join("lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::new(format!("cannot open {}: {e}", path.display())))?;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock on a file descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(Error::new(format!(
            "another vpsfw apply or rollback is running (lock {})",
            path.display()
        )));
    }
    Ok(Lock(f))
}

/// What `pending/meta` records.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Meta {
    id: String,
    stamp: String,
    backend: Backend,
    /// Milliseconds since the Unix epoch.
    deadline_ms: u64,
}

impl Meta {
    fn text(&self) -> String {
        format!(
            "id {}\nstamp {}\nbackend {}\ndeadline_ms {}\n",
            self.id,
            self.stamp,
            match self.backend {
                Backend::Iptables => "iptables",
                Backend::Nft => "nft",
            },
            self.deadline_ms
        )
    }

    fn read(dir: &Path) -> Option<Meta> {
        let text = fs::read_to_string(dir.join("meta")).ok()?;
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(' '))
                .map(str::to_owned)
        };
        Some(Meta {
            id: field("id")?,
            stamp: field("stamp")?,
            backend: match field("backend")?.as_str() {
                "nft" => Backend::Nft,
                _ => Backend::Iptables,
            },
            deadline_ms: field("deadline_ms")?.parse().ok()?,
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A time as people read it in logs: `2026-11-25 20:45:07 UTC`.
pub fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn record_last(state_dir: &Path, text: &str) {
    let _ = write_file(&state_dir.join("last"), &format!("{text}\n"));
}

/// Applies a policy: see the module documentation.
pub fn apply(policy: &Policy, opts: &Options) -> Result<Applied, Error> {
    let _lock = lock(&opts.state_dir, false)?;
    let pending = opts.state_dir.join("pending");
    if let Some(m) = Meta::read(&pending) {
        return Err(Error::new(format!(
            "an apply of policy {} awaits confirmation until {}: run --confirm or --rollback first",
            m.stamp,
            utc(UNIX_EPOCH + Duration::from_millis(m.deadline_ms))
        )));
    }
    let (prepared, want) = prepare(policy, opts.managed, opts.rollback_after.is_some())?;
    let stamp = render::stamp(policy);
    if prepared.unchanged {
        return Ok(Applied::Unchanged { stamp });
    }
    let Some(after) = opts.rollback_after else {
        commit(policy, opts.managed, &prepared, want.as_ref())?;
        record_last(
            &opts.state_dir,
            &format!(
                "applied policy {stamp} at {} without rollback",
                utc(SystemTime::now())
            ),
        );
        return Ok(Applied::Loaded {
            stamp,
            rollback_at: None,
        });
    };
    // Save, and start the watcher, before anything changes: if this process dies
    // half-way, the watcher still puts the old rulesets back.
    let deadline = SystemTime::now() + after;
    let meta = Meta {
        id: format!("{}-{}", std::process::id(), unix_now()),
        stamp: stamp.clone(),
        backend: opts.managed.backend,
        deadline_ms: deadline
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    let tmp = opts.state_dir.join(format!("pending.tmp-{}", meta.id));
    let _ = fs::remove_dir_all(&tmp);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", tmp.display())))?;
    prepared.snapshot.write(&tmp)?;
    write_file(&tmp.join("meta"), &meta.text())?;
    fs::rename(&tmp, &pending)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", pending.display())))?;
    if let Err(e) = spawn_watcher(&opts.state_dir, &meta.id) {
        let _ = fs::remove_dir_all(&pending);
        return Err(Error::new(format!(
            "cannot start the rollback timer (nothing was changed): {e}"
        )));
    }
    if let Err(e) = commit(policy, opts.managed, &prepared, want.as_ref()) {
        // The old rulesets are back: nothing is pending any more.
        let _ = fs::remove_dir_all(&pending);
        return Err(e);
    }
    Ok(Applied::Loaded {
        stamp,
        rollback_at: Some(UNIX_EPOCH + Duration::from_millis(meta.deadline_ms)),
    })
}

/// Starts `SELF --rollback-watch ID --state-dir DIR` detached: its own session, SIGHUP
/// ignored, no TTY, output to `DIR/rollback.log`.
fn spawn_watcher(state_dir: &Path, id: &str) -> Result<(), Error> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(state_dir.join("rollback.log"))
        .map_err(|e| Error::new(format!("cannot open the rollback log: {e}")))?;
    let log2 = log
        .try_clone()
        .map_err(|e| Error::new(format!("cannot open the rollback log: {e}")))?;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg("--rollback-watch")
        .arg(id)
        .arg("--state-dir")
        .arg(state_dir)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid and signal are async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    // Not waited for: when this process exits, init reaps the watcher.
    cmd.spawn()
        .map(drop)
        .map_err(|e| Error::new(format!("cannot start {}: {e}", "/proc/self/exe")))
}

/// Takes the pending apply (renaming it so nobody else can) and puts its saved state
/// back. `Ok(None)` when nothing was pending, or it was not the apply `id`.
fn take_and_roll_back(
    state_dir: &Path,
    id: Option<&str>,
    why: &str,
) -> Result<Option<String>, Error> {
    let _lock = lock(state_dir, true)?;
    let pending = state_dir.join("pending");
    let Some(meta) = Meta::read(&pending) else {
        return Ok(None);
    };
    if id.is_some_and(|id| id != meta.id) {
        return Ok(None);
    }
    let taken = state_dir.join(format!("rolling-back-{}", meta.id));
    if fs::rename(&pending, &taken).is_err() {
        return Ok(None);
    }
    let result = Snapshot::read(&taken, meta.backend).and_then(|s| s.restore());
    let line = match &result {
        Ok(()) => format!(
            "rolled back policy {} at {} ({why})",
            meta.stamp,
            utc(SystemTime::now())
        ),
        Err(e) => format!(
            "rolling back policy {} FAILED at {} ({why}): {e}; the saved rulesets are in {}",
            meta.stamp,
            utc(SystemTime::now()),
            taken.display()
        ),
    };
    record_last(state_dir, &line);
    result?;
    let _ = fs::remove_dir_all(&taken);
    Ok(Some(line))
}

/// The watcher: waits for the deadline of apply `id`, then rolls it back unless it was
/// confirmed meanwhile. Returns what happened, for the log.
pub fn watch(state_dir: &Path, id: &str) -> Result<String, Error> {
    let pending = state_dir.join("pending");
    loop {
        let Some(meta) = Meta::read(&pending).filter(|m| m.id == id) else {
            return Ok(format!("apply {id} confirmed or already rolled back"));
        };
        let now = SystemTime::now();
        let deadline = UNIX_EPOCH + Duration::from_millis(meta.deadline_ms);
        match deadline.duration_since(now) {
            Ok(left) if !left.is_zero() => std::thread::sleep(left.min(Duration::from_millis(200))),
            _ => break,
        }
    }
    Ok(
        take_and_roll_back(state_dir, Some(id), "not confirmed in time")?
            .unwrap_or_else(|| format!("apply {id} was confirmed at the last moment")),
    )
}

/// `--confirm`: keeps the pending apply.
pub fn confirm(state_dir: &Path) -> Result<Confirmed, Error> {
    if state_dir.exists() {
        trusted(state_dir)?;
    }
    let pending = state_dir.join("pending");
    let last = || fs::read_to_string(state_dir.join("last")).unwrap_or_default();
    let Some(meta) = Meta::read(&pending) else {
        let last = last();
        return Ok(
            if last.starts_with("rolled back") || last.starts_with("rolling back") {
                Confirmed::RolledBack {
                    last: last.trim().to_owned(),
                }
            } else {
                Confirmed::Nothing
            },
        );
    };
    let done = state_dir.join(format!("confirmed-{}", meta.id));
    if fs::rename(&pending, &done).is_err() {
        // The watcher took it first.
        return Ok(Confirmed::RolledBack {
            last: last().trim().to_owned(),
        });
    }
    let _ = fs::remove_dir_all(&done);
    record_last(
        state_dir,
        &format!(
            "confirmed policy {} at {}",
            meta.stamp,
            utc(SystemTime::now())
        ),
    );
    Ok(Confirmed::Kept { stamp: meta.stamp })
}

/// `--rollback`: rolls the pending apply back now. `Ok(None)` when nothing is pending.
pub fn rollback(state_dir: &Path) -> Result<Option<String>, Error> {
    take_and_roll_back(state_dir, None, "--rollback")
}

/// The diff `--diff` prints.
pub fn diff(policy: &Policy, managed: Managed) -> Result<Diff, Error> {
    live::diff(policy, managed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(1_795_639_507)),
            "2026-11-25 20:45:07 UTC"
        );
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00 UTC"
        );
    }

    #[test]
    fn chains_rollback_touches_only_vpsfw_chains() {
        let saved_text = "*filter\n:INPUT ACCEPT [7:420]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:f2b - [0:0]\n[1:60] -A INPUT -j f2b\n[2:80] -A f2b -s 203.0.113.9/32 -j DROP\nCOMMIT\n";
        let now_text = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n:DOCKER-USER - [0:0]\n:f2b - [0:0]\n:vpsfw-INPUT - [0:0]\n:vpsfw-0123456789abcdef - [0:0]\n-A INPUT -j vpsfw-INPUT\n-A INPUT -j f2b\n-A FORWARD -j DOCKER-USER\n-A vpsfw-INPUT -i lo -j ACCEPT\nCOMMIT\n";
        let text = chains_restore(
            &live::Table::parse(saved_text),
            saved_text,
            &live::Table::parse(now_text),
        );
        assert_eq!(
            text,
            "*filter\n:INPUT ACCEPT [7:420]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-D INPUT -j vpsfw-INPUT\n-F vpsfw-INPUT\n-X vpsfw-INPUT\n-F vpsfw-0123456789abcdef\n-X vpsfw-0123456789abcdef\nCOMMIT\n"
        );
    }

    #[test]
    fn a_state_dir_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("vpsfw-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(trusted(&dir).is_ok());
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(trusted(&dir).is_err());
        assert!(lock(&dir, false).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn meta_round_trips() {
        let dir = std::env::temp_dir().join(format!("vpsfw-meta-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let m = Meta {
            id: "12-34".into(),
            stamp: "0123456789abcdef".into(),
            backend: Backend::Nft,
            deadline_ms: 99_000,
        };
        write_file(&dir.join("meta"), &m.text()).unwrap();
        assert_eq!(Meta::read(&dir), Some(m));
        fs::remove_dir_all(&dir).unwrap();
    }
}

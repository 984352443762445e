//! `cargo bench --bench scale`: how fast vpsfw is from an edited policy to a loaded
//! firewall, at N = 100, 1,000, 5,000 and 20,000 rules, printed as tables with the
//! machine, medians, the targets and ratios from the same run. Nothing here
//! asserts a time.
//!
//! The policy is the one every vpsfw benchmark uses (`vpsfw_codegen::phases::
//! sample_source`): a `common` group and N allow rules with distinct sources and ports.
//!
//! Environment: `VPSFW_BENCH_SIZES=100,1000` picks the sizes; `VPSFW_BENCH_SKIP=build,apply,peers`
//! skips the slow parts (edit-to-binary builds crates with cargo; apply needs root and
//! creates network namespaces named `vpsfw-bench-*`, deleted afterwards; peers compares
//! the same policy written for ferm and Aerleon, needs root too, builds its own policy
//! crates and installs Aerleon into `target/peers/venv` when it is missing).
//! `VPSFW_BENCH_PROFILE=default` builds the policy crates and the floor with cargo's own
//! dev profile, as a new user who left out the profile of the README's *Use it* would
//! (crates under `target/bench-crates-default/`).

#[path = "../tests/roles/mod.rs"]
mod roles;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use proc_macro2::TokenStream;
use vpsfw::{render, Format, Packet, Policy};
use vpsfw_codegen::phases;

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let sizes: Vec<usize> = std::env::var("VPSFW_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1_000, 5_000, 20_000]);
    let skip = std::env::var("VPSFW_BENCH_SKIP").unwrap_or_default();
    println!("{}\n", machine());
    let policies = macro_work(&sizes);
    render_table(&policies);
    evaluator(&policies);
    if skip.contains("build") {
        println!("edit-to-binary: skipped (VPSFW_BENCH_SKIP)\n");
    } else {
        let bins = edit_to_binary(&sizes);
        if skip.contains("apply") {
            println!("apply: skipped (VPSFW_BENCH_SKIP)\n");
        } else {
            apply(&bins);
        }
    }
    if skip.contains("peers") {
        println!("peers: skipped (VPSFW_BENCH_SKIP)");
    } else {
        peers(&sizes);
    }
}

// ---------------------------------------------------------------------------------------
// Measuring

fn median_of(mut f: impl FnMut() -> Duration, runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs).map(|_| f()).collect();
    times.sort();
    times[runs / 2]
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    median_of(
        || {
            let t = Instant::now();
            f();
            t.elapsed()
        },
        runs,
    )
}

fn runs_for(n: usize) -> usize {
    match n {
        0..=1_000 => 11,
        1_001..=5_000 => 7,
        _ => 3,
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1e3)
    }
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64().max(1e-9))
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| format!("{cmd}: not found"))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or("? GiB".into(), |kb| {
            format!("{:.0} GiB", kb as f64 / 1048576.0)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "machine: {cpu}, {} cores, {mem}, Linux {}, {}, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim(),
        first_line("rustc", &["-V"]),
        first_line("iptables", &["--version"]),
    )
}

// ---------------------------------------------------------------------------------------
// Macro work, render, evaluator

/// Times the macro at each size; returns the checked policies.
fn macro_work(sizes: &[usize]) -> Vec<(usize, Policy)> {
    println!("macro work on a proc_macro2::TokenStream (target: total <= 100 ms at 5,000 rules)");
    println!(
        "{:>7} | {:>9} {:>9} {:>9} {:>9} | {:>9} | {:>14}",
        "rules", "parse", "check", "expand", "total", "analysis", "total/target"
    );
    let mut out = Vec::new();
    for &n in sizes {
        let src = phases::sample_source(n);
        let tokens = TokenStream::from_str(&src).expect("sample source tokenizes");
        let runs = runs_for(n);
        let mut all: Vec<phases::Timings> =
            (0..runs).map(|_| phases::timed(tokens.clone()).1).collect();
        let pick = |all: &mut Vec<phases::Timings>, f: fn(&phases::Timings) -> Duration| {
            all.sort_by_key(f);
            f(&all[runs / 2])
        };
        let parse = pick(&mut all, |t| t.parse);
        let check = pick(&mut all, |t| t.check);
        let expand = pick(&mut all, |t| t.expand);
        let total = pick(&mut all, |t| t.total);
        let analysis = pick(&mut all, |t| t.analysis);
        let target = if n == 5_000 {
            ratio(total, Duration::from_millis(100))
        } else {
            "-".into()
        };
        println!(
            "{n:>7} | {:>9} {:>9} {:>9} {:>9} | {:>9} | {:>14}",
            ms(parse),
            ms(check),
            ms(expand),
            ms(total),
            ms(analysis),
            target
        );
        let (_, body) = phases::split_input(tokens);
        let parsed = phases::parse(body);
        let policy = phases::check(&parsed).expect("the sample policy checks");
        out.push((n, policy));
    }
    println!("(analysis is part of check; it is timed again alone; target: <= 1 s at 5,000)\n");
    out
}

fn render_table(policies: &[(usize, Policy)]) {
    println!("render (target: <= 5 ms at 5,000 rules)");
    let mut head = format!("{:>7} |", "rules");
    for f in Format::ALL {
        let _ = write!(head, " {:>9}", f.name());
    }
    println!("{head}");
    for (n, policy) in policies {
        let mut line = format!("{n:>7} |");
        for f in Format::ALL {
            // Each run on a fresh copy: the first render of a policy also works out its
            // stamp (kept with the policy afterwards), and that is what a binary does.
            let d = median_of(
                || {
                    let fresh = policy.clone();
                    let t = Instant::now();
                    drop(std::hint::black_box(render(&fresh, f)));
                    t.elapsed()
                },
                runs_for(*n),
            );
            let _ = write!(line, " {:>9}", ms(d));
        }
        println!("{line}");
    }
    println!();
}

/// Packets that hit rules early, late and not at all, both families.
fn packets(n: usize) -> Vec<Packet> {
    (0..1_000)
        .map(|i| {
            let rule = i * 7919 % n.max(1);
            let (a, b) = (rule / 250 % 250, rule % 250 + 1);
            let net = ["198.51", "203.0"][rule % 2];
            let port = if i % 3 == 0 { 40 } else { 1000 + rule % 60000 };
            let text = match i % 10 {
                9 => format!("in tcp from [2001:db8::{i:x}]:40000 to [2001:db8::1]:{port}"),
                8 => format!("in udp from 192.0.2.77:5353 to 192.0.2.1:{port}"),
                7 => {
                    format!("in tcp from {net}.{a}.{b}:40000 to 192.0.2.1:{port} state established")
                }
                _ => format!("in tcp from {net}.{a}.{b}:40000 to 192.0.2.1:{port}"),
            };
            text.parse().expect("bench packet")
        })
        .collect()
}

fn evaluator(policies: &[(usize, Policy)]) {
    println!("evaluator, one core (target: >= 1,000,000 packets/s at 5,000 rules)");
    println!(
        "{:>16} | {:>14} | {:>12}",
        "policy", "packets/s", "vs target"
    );
    let mut rows: Vec<(String, Policy)> = roles::all()
        .into_iter()
        .map(|(name, p)| (name.to_owned(), p))
        .collect();
    rows.extend(
        policies
            .iter()
            .map(|(n, p)| (format!("{n} rules"), p.clone())),
    );
    for (name, policy) in &rows {
        let ps = packets(policy.rules().len());
        drop(policy.evaluate(&ps[0])); // build whatever the evaluator caches
        let rounds = 20;
        let d = median(
            || {
                for _ in 0..rounds {
                    for p in &ps {
                        std::hint::black_box(policy.evaluate(p).outcome);
                    }
                }
            },
            5,
        );
        let rate = (ps.len() * rounds) as f64 / d.as_secs_f64();
        println!(
            "{name:>16} | {rate:>14.0} | {:>12}",
            if name == "5000 rules" {
                format!("{:.2}x", rate / 1e6)
            } else {
                "-".into()
            }
        );
    }
    println!();
}

// ---------------------------------------------------------------------------------------
// Edit to binary

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.env_remove("RUSTFLAGS").env_remove("CARGO_TARGET_DIR");
    c
}

/// The sample policy's body (without the `::vpsfw;` the macro's tests pass first), with
/// rule `edit` given the port `65000 + k`.
fn policy_body(n: usize, edit: Option<(usize, usize)>) -> String {
    let src = phases::sample_source(n);
    let body = src.split_once(';').map_or(src.as_str(), |(_, b)| b);
    let mut out = String::new();
    let mut rule = 0;
    for line in body.lines() {
        if line.starts_with("allow in from") {
            match edit {
                Some((i, k)) if i == rule => {
                    let port = 1000 + i % 60000;
                    out.push_str(
                        &line.replace(&format!("to {port} "), &format!("to {} ", 65000 + k)),
                    );
                }
                _ => out.push_str(line),
            }
            rule += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn policy_main(n: usize, edit: Option<(usize, usize)>) -> String {
    format!(
        "fn policy() -> vpsfw::Policy {{\n    vpsfw::firewall! {{\n{}    }}\n}}\n\nfn main() -> std::process::ExitCode {{\n    vpsfw::cli::run(&policy())\n}}\n",
        policy_body(n, edit)
    )
}

fn floor_main(n: usize, edit: Option<(usize, usize)>) -> String {
    let mut s = format!(
        "pub struct Rule {{\n    pub src: u32,\n    pub prefix: u8,\n    pub port: u16,\n}}\n\npub static RULES: [Rule; {n}] = [\n"
    );
    for i in 0..n {
        let (a, b) = (i / 250 % 250, i % 250 + 1);
        let first: u32 = if i % 2 == 0 { 0xc633_0000 } else { 0xcb00_0000 };
        let src = first | (a as u32) << 8 | b as u32;
        let port = match edit {
            Some((e, k)) if e == i => 65000 + k,
            _ => 1000 + i % 60000,
        };
        let _ = writeln!(
            s,
            "    Rule {{ src: {src:#010x}, prefix: 32, port: {port} }},"
        );
    }
    s.push_str("];\n\nfn main() {\n    let open = RULES.iter().filter(|r| r.port > 1024 && r.prefix == 32 && r.src != 0).count();\n    println!(\"{open}\");\n}\n");
    s
}

/// The profile the README recommends for policy crates, as `template/Cargo.toml` has it
/// (tests/golden.rs holds the two together); both crates get it (unless
/// [`default_profile`]).
fn recommended_profile() -> String {
    let manifest = std::fs::read_to_string(Path::new(REPO).join("template/Cargo.toml"))
        .expect("template/Cargo.toml");
    manifest
        .find("[profile.dev]")
        .map(|at| manifest[at..].to_owned())
        .expect("a [profile.dev] in template/Cargo.toml")
}

/// `VPSFW_BENCH_PROFILE=default`: cargo's own dev profile for every crate built.
fn default_profile() -> bool {
    std::env::var("VPSFW_BENCH_PROFILE").is_ok_and(|v| v == "default")
}

fn profile_words() -> &'static str {
    if default_profile() {
        "cargo's default dev profile (no profile in Cargo.toml)"
    } else {
        "dev profile with the settings the README recommends for policy crates"
    }
}

struct Crate {
    dir: PathBuf,
    name: String,
}

impl Crate {
    fn new(root: &Path, name: &str, deps: &str) -> Crate {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("src")).expect("bench crate dir");
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{deps}\n[workspace]\n\n{}",
            if default_profile() {
                String::new()
            } else {
                recommended_profile()
            }
        );
        std::fs::write(dir.join("Cargo.toml"), manifest).expect("bench manifest");
        let _ = std::fs::copy(Path::new(REPO).join("Cargo.lock"), dir.join("Cargo.lock"));
        Crate {
            dir,
            name: name.into(),
        }
    }

    fn write(&self, main: &str) {
        std::fs::write(self.dir.join("src/main.rs"), main).expect("bench main.rs");
    }

    fn build(&self, target: &Path) -> Result<Duration, String> {
        let t = Instant::now();
        let out = cargo()
            .args(["build", "--quiet", "--manifest-path"])
            .arg(self.dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", target)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        let d = t.elapsed();
        if !out.status.success() {
            return Err(format!(
                "cargo build of {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(d)
    }
}

/// Builds each size's policy binary after one-rule edits, next to the static-table floor;
/// returns the binaries for the apply benchmark.
fn edit_to_binary(sizes: &[usize]) -> Vec<(usize, PathBuf)> {
    println!("edit-to-binary: cargo build (debug) after a one-rule edit (target: <= 1.3x the floor at 1,000 rules)");
    // Under the repository's target directory: kept between runs, so only the first run
    // builds vpsfw's dependencies for these crates.
    let root = Path::new(REPO).join("target").join(if default_profile() {
        "bench-crates-default"
    } else {
        "bench-crates"
    });
    let target = root.join("target");
    println!(
        "{:>7} | {:>12} {:>12} | {:>10}",
        "rules", "vpsfw", "floor", "vs floor"
    );
    let mut bins = Vec::new();
    for &n in sizes {
        let policy = Crate::new(
            &root,
            &format!("policy{n}"),
            &format!("vpsfw = {{ path = {:?} }}\n", REPO),
        );
        let floor = Crate::new(&root, &format!("floor{n}"), "");
        let mut times = Vec::new();
        for (krate, main) in [
            (
                &policy,
                policy_main as fn(usize, Option<(usize, usize)>) -> String,
            ),
            (&floor, floor_main),
        ] {
            krate.write(&main(n, None));
            if let Err(e) = krate.build(&target) {
                println!("{n:>7} | {e}");
                return bins;
            }
            // Five edits, each of a different rule's port; the median rebuild.
            let d = median_of(
                || {
                    static K: std::sync::atomic::AtomicUsize =
                        std::sync::atomic::AtomicUsize::new(0);
                    let k = K.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    krate.write(&main(n, Some((n / 2 + k % 7, k % 100))));
                    krate.build(&target).unwrap_or_else(|e| {
                        println!("{n:>7} | rebuild failed: {e}");
                        Duration::MAX
                    })
                },
                5,
            );
            times.push(d);
        }
        println!(
            "{n:>7} | {:>12} {:>12} | {:>10}",
            ms(times[0]),
            ms(times[1]),
            ratio(times[0], times[1])
        );
        bins.push((n, target.join("debug").join(&policy.name)));
    }
    println!(
        "(both crates built the same way: `cargo build`, {}; median of 5 edits)\n",
        profile_words()
    );
    bins
}

// ---------------------------------------------------------------------------------------
// Apply

/// A network namespace for one measurement, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(n: usize) -> Result<Netns, String> {
        Netns::tagged(&n.to_string())
    }

    /// `vpsfw-bench-PID-TAG`.
    fn tagged(tag: &str) -> Result<Netns, String> {
        let name = format!("vpsfw-bench-{}-{tag}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map_err(|e| e.to_string())?
            .success();
        if !ok {
            return Err(format!("ip netns add {name} failed"));
        }
        Ok(Netns(name))
    }

    /// Runs a command in the namespace, stdin from `input`; the time it took.
    fn time(&self, args: &[&str], input: Option<&Path>) -> Result<Duration, String> {
        self.run(args, input, false).map(|(d, _)| d)
    }

    /// Runs a command in the namespace, stdin from `input`; the time it took and, with
    /// `capture`, its stdout.
    fn run(
        &self,
        args: &[&str],
        input: Option<&Path>,
        capture: bool,
    ) -> Result<(Duration, Vec<u8>), String> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0])
            .args(args)
            .env_remove("SSH_CONNECTION")
            .env_remove("SSH_CLIENT")
            .stdout(if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        if let Some(f) = input {
            cmd.stdin(std::fs::File::open(f).map_err(|e| e.to_string())?);
        }
        let t = Instant::now();
        let out = cmd.output().map_err(|e| e.to_string())?;
        let d = t.elapsed();
        if !out.status.success() {
            return Err(format!(
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok((d, out.stdout))
    }

    /// Back to an empty firewall: accept-all filter tables, no vpsfw table or sets.
    fn reset(&self, empty: &Path) -> Result<(), String> {
        self.time(&["iptables-restore"], Some(empty))?;
        self.time(&["ip6tables-restore"], Some(empty))?;
        let _ = self.time(&["nft", "delete", "table", "inet", "vpsfw"], None);
        // The namespace's own sets, unused once the rules are flushed.
        let _ = self.time(&["ipset", "destroy"], None);
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn apply(bins: &[(usize, PathBuf)]) {
    println!("apply into an empty network namespace (target: vpsfw --apply <= 1.2x a bare restore at 5,000 rules)");
    if unsafe_geteuid() != 0 {
        println!("skipped: needs root (network namespaces)\n");
        return;
    }
    println!(
        "{:>7} | {:>10} {:>10} {:>6} | {:>10} {:>10} {:>6} | {:>12} {:>7}",
        "rules",
        "restores",
        "--apply",
        "ratio",
        "nft -f",
        "--apply",
        "ratio",
        "per command",
        "ratio"
    );
    let dir = std::env::temp_dir().join(format!("vpsfw-bench-apply-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let empty = dir.join("empty");
    let _ = std::fs::write(
        &empty,
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
    );
    for (n, bin) in bins {
        let result = (|| -> Result<String, String> {
            let ns = Netns::new(*n)?;
            let file = |format: &str| -> Result<PathBuf, String> {
                let out = Command::new(bin)
                    .args(["--format", format])
                    .env_remove("SSH_CONNECTION")
                    .env_remove("SSH_CLIENT")
                    .output()
                    .map_err(|e| e.to_string())?;
                let path = dir.join(format!("{n}.{format}"));
                std::fs::write(&path, out.stdout).map_err(|e| e.to_string())?;
                Ok(path)
            };
            let (v4, v6) = (file("restore")?, file("restore6")?);
            let (nft, commands, sets) = (file("nft")?, file("commands")?, file("ipset")?);
            // The sets the rules name (long runs become one set match) load first.
            let has_sets = std::fs::read_to_string(&sets).is_ok_and(|t| t.contains("\ncreate "));
            let both = format!(
                "{}iptables-restore < {} && ip6tables-restore < {}",
                if has_sets {
                    format!("ipset -exist restore < {} && ", sets.display())
                } else {
                    String::new()
                },
                v4.display(),
                v6.display()
            );
            let state = dir.join(format!("state-{n}"));
            let state = state.to_str().ok_or("state dir")?.to_owned();
            let bin = bin.to_str().ok_or("binary path")?;
            let runs = if *n >= 20_000 { 3 } else { 5 };
            let measure = |args: &[&str], input: Option<&Path>| -> Result<Duration, String> {
                let mut err = None;
                let d = median_of(
                    || {
                        if let Err(e) = ns.reset(&empty) {
                            err = Some(e);
                        }
                        ns.time(args, input).unwrap_or_else(|e| {
                            err = Some(e);
                            Duration::ZERO
                        })
                    },
                    runs,
                );
                err.map_or(Ok(d), Err)
            };
            let bare = measure(&["sh", "-c", &both], None)?;
            let ours = measure(
                &[bin, "--apply", "--no-rollback", "--state-dir", &state],
                None,
            )?;
            let bare_nft = measure(&["nft", "-f", nft.to_str().ok_or("path")?], None)?;
            let ours_nft = measure(
                &[
                    bin,
                    "--backend",
                    "nft",
                    "--apply",
                    "--no-rollback",
                    "--state-dir",
                    &state,
                ],
                None,
            )?;
            // One command per rule: the article's way. Once, and only up to 5,000 rules.
            let per_command = if *n <= 5_000 {
                ns.reset(&empty)?;
                let d = ns.time(&["sh", commands.to_str().ok_or("path")?], None)?;
                format!("{:>12} {:>7}", ms(d), ratio(d, bare))
            } else {
                format!("{:>12} {:>7}", "(skipped)", "")
            };
            Ok(format!(
                "{n:>7} | {:>10} {:>10} {:>6} | {:>10} {:>10} {:>6} | {per_command}",
                ms(bare),
                ms(ours),
                ratio(ours, bare),
                ms(bare_nft),
                ms(ours_nft),
                ratio(ours_nft, bare_nft),
            ))
        })();
        match result {
            Ok(line) => println!("{line}"),
            Err(e) => println!("{n:>7} | failed: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("(every command runs through `ip netns exec`; --apply is the policy binary itself: it reads the live rulesets, tests, saves, then loads both families; `restores` is ipset restore of the sets (when the policy has any), then iptables-restore and ip6tables-restore of the two files --apply loads)\n");
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

// ---------------------------------------------------------------------------------------
// Peers: the same policy in ferm and Aerleon

/// The sample policy's allow rules as (source address, port), read back from the vpsfw
/// source every benchmark uses (with the same edit), so the three tools get one policy.
fn sample_rules(n: usize, edit: Option<(usize, usize)>) -> Vec<(String, u16)> {
    policy_body(n, edit)
        .lines()
        .filter_map(|l| {
            // allow in from ADDR tcp to PORT state new;
            let mut w = l.strip_prefix("allow in from ")?.split_whitespace();
            let addr = w.next()?.to_owned();
            let port = w.nth(2)?.parse().ok()?;
            Some((addr, port))
        })
        .collect()
}

/// The ICMPv6 types vpsfw lets in by itself (IPv6 needs them); the peers' files carry
/// them too, so the three admit the same packets.
const ICMPV6: [(u8, &str); 8] = [
    (1, "destination-unreachable"),
    (2, "packet-too-big"),
    (3, "time-exceeded"),
    (4, "parameter-problem"),
    (133, "router-solicit"),
    (134, "router-advertisement"),
    (135, "neighbor-solicit"),
    (136, "neighbor-advertisement"),
];

/// The policy as a ferm user writes it: one file, both domains.
fn ferm_conf(rules: &[(String, u16)]) -> String {
    let types: Vec<String> = ICMPV6.iter().map(|(t, _)| t.to_string()).collect();
    let mut s = format!(
        "# the vpsfw benchmark's sample policy\n\
         domain (ip ip6) table filter chain INPUT {{\n    policy DROP;\n    interface lo ACCEPT;\n    mod conntrack ctstate (RELATED ESTABLISHED) ACCEPT;\n}}\n\
         domain ip6 table filter chain INPUT proto ipv6-icmp icmpv6-type ({}) ACCEPT;\n\
         domain ip table filter chain INPUT {{\n",
        types.join(" ")
    );
    for (addr, port) in rules {
        let _ = writeln!(
            s,
            "    saddr {addr} proto tcp dport {port} mod conntrack ctstate NEW ACCEPT;"
        );
    }
    s.push_str("}\n");
    s
}

/// The policy as an Aerleon user writes it: `policies/pol/peers.yaml` (IPv4, a term per
/// rule naming a network and a service), `policies/pol/peers6.yaml` (IPv6) and the
/// definitions in `def/peers.yaml`, where an edit of a rule's port goes.
fn aerleon_files(rules: &[(String, u16)]) -> [(&'static str, String); 3] {
    let head = |af: &str| {
        format!(
            "filters:\n  - header:\n      targets:\n        speedway: INPUT DROP{af}\n    terms:\n      - name: allow-lo\n        source-interface: lo\n        action: accept\n      - name: allow-established\n        option: established\n        action: accept\n"
        )
    };
    let mut v4 = head("");
    let mut defs = String::from("networks:\n");
    for (i, (addr, _)) in rules.iter().enumerate() {
        let _ = writeln!(
            v4,
            "      - name: allow-{i}\n        source-address: SRC_{i}\n        protocol: tcp\n        destination-port: PORT_{i}\n        action: accept"
        );
        let _ = writeln!(defs, "  SRC_{i}:\n    values:\n      - address: {addr}/32");
    }
    defs.push_str("services:\n");
    for (i, (_, port)) in rules.iter().enumerate() {
        let _ = writeln!(defs, "  PORT_{i}:\n    - port: {port}\n      protocol: tcp");
    }
    let types: Vec<&str> = ICMPV6.iter().map(|(_, name)| *name).collect();
    let v6 = format!(
        "{}      - name: allow-icmpv6\n        protocol: icmpv6\n        icmp-type: {}\n        action: accept\n",
        head(" inet6"),
        types.join(" ")
    );
    [
        ("policies/pol/peers.yaml", v4),
        ("policies/pol/peers6.yaml", v6),
        ("def/peers.yaml", defs),
    ]
}

/// The IPv4 `-A` lines of restore-format text (ferm's output holds both families: its
/// IPv6 part starts at a comment naming ip6tables) and the (source, port) pairs they
/// accept, with `-s`/`--source` and `--dport`/`--dports`.
fn ipv4_rules(text: &str) -> (usize, std::collections::BTreeSet<(String, u16)>) {
    let (mut count, mut pairs, mut v6) = (0, std::collections::BTreeSet::new(), false);
    // vpsfw's pair sets (`ipset restore`/`ipset save` text before the rules): an element
    // `198.51.0.1,tcp:1000` (`6:1000` as vpsfw writes it: the protocol by number) is the
    // pair a `-m set --match-set NAME src,dst` rule admits.
    let mut sets: std::collections::HashMap<&str, Vec<(String, u16)>> = Default::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if let (Some("add"), Some(name), Some(elem)) = (w.next(), w.next(), w.next()) {
            let tcp = elem.split_once(",tcp:").or_else(|| elem.split_once(",6:"));
            if let Some((net, port)) = tcp {
                if let Ok(port) = port.parse() {
                    let net = net.strip_suffix("/32").unwrap_or(net);
                    sets.entry(name).or_default().push((net.to_owned(), port));
                }
            }
        }
    }
    for line in text.lines() {
        if line.starts_with('#') {
            if line.contains("ip6tables") {
                v6 = true;
            } else if line.contains("iptables") {
                v6 = false;
            }
            continue;
        }
        if v6 || !line.starts_with("-A ") {
            continue;
        }
        count += 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |keys: &[&str]| {
            words
                .windows(2)
                .find(|w| keys.contains(&w[0]))
                .map(|w| w[1])
        };
        if let Some(set) = after(&["--match-set"]) {
            pairs.extend(sets.get(set).into_iter().flatten().cloned());
            continue;
        }
        let (Some(src), Some(ports)) = (
            after(&["-s", "--source"]),
            after(&["--dport", "--dports", "--destination-port"]),
        ) else {
            continue;
        };
        // iptables-restore makes a rule of each source of a list: so does this.
        for src in src.split(',') {
            let src = src.strip_suffix("/32").unwrap_or(src);
            for port in ports.split(',').filter_map(|p| p.parse().ok()) {
                pairs.insert((src.to_owned(), port));
            }
        }
    }
    (count, pairs)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs a command that prints nothing we need; its stderr's last line on failure.
fn quietly(cmd: &mut Command) -> Result<Duration, String> {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let d = t.elapsed();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().rev().find(|l| !l.trim().is_empty());
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            last.unwrap_or("")
        ));
    }
    Ok(d)
}

/// Aerleon's `aclgen` from `root/venv`, installed there from PyPI when it is missing
/// (`python3 -m venv`, `pip install aerleon`; never under CI); its version.
fn aerleon(root: &Path) -> Result<(PathBuf, String), String> {
    let venv = root.join("venv");
    let aclgen = venv.join("bin").join("aclgen");
    if !aclgen.is_file() {
        if std::env::var_os("CI").is_some() {
            return Err("not installed under CI".into());
        }
        println!(
            "aerleon: installing it into {} (python3 -m venv; pip install aerleon)",
            venv.display()
        );
        quietly(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        quietly(
            Command::new(venv.join("bin").join("pip"))
                .args(["install", "--quiet", "aerleon"])
                .env_remove("PIP_REQUIRE_VIRTUALENV"),
        )?;
        if !aclgen.is_file() {
            return Err("pip installed no aclgen".into());
        }
    }
    let version = Command::new(venv.join("bin").join("python"))
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('aerleon'))",
        ])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "?".into(), |v| v.trim().to_owned());
    Ok((aclgen, version))
}

/// The median of `runs` fallible measurements.
fn median_try(
    runs: usize,
    mut f: impl FnMut(usize) -> Result<Duration, String>,
) -> Result<Duration, String> {
    let mut times = (0..runs).map(&mut f).collect::<Result<Vec<_>, _>>()?;
    times.sort();
    Ok(times[runs / 2])
}

/// One tool's figures at one size: compile time, its IPv4 output, edit-to-loaded time.
struct Side {
    compile: Duration,
    output: String,
    loaded: Duration,
    /// What the live IPv4 ruleset held after the last edit was loaded.
    live: String,
}

/// The edits every tool makes in turn: rule n/2 gets port 65100, 65101, 65102, ...
fn peer_edit(n: usize, j: usize) -> (usize, usize) {
    (n / 2, 100 + j)
}

const PEER_EDITS: usize = 3;

fn ferm_side(ferm: &Path, dir: &Path, n: usize) -> Result<Side, String> {
    let conf = dir.join(format!("ferm-{n}.conf"));
    let write =
        |edit| std::fs::write(&conf, ferm_conf(&sample_rules(n, edit))).map_err(|e| e.to_string());
    write(None)?;
    let (ferm, conf_s) = (ferm.to_str().ok_or("path")?, conf.to_str().ok_or("path")?);
    // ferm reads the live ruleset even with --noexec: it runs in a namespace too.
    let ns = Netns::tagged(&format!("ferm-{n}"))?;
    let mut output = Vec::new();
    let compile = median_try(peer_runs(n), |_| {
        let (d, out) = ns.run(&[ferm, "--noexec", "--lines", conf_s], None, true)?;
        output = out;
        Ok(d)
    })?;
    ns.time(&[ferm, conf_s], None)?; // the unedited policy, loaded
    let loaded = median_try(PEER_EDITS, |j| {
        write(Some(peer_edit(n, j)))?;
        ns.time(&[ferm, conf_s], None)
    })?;
    let live = ns.run(&["iptables-legacy-save"], None, true)?.1;
    Ok(Side {
        compile,
        output: String::from_utf8_lossy(&output).into_owned(),
        loaded,
        live: String::from_utf8_lossy(&live).into_owned(),
    })
}

fn aerleon_side(aclgen: &Path, dir: &Path, n: usize) -> Result<Side, String> {
    let base = dir.join(format!("aerleon-{n}"));
    for sub in ["policies/pol", "def", "out"] {
        std::fs::create_dir_all(base.join(sub)).map_err(|e| e.to_string())?;
    }
    let write = |edit| -> Result<(), String> {
        for (path, text) in aerleon_files(&sample_rules(n, edit)) {
            std::fs::write(base.join(path), text).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let (v4, v6) = (base.join("out/peers.ipt"), base.join("out/peers6.ipt"));
    let generate = || {
        quietly(
            Command::new(aclgen)
                .arg("--base_directory")
                .arg(base.join("policies"))
                .arg("--definitions_directory")
                .arg(base.join("def"))
                .arg("--output_directory")
                .arg(base.join("out")),
        )
    };
    write(None)?;
    let compile = median_try(peer_runs(n), |_| {
        // aclgen writes only the files that changed: start from none.
        let _ = std::fs::remove_file(&v4);
        let _ = std::fs::remove_file(&v6);
        generate()
    })?;
    let output =
        std::fs::read_to_string(&v4).map_err(|e| format!("aclgen wrote no {v4:?}: {e}"))?;
    let ns = Netns::tagged(&format!("aerleon-{n}"))?;
    let load = format!(
        "iptables-restore < {} && ip6tables-restore < {}",
        v4.display(),
        v6.display()
    );
    ns.time(&["sh", "-c", &load], None)?; // the unedited policy, loaded
    let loaded = median_try(PEER_EDITS, |j| {
        write(Some(peer_edit(n, j)))?;
        Ok(generate()? + ns.time(&["sh", "-c", &load], None)?)
    })?;
    let live = ns.run(&["iptables-save"], None, true)?.1;
    Ok(Side {
        compile,
        output,
        loaded,
        live: String::from_utf8_lossy(&live).into_owned(),
    })
}

/// Copies the vpsfw workspace's sources (not its targets or .git) to `to`, writing only
/// the files whose bytes differ so cargo's fingerprints of the rest hold between runs.
/// The policy crates of this part build against that copy: an edit made in the checkout
/// while the part runs does not turn a one-rule rebuild into a rebuild of vpsfw.
fn snapshot(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_s = name.to_string_lossy();
        if name_s.starts_with('.') || name_s.starts_with("target") {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type()?.is_dir() {
            snapshot(&src, &dst)?;
        } else if entry.file_type()?.is_file() {
            let bytes = std::fs::read(&src)?;
            if std::fs::read(&dst).ok().as_deref() != Some(&bytes[..]) {
                std::fs::write(&dst, bytes)?;
            }
        }
    }
    Ok(())
}

/// vpsfw's side: a policy crate like the edit-to-binary part's (its own, under
/// `target/peers`, built against a snapshot of this checkout, so this part needs neither
/// that part nor a quiet checkout), rebuilt after each edit, then `--apply --no-rollback`
/// in a namespace. The compile figure is the rebuild; also returns the apply alone.
fn vpsfw_side(vpsfw: &Path, dir: &Path, n: usize) -> Result<(Side, Duration), String> {
    let root = Path::new(REPO).join("target").join("peers");
    let target = root.join(if default_profile() {
        "target-default"
    } else {
        "target"
    });
    let krate = Crate::new(
        &root.join("crates"),
        &format!("policy{n}"),
        &format!("vpsfw = {{ path = {:?} }}\n", vpsfw),
    );
    krate.write(&policy_main(n, None));
    krate.build(&target)?;
    let bin = target.join("debug").join(&krate.name);
    // The sets the rules name (a long run of rules is one set match), then the rules.
    let mut output = String::new();
    for format in ["ipset", "restore"] {
        let out = Command::new(&bin)
            .args(["--format", format])
            .env_remove("SSH_CONNECTION")
            .env_remove("SSH_CLIENT")
            .output()
            .map_err(|e| e.to_string())?;
        output.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let ns = Netns::tagged(&format!("vpsfw-{n}"))?;
    let state = dir.join(format!("state-{n}"));
    let apply = [
        bin.to_str().ok_or("path")?,
        "--apply",
        "--no-rollback",
        "--state-dir",
        state.to_str().ok_or("path")?,
    ];
    ns.time(&apply, None)?; // the unedited policy, loaded
    let (mut builds, mut applies) = (Vec::new(), Vec::new());
    let loaded = median_try(PEER_EDITS, |j| {
        krate.write(&policy_main(n, Some(peer_edit(n, j))));
        let b = krate.build(&target)?;
        let a = ns.time(&apply, None)?;
        builds.push(b);
        applies.push(a);
        Ok(b + a)
    })?;
    builds.sort();
    applies.sort();
    let sets = ns.run(&["ipset", "save"], None, true)?.1;
    let live = ns.run(&["iptables-save"], None, true)?.1;
    Ok((
        Side {
            compile: builds[PEER_EDITS / 2],
            output,
            loaded,
            live: format!(
                "{}{}",
                String::from_utf8_lossy(&sets),
                String::from_utf8_lossy(&live)
            ),
        },
        applies[PEER_EDITS / 2],
    ))
}

/// vpsfw's IPv4 file loaded into an empty namespace by iptables-restore and by
/// iptables-legacy-restore (medians of 3): how much of a load the backend is.
fn backends(dir: &Path, n: usize, v4: &str) -> Result<String, String> {
    // `v4` is vpsfw's `ipset` output then its restore file: the sets go in first.
    let (sets, v4) = v4.split_at(v4.find("*filter").unwrap_or(0));
    let file = dir.join(format!("backends-{n}.v4"));
    let set_file = dir.join(format!("backends-{n}.ipset"));
    std::fs::write(&file, v4).map_err(|e| e.to_string())?;
    std::fs::write(&set_file, sets).map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    for tool in ["iptables-restore", "iptables-legacy-restore"] {
        times.push(median_try(3, |_| {
            let ns = Netns::tagged(&format!("backend-{n}"))?;
            ns.time(&["ipset", "-exist", "restore"], Some(&set_file))?;
            ns.time(&[tool], Some(&file))
        })?);
    }
    Ok(format!(
        "{n} rules: vpsfw's IPv4 file loads in {} with iptables-restore (nf_tables), {} with iptables-legacy-restore (x_tables, what ferm uses here)",
        ms(times[0]),
        ms(times[1])
    ))
}

fn peer_runs(n: usize) -> usize {
    if n >= 5_000 {
        3
    } else {
        5
    }
}

/// Whether one tool's output admits the policy's pairs, and its live ruleset the edited
/// rule; `None` when all is well.
fn peer_mismatch(
    name: &str,
    side: &Side,
    want: &std::collections::BTreeSet<(String, u16)>,
    edited: &(String, u16),
) -> Option<String> {
    let (_, pairs) = ipv4_rules(&side.output);
    if &pairs != want {
        let missing = want.difference(&pairs).count();
        let extra = pairs.difference(want).count();
        return Some(format!(
            "{name}: output has {} (source, port) pairs, {missing} missing, {extra} extra",
            pairs.len()
        ));
    }
    let (_, live) = ipv4_rules(&side.live);
    if !live.contains(edited) {
        return Some(format!(
            "{name}: the live ruleset lacks the edited rule {}:{}",
            edited.0, edited.1
        ));
    }
    None
}

fn peers(sizes: &[usize]) {
    println!("peers: the same generated policy in ferm, Aerleon and vpsfw (noisy when the machine is busy)");
    if unsafe_geteuid() != 0 {
        println!("peers: skipped: needs root (network namespaces)\n");
        return;
    }
    let root = Path::new(REPO).join("target").join("peers");
    let dir = root.join(format!("run-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        println!("peers: skipped: cannot create {}: {e}\n", dir.display());
        return;
    }
    let snap = root.join("vpsfw");
    if let Err(e) = snapshot(Path::new(REPO), &snap) {
        println!(
            "peers: skipped: cannot copy the checkout to {}: {e}\n",
            snap.display()
        );
        return;
    }
    let ferm = which("ferm");
    let ferm_version = ferm.as_ref().map_or_else(String::new, |f| {
        first_line(f.to_str().unwrap_or("ferm"), &["--version"])
    });
    match &ferm {
        Some(_) => {}
        None => println!("ferm: not found (its columns are skipped)"),
    }
    let aerleon = match aerleon(&root) {
        Ok(a) => Some(a),
        Err(e) => {
            println!("aerleon: not installed ({e}); its columns are skipped");
            None
        }
    };
    // What `ip netns exec` alone costs: it is part of every ferm figure.
    let netns_exec = Netns::tagged("exec")
        .and_then(|ns| median_try(5, |_| ns.time(&["true"], None)))
        .map_or_else(|e| e, ms);
    println!(
        "{}; aerleon {}",
        if ferm_version.is_empty() {
            "ferm: -".to_owned()
        } else {
            ferm_version.clone()
        },
        aerleon.as_ref().map_or("-", |(_, v)| v.as_str())
    );
    println!(
        "{:>7} | {:>9} {:>9} {:>9} | {:>6} {:>7} {:>6} | {:>9} {:>9} {:>9} {:>9} | {:>8} {:>8} | same policy",
        "rules",
        "ferm",
        "aerleon",
        "vpsfw",
        "ferm",
        "aerleon",
        "vpsfw",
        "ferm",
        "aerleon",
        "vpsfw",
        "(apply)",
        "vs ferm",
        "vs aerl."
    );
    println!(
        "{:>7} | {:^29} | {:^22} | {:^39} | {:^17} |",
        "", "compile", "IPv4 rules (-A lines)", "edit-to-loaded", "vpsfw edit-to-loaded"
    );
    let mut notes = Vec::new();
    for &n in sizes {
        let fail = |tool: &str, e: String| {
            let first = e.lines().next().unwrap_or("").to_owned();
            format!("{n} rules, {tool}: failed: {first}")
        };
        let ferm_side = ferm.as_ref().and_then(|f| {
            ferm_side(f, &dir, n)
                .map_err(|e| notes.push(fail("ferm", e)))
                .ok()
        });
        let aerleon_side = aerleon.as_ref().and_then(|(a, _)| {
            aerleon_side(a, &dir, n)
                .map_err(|e| notes.push(fail("aerleon", e)))
                .ok()
        });
        let vpsfw = vpsfw_side(&snap, &dir, n)
            .map_err(|e| notes.push(fail("vpsfw", e)))
            .ok();
        let sides = [
            ("ferm", ferm_side.as_ref()),
            ("aerleon", aerleon_side.as_ref()),
            ("vpsfw", vpsfw.as_ref().map(|(s, _)| s)),
        ];
        let cell = |f: &dyn Fn(&Side) -> String, i: usize| sides[i].1.map_or("-".into(), f);
        let compile = |i| cell(&|s| ms(s.compile), i);
        // The file's -A lines, and the kernel's rules after the last load when they differ.
        let count = |i| {
            cell(
                &|s| {
                    let (file, live) = (ipv4_rules(&s.output).0, ipv4_rules(&s.live).0);
                    if file == live {
                        file.to_string()
                    } else {
                        format!("{file} ({live})")
                    }
                },
                i,
            )
        };
        let loaded = |i| cell(&|s| ms(s.loaded), i);
        let vs = |i: usize| match (vpsfw.as_ref(), sides[i].1) {
            (Some((v, _)), Some(p)) => ratio(v.loaded, p.loaded),
            _ => "-".into(),
        };
        // Equivalence: every output accepts exactly the policy's (source, port) pairs,
        // and each live ruleset holds the last edit.
        let want: std::collections::BTreeSet<_> = sample_rules(n, None).into_iter().collect();
        let edited = sample_rules(n, Some(peer_edit(n, PEER_EDITS - 1))).swap_remove(n / 2);
        let mut same = Vec::new();
        for (name, side) in sides {
            if let Some(side) = side {
                match peer_mismatch(name, side, &want, &edited) {
                    None => same.push(name),
                    Some(m) => notes.push(format!("{n} rules, {m}")),
                }
            }
        }
        // ferm loads through iptables-legacy-restore (x_tables), vpsfw and Aerleon's files
        // through iptables-restore (nf_tables here): the same file under both, for scale.
        if let (Some((v, _)), Some(_)) = (vpsfw.as_ref(), which("iptables-legacy-restore")) {
            match backends(&dir, n, &v.output) {
                Ok(line) => notes.push(line),
                Err(e) => notes.push(fail("backends", e)),
            }
        }
        let sample = sample_rules(n, None).swap_remove(n / 3);
        println!(
            "{n:>7} | {:>9} {:>9} {:>9} | {:>6} {:>7} {:>6} | {:>9} {:>9} {:>9} {:>9} | {:>8} {:>8} | {} ({} pairs, e.g. {}:{})",
            compile(0),
            compile(1),
            compile(2),
            count(0),
            count(1),
            count(2),
            loaded(0),
            loaded(1),
            loaded(2),
            vpsfw.as_ref().map_or("-".into(), |(_, a)| ms(*a)),
            vs(0),
            vs(1),
            same.join(", "),
            want.len(),
            sample.0,
            sample.1
        );
    }
    for note in &notes {
        println!("  {note}");
    }
    println!("(compile: `ferm --noexec --lines FILE`; Aerleon's `aclgen` with its speedway generator (iptables-restore files, default options: a chain per term, so two -A lines per rule), IPv4 and IPv6 policies in one run; vpsfw: `cargo build` (debug, {}) of a policy crate after a one-rule edit, against a copy of this checkout taken when the part starts (target/peers/).", profile_words());
    println!(" edit-to-loaded: one rule's port changed, then ferm: `ferm FILE` (it loads through iptables-legacy-restore when installed, as here); Aerleon: aclgen, then iptables-restore + ip6tables-restore of its two files; vpsfw: the cargo build, then `--apply --no-rollback`, whose time alone is (apply); each into a namespace holding the unedited policy, median of {PEER_EDITS} edits; vs = vpsfw's time / the peer's.");
    println!(" Every ferm and iptables command runs under `ip netns exec` (alone: {netns_exec}); IPv4 rules: -A lines of the output, (the kernel's) after loading when they differ; `same policy` lists the tools whose output accepts exactly the policy's (source, port) pairs and whose live ruleset holds the edited rule.)\n");
    let _ = std::fs::remove_dir_all(&dir);
}

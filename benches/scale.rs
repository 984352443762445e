//! `cargo bench --bench scale`: how fast vpsfw is from an edited policy to a loaded
//! firewall, at N = 100, 1,000, 5,000 and 20,000 rules, printed as tables with the
//! machine, medians, the targets and ratios from the same run. Nothing here
//! asserts a time.
//!
//! The policy is the one every vpsfw benchmark uses (`vpsfw_codegen::phases::
//! sample_source`): a `common` group and N allow rules with distinct sources and ports.
//!
//! Environment: `VPSFW_BENCH_SIZES=100,1000` picks the sizes; `VPSFW_BENCH_SKIP=build,apply`
//! skips the slow parts (edit-to-binary builds crates with cargo; apply needs root and
//! creates network namespaces named `vpsfw-bench-*`, deleted afterwards).

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
            println!("apply: skipped (VPSFW_BENCH_SKIP)");
        } else {
            apply(&bins);
        }
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

/// The profile the README recommends for policy crates; both crates get it.
const PROFILE: &str = "[profile.dev]\nsplit-debuginfo = \"unpacked\"\n\n[profile.dev.package.\"*\"]\nopt-level = \"s\"\ncodegen-units = 1\ndebug = false\n\n[profile.dev.package.vpsfw-codegen]\nopt-level = 3\n\n[profile.dev.package.vpsfw-runtime]\nopt-level = 3\n";

struct Crate {
    dir: PathBuf,
    name: String,
}

impl Crate {
    fn new(root: &Path, name: &str, deps: &str) -> Crate {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("src")).expect("bench crate dir");
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\n{deps}\n[workspace]\n\n{PROFILE}"
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
    let root = Path::new(REPO).join("target").join("bench-crates");
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
            // Three edits, each of a different rule's port; the median rebuild.
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
                3,
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
    println!("(both crates built the same way: `cargo build`, dev profile with the settings the README recommends for policy crates)\n");
    bins
}

// ---------------------------------------------------------------------------------------
// Apply

/// A network namespace for one measurement, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(n: usize) -> Result<Netns, String> {
        let name = format!("vpsfw-bench-{}-{n}", std::process::id());
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
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.0])
            .args(args)
            .env_remove("SSH_CONNECTION")
            .env_remove("SSH_CLIENT")
            .stdout(Stdio::null())
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
        Ok(d)
    }

    /// Back to an empty firewall: accept-all filter tables, no vpsfw table or sets.
    fn reset(&self, empty: &Path) -> Result<(), String> {
        self.time(&["iptables-restore"], Some(empty))?;
        self.time(&["ip6tables-restore"], Some(empty))?;
        let _ = self.time(&["nft", "delete", "table", "inet", "vpsfw"], None);
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
            let (nft, commands) = (file("nft")?, file("commands")?);
            let both = format!(
                "iptables-restore < {} && ip6tables-restore < {}",
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
    println!("(every command runs through `ip netns exec`; --apply is the policy binary itself: it reads the live rulesets, tests, saves, then loads both families; `restores` is iptables-restore then ip6tables-restore of the two files --apply loads)\n");
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

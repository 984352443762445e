//! Benchmark, not a test: `cargo test -p vpsfw-macros --release -- --ignored --nocapture bench`
//! prints the median time of each phase of the macro on a generated policy, and of
//! rendering it. Nothing here asserts a time.

use std::str::FromStr;
use std::time::{Duration, Instant};

use proc_macro2::TokenStream;
use vpsfw_runtime::{render, Format, Packet};

/// `n` allow rules with distinct sources and ports, as an admin would write them.
fn policy_source(n: usize) -> String {
    let mut s = String::from("::vpsfw; admin none; policy input drop; group common { allow in on lo; allow in state established,related; }\n");
    for i in 0..n {
        let (a, b) = (i / 250 % 250, i % 250 + 1);
        let port = 1000 + i % 60000;
        let net = ["198.51", "203.0"][i % 2];
        s.push_str(&format!(
            "allow in from {net}.{a}.{b} tcp to {port} state new;\n"
        ));
    }
    s
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture bench"]
fn bench() {
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c
                .lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.to_owned()))
            .unwrap_or_default()
    );
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>10} | render: {:>9} {:>9} {:>9} {:>9} | eval pkt/s",
        "rules", "tokenize", "parse", "check", "expand", "sh", "restore", "restore6", "commands"
    );
    let sizes: Vec<usize> = std::env::var("VPSFW_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1_000, 5_000, 20_000]);
    for n in sizes {
        let src = policy_source(n);
        let runs = if n >= 20_000 { 5 } else { 11 };
        let tokenize = median(|| drop(TokenStream::from_str(&src)), runs);
        let tokens = TokenStream::from_str(&src).expect("tokens");
        let body: TokenStream = tokens.clone().into_iter().skip(3).collect();
        let parse = median(
            || {
                let mut locs = crate::parse::Locs::default();
                drop(crate::parse::parse(body.clone(), &mut locs));
            },
            runs,
        );
        let mut locs = crate::parse::Locs::default();
        let (spec, errors) = crate::parse::parse(body.clone(), &mut locs);
        assert!(errors.is_empty(), "generated policy does not parse");
        let check = median(|| drop(spec.build()), runs);
        let policy = spec.build().expect("generated policy checks");
        let analysis = median(|| drop(policy.analyze()), runs);
        println!("   (analysis alone {:.2}ms)", analysis.as_secs_f64() * 1e3);
        let krate = quote::quote!(::vpsfw);
        let expand = median(|| drop(crate::expand::expand(&krate, &policy, &[])), runs);
        let whole = median(|| drop(crate::firewall2(tokens.clone())), runs);
        let renders: Vec<Duration> = Format::ALL
            .iter()
            .map(|f| median(|| drop(render(&policy, *f)), runs))
            .collect();
        let packets: Vec<Packet> = (0..1000)
            .map(|i| {
                format!(
                    "in tcp from 198.51.{}.{}:40000 to 192.0.2.1:{}",
                    i % 20,
                    i % 250 + 1,
                    1000 + i * 7
                )
                .parse()
                .expect("packet")
            })
            .collect();
        let eval = median(
            || {
                for p in &packets {
                    std::hint::black_box(policy.evaluate(p).outcome);
                }
            },
            5,
        );
        let ms = |d: Duration| format!("{:.2}ms", d.as_secs_f64() * 1e3);
        println!(
            "{n:>6} {:>10} {:>10} {:>10} {:>10} | {:>9} {:>9} {:>9} {:>9} | {:.0}   (whole macro {})",
            ms(tokenize),
            ms(parse),
            ms(check),
            ms(expand),
            ms(renders[0]),
            ms(renders[2]),
            ms(renders[3]),
            ms(renders[1]),
            packets.len() as f64 / eval.as_secs_f64(),
            ms(whole),
        );
    }
}

//! Benchmark, not a test: `cargo test -p vpsfw-codegen --release -- --ignored --nocapture bench`
//! prints the median time of each phase of the macro on a generated policy
//! (`vpsfw_codegen::phases::sample_source`), and of rendering it. Nothing here asserts a
//! time. `VPSFW_BENCH_SIZES=100,5000` picks the sizes. An integration test, so it times
//! the library as a macro runs it (the unit tests add checks to the parser).
//!
//! The phases run on `proc_macro2`'s own tokens, not the compiler's: inside rustc every
//! span and token operation is a call into the compiler, so the macro's time in a build
//! differs (see the README's benchmark section for build times).

use std::str::FromStr;
use std::time::{Duration, Instant};

use proc_macro2::TokenStream;
use vpsfw_runtime::{render, Format, Packet};

use vpsfw_codegen::phases;

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
        "{:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} | render: {:>9} {:>9} {:>9} {:>9} | eval pkt/s",
        "rules",
        "tokenize",
        "parse",
        "check",
        "(analysis)",
        "expand",
        "macro",
        "sh",
        "restore",
        "restore6",
        "commands"
    );
    let sizes: Vec<usize> = std::env::var("VPSFW_BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![100, 1_000, 5_000, 20_000]);
    for n in sizes {
        let src = phases::sample_source(n);
        let runs = if n >= 20_000 { 5 } else { 11 };
        let tokenize = median(|| drop(TokenStream::from_str(&src)), runs);
        let tokens = TokenStream::from_str(&src).expect("tokens");
        let (krate, body) = phases::split_input(tokens.clone());
        let parse = median(|| drop(phases::parse(body.clone())), runs);
        let parsed = phases::parse(body.clone());
        assert!(parsed.is_clean(), "generated policy does not parse");
        let check = median(|| drop(phases::check(&parsed)), runs);
        let policy = phases::check(&parsed).expect("generated policy checks");
        let analysis = median(|| drop(phases::analysis(&policy)), runs);
        let expand = median(|| drop(phases::expand(&krate, &parsed, &policy)), runs);
        let whole = median(|| drop(vpsfw_codegen::firewall2(tokens.clone())), runs);
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
            "{n:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} | {:>9} {:>9} {:>9} {:>9} | {:.0}",
            ms(tokenize),
            ms(parse),
            ms(check),
            ms(analysis),
            ms(expand),
            ms(whole),
            ms(renders[0]),
            ms(renders[2]),
            ms(renders[3]),
            ms(renders[1]),
            packets.len() as f64 / eval.as_secs_f64(),
        );
    }
}

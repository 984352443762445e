//! Unit tests of the macro on `proc_macro2` tokens.
//!
//! The macro must never panic: whatever the tokens, it returns an expansion or
//! `compile_error!`s. These tests feed it every truncation and every single-token
//! deletion of valid policies, and a few thousand random token sequences; and check that
//! errors land on the tokens at fault.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use quote::quote;
use vpsfw_runtime::spec::RuleSpec;
use vpsfw_runtime::{Policy, Spanned};

use crate::parse::Locs;
use crate::phases;

/// How many rules the fast path read (and the syn path read the same way).
static FAST_RULES: AtomicUsize = AtomicUsize::new(0);

/// Every rule the fast path reads is read by the syn path too, in tests: the two must
/// give the same rule, with locations on the same tokens; and the rule's text must be
/// what the first implementation gave (each token's `source_text`, `start` and `end`).
pub(crate) fn fast_agrees(
    fast: &RuleSpec,
    mark: usize,
    trees: &[TokenTree],
    end: Span,
    group: Option<&Spanned<String>>,
    locs: &mut Locs,
) {
    let shown: TokenStream = trees.iter().cloned().collect();
    let fast_locs = locs.shown_since(mark);
    locs.truncate(mark);
    let slow = crate::parse::parse_in(end, shown.clone(), |input| {
        crate::parse::parse_rule(input, fast.at, group, locs)
    })
    .unwrap_or_else(|e| panic!("fast path read `{shown}`, syn refused it: {e}"));
    assert_eq!(&slow, fast, "`{shown}`");
    assert_eq!(locs.shown_since(mark), fast_locs, "`{shown}`");
    // Tokens made by hand (not lexed from source) may carry any span; the text is then
    // the tokens' own, where the first implementation took the spans' source.
    let lexed = trees
        .iter()
        .all(|t| matches!(t, TokenTree::Group(_)) || t.span().source_text() == Some(t.to_string()));
    if lexed {
        let text = crate::parse::source_text(trees).0;
        assert_eq!(text, first_source_text(trees), "`{shown}`");
    }
    FAST_RULES.fetch_add(1, Ordering::Relaxed);
}

/// The fast reading of `group NAME {` gives the name and body syn gives.
pub(crate) fn group_head_agrees(
    fast: &(Spanned<String>, TokenStream),
    trees: &[TokenTree],
    end: Span,
    locs: &mut Locs,
) {
    let shown: TokenStream = trees.iter().cloned().collect();
    let mark = locs.len() - 1;
    let fast_locs = locs.shown_since(mark);
    locs.truncate(mark);
    let (name, body) = crate::parse::parse_in(end, shown.clone(), |input| {
        crate::parse::parse_group_head(input, locs)
    })
    .unwrap_or_else(|e| panic!("fast path read `{shown}`, syn refused it: {e}"));
    assert_eq!(name.value, fast.0.value, "`{shown}`");
    assert_eq!(locs.shown_since(mark), fast_locs, "`{shown}`");
    let trees = |ts: &TokenStream| -> Vec<String> {
        ts.clone()
            .into_iter()
            .map(|t| format!("{t} {:?}", t.span()))
            .collect()
    };
    assert_eq!(trees(&body), trees(&fast.1), "`{shown}`");
}

/// The rule text as first written: three span queries per token.
fn first_source_text(trees: &[TokenTree]) -> String {
    let mut out = String::new();
    let mut prev_end: Option<proc_macro2::LineColumn> = None;
    for tt in trees {
        let span = tt.span();
        let start = span.start();
        if let Some(end) = prev_end {
            if start.line == end.line && start.column >= end.column && start.line > 0 {
                out.extend(std::iter::repeat_n(' ', start.column - end.column));
            } else {
                out.push(' ');
            }
        }
        out.push_str(&span.source_text().unwrap_or_else(|| tt.to_string()));
        prev_end = Some(span.end());
    }
    out.push(';');
    out
}

/// Valid policies: the README's, the design sentence, and one with every form.
const VALID: &[&str] = &[
    r#"
    host admin = 198.51.100.7, "2001:db8:100::7";
    group common {
        allow in on lo;
        allow in state established,related;
        allow out on lo;
        allow out state established,related;
    }
    group server {
        allow in from admin state new;
        allow in tcp from 1024: to [http, https] state new;
    }
    group client {
        allow out tcp to [http, https, dns, smtp] state new;
        allow out udp to [dns, ntp] state new;
    }
    admin admin;
    policy input drop;
    policy forward drop;
    policy output drop;
    "#,
    r#"
    host office = 203.0.113.128;
    allow in from office/27 tcp to [http, https] state new,established;
    "#,
    r#"
    net office = 203.0.113.128/27;
    net office6 = "2001:db8:200::/48";
    group "web (public)" {
        accept in on "eth+" tcp from office port 1024: to :1023 comment "lan";
        log in icmpv6 type neighbour-solicitation limit 5/minute burst 10 prefix "ND: ";
        reject forward udp from office6 to 6000:6010;
        drop out on eth0.100 icmp type echo-request;
    }
    allow in all from any to 192.0.2.1 state new,invalid,untracked;
    policy output allow;
    "#,
];

fn tokens(src: &str) -> TokenStream {
    src.parse().expect("test source lexes")
}

/// Runs the macro as the facade calls it; fails the test if it panics or returns
/// neither an expansion nor `compile_error!`.
fn run(body: TokenStream) -> String {
    run_raw(quote!(::vpsfw; #body))
}

fn run_raw(input: TokenStream) -> String {
    let shown = input.to_string();
    let copy = input.clone();
    let out = catch_unwind(AssertUnwindSafe(|| crate::firewall2(input)))
        .unwrap_or_else(|_| panic!("firewall! panicked on `{shown}`"));
    let text = out.to_string();
    assert!(
        text.contains("compile_error") || text.contains("__private"),
        "firewall! returned neither an expansion nor an error on `{shown}`: {text}"
    );
    if !text.contains("compile_error") {
        check_table(input_policy(copy), &out);
    }
    text
}

/// The policy the macro checked for `input` (which must be valid).
fn input_policy(input: TokenStream) -> Policy {
    let (_, body) = phases::split_input(input.clone());
    let parsed = phases::parse(body);
    assert!(parsed.is_clean(), "`{input}` does not parse");
    phases::check(&parsed).unwrap_or_else(|e| panic!("`{input}` does not check: {e:?}"))
}

/// The string literals of an expansion, at any depth.
fn literals(out: &TokenStream) -> Vec<String> {
    let mut found = Vec::new();
    for tt in out.clone() {
        match tt {
            TokenTree::Literal(l) => {
                if let Ok(s) = syn::parse2::<syn::LitStr>(TokenTree::Literal(l).into()) {
                    found.push(s.value());
                }
            }
            TokenTree::Group(g) => found.extend(literals(&g.stream())),
            _ => {}
        }
    }
    found
}

/// The expansion's table, read back as the program will read it, is the policy the
/// macro checked: equal, and the same JSON (rule text and lines included).
fn check_table(policy: Policy, out: &TokenStream) {
    let tables: Vec<String> = literals(out)
        .into_iter()
        .filter(|l| l.starts_with(vpsfw_runtime::__private::VERSION))
        .collect();
    assert_eq!(tables.len(), 1, "one table in {out}");
    let back = vpsfw_runtime::__private::from_table(&tables[0]);
    let json = |p: &Policy| serde_json::to_string(p).expect("serialize");
    let (got, want) = (json(&back), json(&policy));
    if got != want {
        let at = got
            .bytes()
            .zip(want.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let from = at.saturating_sub(200);
        panic!(
            "the table does not read back as the policy; first difference at byte {at}:\n got: ...{}\nwant: ...{}\ntable:\n{}",
            got.get(from..at + 200).unwrap_or(&got[from..]),
            want.get(from..at + 200).unwrap_or(&want[from..]),
            tables[0]
        );
    }
    assert!(back == policy, "equal JSON, unequal policies");
}

/// The `firewall! { ... }` bodies of a Rust file, tokenized as the compiler would.
fn firewall_bodies(file: &str) -> Vec<TokenStream> {
    fn walk(ts: TokenStream, out: &mut Vec<TokenStream>) {
        let trees: Vec<TokenTree> = ts.into_iter().collect();
        for (i, tt) in trees.iter().enumerate() {
            if let (TokenTree::Ident(id), Some(TokenTree::Punct(bang)), Some(TokenTree::Group(g))) =
                (tt, trees.get(i + 1), trees.get(i + 2))
            {
                if id == "firewall" && bang.as_char() == '!' && g.delimiter() == Delimiter::Brace {
                    out.push(g.stream());
                    continue;
                }
            }
            if let TokenTree::Group(g) = tt {
                walk(g.stream(), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(tokens(file), &mut out);
    out
}

/// The examples' policies (the set file's path made relative to this crate) and
/// generated ones expand to tables that read back as the checked policy.
#[test]
fn tables_read_back_as_the_checked_policy() {
    let examples = [
        include_str!("../../examples/web_server.rs"),
        include_str!("../../examples/internal_server.rs"),
        include_str!("../../examples/file_server.rs"),
        include_str!("../../examples/blocklist.rs"),
    ];
    let mut n = 0;
    for file in examples {
        let file = file.replace("\"examples/sets/", "\"../examples/sets/");
        for body in firewall_bodies(&file) {
            run(body);
            n += 1;
        }
    }
    assert_eq!(n, examples.len());
    for size in [0, 1, 250, 2_000] {
        let src = phases::sample_source(size);
        check_table(input_policy(tokens(&src)), &crate::firewall2(tokens(&src)));
    }
    // A set from a file, a widened name, every clause.
    run(tokens(
        r#"
        #![allow(unused_name)]
        admin none;
        host office = 203.0.113.130;
        set bl from "../tests/fixtures/blocklist.txt";
        set mixed = [198.51.100.0/24, "2001:db8:1::/48", 192.0.2.7];
        drop in from bl;
        reject in from mixed;
        #[allow(shadowed, redundant)]
        allow in from office/27 tcp to [http, https] state new,established;
        harden port_scan for 30;
        "#,
    ));
}

/// Each error of the macro: its message and the source text it underlines.
fn errors(src: &str) -> Vec<(String, String)> {
    let body = tokens(src);
    match crate::expand_policy(quote!(::vpsfw; #body)) {
        Ok(_) => Vec::new(),
        Err(all) => all
            .into_iter()
            .map(|e| (e.to_string(), e.span().source_text().unwrap_or_default()))
            .collect(),
    }
}

/// The one error of `src`, as (message, underlined text).
fn error(src: &str) -> (String, String) {
    let mut all = errors(src);
    assert_eq!(
        all.len(),
        1,
        "expected one error from `{src}`, got {all:#?}"
    );
    all.remove(0)
}

fn rebuild(group: &Group, stream: TokenStream) -> TokenTree {
    let mut g = Group::new(group.delimiter(), stream);
    g.set_span(group.span());
    TokenTree::Group(g)
}

fn joined(
    before: &[TokenTree],
    middle: impl IntoIterator<Item = TokenTree>,
    after: &[TokenTree],
) -> TokenStream {
    before
        .iter()
        .cloned()
        .chain(middle)
        .chain(after.iter().cloned())
        .collect()
}

/// Every stream with one token tree removed, at any depth; for a group, also the
/// stream with only its delimiters removed.
fn deletions(ts: &TokenStream) -> Vec<TokenStream> {
    let items: Vec<TokenTree> = ts.clone().into_iter().collect();
    let mut out = Vec::new();
    for (i, tt) in items.iter().enumerate() {
        let (before, after) = (&items[..i], &items[i + 1..]);
        out.push(joined(before, None, after));
        if let TokenTree::Group(g) = tt {
            out.push(joined(before, g.stream(), after));
            for inner in deletions(&g.stream()) {
                out.push(joined(before, Some(rebuild(g, inner)), after));
            }
        }
    }
    out
}

/// Every prefix of the stream; a prefix ending inside a group keeps the group's
/// delimiters (a token stream is always balanced) and drops what follows it.
fn truncations(ts: &TokenStream) -> Vec<TokenStream> {
    let items: Vec<TokenTree> = ts.clone().into_iter().collect();
    let mut out = Vec::new();
    for (i, tt) in items.iter().enumerate() {
        out.push(items[..i].iter().cloned().collect());
        if let TokenTree::Group(g) = tt {
            for inner in truncations(&g.stream()) {
                out.push(joined(&items[..i], Some(rebuild(g, inner)), &[]));
            }
        }
    }
    out.push(ts.clone());
    out
}

#[test]
fn valid_policies_expand() {
    for src in VALID {
        let out = run(tokens(src));
        assert!(!out.contains("compile_error"), "`{src}` gave {out}");
        assert!(out.contains(":: vpsfw :: __private"), "{out}");
    }
}

#[test]
fn never_panics_on_truncations_and_deletions() {
    let mut n = 0;
    for src in VALID {
        let ts = tokens(src);
        for variant in truncations(&ts).into_iter().chain(deletions(&ts)) {
            run(variant);
            n += 1;
        }
    }
    assert!(n > 400, "only {n} variants");
}

/// xorshift64*: a tiny deterministic generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn word<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len())]
    }
}

const WORDS: &[&str] = &[
    "allow",
    "accept",
    "drop",
    "reject",
    "log",
    "in",
    "out",
    "forward",
    "on",
    "from",
    "to",
    "port",
    "state",
    "limit",
    "burst",
    "prefix",
    "comment",
    "type",
    "tcp",
    "udp",
    "icmp",
    "icmpv6",
    "ipv6",
    "all",
    "any",
    "host",
    "net",
    "policy",
    "group",
    "input",
    "output",
    "new",
    "established",
    "related",
    "invalid",
    "untracked",
    "second",
    "minute",
    "hour",
    "day",
    "http",
    "https",
    "htps",
    "ssh",
    "dns",
    "lo",
    "eth0",
    "echo",
    "request",
    "neighbour",
    "solicitation",
    "office",
    "admin",
    "web",
    "self",
    "crate",
    "fn",
    "_x",
    "é",
    "Ω",
];

const PUNCT: &[char] = &[
    ';', ',', ':', '/', '.', '-', '+', '=', '!', '#', '<', '>', '*', '&', '@', '?', '$', '%', '^',
    '|', '~',
];

const STRINGS: &[&str] = &[
    "2001:db8::1",
    "2001:db8::/32",
    "2001:db8::/129",
    "2001:db8:::1",
    "::",
    "eth+",
    "+",
    "..",
    "SSH-IN: ",
    "",
    " ",
    "\"",
    "'",
    "`id`",
    "$(reboot)",
    "a\nb",
    "\0",
    "\u{202e}evil",
    "é✓🔥",
    "office",
    "203.0.113.130/27",
    "averyveryveryverylongname-averyveryveryverylongname-averyveryveryverylongname",
];

fn random_literal(rng: &mut Rng) -> Literal {
    match rng.below(9) {
        0 => Literal::u64_unsuffixed(*rng.pick(&[
            0,
            1,
            22,
            27,
            32,
            33,
            128,
            129,
            255,
            256,
            1023,
            1024,
            65535,
            65536,
            u64::MAX,
        ])),
        1 => Literal::u128_unsuffixed(99_999_999_999_999_999_999),
        2 => Literal::f64_unsuffixed(*rng.pick(&[198.51, 100.7, 0.0, 203.0, 113.13, 0.5])),
        3 => rng
            .pick(&[
                "1e5", "1.5f32", "80u8", "0x50", "0b1", "1_000", "1.", "255.255",
            ])
            .parse::<TokenStream>()
            .ok()
            .and_then(|ts| match ts.into_iter().next() {
                Some(TokenTree::Literal(l)) => Some(l),
                _ => None,
            })
            .unwrap_or_else(|| Literal::u8_unsuffixed(7)),
        4 => Literal::character(*rng.pick(&['a', '\'', '"', '\n'])),
        5 => Literal::byte_string(b"tcp"),
        _ => Literal::string(rng.word(STRINGS)),
    }
}

fn random_tree(rng: &mut Rng, depth: u32) -> TokenTree {
    match rng.below(if depth < 3 { 12 } else { 10 }) {
        0..=4 => {
            let w = *rng.pick(WORDS);
            let ident = if rng.below(20) == 0 && !matches!(w, "self" | "crate" | "_x") {
                Ident::new_raw(w, Span::call_site())
            } else {
                Ident::new(w, Span::call_site())
            };
            TokenTree::Ident(ident)
        }
        5..=7 => {
            let spacing = if rng.below(3) == 0 {
                Spacing::Joint
            } else {
                Spacing::Alone
            };
            TokenTree::Punct(Punct::new(*rng.pick(PUNCT), spacing))
        }
        8 | 9 => TokenTree::Literal(random_literal(rng)),
        _ => {
            let delimiter = *rng.pick(&[
                Delimiter::Brace,
                Delimiter::Bracket,
                Delimiter::Parenthesis,
                Delimiter::None,
            ]);
            TokenTree::Group(Group::new(delimiter, random_stream(rng, depth + 1)))
        }
    }
}

fn random_stream(rng: &mut Rng, depth: u32) -> TokenStream {
    let len = rng.below(if depth == 0 { 40 } else { 8 });
    (0..len).map(|_| random_tree(rng, depth)).collect()
}

/// A statement that is nearly valid: the right kinds of token in roughly the right
/// places, so the random walk reaches deep into the parser and the checker.
fn random_statement(rng: &mut Rng) -> String {
    let addr = || {
        [
            "198.51.100.7",
            "203.0.113.130/27",
            "203.0.113.128/27",
            "1.2.3",
            "10.0.0.0/33",
            "\"2001:db8::1\"",
            "\"2001:db8::/129\"",
            "office",
            "office/27",
            "office/300",
            "admin",
            "any",
            "htps",
        ]
    };
    let ports = [
        "22",
        "0",
        "65536",
        "ssh",
        "1024:",
        ":1023",
        "2048:1024",
        "[http, https]",
        "[]",
        "[http, http]",
        "[1:2, 3]",
    ];
    let mut s = String::new();
    match rng.below(6) {
        0 => {
            s += rng.word(&["host", "net"]);
            s += " ";
            s += rng.word(&["office", "admin", "ssh", "any", "web"]);
            s += " = ";
            s += rng.word(&addr());
            if rng.below(3) == 0 {
                s += ", ";
                s += rng.word(&addr());
            }
        }
        1 => {
            s += "policy ";
            s += rng.word(&["input", "output", "forward", "inptu"]);
            s += " ";
            s += rng.word(&["drop", "allow", "accept", "reject"]);
        }
        _ => {
            s += rng.word(&["allow", "drop", "reject", "log", "alow"]);
            s += " ";
            s += rng.word(&["in", "out", "forward", "inn"]);
            for _ in 0..rng.below(6) {
                s += " ";
                match rng.below(10) {
                    0 => s += rng.word(&["tcp", "udp", "icmp", "icmpv6", "all", "tpc"]),
                    1 => {
                        s += rng.word(&["from ", "to "]);
                        s += rng.word(&addr());
                        if rng.below(3) == 0 {
                            s += " port ";
                            s += rng.word(&ports);
                        }
                    }
                    2 => {
                        s += rng.word(&["from ", "to "]);
                        s += rng.word(&ports);
                    }
                    3 => {
                        s += "on ";
                        s += rng.word(&["lo", "eth0", "\"eth+\"", "\"a/b\"", "averyverylongname0"]);
                    }
                    4 => s += rng.word(&["state new", "state new,established", "state neww"]),
                    5 => {
                        s += rng.word(&[
                            "limit 5/minute",
                            "limit 0/second burst 0",
                            "limit 20000/second",
                        ])
                    }
                    6 => s += rng.word(&["prefix \"X: \"", "prefix \"$x\"", "comment \"web\""]),
                    7 => {
                        s += rng.word(&[
                            "type echo-request",
                            "type neighbour-solicitation",
                            "type x",
                        ])
                    }
                    8 => s += rng.word(&["port 22", "burst 3", "stat"]),
                    _ => s += rng.word(&["[", "]", "{}", ";", ",", "/"]),
                }
            }
        }
    }
    s += ";";
    s
}

#[test]
fn never_panics_on_random_tokens() {
    let mut rng = Rng(0x5eed_f00d_cafe_b0ba);
    for _ in 0..3000 {
        let body = random_stream(&mut rng, 0);
        run(body.clone());
        if rng.below(10) == 0 {
            // Without the facade's `KRATE ;` prefix, too.
            run_raw(body);
        }
    }
}

#[test]
fn never_panics_on_random_statements() {
    let mut rng = Rng(0x0bad_c0de_1234_5678);
    let mut expanded = 0;
    for _ in 0..3000 {
        let mut src = String::new();
        let grouped = rng.below(3) == 0;
        if grouped {
            src += "group g {";
        }
        for _ in 0..1 + rng.below(5) {
            src += &random_statement(&mut rng);
        }
        if grouped {
            src += "}";
        }
        // A stray `[` or `]` leaves the source unbalanced: it does not lex, skip it.
        let Ok(body) = src.parse::<TokenStream>() else {
            continue;
        };
        if !run(body).contains("compile_error") {
            expanded += 1;
        }
    }
    assert!(
        expanded > 0,
        "no random policy was valid: the generator is too noisy"
    );
}

#[test]
fn errors_underline_the_tokens_at_fault() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "net office = 203.0.113.130/27;",
            "`203.0.113.130/27` has host bits set; did you mean the network `203.0.113.128/27`?",
            "203.0.113.130/27",
        ),
        (
            "allow in tcp from 1024: to [http, htps] state new;",
            "unknown service `htps`; did you mean `https`?",
            "htps",
        ),
        (
            "host office = 203.0.113.130; allow in from office/27;",
            "`office/27` has host bits set (`office` is 203.0.113.130); did you mean the network `203.0.113.128/27`?",
            "office/27",
        ),
        (
            "allow in to [http, https];",
            "destination ports need `tcp` or `udp`, but no protocol is given",
            "[http, https]",
        ),
        (
            "allow in to 1024:;",
            "destination ports need `tcp` or `udp`, but no protocol is given",
            "1024:",
        ),
        (
            "host office = 203.0.113.128; allow in from office port 1024:;",
            "source ports need `tcp` or `udp`, but no protocol is given",
            "port 1024:",
        ),
        (
            "allow in tcp to 2048:1024;",
            "port range 2048:1024 is reversed; did you mean `1024:2048`?",
            "2048:1024",
        ),
        (
            "allow in icmp type echo-requst;",
            "unknown icmp type `echo-requst`; did you mean `echo-request`?",
            "echo-requst",
        ),
        (
            "allow;",
            "expected a direction after `allow`: `in`, `out` or `forward`",
            ";",
        ),
        ("allow in from ;", "expected an address, a name, `any` or ports after `from`", ";"),
        ("allow in tcp to ssh\nallow out;", "expected `;` before `allow`", "allow"),
        ("allow in tcp to ssh", "expected `;` after this statement", "ssh"),
        (
            "allow in from 198.51.100.7 to \"2001:db8::1\";",
            "`to 2001:db8::1` is IPv6 but `from 198.51.100.7` is IPv4 only; one rule cannot mix IPv4 and IPv6",
            "\"2001:db8::1\"",
        ),
        (
            "host admin = 198.51.100.7; host admin = 198.51.100.8;",
            "name `admin` is declared twice",
            "admin",
        ),
        (
            "log in prefix \"$HOME\";",
            "log prefix `$HOME` contains `$`, which cannot be rendered safely; use letters, digits, spaces and _ - . , : / + = @ ( ) [ ]",
            "\"$HOME\"",
        ),
        (
            "allow in tcp to ssh limit 0/minute;",
            "a rate of 0 never lets anything through; use `drop` instead",
            "0/minute",
        ),
    ];
    for (src, message, text) in cases {
        assert_eq!(error(src), (message.to_string(), text.to_string()), "{src}");
    }
}

#[test]
fn every_error_is_reported_in_source_order() {
    // Syntax errors (found while parsing) and value errors (found by the checker)
    // interleave in the order written.
    let all = errors(
        "allow in tcp to 0;
         allow in tpc to ssh;
         net office = 203.0.113.130/27;
         alow in;
         policy input reject;",
    );
    let texts: Vec<&str> = all.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["0", "tpc", "203.0.113.130/27", "alow", "reject"]);
}

#[test]
fn several_errors_compile_as_one_expression() {
    // `compile_error!{..}` invocations side by side are statements; in expression
    // position they must sit in a block, or rustc reports nonsense after the first.
    let out = run(tokens("allow in tcp to 0; allow in tcp to 65536;"));
    assert!(out.starts_with('{') && out.ends_with('}'), "{out}");
    assert_eq!(out.matches("compile_error").count(), 2, "{out}");
}

#[test]
fn a_broken_declaration_does_not_cascade() {
    // The name's statement is wrong; its uses must not add "undefined name" errors.
    for src in [
        "host admin = admin.example.com; allow in from admin; allow in tcp from admin port 22;",
        "host admin = ; allow in from admin;",
        "hots admin = 198.51.100.7; allow in from admin;",
        "host admin = 1.2.3; allow in from admin to \"2001:db8::1\";",
    ] {
        let all = errors(src);
        assert_eq!(all.len(), 1, "`{src}`: {all:#?}");
    }
}

#[test]
fn ports_of_a_service_word_point_at_the_word() {
    let (message, text) = error("allow in to https;");
    assert_eq!(
        message,
        "destination ports need `tcp` or `udp`, but no protocol is given"
    );
    assert_eq!(text, "https");
}

/// Rules with every form of each clause, and literals the fast path must leave to syn
/// (escapes, suffixes, other bases, leading zeros, exponents): whatever the fast path
/// reads is read by syn too, and must come out the same (see `fast_agrees`).
#[test]
fn fast_path_reads_rules_as_syn_does() {
    let before = FAST_RULES.load(Ordering::Relaxed);
    let pieces: &[&[&str]] = &[
        &["allow", "drop", "reject", "log", "accept", "r#allow", "_"],
        &["in", "out", "forward", "tcp", "r#in", "from"],
    ];
    let clauses: &[&str] = &[
        "tcp",
        "udp",
        "icmp",
        "icmpv6",
        "all",
        "r#tcp",
        "from any",
        "to any",
        "from \"2001:db8::1\"",
        "to \"2001:db8::/48\"",
        "from \"a\\\"b\"",
        "from r\"2001:db8::1\"",
        "from 198.51.100.7",
        "from 198.51.100.7/32",
        "from 198.51.100.7/032",
        "from 10.0.0.1",
        "from 1.2.3",
        "from 1.2.3.4.5",
        "from 1.5e3",
        "from 1.0.0.1u8",
        "from 0x10.0.0.1",
        "from 198.51.100.7/0x10",
        "to 22",
        "to 022",
        "to 22u16",
        "to 0x16",
        "to 1_024",
        "to 1024:",
        "to :1023",
        "to 1024:2048",
        "to 1024:0x800",
        "to ::22",
        "to [http, https]",
        "to [http, https,]",
        "to [22, 1024:, :10, 5:6]",
        "to [22 23]",
        "to [,]",
        "to []",
        "to (22)",
        "to {22}",
        "to ssh",
        "to office",
        "to office/27",
        "to office/027",
        "to office / 27",
        "from office port 22",
        "from office port [22, 23]",
        "from any port 1024:",
        "from \"2001:db8::1\" port 22",
        "from 198.51.100.7 port ssh",
        "to office port",
        "from port 22",
        "to 22 port 23",
        "on lo",
        "on eth0",
        "on \"eth+\"",
        "on eth+",
        "on eth0.100",
        "on eth0.100+",
        "on eth-1",
        "on eth-",
        "on eth - 1",
        "on \"e\\th\"",
        "on 22",
        "state new",
        "state new,established",
        "state new, established ,related",
        "state",
        "state new,",
        "limit 5/minute",
        "limit 5/minute burst 10",
        "limit 05/minute",
        "limit 5 / minute burst 0x10",
        "limit 5/minute burst",
        "limit 5.0/minute",
        "prefix \"X: \"",
        "prefix \"a\\nb\"",
        "prefix r\"X\"",
        "prefix X",
        "comment \"web\"",
        "comment \"\"",
        "comment \"c\"suffix",
        "type echo-request",
        "type neighbour-solicitation",
        "type echo-request+",
        "type echo - request",
        "type echo-0",
        "type 8",
        "port 22",
        "burst 3",
        "stat",
    ];
    let mut rng = Rng(0xfa57_0fa5_7000_0001);
    let mut sources = Vec::new();
    for _ in 0..3000 {
        let mut s = String::from("host office = 203.0.113.128;\n");
        s += rng.word(pieces[0]);
        s += " ";
        s += rng.word(pieces[1]);
        for _ in 0..rng.below(5) {
            s += if rng.below(8) == 0 { "\n    " } else { " " };
            s += rng.word(clauses);
        }
        s += ";";
        sources.push(s);
    }
    for src in &sources {
        if let Ok(body) = src.parse::<TokenStream>() {
            run(body);
        }
    }
    let read = FAST_RULES.load(Ordering::Relaxed) - before;
    assert!(read > 500, "the fast path read only {read} rules");
}

//! What `firewall!` expands to (the checked policy as a table, read back at run time)
//! builds the very policy the checker built: for the examples and the policies below,
//! the policy compiled by rustc serializes to the same JSON as the policy the macro's
//! own code (`vpsfw_codegen`) parses and checks at run time from the same source file,
//! so even each rule's line and text must agree.

#![allow(dead_code)]

mod roles;

#[path = "../examples/blocklist.rs"]
mod blocklist;

use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use vpsfw::{firewall, Origin, Policy};
use vpsfw_codegen::phases;

/// The bodies of the `firewall! { ... }` calls in a Rust source file, in order, lexed
/// from the file's text so their lines and columns are the file's.
fn bodies(file: &str) -> Vec<TokenStream> {
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
    walk(
        TokenStream::from_str(file).expect("the file lexes"),
        &mut out,
    );
    out
}

/// The policy the macro checks for this body, built at run time.
fn checked(body: TokenStream) -> Policy {
    let input = TokenStream::from_str("::vpsfw;")
        .expect("lexes")
        .into_iter()
        .chain(body)
        .collect();
    let (_, body) = phases::split_input(input);
    let parsed = phases::parse(body);
    assert!(parsed.is_clean(), "the policy has syntax errors");
    phases::check(&parsed).unwrap_or_else(|e| panic!("the policy does not check: {e:?}"))
}

fn assert_same(name: &str, compiled: &Policy, checked: &Policy) {
    let json = |p: &Policy| serde_json::to_string_pretty(p).expect("serialize");
    let (got, want) = (json(compiled), json(checked));
    if got != want {
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}: expanded {a} / checked {b}", i + 1))
            .collect();
        panic!(
            "{name}: the expansion built another policy:\n{}",
            diff.join("\n")
        );
    }
    assert_eq!(compiled, checked, "{name}");
    // The comparison is worth something only if the rules carry where they were written.
    let written = compiled
        .rules()
        .iter()
        .filter(|r| matches!(r.origin(), Origin::Written { .. }));
    for r in written {
        assert!(r.line().is_some_and(|l| l > 0), "{name}: {r} has no line");
        assert!(r.text().ends_with(';'), "{name}: {r} has no text");
    }
}

#[test]
fn examples_expand_to_the_checked_policy() {
    let files = [
        ("web_server", include_str!("../examples/web_server.rs")),
        (
            "internal_server",
            include_str!("../examples/internal_server.rs"),
        ),
        ("file_server", include_str!("../examples/file_server.rs")),
        ("blocklist", include_str!("../examples/blocklist.rs")),
    ];
    let mut compiled = roles::all();
    compiled.push(("blocklist", blocklist::policy()));
    for ((name, policy), (file_name, file)) in compiled.iter().zip(files) {
        assert_eq!(*name, file_name);
        let bodies = bodies(file);
        assert_eq!(bodies.len(), 1, "{name}: one firewall! call");
        assert_same(name, policy, &checked(bodies[0].clone()));
    }
}

/// Every statement and clause, odd spacing, a rule over several lines, comments, sets
/// inline and from a file, presets and allowed findings.
fn policies() -> Vec<Policy> {
    vec![
        firewall! {
            #![allow(unused_name, open_admin_port)]
            host admin = 198.51.100.200, "2001:db8:100::7";
            host web = 203.0.113.144;
            net office = 203.0.113.128/27;
            net office6 = "2001:db8:200::/48";
            set bad = [192.0.2.0/24, 198.51.100.99, "2001:db8:bad::/48"];
            set listed from "tests/fixtures/blocklist.txt";
            group common {
                allow in on lo;
                allow out on lo;
                drop in from bad;
                reject in from listed;
                harden ping limit 3/second burst 6;
                allow in state established,related;
                allow out state established , related ;
                harden invalid;
                harden syn_flood;
                harden port_scan for 120;
                harden log_drops prefix "DROPPED: ";
            }
            group "web (public)" {
                accept in on "eth+" tcp from office port 1024: to :1023 comment "lan";
                allow in tcp
                    from   office6   port [1024:2047, 3000]
                    to [http, https, 8080:8090]   // not 8443
                    state new;
                log in icmpv6 type neighbour-solicitation limit 5/minute burst 10 prefix "ND: ";
                reject forward udp from office6 to 6000:6010;
                drop out on eth0.100 icmp type echo-request;
                #[allow(redundant)]
                allow in from web/28 tcp to ssh;
                allow in tcp to ssh;
            }
            allow in all from any to 192.0.2.1 state new,invalid,untracked;
            allow in from admin;
            admin admin port ssh;
            policy input drop;
            policy forward drop;
            policy output allow;
        },
        firewall! {
            admin none;
            allow in on lo;
            policy input drop;
        },
        firewall! {},
    ]
}

#[test]
fn policies_here_expand_to_the_checked_policy() {
    let compiled = policies();
    let bodies = bodies(include_str!("expansion.rs"));
    assert_eq!(bodies.len(), compiled.len(), "one body per firewall! call");
    for (i, (policy, body)) in compiled.iter().zip(bodies).enumerate() {
        assert_same(&format!("policy {i}"), policy, &checked(body));
    }
}

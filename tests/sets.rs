//! Address sets: declared inline or read from a file at build time, rendered as ipsets
//! (iptables) and interval sets (nft), understood by the evaluator. Kernel behaviour is
//! tested in `tests/kernel.rs`.

use vpsfw::builder::{Builder, RuleBuilder};
use vpsfw::{firewall, render, Format, Outcome, Packet, Policy};

fn policy() -> Policy {
    firewall! {
        set blocklist from "tests/fixtures/blocklist.txt";
        set partners = [192.0.2.192/27, "2001:db8:200::/48"];

        allow in on lo;
        drop in from blocklist;
        allow in from partners tcp to https state new;
        allow in state established,related;
        admin none;
        policy input drop;
    }
}

fn decide(policy: &Policy, packet: &str) -> Outcome {
    let p: Packet = packet.parse().expect("packet");
    policy.evaluate(&p).outcome
}

#[test]
fn sets_render_for_every_backend() {
    let p = policy();
    let v4 = render(&p, Format::Restore);
    assert!(
        v4.contains("-A INPUT -m set --match-set vpsfw-blocklist-4 src -j DROP"),
        "{v4}"
    );
    assert!(
        v4.contains("-A INPUT -p tcp -m set --match-set vpsfw-partners-4 src -m tcp --dport 443"),
        "{v4}"
    );
    let v6 = render(&p, Format::Restore6);
    assert!(v6.contains("--match-set vpsfw-blocklist-6 src"), "{v6}");
    let ipset = render(&p, Format::Ipset);
    for line in [
        "create vpsfw-blocklist-4 hash:net family inet maxelem 65536 -exist",
        "add vpsfw-blocklist-4 198.51.100.0/25",
        "add vpsfw-blocklist-4 203.0.113.7/32",
        "add vpsfw-blocklist-6 2001:db8:bad::/48",
    ] {
        assert!(
            ipset.lines().any(|l| l == line),
            "missing `{line}`:\n{ipset}"
        );
    }
    let nft = render(&p, Format::Nft);
    assert!(nft.contains("set blocklist_v4 {"), "{nft}");
    assert!(nft.contains("ip saddr @blocklist_v4 counter drop"), "{nft}");
    assert!(
        nft.contains("ip6 saddr @partners_v6 tcp dport 443"),
        "{nft}"
    );
    let sh = render(&p, Format::Sh);
    assert!(
        sh.contains("ipset swap vpsfw-blocklist-4-new vpsfw-blocklist-4"),
        "{sh}"
    );
}

#[test]
fn evaluator_looks_sets_up() {
    let p = policy();
    let cases = [
        (
            "in tcp from 198.51.100.5:40000 to 192.0.2.1:443",
            Outcome::Drop,
        ),
        (
            "in tcp from 198.51.100.200:40000 to 192.0.2.1:443",
            Outcome::Drop,
        ),
        (
            "in tcp from 192.0.2.200:40000 to 192.0.2.1:443",
            Outcome::Accept,
        ),
        (
            "in tcp from 192.0.2.200:40000 to 192.0.2.1:22",
            Outcome::Drop,
        ),
        (
            "in tcp from [2001:db8:200::1]:40000 to [2001:db8::1]:443",
            Outcome::Accept,
        ),
        (
            "in tcp from [2001:db8:bad::1]:40000 to [2001:db8::1]:443",
            Outcome::Drop,
        ),
    ];
    for (packet, want) in cases {
        assert_eq!(decide(&p, packet), want, "{packet}");
    }
    // A partner address inside the blocklist is dropped: the drop comes first.
    let overlap = Builder::new()
        .set("bad", &["192.0.2.192/28"])
        .set("ok", &["192.0.2.192/27"])
        .rule(RuleBuilder::new(vpsfw::Action::Drop, vpsfw::Direction::In).from("bad"))
        .rule(RuleBuilder::allow_in().from("ok"))
        .policy(vpsfw::Chain::Input, vpsfw::Verdict::Drop)
        .console_only()
        .allow(&[vpsfw::FindingKind::NoLoopback])
        .build()
        .expect("policy");
    assert_eq!(
        decide(&overlap, "in tcp from 192.0.2.200:1 to 192.0.2.1:2"),
        Outcome::Drop
    );
    assert_eq!(
        decide(&overlap, "in tcp from 192.0.2.210:1 to 192.0.2.1:2"),
        Outcome::Accept
    );
}

#[test]
fn set_files_are_checked_line_by_line() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let err = Builder::new()
        .set_file("bad", dir.join("bad_blocklist.txt"))
        .rule(RuleBuilder::allow_in().from("bad"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 3: octet `300`"), "{err}");
    assert!(
        err.contains("line 5: `203.0.113.1/24` has host bits set"),
        "{err}"
    );
    let missing = Builder::new()
        .set_file("gone", dir.join("no_such_file.txt"))
        .build()
        .unwrap_err()
        .to_string();
    assert!(missing.contains("cannot read the set file"), "{missing}");
}

#[test]
fn sets_round_trip_through_json() {
    let p = policy();
    let json = serde_json::to_string(&p).expect("serialize");
    let back: Policy = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, p);
    assert_eq!(
        decide(&back, "in tcp from 203.0.113.70:1 to 192.0.2.1:443"),
        Outcome::Drop
    );
}

#[test]
fn json_naming_an_undeclared_set_is_refused() {
    let json = serde_json::to_string(&policy()).expect("serialize");
    let from = "\"set\":{\"name\":\"partners\"";
    assert!(json.contains(from), "fixture lost `{from}`");
    let bad = json.replacen(from, "\"set\":{\"name\":\"nosuch\"", 1);
    assert!(serde_json::from_str::<Policy>(&bad).is_err());
}

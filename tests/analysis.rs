//! The analysis: findings on hand-made policies (what must and must not be reported),
//! and a soundness property on random policies: a rule the analysis calls dead never
//! decides a packet.

use vpsfw::builder::{Builder, RuleBuilder};
use vpsfw::{
    analysis, Action, Chain, DecidedBy, Direction, FindingKind, Packet, Policy, Protocol, State,
    Verdict,
};

fn drop_in() -> RuleBuilder {
    RuleBuilder::new(Action::Drop, Direction::In)
}

/// A policy with loopback, replies and an admin in place, so only what a test adds can
/// be found.
fn base() -> Builder {
    Builder::new()
        .host("admin", &["198.51.100.7"])
        .net("office", &["203.0.113.128/25"])
        .rule(RuleBuilder::allow_in().on("lo"))
        .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]))
        .rule(RuleBuilder::allow_in().from("admin").state(&[State::New]))
        .admin("admin", None)
        .policy(Chain::Input, Verdict::Drop)
}

fn problems(b: Builder) -> Vec<String> {
    match b.build() {
        Ok(_) => Vec::new(),
        Err(e) => e
            .problems
            .into_iter()
            .map(|(place, m)| format!("{place}: {m}"))
            .collect(),
    }
}

#[test]
fn the_base_policy_is_clean() {
    assert_eq!(
        problems(base().rule(RuleBuilder::allow_in().from("office"))),
        Vec::<String>::new()
    );
}

#[test]
fn an_allow_behind_a_drop_is_shadowed_and_names_the_drop() {
    let p = problems(
        base().rule(drop_in().from("office")).rule(
            RuleBuilder::allow_in()
                .from("203.0.113.130")
                .proto(Protocol::Tcp)
                .to_ports(&["https"]),
        ),
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("rule 5, rule: this rule never matches"),
        "{p:#?}"
    );
    assert!(p[0].contains("drop"), "{p:#?}");
}

#[test]
fn several_earlier_rules_together_can_cover_one() {
    let p = problems(
        base()
            .rule(RuleBuilder::allow_in().from("203.0.113.128/26"))
            .rule(RuleBuilder::allow_in().from("203.0.113.192/26"))
            .rule(RuleBuilder::allow_in().from("office").proto(Protocol::Tcp)),
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].contains("redundant"), "{p:#?}");
    // Two halves of the ports cover tcp as a whole too.
    let p = problems(
        base()
            .rule(drop_in().proto(Protocol::Tcp).to_ports(&["1:1023"]))
            .rule(drop_in().proto(Protocol::Tcp).to_ports(&["1024:"]))
            .rule(
                RuleBuilder::allow_in()
                    .proto(Protocol::Tcp)
                    .to_ports(&["https"]),
            )
            .rule(RuleBuilder::allow_in().from("office")),
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].contains("never matches"), "{p:#?}");
}

#[test]
fn a_narrow_exception_before_a_broad_rule_is_normal() {
    let p = problems(
        base()
            .rule(
                RuleBuilder::allow_in()
                    .from("203.0.113.130")
                    .proto(Protocol::Tcp)
                    .to_ports(&["https"]),
            )
            .rule(drop_in().from("office")),
    );
    assert_eq!(p, Vec::<String>::new());
    // Partial overlap is not a finding either.
    let p = problems(
        base().rule(drop_in().from("203.0.113.128/26")).rule(
            RuleBuilder::allow_in()
                .from("office")
                .proto(Protocol::Tcp)
                .to_ports(&["https"]),
        ),
    );
    assert_eq!(p, Vec::<String>::new());
}

#[test]
fn states_interfaces_and_families_are_compared_exactly() {
    // New and established together do not cover related or invalid.
    let p = problems(
        base()
            .rule(drop_in().from("office").state(&[State::New]))
            .rule(RuleBuilder::allow_in().from("office")),
    );
    assert_eq!(
        p,
        Vec::<String>::new(),
        "established/related/invalid still reach the allow"
    );
    // A rule on eth0 does not cover eth1.
    let p = problems(
        base()
            .rule(drop_in().on("eth0").from("office"))
            .rule(RuleBuilder::allow_in().from("office")),
    );
    assert_eq!(p, Vec::<String>::new());
    // eth+ covers eth0.
    let p = problems(
        base()
            .rule(drop_in().on("eth+").from("office"))
            .rule(RuleBuilder::allow_in().on("eth0").from("office")),
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    // A rule dead only for IPv4 still matters for IPv6.
    let p = problems(
        base()
            .host("dual", &["203.0.113.130", "2001:db8:1::1"])
            .rule(drop_in().from("office"))
            .rule(RuleBuilder::allow_in().from("dual")),
    );
    assert_eq!(p, Vec::<String>::new());
}

#[test]
fn rate_limited_and_log_rules_shadow_nothing() {
    let p = problems(
        base()
            .rule(
                drop_in()
                    .from("office")
                    .limit(5, vpsfw::RateUnit::Second, None),
            )
            .rule(
                RuleBuilder::new(Action::Log, Direction::In)
                    .from("office")
                    .log_prefix("office"),
            )
            .rule(RuleBuilder::allow_in().from("office")),
    );
    assert_eq!(p, Vec::<String>::new());
}

#[test]
fn sets_are_compared_by_their_elements() {
    let p = problems(
        base()
            .set("blocked", &["203.0.113.128/26", "203.0.113.192/26"])
            .rule(drop_in().from("blocked"))
            .rule(RuleBuilder::allow_in().from("office")),
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].contains("never matches"), "{p:#?}");
}

#[test]
fn policy_level_findings() {
    // No loopback.
    let p = problems(
        Builder::new()
            .host("admin", &["198.51.100.7"])
            .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]))
            .rule(RuleBuilder::allow_in().from("admin"))
            .admin("admin", None)
            .policy(Chain::Input, Verdict::Drop),
    );
    assert!(p.iter().any(|m| m.contains("loopback")), "{p:#?}");
    // Client rules with no way back.
    let p = problems(
        Builder::new()
            .host("admin", &["198.51.100.7"])
            .rule(RuleBuilder::allow_in().on("lo"))
            .rule(RuleBuilder::allow_in().from("admin"))
            .rule(
                RuleBuilder::allow_out()
                    .proto(Protocol::Udp)
                    .to_ports(&["dns"]),
            )
            .admin("admin", None)
            .policy(Chain::Input, Verdict::Drop),
    );
    assert!(
        p.iter().any(|m| m.starts_with("rule 3, rule: replies")),
        "{p:#?}"
    );
    // ssh open to all while an admin is declared.
    let p = problems(
        base().rule(
            RuleBuilder::allow_in()
                .proto(Protocol::Tcp)
                .to_ports(&["ssh", "https"]),
        ),
    );
    assert!(
        p.iter().any(|m| m.contains("opens port 22 to any source")),
        "{p:#?}"
    );
    // Unused names.
    let p = problems(
        base()
            .host("spare", &["192.0.2.9"])
            .rule(RuleBuilder::allow_in().from("office")),
    );
    assert!(
        p.iter()
            .any(|m| m.contains("`spare` is declared but no rule uses it")),
        "{p:#?}"
    );
    // Default drop with no admin at all.
    let p = problems(
        Builder::new()
            .rule(RuleBuilder::allow_in().on("lo"))
            .policy(Chain::Input, Verdict::Drop),
    );
    assert!(
        p.iter().any(|m| m.contains("no admin access is declared")),
        "{p:#?}"
    );
}

#[test]
fn lockout_is_proved_per_family_and_names_the_rule() {
    // The admin's IPv6 address is dropped by an earlier rule.
    let p = problems(
        Builder::new()
            .host("admin", &["198.51.100.7", "2001:db8:100::7"])
            .rule(RuleBuilder::allow_in().on("lo"))
            .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]))
            .rule(drop_in().from("2001:db8:100::/48"))
            .rule(RuleBuilder::allow_in().from("admin"))
            .admin("admin", None)
            .policy(Chain::Input, Verdict::Drop),
    );
    assert!(
        p.iter().any(|m| m.contains("lockout: `admin` could not open a new connection to port 22 over IPv6: dropped by the rule `drop in from 2001:db8:100::/48;`")),
        "{p:#?}"
    );
    // A custom admin port, open only to part of the admin network.
    let p = problems(
        Builder::new()
            .net("admins", &["203.0.113.128/25"])
            .rule(RuleBuilder::allow_in().on("lo"))
            .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]))
            .rule(
                RuleBuilder::allow_in()
                    .from("203.0.113.128/26")
                    .proto(Protocol::Tcp)
                    .to_ports(&["2222"]),
            )
            .admin("admins", Some("2222"))
            .policy(Chain::Input, Verdict::Drop),
    );
    assert!(
        p.iter()
            .any(|m| m.contains("port 2222 over IPv4: dropped by the INPUT policy")),
        "{p:#?}"
    );
    // The fixed version builds.
    assert!(Builder::new()
        .net("admins", &["203.0.113.128/25"])
        .rule(RuleBuilder::allow_in().on("lo"))
        .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]))
        .rule(
            RuleBuilder::allow_in()
                .from("admins")
                .proto(Protocol::Tcp)
                .to_ports(&["2222"])
        )
        .admin("admins", Some("2222"))
        .policy(Chain::Input, Verdict::Drop)
        .build()
        .is_ok());
}

#[test]
fn opt_outs_silence_one_finding_where_they_are_written() {
    let shadowed = || RuleBuilder::allow_in().from("203.0.113.130");
    let b = || base().rule(drop_in().from("office"));
    assert!(!problems(b().rule(shadowed())).is_empty());
    assert_eq!(
        problems(b().rule(shadowed().allow(FindingKind::Shadowed))),
        Vec::<String>::new()
    );
    // The wrong finding name does not silence it.
    assert!(!problems(b().rule(shadowed().allow(FindingKind::Redundant))).is_empty());
    assert_eq!(
        problems(b().rule(shadowed()).allow(&[FindingKind::Shadowed])),
        Vec::<String>::new()
    );
}

/// xorshift, as in the differential test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

/// Soundness: over random policies and packets, a rule called shadowed or redundant is
/// never the rule that decides a packet.
#[test]
fn dead_rules_never_decide_a_packet() {
    let addrs = [
        "198.51.100.0/25",
        "198.51.100.0/24",
        "198.51.100.7",
        "198.51.100.128/25",
        "203.0.113.0/24",
        "2001:db8::/48",
        "2001:db8::7",
    ];
    let ports = ["22", "80", "1:1023", "1024:", "80:90", "443"];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut dead_total = 0;
    for _ in 0..40 {
        let mut b = Builder::new()
            .allow(&FindingKind::ALL)
            .policy(Chain::Input, Verdict::Drop);
        for _ in 0..60 {
            let action = [Action::Allow, Action::Drop, Action::Reject][(rng.next() % 3) as usize];
            let mut r = RuleBuilder::new(action, Direction::In);
            if rng.next() % 3 > 0 {
                r = r.from(rng.pick(&addrs));
            }
            match rng.next() % 3 {
                0 => r = r.proto(Protocol::Tcp).to_ports(&[rng.pick(&ports)]),
                1 => r = r.proto(Protocol::Udp),
                _ => {}
            }
            if rng.next() % 4 == 0 {
                r = r.state(&[State::New]);
            }
            b = b.rule(r);
        }
        let policy: Policy = b
            .build()
            .expect("random policy builds with every finding allowed");
        let dead: Vec<usize> = analysis::analyze(&policy, &[], true)
            .into_iter()
            .filter_map(|f| match (f.kind, f.subject) {
                (FindingKind::Shadowed | FindingKind::Redundant, analysis::Subject::Rule(i)) => {
                    Some(i)
                }
                _ => None,
            })
            .collect();
        dead_total += dead.len();
        for _ in 0..300 {
            let v4 = rng.next() % 4 > 0;
            let src = if v4 {
                format!("198.51.100.{}", rng.next() % 256)
            } else {
                format!("[2001:db8::{:x}]", rng.next() % 16)
            };
            let dst = if v4 { "192.0.2.1" } else { "[2001:db8::1]" };
            let proto = if rng.next() % 2 == 0 { "tcp" } else { "udp" };
            let (sp, dp) = (1 + rng.next() % 2000, 1 + rng.next() % 2000);
            let state = ["new", "established", "related", "invalid"][(rng.next() % 4) as usize];
            let text = format!("in {proto} from {src}:{sp} to {dst}:{dp} state {state}");
            let packet: Packet = text.parse().expect("packet");
            if let DecidedBy::Rule { line, .. } = policy.evaluate(&packet).by {
                assert!(
                    !dead.contains(&line.index),
                    "rule {} was called dead but decides `{text}`: {}",
                    line.index,
                    line.rule
                );
            }
        }
    }
    assert!(
        dead_total > 50,
        "the random policies should contain dead rules ({dead_total})"
    );
}

/// At the benchmark's scale (thousands of hosts of one /16, each with its own port, the
/// analysis indexed by source and port): exactly the planted dead rules are found, each
/// naming the one earlier rule that decides it, among thousands that are not dead.
#[test]
fn many_rules_in_one_network_find_exactly_the_planted_dead_ones() {
    let host = |i: usize| format!("198.51.{}.{}", i / 250, i % 250 + 1);
    let port = |i: usize| (1000 + i).to_string();
    let allow = |i: usize| {
        RuleBuilder::allow_in()
            .from(&host(i))
            .proto(Protocol::Tcp)
            .to_ports(&[&port(i)])
            .state(&[State::New])
    };
    let mut b = base().allow(&[FindingKind::UnusedName]);
    let mut planted = Vec::new();
    for i in 0..4000 {
        b = b.rule(allow(i));
        if i % 500 == 250 {
            // The same host and port again, for any state: shadowed only where new.
            b = b.rule(
                RuleBuilder::allow_in()
                    .from(&host(i))
                    .proto(Protocol::Tcp)
                    .to_ports(&[&port(i)]),
            );
            // An exact repeat of an earlier rule: redundant, naming that rule.
            b = b.rule(allow(i - 200));
            planted.push(format!(
                "redundant: every packet it matches is already allowed by the rule `allow in tcp from {} to {} state new;`",
                host(i - 200),
                port(i - 200)
            ));
        }
        if i == 3260 {
            // A drop of a /24 shadows the later allows inside it (3,261..3,499).
            b = b.rule(drop_in().from("198.51.13.0/24"));
        }
    }
    let policy = b.build();
    let problems: Vec<String> = match policy {
        Ok(_) => Vec::new(),
        Err(e) => e.problems.into_iter().map(|(_, m)| m).collect(),
    };
    let redundant: Vec<&String> = problems
        .iter()
        .filter(|m| m.contains("is redundant"))
        .collect();
    assert_eq!(redundant.len(), planted.len(), "{problems:#?}");
    for (m, want) in redundant.iter().zip(&planted) {
        assert!(m.contains(want), "{m}\nshould contain\n{want}");
    }
    let shadowed = problems
        .iter()
        .filter(|m| m.contains("never matches"))
        .count();
    // 198.51.13.x is hosts 3,250..3,499; the drop comes after 3,260.
    assert_eq!(shadowed, 239, "{problems:#?}");
    assert_eq!(problems.len(), planted.len() + 239, "{problems:#?}");
}

//! The indexed analysis against the reference (every rule compared with every earlier
//! one, every walk through every line): on random policies, the same findings in the
//! same order with the same messages.

use super::{analyze_with, Engine, Finding, FindingKind};
use crate::builder::{Builder, RuleBuilder};
use crate::model::{Origin, Policy};
use crate::test_rng::Rng;
use crate::value::{Action, Chain, Direction, Protocol, RateUnit, State, Verdict};

/// Addresses by family: IPv4 only, IPv6 only, both (a rule from or to one of both is in
/// each family the other end allows).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fam {
    V4,
    V6,
    Both,
}

const NAMES: [(&str, bool, Fam, &[&str]); 6] = [
    ("h4", true, Fam::V4, &["198.51.100.7"]),
    ("h46", true, Fam::Both, &["198.51.100.9", "2001:db8::9"]),
    ("h6", true, Fam::V6, &["2001:db8:1::7"]),
    ("n4", false, Fam::V4, &["198.51.100.0/25"]),
    (
        "n46",
        false,
        Fam::Both,
        &["203.0.113.0/24", "2001:db8:1::/48"],
    ),
    ("n6", false, Fam::V6, &["2001:db8::/64"]),
];

const SET_V4: [&str; 8] = [
    "198.51.100.0/26",
    "198.51.100.64/27",
    "198.51.100.7",
    "198.51.100.128/25",
    "203.0.113.5",
    "203.0.113.0/28",
    "10.0.0.0/8",
    "192.0.2.0/24",
];

const SET_V6: [&str; 4] = [
    "2001:db8::/80",
    "2001:db8::9",
    "2001:db8:1::/64",
    "2001:db8:2::/48",
];

const LITERALS_V4: [&str; 8] = [
    "198.51.100.0/24",
    "198.51.100.7",
    "198.51.100.128/25",
    "198.51.100.0/26",
    "203.0.113.0/24",
    "0.0.0.0/0",
    "192.0.2.1",
    "198.51.100.200",
];

const LITERALS_V6: [&str; 4] = ["2001:db8::/48", "2001:db8::7", "::/0", "2001:db8:1::/56"];

const PORTS: [&str; 12] = [
    "22",
    "80",
    "443",
    "1:1023",
    "1024:",
    "80:90",
    "85",
    "2222",
    "53",
    ":100",
    "8000:8080",
    "9000",
];

const IFACES: [&str; 7] = ["lo", "eth0", "eth1", "eth+", "wg0", "wg+", "e+"];

/// A list of distinct ports, sometimes longer than one multiport match takes (so a
/// rule becomes several lines).
fn ports(rng: &mut Rng) -> Vec<String> {
    if rng.chance(15) {
        let n = 14 + rng.below(20);
        let base = 1 + rng.below(2000);
        return (0..n)
            .map(|k| {
                let p = base + 3 * k;
                if rng.chance(20) {
                    format!("{p}:{}", p + 1)
                } else {
                    p.to_string()
                }
            })
            .collect();
    }
    let mut out: Vec<String> = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let p = rng.pick(&PORTS).to_owned();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    // Overlapping ranges are refused too: keep one when they overlap.
    if out.len() > 1 && out.iter().any(|p| p.contains(':')) {
        out.truncate(1);
    }
    out
}

/// An address (declared name, set or literal) a rule of family `fam` can use.
fn address(rng: &mut Rng, fam: Fam, sets: &[(String, Fam)]) -> String {
    let fits = |f: Fam| f == Fam::Both || f == fam;
    match rng.below(10) {
        0..=3 => {
            let names: Vec<&str> = NAMES.iter().filter(|n| fits(n.2)).map(|n| n.0).collect();
            rng.pick(&names).to_owned()
        }
        4..=5 if sets.iter().any(|s| fits(s.1)) => {
            let fitting: Vec<&str> = sets
                .iter()
                .filter(|s| fits(s.1))
                .map(|s| s.0.as_str())
                .collect();
            rng.pick(&fitting).to_owned()
        }
        6 if fam == Fam::V4 => format!("198.51.100.{}", rng.below(256)),
        _ => match fam {
            Fam::V4 => rng.pick(&LITERALS_V4).to_owned(),
            Fam::V6 => rng.pick(&LITERALS_V6).to_owned(),
            Fam::Both => rng.pick(&["h46", "n46"]).to_owned(),
        },
    }
}

/// A random rule, with another action than it would have when `action` is given.
fn random_rule(rng: &mut Rng, sets: &[(String, Fam)], action: Option<Action>) -> RuleBuilder {
    let drawn = match rng.below(10) {
        0..=4 => Action::Allow,
        5..=6 => Action::Drop,
        7..=8 => Action::Reject,
        _ => Action::Log,
    };
    let action = action.unwrap_or(drawn);
    let direction = match rng.below(10) {
        0..=5 => Direction::In,
        6..=8 => Direction::Out,
        _ => Direction::Forward,
    };
    let mut r = RuleBuilder::new(action, direction);
    if action == Action::Log && rng.chance(50) {
        r = r.log_prefix("seen: ");
    }
    if rng.chance(20) {
        r = r.on(rng.pick(&IFACES));
    }
    let proto = match rng.below(10) {
        0..=3 => Some(Protocol::Tcp),
        4..=5 => Some(Protocol::Udp),
        6 => Some(Protocol::Icmp),
        7 => Some(Protocol::Icmpv6),
        _ => None,
    };
    if let Some(p) = proto {
        r = r.proto(p);
    }
    let fam = match proto {
        Some(Protocol::Icmp) => Fam::V4,
        Some(Protocol::Icmpv6) => Fam::V6,
        _ => [Fam::V4, Fam::V4, Fam::V6, Fam::Both][rng.below(4)],
    };
    if rng.chance(65) {
        r = r.from(&address(rng, fam, sets));
    }
    if rng.chance(25) {
        r = r.to(&address(rng, fam, sets));
    }
    if matches!(proto, Some(Protocol::Tcp | Protocol::Udp)) {
        if rng.chance(70) {
            let p = ports(rng);
            r = r.to_ports(&p.iter().map(String::as_str).collect::<Vec<_>>());
        }
        if rng.chance(15) {
            let p = ports(rng);
            r = r.from_ports(&p.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
    if proto == Some(Protocol::Icmp) && rng.chance(50) {
        r = r.icmp_type(rng.pick(&["echo-request", "echo-reply", "time-exceeded"]));
    }
    if proto == Some(Protocol::Icmpv6) && rng.chance(50) {
        r = r.icmp_type(rng.pick(&["echo-request", "packet-too-big"]));
    }
    if rng.chance(40) {
        let all = [
            State::New,
            State::Established,
            State::Related,
            State::Invalid,
            State::Untracked,
        ];
        let states: Vec<State> = all.into_iter().filter(|_| rng.chance(45)).collect();
        if !states.is_empty() {
            r = r.state(&states);
        }
    }
    if rng.chance(8) {
        r = r.limit(1 + rng.next() % 50, RateUnit::Second, None);
    }
    r
}

/// A random policy: names, sets, admins, defaults, and `rules` rules, some of them
/// repeats or narrowings of earlier ones (so rules are shadowed), a few marked as added
/// by vpsfw. `None` when the checker refuses it.
fn random_policy(rng: &mut Rng, rules: usize) -> Option<Policy> {
    let mut b = Builder::new().allow(&FindingKind::ALL);
    for (name, host, _, addrs) in NAMES {
        b = if host {
            b.host(name, addrs)
        } else {
            b.net(name, addrs)
        };
    }
    let mut sets = Vec::new();
    for k in 0..rng.below(4) {
        let fam = [Fam::V4, Fam::V6, Fam::Both][rng.below(3)];
        let mut elements: Vec<&str> = Vec::new();
        for _ in 0..1 + rng.below(5) {
            let e = match fam {
                Fam::V4 => rng.pick(&SET_V4),
                Fam::V6 => rng.pick(&SET_V6),
                Fam::Both => [rng.pick(&SET_V4), rng.pick(&SET_V6)][rng.below(2)],
            };
            if !elements.contains(&e) {
                elements.push(e);
            }
        }
        if fam == Fam::Both {
            elements.push(rng.pick(&SET_V4));
            elements.push(rng.pick(&SET_V6));
            elements.sort_unstable();
            elements.dedup();
        }
        let name = format!("s{k}");
        b = b.set(&name, &elements);
        sets.push((name, fam));
    }
    for chain in Chain::ALL {
        if rng.chance(60) {
            let v = if rng.chance(75) {
                Verdict::Drop
            } else {
                Verdict::Allow
            };
            b = b.policy(chain, v);
        }
    }
    match rng.below(4) {
        0 => b = b.console_only(),
        1 => {}
        _ => {
            for _ in 0..1 + rng.below(2) {
                let who = if !sets.is_empty() && rng.chance(30) {
                    sets[rng.below(sets.len())].0.clone()
                } else {
                    NAMES[rng.below(NAMES.len())].0.to_owned()
                };
                let port = rng.chance(30).then_some("2222");
                b = b.admin(&who, port);
            }
        }
    }
    if rng.chance(60) {
        b = b.rule(RuleBuilder::allow_in().on("lo"));
    }
    if rng.chance(50) {
        b = b.rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]));
    }
    // Each rule from its own seed, so a later rule can repeat it.
    let mut seeds: Vec<u64> = Vec::new();
    for _ in 0..rules {
        let r = if !seeds.is_empty() && rng.chance(15) {
            // A repeat, with the same or another action, or narrowed to new connections.
            let mut again = Rng(seeds[rng.below(seeds.len())]);
            let action = rng
                .chance(50)
                .then(|| [Action::Allow, Action::Drop][rng.below(2)]);
            let r = random_rule(&mut again, &sets, action);
            if rng.chance(30) {
                r.state(&[State::New])
            } else {
                r
            }
        } else {
            let seed = rng.next() | 1;
            seeds.push(seed);
            random_rule(&mut Rng(seed), &sets, None)
        };
        b = b.rule(r);
    }
    let mut policy = b.build().ok()?;
    for rule in &mut policy.rules {
        if matches!(rule.origin, Origin::Written { .. }) && rng.chance(4) {
            rule.origin = Origin::Implicit { why: "test".into() };
        }
    }
    Some(policy)
}

fn both(policy: &Policy) -> (Vec<Finding>, Vec<Finding>) {
    let (admins, none) = (&policy.admins, policy.console_only);
    (
        analyze_with(policy, admins, none, Engine::Indexed),
        analyze_with(policy, admins, none, Engine::Reference),
    )
}

#[test]
fn indexed_analysis_equals_the_reference_on_random_policies() {
    let mut rng = Rng(0x5eed_0fa1_1ce5);
    let mut built = 0;
    let mut kinds = std::collections::BTreeMap::new();
    for round in 0..600 {
        let size = [5, 20, 40, 80][round % 4];
        let Some(policy) = random_policy(&mut rng, size) else {
            continue;
        };
        built += 1;
        let (indexed, reference) = both(&policy);
        assert_eq!(
            indexed, reference,
            "round {round}: the indexed analysis differs from the reference on {policy:#?}"
        );
        for f in &indexed {
            *kinds.entry(f.kind).or_insert(0) += 1;
        }
    }
    assert!(built >= 300, "too few random policies build: {built}");
    for kind in [
        FindingKind::Shadowed,
        FindingKind::Redundant,
        FindingKind::NoReplies,
        FindingKind::Lockout,
        FindingKind::OpenAdminPort,
        FindingKind::NoLoopback,
    ] {
        assert!(
            kinds.get(&kind).copied().unwrap_or(0) >= 10,
            "the random policies should have {kind} findings: {kinds:?}"
        );
    }
}

/// Like the benchmark's policies, larger: many hosts of one /16 with distinct ports,
/// with repeats, wide drops and port ranges mixed in.
#[test]
fn indexed_analysis_equals_the_reference_on_large_policies() {
    let mut rng = Rng(0xfeed_beef_1234_5678);
    for _ in 0..4 {
        let mut b = Builder::new()
            .allow(&FindingKind::ALL)
            .host("admin", &["198.51.7.7"])
            .admin("admin", None)
            .policy(Chain::Input, Verdict::Drop)
            .rule(RuleBuilder::allow_in().on("lo"))
            .rule(RuleBuilder::allow_in().state(&[State::Established, State::Related]));
        let mut dead = 0;
        for i in 0..600 {
            let host = format!("198.51.{}.{}", rng.below(4), 1 + rng.below(250));
            let port = (1000 + rng.below(600)).to_string();
            let r = match rng.below(20) {
                0 => RuleBuilder::new(Action::Drop, Direction::In)
                    .from(&format!("198.51.{}.0/24", rng.below(4))),
                1 => RuleBuilder::new(Action::Drop, Direction::In)
                    .proto(Protocol::Tcp)
                    .to_ports(&["1100:1200"]),
                2 => RuleBuilder::allow_out()
                    .proto(Protocol::Tcp)
                    .to(&host)
                    .to_ports(&[&port]),
                _ => RuleBuilder::allow_in()
                    .from(&host)
                    .proto(Protocol::Tcp)
                    .to_ports(&[&port])
                    .state(&[State::New]),
            };
            b = b.rule(r);
            if i % 50 == 0 {
                dead += 1;
                b = b.rule(
                    RuleBuilder::allow_in()
                        .from(&host)
                        .proto(Protocol::Tcp)
                        .to_ports(&[&port]),
                );
            }
        }
        let policy = b.build().expect("the large policy builds");
        let (indexed, reference) = both(&policy);
        assert_eq!(indexed, reference);
        assert!(
            indexed
                .iter()
                .filter(|f| matches!(f.kind, FindingKind::Shadowed | FindingKind::Redundant))
                .count()
                >= dead / 2,
            "{indexed:#?}"
        );
    }
}

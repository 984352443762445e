//! The typed model at run time: serde round trips that keep every check, and the
//! evaluator's answers for the roles.

mod roles;

use vpsfw::{Outcome, Packet, Policy};

#[test]
fn policies_round_trip_through_json() {
    for (name, policy) in roles::all() {
        let json = serde_json::to_string(&policy).expect("serialize");
        let back: Policy = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, policy, "{name}");
    }
}

/// Deserializing runs the same checks as the builder: tampered JSON is refused.
#[test]
fn tampered_json_is_refused() {
    let json = serde_json::to_string(&roles::web_server::policy()).expect("serialize");
    let tamper = |from: &str, to: &str| {
        assert!(json.contains(from), "fixture lost `{from}`");
        json.replacen(from, to, 1)
    };
    let cases = [
        ("port 0", tamper("[[80,80],[443,443]]", "[[0,0]]")),
        ("reversed range", tamper("[[1024,65535]]", "[[2000,1024]]")),
        ("unsafe comment", tamper("\"server\"", "\"x\\\"; reboot\"")),
        (
            "ports without tcp/udp",
            tamper(
                "\"proto\":\"tcp\",\"src\":null,\"dst\":null,\"sport\":[[1024,65535]]",
                "\"proto\":null,\"src\":null,\"dst\":null,\"sport\":[[1024,65535]]",
            ),
        ),
        (
            "a SYN match without tcp",
            tamper("\"proto\":\"tcp\",\"src\":null,\"dst\":null,\"sport\":null", "\"proto\":null,\"src\":null,\"dst\":null,\"sport\":null"),
        ),
        ("v4 rule without v4 address", tamper("\"v4\":true,\"v6\":true,\"iface\":null,\"proto\":null,\"src\":{\"addr\":{\"name\":\"admin\",\"v4\":\"198.51.100.7/32\"", "\"v4\":true,\"v6\":true,\"iface\":null,\"proto\":null,\"src\":{\"addr\":{\"name\":\"admin\",\"v4\":null")),
        ("bad interface", tamper("\"lo\"", "\"lo;x\"")),
    ];
    for (what, bad) in cases {
        assert!(
            serde_json::from_str::<Policy>(&bad).is_err(),
            "{what} was accepted"
        );
    }
}

#[test]
fn evaluator_explains_decisions() {
    let policy = roles::web_server::policy();
    let check = |text: &str| {
        let packet: Packet = text.parse().expect("packet");
        let d = policy.evaluate(&packet);
        (d.outcome, d.to_string())
    };
    let (o, why) = check("in tcp from 198.51.100.7:40000 to 192.0.2.1:22");
    assert_eq!(o, Outcome::Accept);
    assert!(
        why.contains("group server") && why.contains("allow in from admin"),
        "{why}"
    );
    let (o, why) = check("in tcp from 203.0.113.99:40000 to 192.0.2.1:22");
    assert_eq!(o, Outcome::Drop);
    assert!(why.contains("policy of INPUT"), "{why}");
    // The article's source-port rules are gone: port 53 to a high port is not a reply.
    let (o, _) = check("in udp from 203.0.113.53:53 to 192.0.2.1:40000");
    assert_eq!(o, Outcome::Drop);
    let (o, _) = check("in udp from 203.0.113.53:53 to 192.0.2.1:40000 state established");
    assert_eq!(o, Outcome::Accept);
    let (o, _) = check("in tcp from [2001:db8:100::7]:40000 to [2001:db8::1]:22");
    assert_eq!(o, Outcome::Accept);
    let (o, _) = check("in tcp from [2001:db8::99]:1023 to [2001:db8::1]:443");
    assert_eq!(o, Outcome::Drop);
}

/// `{:?}` shows the policy's value: the same before and after the evaluator has built
/// (and cached) its compiled chains.
#[test]
fn debug_shows_the_value_not_the_cache() {
    let policy = roles::web_server::policy();
    let before = format!("{policy:?}");
    let p: Packet = "in tcp from 203.0.113.9:40000 to 192.0.2.1:443"
        .parse()
        .expect("packet");
    let _ = policy.evaluate(&p);
    assert_eq!(format!("{policy:?}"), before);
    assert!(before.starts_with("Policy { names: "), "{before:.40}");
    assert!(!before.contains("Cache"), "the cache shows in {{:?}}");
}

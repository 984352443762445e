//! An empty policy is valid: it holds only the ICMPv6 that IPv6 needs.

fn main() {
    let policy = vpsfw::firewall! {};
    let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
    assert!(!v4.contains("-A "), "{v4}");
    let v6 = vpsfw::render(&policy, vpsfw::Format::Restore6);
    assert!(v6.contains("--icmpv6-type 135"), "{v6}");
}

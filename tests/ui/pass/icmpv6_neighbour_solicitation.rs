//! `icmpv6 type` takes the ICMPv6 names, in both spellings; such a rule is IPv6 only.

fn main() {
    let policy = vpsfw::firewall! {
        allow in icmpv6 type neighbour-solicitation;
        allow out icmpv6 type neighbor-advertisement;
        allow in icmp type destination-unreachable;
    };
    let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
    let v6 = vpsfw::render(&policy, vpsfw::Format::Restore6);
    assert!(
        v6.contains("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j ACCEPT"),
        "{v6}"
    );
    assert!(
        v6.contains("-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -j ACCEPT"),
        "{v6}"
    );
    assert!(
        v4.contains("-A INPUT -p icmp -m icmp --icmp-type 3 -j ACCEPT"),
        "{v4}"
    );
    assert!(!v4.contains("icmp6"), "{v4}");
}

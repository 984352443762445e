//! The README's design sentence, exactly as written.

fn main() {
    let policy = vpsfw::firewall! {
        host office = 203.0.113.128;
        allow in from office/27 tcp to [http, https] state new,established;
    };
    let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
    let v6 = vpsfw::render(&policy, vpsfw::Format::Restore6);
    assert!(
        v4.contains("-A INPUT -s 203.0.113.128/27 -p tcp -m multiport --dports 80,443 -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT"),
        "{v4}"
    );
    // `office` is IPv4 only, so the rule exists only in the IPv4 ruleset.
    assert!(!v6.contains("--dports 80,443"), "{v6}");
}

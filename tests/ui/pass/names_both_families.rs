//! A name with an address of each family makes one rule in each ruleset; a name of one
//! family keeps its rules in that ruleset only.

use vpsfw::{firewall, Format, Policy};

fn policy() -> Policy {
    firewall! {
        host admin = 198.51.100.7, "2001:db8:100::7";
        net office6 = "2001:db8:200::/48";
        net office = 203.0.113.128/27;
        allow in from admin;
        allow in tcp from office6 to ssh;
        allow in tcp from office to ssh;
        allow out tcp to admin port 22;
    }
}

fn main() {
    let policy = policy();
    let v4 = vpsfw::render(&policy, Format::Restore);
    let v6 = vpsfw::render(&policy, Format::Restore6);
    assert!(v4.contains("-A INPUT -s 198.51.100.7/32 -j ACCEPT"), "{v4}");
    assert!(
        v6.contains("-A INPUT -s 2001:db8:100::7/128 -j ACCEPT"),
        "{v6}"
    );
    assert!(
        v6.contains("-A INPUT -s 2001:db8:200::/48 -p tcp -m tcp --dport 22 -j ACCEPT"),
        "{v6}"
    );
    assert!(!v4.contains("2001:db8:200::"), "{v4}");
    assert!(
        v4.contains("-A INPUT -s 203.0.113.128/27 -p tcp -m tcp --dport 22 -j ACCEPT"),
        "{v4}"
    );
    assert!(!v6.contains("203.0.113.128"), "{v6}");
    assert!(
        v4.contains("-A OUTPUT -d 198.51.100.7/32 -p tcp -m tcp --dport 22 -j ACCEPT"),
        "{v4}"
    );
    assert!(
        v6.contains("-A OUTPUT -d 2001:db8:100::7/128 -p tcp -m tcp --dport 22 -j ACCEPT"),
        "{v6}"
    );
    let names: Vec<&str> = policy.names().iter().map(|n| n.name()).collect();
    assert_eq!(names, ["admin", "office6", "office"]);
}

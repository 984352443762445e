//! The expansion names everything by absolute path: it builds inside a module without
//! the prelude (as maud tests its macros).

mod isolated {
    #![no_implicit_prelude]

    pub fn policy() -> ::vpsfw::Policy {
        ::vpsfw::firewall! {
            #![allow(no_loopback, no_replies, unused_name, open_admin_port, redundant)]
                admin none;
            host admin = 198.51.100.7, "2001:db8:100::7";
            net office = 203.0.113.128/27;
            group server {
                allow in from admin;
                allow in tcp from office port 1024: to [http, https] state new limit 5/second;
                log in icmpv6 type echo-request prefix "PING: ";
            }
            allow in on "eth+" comment "lan";
            policy input drop;
        }
    }
}

fn main() {
    let policy = isolated::policy();
    let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
    assert!(v4.contains(":INPUT DROP [0:0]"), "{v4}");
    assert!(
        v4.contains("-A INPUT -s 198.51.100.7/32 -m comment --comment server -j ACCEPT"),
        "{v4}"
    );
}

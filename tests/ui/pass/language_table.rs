//! Every form of the README's language table, with the iptables it becomes.

fn main() {
    let policy = vpsfw::firewall! {
        #![allow(redundant, shadowed, unused_name, no_replies, open_admin_port, no_loopback)]
        admin none;
        host admin = 198.51.100.7;
        net office = 203.0.113.128/27;

        group table {
            allow in on lo;
            accept in on eth0;
            allow forward on "eth+";
            allow out on lo;
            drop in tcp to 23;
            reject in tcp to 25;
            reject in udp to 69;
            reject in icmpv6;
            log in udp to 161;
            allow in udp from 198.51.100.7 to 123;
            allow in icmp from office;
            allow in from "2001:db8::/32";
            allow in tcp from any to 3306;
            allow in all to 192.0.2.1;
            allow in tcp to 22;
            allow out tcp to ssh;
            allow in tcp to 1024:;
            allow in tcp to :1023;
            allow in tcp to 6000:6010;
            allow in tcp to [http, https, 8000:8100];
            allow in tcp from 1024: to http;
            allow in tcp from office port 1024: to https;
            allow in icmp type echo-request;
            allow in icmpv6 type echo-request;
            allow in state new,established;
            allow in state related,invalid,untracked;
            allow in tcp to ssh limit 5/minute burst 10;
            allow in tcp to 2222 limit 1/second;
            allow in tcp to 2223 limit 100/hour;
            allow in tcp to 2224 limit 1000/day;
            log in tcp to ssh prefix "SSH-IN: ";
            allow in tcp to 8080 comment "web";
        }
    };
    let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
    let v6 = vpsfw::render(&policy, vpsfw::Format::Restore6);
    let both = |line: &str| {
        assert!(v4.contains(line), "IPv4 lacks {line:?}:\n{v4}");
        assert!(v6.contains(line), "IPv6 lacks {line:?}:\n{v6}");
    };
    let only4 = |line: &str| {
        assert!(v4.contains(line), "IPv4 lacks {line:?}:\n{v4}");
        assert!(!v6.contains(line), "IPv6 has {line:?}:\n{v6}");
    };
    let only6 = |line: &str| {
        assert!(v6.contains(line), "IPv6 lacks {line:?}:\n{v6}");
        assert!(!v4.contains(line), "IPv4 has {line:?}:\n{v4}");
    };
    // Actions and directions; interfaces (`-o` for `out`).
    both("-A INPUT -i lo -m comment --comment table -j ACCEPT");
    both("-A INPUT -i eth0 -m comment --comment table -j ACCEPT");
    both("-A FORWARD -i eth+ -m comment --comment table -j ACCEPT");
    both("-A OUTPUT -o lo -m comment --comment table -j ACCEPT");
    both("-A INPUT -p tcp -m tcp --dport 23 -m comment --comment table -j DROP");
    both("-A INPUT -p tcp -m tcp --dport 25 -m comment --comment table -j REJECT --reject-with tcp-reset");
    only4("-A INPUT -p udp -m udp --dport 69 -m comment --comment table -j REJECT --reject-with icmp-port-unreachable");
    only6("-A INPUT -p udp -m udp --dport 69 -m comment --comment table -j REJECT --reject-with icmp6-port-unreachable");
    only6("-A INPUT -p ipv6-icmp -m comment --comment table -j REJECT --reject-with icmp6-port-unreachable");
    both("-A INPUT -p udp -m udp --dport 161 -m comment --comment table -j LOG");
    // Addresses: literal, name, IPv6 network, `any`, `all`, destination.
    only4("-A INPUT -s 198.51.100.7/32 -p udp -m udp --dport 123 -m comment --comment table -j ACCEPT");
    only4("-A INPUT -s 203.0.113.128/27 -p icmp -m comment --comment table -j ACCEPT");
    only6("-A INPUT -s 2001:db8::/32 -m comment --comment table -j ACCEPT");
    only4("-A INPUT -d 192.0.2.1/32 -m comment --comment table -j ACCEPT");
    // Ports: number, service, open ranges, range, multiport list. Neighbours that differ
    // only in destination port become one multiport rule (a range counts 2 of its 15):
    // in IPv4 the rule to 192.0.2.1 stands between 3306 and 22, in IPv6 nothing does.
    only4("-A INPUT -p tcp -m tcp --dport 3306 -m comment --comment table -j ACCEPT");
    only4("-A INPUT -p tcp -m multiport --dports 22,1024:65535,1:1023,6000:6010,80,443,8000:8100 -m comment --comment table -j ACCEPT");
    only6("-A INPUT -p tcp -m multiport --dports 3306,22,1024:65535,1:1023,6000:6010,80,443,8000:8100 -m comment --comment table -j ACCEPT");
    both("-A OUTPUT -p tcp -m tcp --dport 22 -m comment --comment table -j ACCEPT");
    both(
        "-A INPUT -p tcp -m tcp --sport 1024:65535 --dport 80 -m comment --comment table -j ACCEPT",
    );
    only4("-A INPUT -s 203.0.113.128/27 -p tcp -m tcp --sport 1024:65535 --dport 443 -m comment --comment table -j ACCEPT");
    // ICMP types, states, limits, log prefix, comment.
    only4("-A INPUT -p icmp -m icmp --icmp-type 8 -m comment --comment table -j ACCEPT");
    only6("-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m comment --comment table -j ACCEPT");
    both("-A INPUT -m conntrack --ctstate NEW,ESTABLISHED -m comment --comment table -j ACCEPT");
    both("-A INPUT -m conntrack --ctstate INVALID,RELATED,UNTRACKED -m comment --comment table -j ACCEPT");
    both("--dport 22 -m limit --limit 5/min --limit-burst 10 ");
    both("--dport 2222 -m limit --limit 1/sec --limit-burst 5 ");
    both("--dport 2223 -m limit --limit 100/hour --limit-burst 5 ");
    both("--dport 2224 -m limit --limit 1000/day --limit-burst 5 ");
    both("-A INPUT -p tcp -m tcp --dport 22 -m comment --comment table -j LOG --log-prefix \"SSH-IN: \"");
    both("-A INPUT -p tcp -m tcp --dport 8080 -m comment --comment \"table: web\" -j ACCEPT");
}

//! Rules may stand outside any group, before, between and after groups; `from any` and
//! `:1023` work; stray `;` after a group are fine. Rules keep their order within a chain.

fn main() {
    let policy = vpsfw::firewall! {
        #![allow(no_replies)]
        admin none;
        allow in on lo;
        group server {
            allow in tcp from any to :1023 state new;
        };
        allow in tcp from any port :1023 to 1024:;
        group client {
            allow out udp to dns;
        }
        policy input drop;
        drop in;
    };
    let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
    let lines: Vec<&str> = v4.lines().filter(|l| l.starts_with("-A ")).collect();
    assert_eq!(
        lines,
        [
            "-A INPUT -i lo -j ACCEPT",
            "-A INPUT -p tcp -m tcp --dport 1:1023 -m conntrack --ctstate NEW -m comment --comment server -j ACCEPT",
            "-A INPUT -p tcp -m tcp --sport 1:1023 --dport 1024:65535 -j ACCEPT",
            "-A INPUT -j DROP",
            "-A OUTPUT -p udp -m udp --dport 53 -m comment --comment client -j ACCEPT",
        ],
        "{v4}"
    );
    assert!(v4.contains(":INPUT DROP [0:0]"), "{v4}");
}

//! A `log` rule with a prefix (which may end in a space) and a rate limit, in any order.

fn main() {
    let policy = vpsfw::firewall! {
        log in tcp to ssh state new limit 5/minute burst 10 prefix "SSH-IN: ";
        log in prefix "DROP-IN: " limit 2/second;
        drop in;
    };
    let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
    assert!(
        v4.contains("-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m limit --limit 5/min --limit-burst 10 -j LOG --log-prefix \"SSH-IN: \""),
        "{v4}"
    );
    assert!(
        v4.contains(
            "-A INPUT -m limit --limit 2/sec --limit-burst 5 -j LOG --log-prefix \"DROP-IN: \""
        ),
        "{v4}"
    );
    let sh = vpsfw::render(&policy, vpsfw::Format::Commands);
    assert!(sh.contains("--log-prefix 'SSH-IN: '"), "{sh}");
}

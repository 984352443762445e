//! The expansion reaches the runtime through the facade's own path (`$crate`), so it
//! works when the facade is renamed.

extern crate vpsfw as fw;

fn main() {
    let policy: fw::Policy = fw::firewall! {
        host admin = 198.51.100.7;
        allow in tcp from admin to ssh;
    };
    let v4 = fw::render(&policy, fw::Format::Restore);
    assert!(
        v4.contains("-A INPUT -s 198.51.100.7/32 -p tcp -m tcp --dport 22 -j ACCEPT"),
        "{v4}"
    );
}

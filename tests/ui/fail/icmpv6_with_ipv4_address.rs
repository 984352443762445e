fn main() {
    let _ = vpsfw::firewall! {
        allow in icmpv6 type echo-request from 198.51.100.7;
    };
}

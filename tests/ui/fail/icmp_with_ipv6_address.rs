fn main() {
    let _ = vpsfw::firewall! {
        allow in icmp from "2001:db8::1";
    };
}

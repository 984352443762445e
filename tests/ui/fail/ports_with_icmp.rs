fn main() {
    let _ = vpsfw::firewall! {
        allow in icmp to 22;
    };
}

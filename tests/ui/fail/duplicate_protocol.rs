fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp udp to 53;
    };
}

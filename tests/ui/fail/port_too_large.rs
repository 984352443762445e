fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp to 65536;
    };
}

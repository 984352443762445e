fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp to 22 to 80;
    };
}

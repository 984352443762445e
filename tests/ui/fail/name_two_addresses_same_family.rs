fn main() {
    let _ = vpsfw::firewall! {
        host admin = 198.51.100.7, 198.51.100.8;
    };
}

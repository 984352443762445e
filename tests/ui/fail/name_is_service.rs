fn main() {
    let _ = vpsfw::firewall! {
        host ssh = 198.51.100.7;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp to 2048:1024;
    };
}

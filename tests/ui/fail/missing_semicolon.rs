fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp to ssh
        allow out tcp to http;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp port 22;
    };
}

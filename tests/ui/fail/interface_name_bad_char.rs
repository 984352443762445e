fn main() {
    let _ = vpsfw::firewall! {
        allow in on "eth0/1";
    };
}

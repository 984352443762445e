fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp to ssh limit 5/minute burst 0;
    };
}

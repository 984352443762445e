fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp to ssh limit 20000/second;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp to ssh limit 99999999999999999999/second;
        allow in tcp to http limit 5/second burst 99999999999999999999;
    };
}

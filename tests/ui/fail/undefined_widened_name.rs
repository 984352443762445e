fn main() {
    let _ = vpsfw::firewall! {
        host office = 203.0.113.128;
        allow in from ofice/27;
    };
}

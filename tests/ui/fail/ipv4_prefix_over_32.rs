fn main() {
    let _ = vpsfw::firewall! {
        net office = 203.0.113.0/33;
    };
}

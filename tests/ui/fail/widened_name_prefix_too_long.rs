fn main() {
    let _ = vpsfw::firewall! {
        host office = 203.0.113.130;
        allow in from office/33;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        allow in from 203.0.113.130/27;
    };
}

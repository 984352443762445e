fn main() {
    let _ = vpsfw::firewall! {
        allow in from 198.51.100.256;
    };
}

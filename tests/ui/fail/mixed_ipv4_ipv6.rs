fn main() {
    let _ = vpsfw::firewall! {
        allow in from 198.51.100.7 to "2001:db8::1";
    };
}

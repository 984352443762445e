fn main() {
    let _ = vpsfw::firewall! {
        hots admin = 198.51.100.7;
        allow in from admin;
    };
}

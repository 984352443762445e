fn main() {
    let _ = vpsfw::firewall! {
        allow in to 22;
    };
}

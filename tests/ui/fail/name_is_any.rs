fn main() {
    let _ = vpsfw::firewall! {
        host any = 198.51.100.7;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        net office6 = "2001:db8::/129";
    };
}

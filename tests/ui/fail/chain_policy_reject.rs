fn main() {
    let _ = vpsfw::firewall! {
        policy input reject;
    };
}

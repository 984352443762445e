fn main() {
    let _ = vpsfw::firewall! {
        policy input drop
        allow in on lo;
    };
}

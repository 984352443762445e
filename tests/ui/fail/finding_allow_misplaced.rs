fn main() {
    let _ = vpsfw::firewall! {
        #[allow(unused_name)]
        host spare = 198.51.100.8;
        allow in on lo;
        admin none;
        policy input drop;
    };
}

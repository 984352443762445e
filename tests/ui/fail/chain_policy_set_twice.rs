fn main() {
    let _ = vpsfw::firewall! {
        policy input drop;
        policy input allow;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        allow in on lo;
        allow in state established,related;
        allow in tcp to https state new;
        policy input drop;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        allow in tpc to ssh;
    };
}

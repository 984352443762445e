fn main() {
    let _ = vpsfw::firewall! {
        allow tcp to ssh;
    };
}

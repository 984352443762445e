fn main() {
    let _ = vpsfw::firewall! {
        allow inn tcp to ssh;
    };
}

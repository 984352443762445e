fn main() {
    let _ = vpsfw::firewall! {
        alow in tcp to ssh;
    };
}

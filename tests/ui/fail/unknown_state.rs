fn main() {
    let _ = vpsfw::firewall! {
        allow in state new,establised;
    };
}

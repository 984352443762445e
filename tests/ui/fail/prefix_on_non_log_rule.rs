fn main() {
    let _ = vpsfw::firewall! {
        allow in prefix "SSH-IN: ";
    };
}

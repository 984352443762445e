fn main() {
    let _ = vpsfw::firewall! {
        log in prefix "THIS-PREFIX-IS-FAR-TOO-LONG-FOR-LOG: ";
    };
}

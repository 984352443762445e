fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp type echo-request;
    };
}

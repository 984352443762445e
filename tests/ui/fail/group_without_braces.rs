fn main() {
    let _ = vpsfw::firewall! {
        group web;
        allow in tcp to http;
    };
}

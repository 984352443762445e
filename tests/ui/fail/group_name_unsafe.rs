fn main() {
    let _ = vpsfw::firewall! {
        group "web$(id)" {
            allow in tcp to http;
            allow in tcp to https;
        }
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        gruop web {
            allow in tcp to http;
        }
        allow out tcp to https;
        grop in;
    };
}

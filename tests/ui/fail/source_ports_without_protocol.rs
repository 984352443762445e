fn main() {
    let _ = vpsfw::firewall! {
        host office = 203.0.113.128;
        allow in from office port 1024: to 192.0.2.1;
    };
}

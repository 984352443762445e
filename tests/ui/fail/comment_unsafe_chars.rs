fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp to ssh comment "web; rm -rf /";
    };
}

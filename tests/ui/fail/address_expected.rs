fn main() {
    let _ = vpsfw::firewall! {
        allow in from ;
    };
}

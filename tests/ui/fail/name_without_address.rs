fn main() {
    let _ = vpsfw::firewall! {
        host admin = ;
        allow in from admin;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        host admin = admin.example.com;
        allow in from admin;
    };
}

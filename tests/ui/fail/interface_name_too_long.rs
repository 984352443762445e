fn main() {
    let _ = vpsfw::firewall! {
        allow in on averyverylongname0;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        host admin = 198.51.100.7;
        allow in on lo;
        allow in state established,related;
        #[allow(shadow)]
        allow in from admin state new;
        admin admin;
        policy input drop;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        host admin = 198.51.100.7;
        allow in on lo;
        allow in state established,related;
        allow in from admin state new;
        allow in tcp to [ssh, https] state new;
        admin admin;
        policy input drop;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        host admin = 198.51.100.7;
        allow in on lo;
        allow in state established,related;
        allow in from admin state new;
        drop in tcp to 1:1023;
        drop in tcp to 1024:;
        allow in tcp to 1000:2000;
        admin admin;
        policy input drop;
    };
}

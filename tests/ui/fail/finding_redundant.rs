fn main() {
    let _ = vpsfw::firewall! {
        host admin = 198.51.100.7;
        net office = 203.0.113.128/25;
        allow in on lo;
        allow in state established,related;
        allow in from admin state new;
        allow in from office;
        allow in from office tcp to ssh state new;
        admin admin;
        policy input drop;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        host admin = 198.51.100.7;
        net office = 203.0.113.128/25;
        allow in on lo;
        allow in state established,related;
        allow in from admin state new;
        drop in from office;
        allow in from 203.0.113.130 tcp to https;
        admin admin;
        policy input drop;
    };
}

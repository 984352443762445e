fn main() {
    let _ = vpsfw::firewall! {
        host admin = 198.51.100.7;
        allow in on lo;
        allow in from admin;
        allow out udp to [dns, ntp] state new;
        admin admin;
        policy input drop;
    };
}

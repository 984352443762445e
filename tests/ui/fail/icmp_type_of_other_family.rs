fn main() {
    let _ = vpsfw::firewall! {
        allow in icmp type neighbour-solicitation;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        net admins = 203.0.113.128/25;
        allow in on lo;
        allow in state established,related;
        allow in from 203.0.113.128/26 tcp to 2222 state new;
        admin admins port 2222;
        policy input drop;
    };
}

fn main() {
    let _ = vpsfw::firewall! {
        allow in on lo comment "loopback: every local service talks to the others over this one interface";
    };
}

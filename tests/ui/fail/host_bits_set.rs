fn main() {
    let _ = vpsfw::firewall! {
        net head_office = 203.0.113.130/27;
    };
}

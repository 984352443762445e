fn main() {
    let _ = vpsfw::firewall! {
        policy inptu drop;
    };
}

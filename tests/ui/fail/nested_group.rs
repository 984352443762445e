fn main() {
    let _ = vpsfw::firewall! {
        group outer {
            group inner {
                allow in;
            }
        }
    };
}

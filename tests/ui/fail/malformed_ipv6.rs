fn main() {
    let _ = vpsfw::firewall! {
        allow in from "2001:db8:::1";
    };
}

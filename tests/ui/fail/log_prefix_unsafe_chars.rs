fn main() {
    let _ = vpsfw::firewall! {
        log in prefix "IN\"; rm -rf / #";
        log in prefix "$HOME";
        log in prefix "`id`";
        log in prefix "A\nB";
        log in prefix "it's";
    };
}

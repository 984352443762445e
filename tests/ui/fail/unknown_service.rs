fn main() {
    let _ = vpsfw::firewall! {
        allow in tcp from 1024: to [http, htps] state new;
    };
}

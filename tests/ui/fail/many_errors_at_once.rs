fn main() {
    let _ = vpsfw::firewall! {
        host admin = 198.51.100.7;
        net office = 203.0.113.130/27;

        group server {
            allow in tcp from 1024: to [http, htps] state new;
            allow in from admn;
            allow in udp to 0;
        }
        allow in tcp to ssh stat new;
        allow inn on "eth0/1";
        log in prefix "$(reboot)";
        allow in from 198.51.100.7 to "2001:db8::1";
        policy input reject;
    };
}

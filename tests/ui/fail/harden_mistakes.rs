fn main() {
    let _ = vpsfw::firewall! {
        allow in on lo;
        allow in state established,related;
        harden syn_flod;
        harden invalid limit 5/second;
        harden ping for 60;
        harden port_scan for 0;
        harden log_drops prefix "$(reboot)";
        harden conn_rate limit 0/second;
        harden conn_rate;
        harden conn_rate;
        admin none;
        policy input drop;
    };
}

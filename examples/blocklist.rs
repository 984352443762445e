//! The web server of listing 1 with a blocklist kept in a file beside the policy.
//!
//! The list is checked when the policy is built (an error names the file's line) and is
//! loaded as an ipset per family (iptables backend) or an nft interval set, replaced
//! without a moment where the rules see an empty set.
//!
//! `cargo run --example blocklist | sh`; `-- --backend nft` for nftables.

use vpsfw::{firewall, Policy};

pub fn policy() -> Policy {
    firewall! {
        host admin = 198.51.100.7, "2001:db8:100::7";
        set blocklist from "examples/sets/blocklist.txt";

        group common {
            allow in on lo;
            drop in from blocklist;
            // Pings are limited before the fast path: one `ping -f` is one flow.
            harden ping;
            allow in state established,related;
            // The article's set_fwlevel, as presets (see the README for their rules).
            harden invalid;
            harden syn_flood limit 200/second burst 400;
            harden conn_rate limit 50/second burst 100;
            harden log_drops;
            allow out on lo;
            allow out state established,related;
        }
        group server {
            allow in from admin state new;
            allow in tcp from 1024: to [http, https] state new;
        }
        group client {
            allow out tcp to [http, https, dns, smtp] state new;
            allow out udp to [dns, ntp] state new;
        }

        // Proved at build time: admin can always reach ssh, over every family it has.
        admin admin;
        policy input drop;
        policy forward drop;
        policy output drop;
    }
}

fn main() -> std::process::ExitCode {
    vpsfw::cli::run(&policy())
}

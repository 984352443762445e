//! The article's listing 1: a public web server.
//!
//! The admin may reach everything; anyone may reach http and https (from source ports
//! 1024 and up, as the listing has it); the server itself may fetch over http/https,
//! resolve names, sync its clock and send mail. Replies come back through connection
//! tracking, never by source port.
//!
//! `cargo run --example web_server | sh` loads it; `-- --help` lists the other outputs.

use vpsfw::{firewall, Policy};

pub fn policy() -> Policy {
    firewall! {
        host admin = 198.51.100.7, "2001:db8:100::7";

        group common {
            allow in on lo;
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

//! The article's listing 2: an internal company server on the Internet.
//!
//! The head office and branch A may reach everything; a partner company may reach http
//! and https only (from source ports 1024 and up, as the listing has it); nobody else
//! gets in. The server is a client of http/https, dns, ntp and smtp, as in listing 1.
//!
//! `cargo run --example internal_server | sh` loads it; `-- --help` lists the other outputs.

use vpsfw::{firewall, Policy};

pub fn policy() -> Policy {
    firewall! {
        net head_office = 203.0.113.128/27;
        net branch_a = 198.51.100.160/27;
        net partner = 192.0.2.192/27;

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
            allow in from head_office state new;
            allow in from branch_a state new;
            allow in from partner port 1024: tcp to [http, https] state new;
        }
        group client {
            allow out tcp to [http, https, dns, smtp] state new;
            allow out udp to [dns, ntp] state new;
        }

        // Proved at build time: head_office can always reach ssh, over every family it has.
        admin head_office;
        policy input drop;
        policy forward drop;
        policy output drop;
    }
}

fn main() -> std::process::ExitCode {
    vpsfw::cli::run(&policy())
}

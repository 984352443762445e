//! The article's listing 3: a shared file server.
//!
//! Files go out as encrypted ZIPs over https to anyone with the link; trusted people
//! upload over SFTP. The admin's own machine may reach everything; the rest of the head
//! office and the branch may reach ssh only; anyone may reach http and https (from source
//! ports 1024 and up, as the listing has it). The server is a client of http/https, dns,
//! ntp and smtp, as in listing 1.
//!
//! `cargo run --example file_server | sh` loads it; `-- --help` lists the other outputs.

use vpsfw::{firewall, Policy};

pub fn policy() -> Policy {
    firewall! {
        host admin = 203.0.113.158;
        net head_office = 203.0.113.128/27;
        net branch = 198.51.100.160/27;

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
            allow in from head_office tcp to ssh state new;
            allow in from branch tcp to ssh state new;
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

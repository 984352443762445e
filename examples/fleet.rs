//! A fleet: one crate describes every host. Roles are written once, as `macro_rules!`
//! around `firewall!`, and each host fills in its own addresses; every host's policy is
//! checked at build time, errors pointing at the host's own tokens.
//!
//! ```text
//! cargo run --example fleet -- --list-hosts
//! cargo run --example fleet -- --host web1 --diff
//! cargo run --example fleet -- --host intranet-osaka --apply
//! ```
//!
//! Rolling it out is the config-management tool's job (see the README's "Fleet" section):
//! vpsfw only answers "does this host match?" and applies one host safely.

use vpsfw::{firewall, Policy};

/// A public web server (listing 1): `admin` may reach everything, anyone http/https.
macro_rules! web_role {
    (admin = [$($admin:tt)*]) => {
        firewall! {
            host admin = $($admin)*;

            group common {
                allow in on lo;
                harden ping;
                allow in state established,related;
                harden invalid;
                harden syn_flood limit 200/second burst 400;
                harden conn_rate limit 50/second burst 100;
                harden log_drops;
                allow out on lo;
                allow out state established,related;
            }
            group server {
                allow in from admin state new;
                allow in tcp to [http, https] state new;
            }
            group client {
                allow out tcp to [http, https, dns, smtp] state new;
                allow out udp to [dns, ntp] state new;
            }

            admin admin;
            policy input drop;
            policy forward drop;
            policy output drop;
        }
    };
}

/// An internal server (listing 2): only its own office gets in.
macro_rules! intranet_role {
    (office = [$($office:tt)*]) => {
        firewall! {
            net office = $($office)*;

            group common {
                allow in on lo;
                harden ping;
                allow in state established,related;
                harden invalid;
                harden log_drops;
                allow out on lo;
                allow out state established,related;
            }
            group server {
                allow in from office state new;
            }
            group client {
                allow out tcp to [http, https, dns, smtp] state new;
                allow out udp to [dns, ntp] state new;
            }

            admin office;
            policy input drop;
            policy forward drop;
            policy output drop;
        }
    };
}

fn web1() -> Policy {
    web_role! { admin = [198.51.100.7, "2001:db8:100::7"] }
}

fn web2() -> Policy {
    web_role! { admin = [198.51.100.8] }
}

fn intranet_tokyo() -> Policy {
    intranet_role! { office = [203.0.113.128/27] }
}

fn intranet_osaka() -> Policy {
    intranet_role! { office = [198.51.100.160/27, "2001:db8:160::/48"] }
}

/// Every host, by the name the inventory knows it by.
pub const HOSTS: &[vpsfw::cli::Host<'static>] = &[
    ("web1", web1),
    ("web2", web2),
    ("intranet-tokyo", intranet_tokyo),
    ("intranet-osaka", intranet_osaka),
];

fn main() -> std::process::ExitCode {
    vpsfw::cli::run_fleet(HOSTS)
}

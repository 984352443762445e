use vpsfw::{firewall, Policy};

fn policy() -> Policy {
    firewall! {
        host admin = 198.51.100.7, "2001:db8:100::7";

        group common {
            allow in on lo;
            allow in state established,related;
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

        admin admin;        // proved at build time: admin can always reach ssh
        policy input drop;
        policy forward drop;
        policy output drop;
    }
}

fn main() -> std::process::ExitCode {
    vpsfw::cli::run(&policy())
}

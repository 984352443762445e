//! The command line every policy binary gets: `fn main() -> ExitCode { vpsfw::cli::run(&policy()) }`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

use crate::eval::Packet;
use crate::model::Policy;
use crate::render::{render_with, Format, Layout};

/// Prints this host's firewall policy as a shell script, restore files or commands.
///
/// The default output is a POSIX sh script: `... | sh` as root loads the IPv4 and IPv6
/// rulesets atomically (both are tested first; a failure leaves the previous rulesets in
/// force) and running it again changes nothing.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// What to print: sh (the default, safe to pipe into sh), commands (one iptables
    /// command per line, not atomic), restore (iptables-restore file), restore6
    /// (ip6tables-restore file), nft (nft -f file, table inet vpsfw), nft-sh (a sh script
    /// that loads the nft file).
    #[arg(long, short, value_enum, default_value = "sh")]
    format: Format,

    /// Which kernel interface the sh script loads the rules with: iptables (the
    /// iptables-restore / ip6tables-restore pair, the default) or nft (one nft
    /// transaction for both families, in table inet vpsfw). `--backend nft` makes the sh
    /// output the nft-sh script.
    #[arg(long, value_enum, default_value = "iptables")]
    backend: Backend,

    /// With the iptables backend: own only vpsfw's chains (vpsfw-INPUT, vpsfw-FORWARD,
    /// vpsfw-OUTPUT, jumped to from the top of the built-in chains, loaded with
    /// --noflush), so rules of Docker, fail2ban or libvirt survive a reload. Without
    /// it, a load replaces the whole filter table. (The nft backend always owns only
    /// table inet vpsfw.)
    #[arg(long)]
    own_chains: bool,

    /// Instead of printing rules, say what the policy does with a packet, e.g.
    /// 'in tcp from 203.0.113.99:40000 to 192.0.2.1:22'. Form: DIRECTION PROTO
    /// [type ICMPTYPE] from ADDR[:PORT] to ADDR[:PORT] [on IFACE] [state STATE];
    /// IPv6 with a port as [2001:db8::1]:22; state defaults to new. Prints one line per
    /// packet, starting with ACCEPT, DROP or REJECT. May be given several times.
    #[arg(long, value_name = "PACKET")]
    check: Vec<String>,

    /// Print the sh or commands output even if it would cut the ssh connection this
    /// command runs over ($SSH_CONNECTION). Without it, such a policy is refused with
    /// exit code 3 and nothing on stdout, so `... | sh` does nothing.
    #[arg(long)]
    allow_lockout: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    Iptables,
    Nft,
}

/// Parses the process's arguments and does what they ask.
pub fn run(policy: &Policy) -> ExitCode {
    run_from(policy, std::env::args_os())
}

/// [`run`] with explicit arguments (the first is the program name).
pub fn run_from<I, T>(policy: &Policy, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if args.backend == Backend::Nft && args.format == Format::Sh {
        args.format = Format::NftSh;
    }
    let text = if args.check.is_empty() {
        let loads = matches!(args.format, Format::Sh | Format::Commands | Format::NftSh);
        if loads && !args.allow_lockout {
            if let Err(e) = ssh_guard(policy, std::env::var("SSH_CONNECTION").ok().as_deref()) {
                eprintln!("vpsfw: refusing to print a ruleset that would lock you out: {e}");
                eprintln!("vpsfw: fix the policy, or pass --allow-lockout if you have a console");
                return ExitCode::from(3);
            }
        }
        let layout = if args.own_chains {
            Layout::Chains
        } else {
            Layout::Table
        };
        render_with(policy, args.format, layout)
    } else {
        match check_lines(policy, &args.check) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("vpsfw: {e}");
                return ExitCode::from(2);
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(1),
        Err(e) => {
            eprintln!("vpsfw: cannot write the output: {e}");
            ExitCode::from(1)
        }
    }
}

/// One line per packet: the decision and why.
fn check_lines(policy: &Policy, packets: &[String]) -> Result<String, String> {
    let mut out = String::new();
    for text in packets {
        let packet: Packet = text
            .parse()
            .map_err(|e| format!("--check '{}': {e}", crate::diag::shown(text)))?;
        out.push_str(&policy.evaluate(&packet).to_string());
        out.push('\n');
    }
    Ok(out)
}

/// The network interfaces a packet from the ssh client might arrive on.
fn candidate_interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| n != "lo")
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.push("eth0".into());
    }
    names.sort();
    names
}

/// Refuses a policy under which the ssh session this runs in (`SSH_CONNECTION`:
/// "client_ip client_port server_ip server_port") would be cut, or could not be opened
/// again, on any of the host's interfaces.
fn ssh_guard(policy: &Policy, ssh_connection: Option<&str>) -> Result<(), String> {
    let Some(conn) = ssh_connection else {
        return Ok(());
    };
    let parts: Vec<&str> = conn.split_whitespace().collect();
    let [client, cport, server, sport] = parts[..] else {
        return Ok(());
    };
    let (Ok(client), Ok(server)) = (
        client.parse::<std::net::IpAddr>(),
        server.parse::<std::net::IpAddr>(),
    ) else {
        return Ok(());
    };
    let (Ok(cport), Ok(sport)) = (cport.parse::<u16>(), sport.parse::<u16>()) else {
        return Ok(());
    };
    for iface in candidate_interfaces() {
        for (state, what) in [
            (crate::value::State::Established, "this ssh session"),
            (
                crate::value::State::New,
                "a new ssh connection from your address",
            ),
        ] {
            let packet = Packet {
                direction: crate::value::Direction::In,
                iface: iface.clone(),
                proto: crate::value::Protocol::Tcp,
                src: client,
                dst: server,
                sport: Some(cport),
                dport: Some(sport),
                icmp_type: None,
                state,
            };
            let decision = policy.evaluate(&packet);
            if decision.outcome != crate::eval::Outcome::Accept {
                return Err(format!(
                    "{what} ({client} to {server} port {sport} on {iface}) would get {decision}"
                ));
            }
        }
    }
    Ok(())
}

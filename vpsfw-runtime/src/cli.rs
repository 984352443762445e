//! The command line every policy binary gets: `fn main() -> ExitCode { vpsfw::cli::run(&policy()) }`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

use crate::eval::Packet;
use crate::model::Policy;
use crate::render::{render, Format};

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
    /// (ip6tables-restore file).
    #[arg(long, short, value_enum, default_value = "sh")]
    format: Format,

    /// Instead of printing rules, say what the policy does with a packet, e.g.
    /// 'in tcp from 203.0.113.99:40000 to 192.0.2.1:22'. Form: DIRECTION PROTO
    /// [type ICMPTYPE] from ADDR[:PORT] to ADDR[:PORT] [on IFACE] [state STATE];
    /// IPv6 with a port as [2001:db8::1]:22; state defaults to new. Prints one line per
    /// packet, starting with ACCEPT, DROP or REJECT. May be given several times.
    #[arg(long, value_name = "PACKET")]
    check: Vec<String>,
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
    let args = match Args::try_parse_from(args) {
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
    let text = if args.check.is_empty() {
        render(policy, args.format)
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

//! The command line every policy binary gets: `fn main() -> ExitCode { vpsfw::cli::run(&policy()) }`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

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
    let text = render(policy, args.format);
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

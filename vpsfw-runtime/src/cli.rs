//! The command line every policy binary gets: `fn main() -> ExitCode { vpsfw::cli::run(&policy()) }`,
//! or for a crate describing many hosts, [`run_fleet`].
//!
//! Exit codes, for scripts and config management: 0 done (or nothing to do; `--diff`:
//! the live firewall matches), 1 `--diff`: it differs, or `--confirm` came too late,
//! 2 bad input or a failure (nothing was changed unless the message says otherwise),
//! 3 refused because it would cut the ssh connection the command runs over.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::apply::{self, Applied, Confirmed};
use crate::eval::Packet;
use crate::live::{Backend, Managed};
use crate::model::Policy;
use crate::render::{render_with, Format, Layout};

/// Prints this host's firewall policy, compares it with the live firewall, or applies it
/// with automatic rollback.
///
/// The default output is a POSIX sh script: `... | sh` as root loads the IPv4 and IPv6
/// rulesets atomically (both are tested first; a failure leaves the previous rulesets in
/// force) and running it again changes nothing. `--apply` does the same from this
/// binary, and rolls back unless `--confirm` follows in time.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
#[command(group(clap::ArgGroup::new("action").args(["diff", "apply", "confirm", "rollback", "persist", "check", "list_hosts", "rollback_watch"])))]
struct Args {
    /// What to print: sh (the default, safe to pipe into sh), commands (one iptables
    /// command per line, not atomic), restore (iptables-restore file), restore6
    /// (ip6tables-restore file), nft (nft -f file, table inet vpsfw), nft-sh (a sh script
    /// that loads the nft file), ipset (the address sets).
    #[arg(long, short, value_enum, default_value = "sh")]
    format: Format,

    /// Which kernel interface to use: iptables (the iptables-restore / ip6tables-restore
    /// pair and ipset, the default) or nft (one nft transaction for both families, in
    /// table inet vpsfw). `--backend nft` makes the sh output the nft-sh script, and
    /// --diff, --apply and --persist work on table inet vpsfw.
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

    /// Compare the policy with the live firewall (as root): print what loading it would
    /// add (+, with the policy rule it comes from) and remove (-). Exit 0 when the live
    /// firewall matches, 1 when it differs, 2 on error.
    #[arg(long)]
    diff: bool,

    /// Load the policy (as root): read the live rulesets and stop if they already match
    /// ("unchanged", nothing touched); else test the new rulesets, save the live ones
    /// and commit both families and the sets. Unless `--confirm` follows within
    /// --rollback-after seconds, the saved rulesets are put back, even if this command
    /// or its ssh session dies.
    #[arg(long)]
    apply: bool,

    /// Keep the change a pending --apply made (run it over a new ssh connection, which
    /// proves the new firewall lets you in).
    #[arg(long)]
    confirm: bool,

    /// Put back, now, the rulesets a pending --apply saved.
    #[arg(long)]
    rollback: bool,

    /// With --apply: seconds until an unconfirmed change is rolled back.
    #[arg(long, value_name = "SECS", default_value_t = 60, requires = "apply")]
    rollback_after: u64,

    /// With --apply: keep the change at once, without waiting for --confirm (for
    /// automation that checks reachability itself).
    #[arg(long, requires = "apply")]
    no_rollback: bool,

    /// Write the files the distribution loads at boot into DIR (default /etc):
    /// iptables/rules.v4, iptables/rules.v6 and iptables/ipsets for iptables-persistent,
    /// or nftables.d/vpsfw.nft, included from nftables.conf, for nftables.service.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = "/etc")]
    persist: Option<PathBuf>,

    /// Where --apply keeps the saved rulesets and the rollback timer's state.
    #[arg(long, value_name = "DIR", default_value = apply::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,

    /// Print or apply a ruleset even if it would cut the ssh connection this command
    /// runs over ($SSH_CONNECTION / $SSH_CLIENT). Without it, such a policy is refused
    /// with exit code 3 and nothing on stdout, so `... | sh` does nothing.
    #[arg(long, alias = "force")]
    allow_lockout: bool,

    /// Fleet binaries: the host whose policy to use.
    #[arg(long, value_name = "NAME")]
    host: Option<String>,

    /// Fleet binaries: list the hosts, one per line.
    #[arg(long)]
    list_hosts: bool,

    /// Internal: the rollback timer of apply ID.
    #[arg(long, hide = true, value_name = "ID")]
    rollback_watch: Option<String>,
}

/// Prints a line on stdout. The action is done by then: a closed stdout (`| head`)
/// must not turn it into a panic, so write errors are ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `say!` without the newline.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// Prints a line on stderr, ignoring write errors like `say!`.
macro_rules! warn {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// A fleet's host: its name and the function that builds its policy.
pub type Host<'a> = (&'a str, fn() -> Policy);

/// Where the policy comes from.
enum Source<'a> {
    One(&'a Policy),
    Fleet(&'a [Host<'a>]),
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
    main(Source::One(policy), args)
}

/// The command line of a crate that describes many hosts: `--host NAME` picks one
/// (`--list-hosts` lists them); everything else is as in [`run`]. Only the chosen
/// host's policy is built.
pub fn run_fleet(hosts: &[Host<'_>]) -> ExitCode {
    run_fleet_from(hosts, std::env::args_os())
}

/// [`run_fleet`] with explicit arguments (the first is the program name).
pub fn run_fleet_from<I, T>(hosts: &[Host<'_>], args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    main(Source::Fleet(hosts), args)
}

fn fail(code: u8, text: impl std::fmt::Display) -> ExitCode {
    warn!("vpsfw: {text}");
    ExitCode::from(code)
}

fn main<I, T>(source: Source<'_>, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let program = args
        .first()
        .map_or_else(|| "vpsfw".into(), |a| a.to_string_lossy().into_owned());
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
    if let Some(code) = without_policy(&args) {
        return code;
    }
    let mut built = None;
    let policy = match select(&source, &args, &mut built) {
        Ok(p) => p,
        Err(code) => return code,
    };
    with_policy(policy, args, &program)
}

/// The actions that need no policy: the rollback timer, `--confirm`, `--rollback`.
fn without_policy(args: &Args) -> Option<ExitCode> {
    if let Some(id) = &args.rollback_watch {
        return Some(match apply::watch(&args.state_dir, id) {
            Ok(what) => {
                say!("vpsfw: {what}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(2, e),
        });
    }
    if args.confirm {
        return Some(match apply::confirm(&args.state_dir) {
            Ok(Confirmed::Kept { stamp }) => {
                say!("confirmed: policy {stamp} stays");
                ExitCode::SUCCESS
            }
            Ok(Confirmed::Nothing) => {
                say!("nothing awaits confirmation");
                ExitCode::SUCCESS
            }
            Ok(Confirmed::RolledBack { last }) => fail(1, format!("too late: {last}")),
            Err(e) => fail(2, e),
        });
    }
    if args.rollback {
        return Some(match apply::rollback(&args.state_dir) {
            Ok(Some(line)) => {
                say!("{line}");
                ExitCode::SUCCESS
            }
            Ok(None) => {
                say!("nothing awaits confirmation: nothing was rolled back");
                ExitCode::SUCCESS
            }
            Err(e) => fail(2, e),
        });
    }
    None
}

/// The policy to act on: the one of a single-policy binary, or the fleet's `--host`.
/// `Err(code)`: nothing more to do, exit with `code` (the hosts were listed, or the
/// arguments do not fit this binary).
fn select<'a>(
    source: &Source<'a>,
    args: &Args,
    built: &'a mut Option<Policy>,
) -> Result<&'a Policy, ExitCode> {
    match (source, &args.host) {
        (Source::Fleet(hosts), _) if args.list_hosts => {
            for (name, _) in *hosts {
                say!("{name}");
            }
            Err(ExitCode::SUCCESS)
        }
        (Source::One(_), _) if args.list_hosts => Err(fail(
            2,
            "--list-hosts is for fleet binaries; this one has one policy",
        )),
        (Source::One(_), Some(_)) => Err(fail(
            2,
            "--host is for fleet binaries; this one has one policy",
        )),
        (Source::One(p), None) => Ok(*p),
        (Source::Fleet(hosts), host) => {
            let names: Vec<&str> = hosts.iter().map(|(n, _)| *n).collect();
            let Some(host) = host else {
                return Err(fail(
                    2,
                    format!("--host NAME is required; hosts: {}", names.join(", ")),
                ));
            };
            let Some((_, make)) = hosts.iter().find(|(n, _)| n == host) else {
                return Err(fail(
                    2,
                    format!(
                        "no host '{}' in this fleet; hosts: {}",
                        crate::diag::shown(host),
                        names.join(", ")
                    ),
                ));
            };
            Ok(built.insert(make()))
        }
    }
}

/// Everything done with a policy: check packets, diff, persist, apply, or print.
fn with_policy(policy: &Policy, mut args: Args, program: &str) -> ExitCode {
    if args.backend == Backend::Nft && args.format == Format::Sh {
        args.format = Format::NftSh;
    }
    let managed = Managed {
        backend: args.backend,
        layout: if args.own_chains {
            Layout::Chains
        } else {
            Layout::Table
        },
    };
    let text = if !args.check.is_empty() {
        match check_lines(policy, &args.check) {
            Ok(text) => text,
            Err(e) => return fail(2, e),
        }
    } else if args.diff {
        return match apply::diff(policy, managed) {
            Ok(d) => {
                say_raw!("{d}");
                ExitCode::from(if d.is_unchanged() { 0 } else { 1 })
            }
            Err(e) => fail(2, e),
        };
    } else if let Some(dir) = &args.persist {
        return match crate::persist::persist(policy, managed, dir) {
            Ok(p) => {
                for f in &p.files {
                    say!("wrote {}", f.display());
                }
                for n in &p.notes {
                    warn!("vpsfw: note: {n}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(2, e),
        };
    } else {
        let loads =
            args.apply || matches!(args.format, Format::Sh | Format::Commands | Format::NftSh);
        if loads && !args.allow_lockout {
            if let Err(e) = ssh_guard(policy, &ssh_session()) {
                warn!("vpsfw: refusing a ruleset that would lock you out: {e}");
                warn!("vpsfw: fix the policy, or pass --allow-lockout if you have a console");
                return ExitCode::from(3);
            }
        }
        if args.apply {
            let opts = apply::Options {
                managed,
                rollback_after: (!args.no_rollback)
                    .then(|| Duration::from_secs(args.rollback_after)),
                state_dir: args.state_dir.clone(),
            };
            return match apply::apply(policy, &opts) {
                Ok(Applied::Unchanged { stamp }) => {
                    say!("unchanged: policy {stamp} is loaded as it is");
                    ExitCode::SUCCESS
                }
                Ok(Applied::Loaded {
                    stamp,
                    rollback_at: None,
                }) => {
                    say!("applied: policy {stamp} is loaded");
                    ExitCode::SUCCESS
                }
                Ok(Applied::Loaded {
                    stamp,
                    rollback_at: Some(at),
                }) => {
                    let state = if args.state_dir == std::path::Path::new(apply::DEFAULT_STATE_DIR)
                    {
                        String::new()
                    } else {
                        format!(" --state-dir {}", args.state_dir.display())
                    };
                    say!(
                        "applied: policy {stamp} is loaded; confirm within {} s, before {}, from a new ssh connection: {program} --confirm{state}\nunconfirmed, the previous rulesets come back.",
                        args.rollback_after,
                        apply::utc(at)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(2, e),
            };
        }
        render_with(policy, args.format, managed.layout)
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(1),
        Err(e) => fail(1, format!("cannot write the output: {e}")),
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

/// The ssh connection this command runs over: client address and port, and the server
/// address and port when `$SSH_CONNECTION` gives them (`$SSH_CLIENT` does not).
#[derive(Clone, Debug, PartialEq, Eq)]
struct SshSession {
    client: std::net::IpAddr,
    cport: u16,
    server: Option<std::net::IpAddr>,
    sport: u16,
}

fn ssh_session() -> Option<SshSession> {
    parse_ssh(
        std::env::var("SSH_CONNECTION").ok().as_deref(),
        std::env::var("SSH_CLIENT").ok().as_deref(),
    )
}

fn parse_ssh(connection: Option<&str>, client: Option<&str>) -> Option<SshSession> {
    if let Some(conn) = connection {
        let parts: Vec<&str> = conn.split_whitespace().collect();
        if let [c, cp, s, sp] = parts[..] {
            return Some(SshSession {
                client: c.parse().ok()?,
                cport: cp.parse().ok()?,
                server: Some(s.parse().ok()?),
                sport: sp.parse().ok()?,
            });
        }
    }
    let parts: Vec<&str> = client?.split_whitespace().collect();
    let [c, cp, sp] = parts[..] else {
        return None;
    };
    Some(SshSession {
        client: c.parse().ok()?,
        cport: cp.parse().ok()?,
        server: None,
        sport: sp.parse().ok()?,
    })
}

/// Refuses a policy under which the ssh session this runs in would be cut, or could not
/// be opened again, on any of the host's interfaces. Without the server's address
/// (only `$SSH_CLIENT`), rules limited to a destination are not counted on, so the
/// check errs on the side of refusing.
fn ssh_guard(policy: &Policy, session: &Option<SshSession>) -> Result<(), String> {
    let Some(SshSession {
        client,
        cport,
        server,
        sport,
    }) = *session
    else {
        return Ok(());
    };
    let server = server.unwrap_or(match client {
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    });
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

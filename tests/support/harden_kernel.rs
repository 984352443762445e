//! Hardening presets in the kernel: one trial per preset and backend, each loading a
//! small policy with the sh script of the backend into a [`Lab`] and showing the preset
//! act on real packets: its rule's packet counter moves, the traffic it stands against
//! is cut, and legitimate traffic still passes.
//!
//! Counters are the evidence (`iptables-save -c` / `nft list ruleset`); nothing reads
//! the kernel log.

use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vpsfw::{render, Format, Policy};

use super::netns::{
    in_netns, run_probes, tcp_connect, Lab, Listener, Outcome, Probe, PROBE_TIMEOUT, VPS_V4, VPS_V6,
};

/// Source A (the abuser) and B (a bystander), per family.
const A4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
const B4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);
const A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
const B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x20);

const PORT: u16 = 8080;
const CLOSED: u16 = 9999;

pub fn syn_flood_policy() -> Policy {
    vpsfw::firewall! {
        allow in on lo;
        allow in state established,related;
        harden syn_flood limit 5/second burst 5;
        allow in tcp to 8080 state new;
        admin none;
        policy input drop;
    }
}

pub fn conn_rate_policy() -> Policy {
    vpsfw::firewall! {
        allow in on lo;
        allow in state established,related;
        harden conn_rate limit 5/second burst 5;
        allow in tcp to 8080 state new;
        admin none;
        policy input drop;
    }
}

pub fn ping_policy() -> Policy {
    vpsfw::firewall! {
        allow in on lo;
        // Before the established rule: one `ping -f` is one conntrack flow, whose
        // requests after the first are established.
        harden ping limit 2/second burst 2;
        allow in state established,related;
        allow in tcp to 8080 state new;
        admin none;
        policy input drop;
    }
}

pub fn port_scan_policy() -> Policy {
    vpsfw::firewall! {
        allow in on lo;
        allow in state established,related;
        harden port_scan for 3;
        allow in tcp to 8080 state new;
        admin none;
        policy input drop;
    }
}

pub fn log_drops_policy() -> Policy {
    vpsfw::firewall! {
        allow in on lo;
        allow in state established,related;
        allow in tcp to 8080 state new;
        harden log_drops limit 1/minute burst 3 prefix "vpsfw-test: ";
        admin none;
        policy input drop;
    }
}

/// `allow in tcp to 8080` without a state: without the preset, a lone ACK would be let
/// in (and answered with a RST by the TCP stack).
pub fn invalid_policy() -> Policy {
    vpsfw::firewall! {
        allow in on lo;
        allow in state established,related;
        harden invalid;
        allow in tcp to 8080;
        admin none;
        policy input drop;
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn lab() -> Result<Lab, String> {
    Lab::try_new(&[A4.into(), B4.into(), A6.into(), B6.into()])
}

fn load(lab: &Lab, policy: &Policy, nft: bool) -> Result<(), String> {
    let script = render(policy, if nft { Format::NftSh } else { Format::Sh });
    lab.run_sh(lab.vps(), &script).map(|_| ())
}

fn vps(v6: bool) -> IpAddr {
    if v6 {
        VPS_V6.into()
    } else {
        VPS_V4.into()
    }
}

fn a(v6: bool) -> IpAddr {
    if v6 {
        A6.into()
    } else {
        A4.into()
    }
}

fn b(v6: bool) -> IpAddr {
    if v6 {
        B6.into()
    } else {
        B4.into()
    }
}

fn fam(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// The packet counter of the one rule whose listing line carries the comment
/// `"harden: <preset>"` and contains `pick` (iptables: `iptables-save -c` or
/// `ip6tables-save -c`; nft: `nft list ruleset`, rules of the other family skipped).
fn packets(lab: &Lab, nft: bool, v6: bool, preset: &str, pick: &str) -> Result<u64, String> {
    let comment = format!("\"harden: {preset}\"");
    let listing = if nft {
        lab.exec(lab.vps(), &["nft", "list", "ruleset"])?
    } else {
        let save = if v6 {
            "ip6tables-save"
        } else {
            "iptables-save"
        };
        lab.exec(lab.vps(), &[save, "-c"])?
    };
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    // nft lists `meta nfproto ipv4 ip saddr ...` as `ip saddr ...`: tell the families
    // apart by their matches.
    let is_v6 = |l: &str| l.contains("ip6 ") || l.contains("icmpv6 ") || l.contains("nfproto ipv6");
    let is_v4 =
        |l: &str| l.contains("ip saddr") || l.contains("icmp type") || l.contains("nfproto ipv4");
    let lines: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(&comment) && l.contains(pick))
        .filter(|l| !nft || if v6 { !is_v4(l) } else { !is_v6(l) })
        .collect();
    let [line] = lines.as_slice() else {
        return Err(format!(
            "{} rules with {comment} and {pick:?} in:\n{listing}",
            lines.len()
        ));
    };
    let count = if nft {
        line.split_once("counter packets ")
            .and_then(|(_, rest)| rest.split(' ').next())
    } else {
        line.strip_prefix('[')
            .and_then(|rest| rest.split(':').next())
    };
    count
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no packet counter in {line:?}"))
}

/// The `INPUT` chain policy's packet counter (iptables only; nft chain policies have
/// no counter).
fn input_policy_packets(lab: &Lab, v6: bool) -> Result<u64, String> {
    let save = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    let out = lab.exec(lab.vps(), &[save, "-c"])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(":INPUT DROP ["))
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no `:INPUT DROP [n:m]` in:\n{text}"))
}

/// `n` concurrent TCP connection attempts from `src` (source ports `port_base..`), each
/// with `timeout`; returns how many connected.
fn burst(
    lab: &Lab,
    src: IpAddr,
    dst: SocketAddr,
    n: u16,
    port_base: u16,
    timeout: Duration,
) -> Result<usize, String> {
    let probes: Vec<Probe> = (0..n)
        .map(|i| {
            Probe::tcp(lab.net(), Some(SocketAddr::new(src, port_base + i)), dst)
                .with_timeout(timeout)
        })
        .collect();
    let mut connected = 0;
    for (p, o) in probes.iter().zip(run_probes(&probes)) {
        match o {
            Outcome::Connected => connected += 1,
            Outcome::TimedOut => {}
            other => return Err(format!("{p}: {other}")),
        }
    }
    Ok(connected)
}

fn expect(lab: &Lab, src: SocketAddr, dst: SocketAddr, want: Outcome) -> Result<(), String> {
    let got = tcp_connect(lab.net(), Some(src), dst, PROBE_TIMEOUT);
    if got == want {
        Ok(())
    } else {
        Err(format!("{src} -> {dst}: {got}, expected {want}"))
    }
}

// ---------------------------------------------------------------------------
// Trials
// ---------------------------------------------------------------------------

/// A burst of 40 new connections from one source: the global SYN limit (5/s, burst 5)
/// drops most of them; 1.5 s later a single connection gets in. IPv4, then IPv6.
pub fn syn_flood(nft: bool) -> Result<(), String> {
    let lab = lab()?;
    let listener = Listener::start(lab.vps(), &[PORT])?;
    load(&lab, &syn_flood_policy(), nft)?;
    for (v6, base) in [(false, 20000), (true, 21000)] {
        let dst = SocketAddr::new(vps(v6), PORT);
        listener.clear_hits();
        let connected = burst(&lab, a(v6), dst, 40, base, Duration::from_millis(300))?;
        let accepted = listener.hits().len();
        let dropped = packets(
            &lab,
            nft,
            v6,
            "syn_flood",
            if nft { "drop" } else { "DROP" },
        )?;
        eprintln!(
            "syn_flood {} {}: {connected}/40 connected, listener accepted {accepted}, rule dropped {dropped}",
            backend(nft),
            fam(v6)
        );
        if connected == 0 || connected >= 40 || accepted >= 40 || dropped == 0 {
            return Err(format!(
                "{}: {connected}/40 connected, {accepted} accepted, syn_flood rule counted {dropped}",
                fam(v6)
            ));
        }
        thread::sleep(Duration::from_millis(1500));
        expect(
            &lab,
            SocketAddr::new(a(v6), base + 500),
            dst,
            Outcome::Connected,
        )
        .map_err(|e| format!("after the flood: {e}"))?;
    }
    Ok(())
}

/// 30 new connections at once from A: the per-source limit (5/s, burst 5) drops some;
/// B, right after, still gets in. IPv4 and IPv6.
pub fn conn_rate(nft: bool) -> Result<(), String> {
    let lab = lab()?;
    let _listener = Listener::start(lab.vps(), &[PORT])?;
    load(&lab, &conn_rate_policy(), nft)?;
    for (v6, base) in [(false, 22000), (true, 23000)] {
        let dst = SocketAddr::new(vps(v6), PORT);
        let connected = burst(&lab, a(v6), dst, 30, base, Duration::from_millis(300))?;
        let dropped = packets(
            &lab,
            nft,
            v6,
            "conn_rate",
            if nft { "drop" } else { "DROP" },
        )?;
        eprintln!(
            "conn_rate {} {}: A {connected}/30 connected, rule dropped {dropped}",
            backend(nft),
            fam(v6)
        );
        if connected == 0 || connected >= 30 || dropped == 0 {
            return Err(format!(
                "{}: A {connected}/30 connected, conn_rate rule counted {dropped}",
                fam(v6)
            ));
        }
        expect(&lab, SocketAddr::new(b(v6), base), dst, Outcome::Connected)
            .map_err(|e| format!("B right after A's burst: {e}"))?;
    }
    Ok(())
}

/// Echo requests from `src` to `dst`, one ICMP datagram socket each (so each has its
/// own ICMP id: a new conntrack entry, as separate `ping -c 1` runs would), all sent at
/// once; returns how many were answered within `wait`.
fn pings(
    ns: &str,
    src: IpAddr,
    dst: IpAddr,
    n: usize,
    one_socket: bool,
    wait: Duration,
) -> Result<usize, String> {
    in_netns(ns, move || -> Result<usize, String> {
        let (domain, proto, ty) = match dst {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4, 8u8),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6, 128u8),
        };
        let socks = (0..if one_socket { 1 } else { n })
            .map(|_| {
                let s = Socket::new(domain, Type::DGRAM, Some(proto))
                    .map_err(|e| format!("ICMP datagram socket: {e}"))?;
                s.bind(&SockAddr::from(SocketAddr::new(src, 0)))
                    .map_err(|e| format!("bind {src}: {e}"))?;
                s.set_nonblocking(true)
                    .map_err(|e| format!("nonblocking: {e}"))?;
                Ok(s)
            })
            .collect::<Result<Vec<Socket>, String>>()?;
        let to = SockAddr::from(SocketAddr::new(dst, 0));
        for seq in 0..n {
            let s = &socks[if one_socket { 0 } else { seq }];
            // type, code, checksum and id (the kernel fills both in), sequence, payload.
            let mut msg = [ty, 0, 0, 0, 0, 0, 0, seq as u8, b'v', b'p', b's', b'f'];
            msg[6] = (seq >> 8) as u8;
            s.send_to(&msg, &to)
                .map_err(|e| format!("send echo request {seq}: {e}"))?;
        }
        thread::sleep(wait);
        let mut replies = 0;
        for s in &socks {
            loop {
                let mut buf = [MaybeUninit::<u8>::uninit(); 256];
                match s.recv(&mut buf) {
                    Ok(_) => replies += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("receive echo reply: {e}")),
                }
            }
        }
        Ok(replies)
    })?
}

/// 20 echo requests at once from A: the per-source limit (2/s, burst 2) answers only a
/// few and its drop rule counts the rest; a single ping from B is answered. IPv4 and
/// IPv6.
pub fn ping(nft: bool) -> Result<(), String> {
    let lab = lab()?;
    // Lets root open ICMP datagram sockets in the sending namespace (no `ping` needed).
    lab.exec(
        lab.net(),
        &["sysctl", "-qw", "net.ipv4.ping_group_range=0 0"],
    )?;
    load(&lab, &ping_policy(), nft)?;
    let wait = Duration::from_millis(300);
    for v6 in [false, true] {
        let replies = pings(lab.net(), a(v6), vps(v6), 20, true, wait)?;
        let dropped = packets(&lab, nft, v6, "ping", if nft { "drop" } else { "DROP" })?;
        eprintln!(
            "ping {} {}: A {replies}/20 answered, rule dropped {dropped}",
            backend(nft),
            fam(v6)
        );
        if replies == 0 || replies >= 20 || dropped == 0 {
            return Err(format!(
                "{}: A {replies}/20 answered, ping drop rule counted {dropped}",
                fam(v6)
            ));
        }
        let b_replies = pings(lab.net(), b(v6), vps(v6), 1, false, wait)?;
        if b_replies != 1 {
            return Err(format!("{}: B's single ping got no answer", fam(v6)));
        }
    }
    Ok(())
}

/// A touches closed port 9999 once: for 3 s everything from A is dropped (8080 too),
/// B still gets in, and 3.5 s later A gets in again. IPv4 and IPv6 side by side.
pub fn port_scan(nft: bool) -> Result<(), String> {
    let lab = lab()?;
    let _listener = Listener::start(lab.vps(), &[PORT])?;
    load(&lab, &port_scan_policy(), nft)?;
    let start = Instant::now();
    for v6 in [false, true] {
        expect(
            &lab,
            SocketAddr::new(a(v6), 24000),
            SocketAddr::new(vps(v6), CLOSED),
            Outcome::TimedOut,
        )
        .map_err(|e| format!("the scan itself: {e}"))?;
    }
    for v6 in [false, true] {
        let dst = SocketAddr::new(vps(v6), PORT);
        expect(&lab, SocketAddr::new(a(v6), 24001), dst, Outcome::TimedOut)
            .map_err(|e| format!("A while listed: {e}"))?;
        expect(&lab, SocketAddr::new(b(v6), 24001), dst, Outcome::Connected)
            .map_err(|e| format!("B while A is listed: {e}"))?;
        let (trap, check) = if nft {
            ("update @", "saddr @")
        } else {
            ("--set", "--rcheck")
        };
        let trapped = packets(&lab, nft, v6, "port_scan", trap)?;
        let caught = packets(&lab, nft, v6, "port_scan", check)?;
        eprintln!(
            "port_scan {} {}: trap counted {trapped}, list check dropped {caught}",
            backend(nft),
            fam(v6)
        );
        if trapped == 0 || caught == 0 {
            return Err(format!(
                "{}: trap counted {trapped}, list check {caught}",
                fam(v6)
            ));
        }
    }
    let banned_until = start + Duration::from_millis(3500);
    thread::sleep(banned_until.saturating_duration_since(Instant::now()));
    for v6 in [false, true] {
        let dst = SocketAddr::new(vps(v6), PORT);
        expect(&lab, SocketAddr::new(a(v6), 24002), dst, Outcome::Connected)
            .map_err(|e| format!("A after the ban: {e}"))?;
    }
    Ok(())
}

/// 20 connection attempts to a closed port, all dropped by the chain policy: the LOG
/// rule (1/minute, burst 3) logs exactly 3 of them. IPv4 only.
pub fn log_drops(nft: bool) -> Result<(), String> {
    let lab = lab()?;
    load(&lab, &log_drops_policy(), nft)?;
    let dst = SocketAddr::new(VPS_V4.into(), CLOSED);
    let connected = burst(&lab, A4.into(), dst, 20, 25000, Duration::from_millis(200))?;
    let logged = packets(
        &lab,
        nft,
        false,
        "log_drops",
        if nft { "log" } else { "LOG" },
    )?;
    let policy_dropped = if nft {
        None
    } else {
        Some(input_policy_packets(&lab, false)?)
    };
    eprintln!(
        "log_drops {}: {connected}/20 connected, LOG rule counted {logged}, INPUT policy dropped {policy_dropped:?}",
        backend(nft)
    );
    if connected != 0 || logged != 3 || policy_dropped.is_some_and(|n| n < 20) {
        return Err(format!(
            "{connected}/20 connected, LOG rule counted {logged} (want 3), policy dropped {policy_dropped:?} (want 20)"
        ));
    }
    Ok(())
}

/// One's-complement sum for the TCP checksum.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A lone TCP ACK (no connection behind it) from `src:sport` to `dst:dport`, through a
/// raw socket in `ns`.
fn lone_ack(ns: &str, src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Result<(), String> {
    in_netns(ns, move || -> Result<(), String> {
        let s = Socket::new(
            Domain::IPV4,
            Type::from(libc::SOCK_RAW),
            Some(Protocol::TCP),
        )
        .map_err(|e| format!("raw socket: {e}"))?;
        s.bind(&SockAddr::from(SocketAddr::new(src.into(), 0)))
            .map_err(|e| format!("bind {src}: {e}"))?;
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&sport.to_be_bytes());
        tcp[2..4].copy_from_slice(&dport.to_be_bytes());
        tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes()); // seq
        tcp[8..12].copy_from_slice(&0x0abc_def0u32.to_be_bytes()); // ack
        tcp[12] = 5 << 4; // data offset: 5 words
        tcp[13] = 0x10; // ACK
        tcp[14..16].copy_from_slice(&1024u16.to_be_bytes()); // window
        let pseudo = [&src.octets()[..], &dst.octets()[..], &[0, 6, 0, 20]].concat();
        let sum = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        s.send_to(&tcp, &SockAddr::from(SocketAddr::new(dst.into(), 0)))
            .map_err(|e| format!("send lone ACK: {e}"))?;
        Ok(())
    })?
}

/// With `nf_conntrack_tcp_loose=0` in the vps, a lone TCP ACK is INVALID to conntrack:
/// the preset's rule drops it (its counter moves, the `allow in tcp to 8080` rule after
/// it sees nothing), while a real connection still gets in. IPv4 only.
pub fn invalid(nft: bool) -> Result<(), String> {
    let lab = lab()?;
    let _listener = Listener::start(lab.vps(), &[PORT])?;
    load(&lab, &invalid_policy(), nft)?;
    lab.exec(
        lab.vps(),
        &["sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0"],
    )?;
    let allow_pick = if nft {
        "tcp dport 8080"
    } else {
        "--dport 8080"
    };
    let allowed_before = allow_packets(&lab, nft, allow_pick)?;
    for i in 0..3 {
        lone_ack(lab.net(), A4, 26000 + i, VPS_V4, PORT)?;
    }
    thread::sleep(Duration::from_millis(100));
    let dropped = packets(
        &lab,
        nft,
        false,
        "invalid",
        if nft { "drop" } else { "DROP" },
    )?;
    let allowed = allow_packets(&lab, nft, allow_pick)? - allowed_before;
    eprintln!(
        "invalid {}: 3 lone ACKs, invalid rule dropped {dropped}, tcp 8080 rule saw {allowed}",
        backend(nft)
    );
    if dropped != 3 || allowed != 0 {
        return Err(format!(
            "3 lone ACKs: invalid rule counted {dropped} (want 3), the tcp 8080 allow rule {allowed} (want 0)"
        ));
    }
    expect(
        &lab,
        SocketAddr::new(B4.into(), 26010),
        SocketAddr::new(VPS_V4.into(), PORT),
        Outcome::Connected,
    )
}

/// The packet counter of the (IPv4) rule whose line contains `pick` and no comment.
fn allow_packets(lab: &Lab, nft: bool, pick: &str) -> Result<u64, String> {
    let out = if nft {
        lab.exec(lab.vps(), &["nft", "list", "ruleset"])?
    } else {
        lab.exec(lab.vps(), &["iptables-save", "-c"])?
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains(pick) && !l.contains("harden:"))
        .ok_or_else(|| format!("no rule with {pick:?} in:\n{text}"))?;
    let count = if nft {
        line.split_once("counter packets ")
            .and_then(|(_, rest)| rest.split(' ').next())
    } else {
        line.strip_prefix('[')
            .and_then(|rest| rest.split(':').next())
    };
    count
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no packet counter in {line:?}"))
}

fn backend(nft: bool) -> &'static str {
    if nft {
        "nft"
    } else {
        "iptables"
    }
}

/// A trial's body; the argument is `true` for the nft backend.
pub type Trial = fn(bool) -> Result<(), String>;

/// The trials, as `(preset, body)`; run for each backend.
pub const TRIALS: &[(&str, Trial)] = &[
    ("syn_flood", syn_flood),
    ("conn_rate", conn_rate),
    ("ping", ping),
    ("port_scan", port_scan),
    ("log_drops", log_drops),
    ("invalid", invalid),
];

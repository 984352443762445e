//! The article's three roles against the real kernel.
//!
//! For each role a matrix of real probes, written from the article's intent (who may
//! reach the VPS, what the VPS may reach), is run through the role's rendered rules
//! loaded in a [`Lab`]. Every row is checked three ways:
//!
//! - the kernel's outcome must be the one the article's intent asks for;
//! - the offline evaluator ([`Policy::evaluate`]) must predict the kernel, packet by
//!   packet along the flow (request, then reply), first non-ACCEPT verdict wins:
//!   Connected ⇔ every packet ACCEPT, TimedOut ⇔ DROP, Refused ⇔ REJECT (or every
//!   packet ACCEPT on a row whose destination has nothing listening on purpose);
//! - the listener's log must agree with where the evaluator stops the flow (a UDP
//!   datagram the evaluator lets in but whose reply it drops must reach the listener;
//!   one it drops on the way in must not).
//!
//! Each matrix runs twice: through the restore files ([`matrix`]) and through the nft
//! file ([`matrix_nft`], `table inet vpsfw`), same rows, same expectations.
//!
//! Also here: the sh scripts (iptables and nft) run twice (idempotence) and the
//! one-command-per-rule output against the restore files.
//!
//! Only documentation addresses are used. The policy is passed in, so this module does
//! not depend on `tests/roles/`; `tests/kernel.rs` feeds it the examples' policies.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use vpsfw::{render, Format, Outcome as Verdict, Packet, Policy};

use super::netns::{run_probes, Hit, Lab, Listener, Outcome, Probe, Proto, VPS_V4, VPS_V6};
use super::nft::{self, Backend};

use Outcome::{Connected, Refused, TimedOut};
use Proto::{Tcp, Udp};

// --- addresses --------------------------------------------------------------------

const fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// `2001:db8:<net>::<host>`.
const fn v6(net: u16, host: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, net, 0, 0, 0, 0, host))
}

/// The servers the VPS is a client of (web, dns, ntp, smtp, ...), on `net`.
const UPSTREAM_V4: IpAddr = v4(203, 0, 113, 53);
const UPSTREAM_V6: IpAddr = v6(0, 0x53);
/// Somebody on the internet the policy knows nothing about.
const STRANGER_V4: IpAddr = v4(203, 0, 113, 99);
const STRANGER_V6: IpAddr = v6(0, 0x99);
/// A server the VPS is a client of that is down: nothing listens there, so `net`
/// answers with a TCP RST or an ICMP port unreachable.
const DOWN_V4: IpAddr = v4(203, 0, 113, 54);
const DOWN_V6: IpAddr = v6(0, 0x54);

/// Ports with a TCP and a UDP echo listener on the VPS (`0.0.0.0` and `::`).
const VPS_PORTS: &[u16] = &[22, 53, 80, 123, 443, 3306, 8080, 40000];
/// Ports with a TCP and a UDP echo listener on the upstream addresses.
const UPSTREAM_PORTS: &[u16] = &[22, 25, 53, 80, 123, 443, 3306];
/// The high port on the VPS that the article's source-port rules would open.
const HIGH: u16 = 40000;
/// "Any high source port": [`Matrix`] picks a fresh one (40000 and up) per row.
const HI: u16 = 0;

fn vps_addr(family_of: IpAddr) -> IpAddr {
    match family_of {
        IpAddr::V4(_) => IpAddr::V4(VPS_V4),
        IpAddr::V6(_) => IpAddr::V6(VPS_V6),
    }
}

// --- rows -------------------------------------------------------------------------

/// Where a flow runs, which decides the packets the firewall sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// `net` → VPS: INPUT on eth0 (NEW), reply OUTPUT on eth0 (ESTABLISHED).
    Inbound,
    /// VPS → `net`: OUTPUT on eth0 (NEW), reply INPUT on eth0 (ESTABLISHED).
    Outbound,
    /// VPS → VPS: OUTPUT then INPUT on lo (both NEW), the reply the same way
    /// (ESTABLISHED).
    Loopback,
}

/// One probe of the matrix and what the article's intent says must happen.
#[derive(Clone, Debug)]
pub struct Row {
    what: String,
    path: Path,
    proto: Proto,
    src: SocketAddr,
    dst: SocketAddr,
    expect: Outcome,
    /// Something listens at `dst`. When not, a flow the firewall lets through is
    /// refused by the peer (RST, ICMP port unreachable) and that answer must get back.
    answered: bool,
}

/// One packet of a flow as the filter table sees it.
struct Step {
    packet: String,
    /// Part of the request (as opposed to the reply).
    request: bool,
}

impl Row {
    fn probe(&self, lab: &Lab) -> Probe {
        let ns = match self.path {
            Path::Inbound => lab.net(),
            Path::Outbound | Path::Loopback => lab.vps(),
        };
        match self.proto {
            Tcp => Probe::tcp(ns, Some(self.src), self.dst),
            Udp => Probe::udp(ns, Some(self.src), self.dst),
        }
    }

    /// The address this row needs on `net`, if any.
    fn peer(&self) -> Option<IpAddr> {
        match self.path {
            Path::Inbound => Some(self.src.ip()),
            Path::Outbound => Some(self.dst.ip()),
            Path::Loopback => None,
        }
    }

    /// The first packet of the flow and the first packet of its reply, in the order the
    /// firewall sees them.
    fn steps(&self) -> Vec<Step> {
        let (p, s, d) = (self.proto, self.src, self.dst);
        let pkt = |dir: &str, from: SocketAddr, to: SocketAddr, on: &str, state: &str| {
            format!("{dir} {p} from {from} to {to} on {on} state {state}")
        };
        let step = |packet: String, request: bool| Step { packet, request };
        match self.path {
            Path::Inbound => vec![
                step(pkt("in", s, d, "eth0", "new"), true),
                step(pkt("out", d, s, "eth0", "established"), false),
            ],
            Path::Outbound => vec![
                step(pkt("out", s, d, "eth0", "new"), true),
                if self.answered || p == Tcp {
                    // The echo, or the RST of a closed port.
                    step(pkt("in", d, s, "eth0", "established"), false)
                } else {
                    let icmp = if d.is_ipv4() { "icmp" } else { "icmpv6" };
                    let (from, to) = (d.ip(), s.ip());
                    step(
                        format!(
                            "in {icmp} type destination-unreachable from {from} to {to} \
                             on eth0 state related"
                        ),
                        false,
                    )
                },
            ],
            Path::Loopback => vec![
                step(pkt("out", s, d, "lo", "new"), true),
                step(pkt("in", s, d, "lo", "new"), true),
                step(pkt("out", d, s, "lo", "established"), false),
                step(pkt("in", d, s, "lo", "established"), false),
            ],
        }
    }

    fn describe(&self) -> String {
        format!("{}: {} {} -> {}", self.what, self.proto, self.src, self.dst)
    }
}

/// `(what, protocol, source port or HI, destination port, intent)`: a peer → the VPS.
type In = (&'static str, Proto, u16, u16, Outcome);
/// `(what, protocol, destination port, intent)`: the VPS → a peer.
type Out = (&'static str, Proto, u16, Outcome);
/// `(what, protocol, address, destination port, intent)`: the VPS → itself.
type Local = (&'static str, Proto, IpAddr, u16, Outcome);

/// Builds a role's rows, handing out distinct source ports so no two probes in flight
/// share a 4-tuple.
struct Matrix {
    rows: Vec<Row>,
    next_in: u16,
    next_out: u16,
    next_lo: u16,
}

impl Matrix {
    fn new() -> Matrix {
        Matrix {
            rows: Vec::new(),
            next_in: 40000,
            next_out: 41000,
            next_lo: 42000,
        }
    }

    fn push(
        &mut self,
        what: String,
        path: Path,
        proto: Proto,
        ends: [SocketAddr; 2],
        want: Outcome,
    ) {
        let [src, dst] = ends;
        self.rows.push(Row {
            what,
            path,
            proto,
            src,
            dst,
            expect: want,
            answered: true,
        });
    }

    /// `who` at `from` → the VPS's address of the same family.
    fn inbound(&mut self, who: &str, from: IpAddr, rows: &[In]) {
        for (what, proto, sport, dport, want) in rows.iter().cloned() {
            let sport = if sport == HI {
                self.next_in += 1;
                self.next_in - 1
            } else {
                sport
            };
            let ends = [
                SocketAddr::new(from, sport),
                SocketAddr::new(vps_addr(from), dport),
            ];
            self.push(format!("{who} {what}"), Path::Inbound, proto, ends, want);
        }
    }

    /// The VPS as a client: its own address (a fresh high port) → `to`.
    fn outbound(&mut self, to: IpAddr, rows: &[Out]) {
        for (what, proto, dport, want) in rows.iter().cloned() {
            let ends = [
                SocketAddr::new(vps_addr(to), self.next_out),
                SocketAddr::new(to, dport),
            ];
            self.next_out += 1;
            self.push(format!("vps {what}"), Path::Outbound, proto, ends, want);
        }
    }

    /// Like [`Matrix::outbound`] to an address where nothing listens.
    fn outbound_unanswered(&mut self, to: IpAddr, rows: &[Out]) {
        let first = self.rows.len();
        self.outbound(to, rows);
        for row in &mut self.rows[first..] {
            row.answered = false;
        }
    }

    /// Inside the VPS: an address (a fresh high port) → the same address (over lo).
    fn local(&mut self, rows: &[Local]) {
        for (what, proto, ip, dport, want) in rows.iter().cloned() {
            let ends = [
                SocketAddr::new(ip, self.next_lo),
                SocketAddr::new(ip, dport),
            ];
            self.next_lo += 1;
            self.push(what.to_owned(), Path::Loopback, proto, ends, want);
        }
    }
}

/// Rows every role shares: the client rules, loopback, and the replies that must come
/// back through connection tracking only (never by source port).
fn common_rows(m: &mut Matrix) {
    // The VPS as a client (the article: software downloads, dns queries, ntp, smtp,
    // trackbacks). The echo coming back proves the reply got in through conntrack.
    for up in [UPSTREAM_V4, UPSTREAM_V6] {
        m.outbound(
            up,
            &[
                ("fetches over http", Tcp, 80, Connected),
                ("fetches over https", Tcp, 443, Connected),
                ("resolves names over tcp", Tcp, 53, Connected),
                ("sends mail", Tcp, 25, Connected),
                ("resolves names", Udp, 53, Connected),
                ("syncs its clock", Udp, 123, Connected),
                ("opens ssh: not a client service", Tcp, 22, TimedOut),
                ("opens mysql: not a client service", Tcp, 3306, TimedOut),
                ("udp to 3306: not a client service", Udp, 3306, TimedOut),
            ],
        );
    }
    // The refusal of a server that is down must reach the VPS's client at once (the
    // article's rules lose RELATED ICMP errors): the RST is ESTABLISHED, the ICMP port
    // unreachable RELATED.
    for down in [DOWN_V4, DOWN_V6] {
        m.outbound_unanswered(
            down,
            &[
                ("asks a dns server that is down", Udp, 53, Refused),
                ("fetches from a web server that is down", Tcp, 80, Refused),
            ],
        );
    }

    // Loopback is always open, in both families; the VPS's own public addresses are
    // reached over lo too.
    let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    m.local(&[
        ("loopback ssh", Tcp, lo4, 22, Connected),
        ("loopback mysql", Tcp, lo6, 3306, Connected),
        ("loopback dns", Udp, lo4, 53, Connected),
        ("loopback ntp", Udp, lo6, 123, Connected),
        (
            "own address over lo",
            Tcp,
            IpAddr::V4(VPS_V4),
            8080,
            Connected,
        ),
        (
            "own address over lo",
            Udp,
            IpAddr::V6(VPS_V6),
            HIGH,
            Connected,
        ),
    ]);

    // The article's optional return rules (`--sport 53 --dport 1024:`, `--sport 123`,
    // `--sports http,https --dport 1024:`, `--sport smtp`) would let a stranger in to
    // any high port just by choosing the source port. Replies go by conntrack instead:
    // none of these is a reply to anything, so none gets in.
    for s in [STRANGER_V4, STRANGER_V6] {
        m.inbound(
            "stranger",
            s,
            &[
                (
                    "from 'dns reply' port to a high port",
                    Udp,
                    53,
                    HIGH,
                    TimedOut,
                ),
                (
                    "from 'ntp reply' port to a high port",
                    Udp,
                    123,
                    HIGH,
                    TimedOut,
                ),
                (
                    "from 'dns reply' port to a high port",
                    Tcp,
                    53,
                    HIGH,
                    TimedOut,
                ),
                (
                    "from 'http reply' port to a high port",
                    Tcp,
                    80,
                    HIGH,
                    TimedOut,
                ),
                (
                    "from 'https reply' port to a high port",
                    Tcp,
                    443,
                    HIGH,
                    TimedOut,
                ),
                (
                    "from 'smtp reply' port to a high port",
                    Tcp,
                    25,
                    HIGH,
                    TimedOut,
                ),
                // The VPS is a dns client, not a dns server.
                ("queries dns on the vps", Udp, HI, 53, TimedOut),
            ],
        );
    }
}

fn web_server_rows(m: &mut Matrix) {
    // Admin: everything, in both families.
    for admin in [v4(198, 51, 100, 7), v6(0x100, 7)] {
        m.inbound(
            "admin",
            admin,
            &[
                ("ssh", Tcp, HI, 22, Connected),
                ("mysql", Tcp, HI, 3306, Connected),
                ("http-alt", Tcp, HI, 8080, Connected),
                ("http", Tcp, HI, 80, Connected),
                ("udp (everything)", Udp, HI, HIGH, Connected),
                (
                    "ssh from source port 80 (everything)",
                    Tcp,
                    80,
                    22,
                    Connected,
                ),
            ],
        );
    }
    // Admin means that one address.
    for next_door in [v4(198, 51, 100, 8), v6(0x100, 8)] {
        m.inbound(
            "admin's neighbour address",
            next_door,
            &[
                ("ssh", Tcp, HI, 22, TimedOut),
                ("https, like anyone", Tcp, HI, 443, Connected),
            ],
        );
    }

    // Anyone: tcp http, https from source ports 1024 and up; nothing else.
    for s in [STRANGER_V4, STRANGER_V6] {
        m.inbound(
            "stranger",
            s,
            &[
                ("http", Tcp, HI, 80, Connected),
                ("https", Tcp, HI, 443, Connected),
                ("ssh", Tcp, HI, 22, TimedOut),
                ("mysql", Tcp, HI, 3306, TimedOut),
                ("http-alt", Tcp, HI, 8080, TimedOut),
                ("udp to the http port", Udp, HI, 80, TimedOut),
                ("http from source port 1024", Tcp, 1024, 80, Connected),
                ("http from source port 1023", Tcp, 1023, 80, TimedOut),
                ("http from source port 80", Tcp, 80, 80, TimedOut),
                ("https from source port 443", Tcp, 443, 443, TimedOut),
            ],
        );
    }
}

fn internal_server_rows(m: &mut Matrix) {
    // Head office 203.0.113.128/27 and branch A 198.51.100.160/27: everything.
    let everything: &[In] = &[
        ("ssh", Tcp, HI, 22, Connected),
        ("http", Tcp, HI, 80, Connected),
        ("mysql", Tcp, HI, 3306, Connected),
        ("http-alt", Tcp, HI, 8080, Connected),
        ("udp (everything)", Udp, HI, HIGH, Connected),
        (
            "http from source port 80 (everything)",
            Tcp,
            80,
            80,
            Connected,
        ),
    ];
    m.inbound("head office", v4(203, 0, 113, 130), everything);
    m.inbound("branch", v4(198, 51, 100, 170), everything);
    // The /27 edges.
    let ssh: &[In] = &[("ssh", Tcp, HI, 22, Connected)];
    let no_ssh: &[In] = &[("ssh", Tcp, HI, 22, TimedOut)];
    m.inbound("last head-office address", v4(203, 0, 113, 159), ssh);
    m.inbound("first branch address", v4(198, 51, 100, 160), ssh);
    m.inbound("just below head office", v4(203, 0, 113, 127), no_ssh);
    m.inbound("just above head office", v4(203, 0, 113, 160), no_ssh);
    m.inbound("just above branch", v4(198, 51, 100, 192), no_ssh);

    // Partner 192.0.2.192/27: tcp http, https only, from source ports 1024 and up.
    m.inbound(
        "partner",
        v4(192, 0, 2, 200),
        &[
            ("http", Tcp, HI, 80, Connected),
            ("https", Tcp, HI, 443, Connected),
            ("ssh", Tcp, HI, 22, TimedOut),
            ("mysql", Tcp, HI, 3306, TimedOut),
            ("udp to the http port", Udp, HI, 80, TimedOut),
            ("http from source port 80", Tcp, 80, 80, TimedOut),
            ("https from source port 1023", Tcp, 1023, 443, TimedOut),
            ("https from source port 1024", Tcp, 1024, 443, Connected),
        ],
    );
    let no_http: &[In] = &[("http", Tcp, HI, 80, TimedOut)];
    m.inbound("just above partner", v4(192, 0, 2, 224), no_http);

    // Nobody else, in either family (all three names are IPv4 only).
    for s in [STRANGER_V4, STRANGER_V6] {
        m.inbound(
            "stranger",
            s,
            &[
                ("http", Tcp, HI, 80, TimedOut),
                ("https", Tcp, HI, 443, TimedOut),
                ("ssh", Tcp, HI, 22, TimedOut),
                ("mysql", Tcp, HI, 3306, TimedOut),
            ],
        );
    }
}

fn file_server_rows(m: &mut Matrix) {
    // Admin 203.0.113.158: everything.
    m.inbound(
        "admin",
        v4(203, 0, 113, 158),
        &[
            ("ssh", Tcp, HI, 22, Connected),
            ("mysql", Tcp, HI, 3306, Connected),
            ("http-alt", Tcp, HI, 8080, Connected),
            ("udp (everything)", Udp, HI, 53, Connected),
        ],
    );

    // The rest of head office 203.0.113.128/27 and the branch 198.51.100.160/27: ssh
    // only (and the web, like anyone).
    let ssh_only: &[In] = &[
        ("ssh", Tcp, HI, 22, Connected),
        ("mysql", Tcp, HI, 3306, TimedOut),
        ("http-alt", Tcp, HI, 8080, TimedOut),
        ("udp", Udp, HI, HIGH, TimedOut),
        ("https, like anyone", Tcp, HI, 443, Connected),
    ];
    m.inbound("head office", v4(203, 0, 113, 130), ssh_only);
    m.inbound(
        "admin's neighbour (head office)",
        v4(203, 0, 113, 157),
        ssh_only,
    );
    m.inbound("branch", v4(198, 51, 100, 170), ssh_only);
    let no_ssh: &[In] = &[("ssh", Tcp, HI, 22, TimedOut)];
    m.inbound("just above head office", v4(203, 0, 113, 160), no_ssh);
    m.inbound("just below branch", v4(198, 51, 100, 159), no_ssh);
    m.inbound("just above branch", v4(198, 51, 100, 192), no_ssh);

    // Anyone, in both families: the web, from source ports 1024 and up.
    for s in [STRANGER_V4, STRANGER_V6] {
        m.inbound(
            "stranger",
            s,
            &[
                ("http", Tcp, HI, 80, Connected),
                ("https", Tcp, HI, 443, Connected),
                ("ssh", Tcp, HI, 22, TimedOut),
                ("mysql", Tcp, HI, 3306, TimedOut),
                ("https from source port 1023", Tcp, 1023, 443, TimedOut),
                ("http from source port 80", Tcp, 80, 80, TimedOut),
            ],
        );
    }
}

/// The matrix of `role` (`web_server`, `internal_server`, `file_server`).
pub fn rows(role: &str) -> Result<Vec<Row>, String> {
    let mut m = Matrix::new();
    match role {
        "web_server" => web_server_rows(&mut m),
        "internal_server" => internal_server_rows(&mut m),
        "file_server" => file_server_rows(&mut m),
        other => {
            return Err(format!(
                "no matrix for role {other:?}: write one in tests/support/roles_matrix.rs"
            ))
        }
    }
    common_rows(&mut m);
    Ok(m.rows)
}

// --- checking ---------------------------------------------------------------------

fn kernel_outcome(v: Verdict) -> Outcome {
    match v {
        Verdict::Accept => Connected,
        Verdict::Drop => TimedOut,
        Verdict::Reject => Refused,
    }
}

/// The evaluator's view of one row.
struct Prediction {
    /// Every step with the evaluator's decision, rendered.
    trace: Vec<String>,
    /// What the kernel should report.
    outcome: Outcome,
    /// Whether the request reached the VPS's (or upstream's) socket layer.
    request_through: bool,
}

fn predict(policy: &Policy, row: &Row) -> Result<Prediction, String> {
    let mut trace = Vec::new();
    let mut outcome = if row.answered { Connected } else { Refused };
    let mut request_through = true;
    let mut stopped = false;
    for step in row.steps() {
        let packet: Packet = step
            .packet
            .parse()
            .map_err(|e| format!("test bug: cannot parse packet {:?}: {e}", step.packet))?;
        let decision = policy.evaluate(&packet);
        trace.push(format!("{}  =>  {decision}", step.packet));
        if stopped {
            continue;
        }
        if decision.outcome != Verdict::Accept {
            stopped = true;
            outcome = kernel_outcome(decision.outcome);
            if step.request {
                request_through = false;
            }
        }
    }
    Ok(Prediction {
        trace,
        outcome,
        request_through,
    })
}

fn hit_of(row: &Row) -> Hit {
    Hit {
        proto: row.proto,
        peer: row.src,
        local: row.dst,
    }
}

fn addr_list(rows: &[Row]) -> Vec<IpAddr> {
    let mut peers: Vec<IpAddr> = vec![UPSTREAM_V4, UPSTREAM_V6];
    for p in rows.iter().filter_map(Row::peer) {
        if !peers.contains(&p) {
            peers.push(p);
        }
    }
    peers
}

fn check_distinct(rows: &[Row]) -> Result<(), String> {
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            if (a.proto, a.src, a.dst) == (b.proto, b.src, b.dst) {
                return Err(format!(
                    "test bug: two rows share a 4-tuple:\n  {}\n  {}",
                    a.describe(),
                    b.describe()
                ));
            }
        }
    }
    Ok(())
}

fn show_matrix() -> bool {
    std::env::var_os("VPSFW_SHOW_MATRIX").is_some()
}

/// Checks, then loads `policy` into the VPS of `lab` through `backend`.
fn load(lab: &Lab, role: &str, policy: &Policy, backend: Backend) -> Result<(), String> {
    let vps = lab.vps();
    match backend {
        Backend::Iptables => {
            let v4 = render(policy, Format::Restore);
            let v6 = render(policy, Format::Restore6);
            lab.restore_test(vps, &v4, &v6)
                .map_err(|e| format!("{role}: the kernel's parser refused the rulesets: {e}"))?;
            lab.load_restore(vps, &v4, &v6)
                .map_err(|e| format!("{role}: loading the rulesets failed: {e}"))
        }
        Backend::Nft => {
            let text = render(policy, Format::Nft);
            nft::check(lab, vps, &text)
                .map_err(|e| format!("{role}: `nft -c` refused the nft file: {e}\n{text}"))?;
            nft::load(lab, vps, &text)
                .map_err(|e| format!("{role}: loading the nft file failed: {e}\n{text}"))
        }
    }
}

/// Loads `policy` (restore files, after `--test`) into a fresh lab, runs the role's
/// matrix and checks every row against the intent, the evaluator and the listeners.
pub fn matrix(role: &str, policy: &Policy) -> Result<(), String> {
    run_matrix(role, policy, Backend::Iptables)
}

/// [`matrix`] with the nft backend: the `nft -f` file, checked with `nft -c`, then the
/// same rows, expectations and evaluator cross-check.
pub fn matrix_nft(role: &str, policy: &Policy) -> Result<(), String> {
    run_matrix(role, policy, Backend::Nft)
}

fn run_matrix(role: &str, policy: &Policy, backend: Backend) -> Result<(), String> {
    let rows = rows(role)?;
    check_distinct(&rows)?;
    let lab = Lab::try_new(&addr_list(&rows))?;
    let (vps, net) = (lab.vps(), lab.net());
    load(&lab, role, policy, backend)?;

    // Declared after the lab: dropped before it.
    let vps_l = Listener::start(vps, VPS_PORTS)?;
    let net_l = Listener::start_on(net, &[UPSTREAM_V4, UPSTREAM_V6], UPSTREAM_PORTS)?;

    let probes: Vec<Probe> = rows.iter().map(|r| r.probe(&lab)).collect();
    let got = run_probes(&probes);
    let (vps_hits, net_hits) = (vps_l.hits(), net_l.hits());

    let mut bad = String::new();
    let mut table = String::new();
    for (row, kernel) in rows.iter().zip(&got) {
        let pred = predict(policy, row)?;
        let hits = match row.path {
            Path::Outbound => &net_hits,
            Path::Inbound | Path::Loopback => &vps_hits,
        };
        let reached = hits.contains(&hit_of(row));
        // TCP is only accepted once the handshake is done, i.e. once the reply got out
        // too; a UDP datagram is delivered whatever happens to the echo.
        let should_reach = row.answered
            && match row.proto {
                Tcp => pred.outcome == Connected,
                Udp => pred.request_through,
            };
        let mut problems = Vec::new();
        if matches!(kernel, Outcome::Error(_)) {
            problems.push("the probe itself failed (not a firewall verdict)".to_owned());
        }
        if *kernel != row.expect {
            problems.push(format!(
                "kernel gave {kernel}, the article's intent is {}",
                row.expect
            ));
        }
        if *kernel != pred.outcome {
            problems.push(format!(
                "the evaluator predicts {}, the kernel gave {kernel}",
                pred.outcome
            ));
        }
        if reached != should_reach {
            problems.push(format!(
                "the listener {} it, but by the evaluator it {} \
                 (TCP: handshake completed; UDP: datagram delivered)",
                if reached {
                    "received"
                } else {
                    "never received"
                },
                if should_reach {
                    "should have"
                } else {
                    "should not have"
                },
            ));
        }
        let _ = writeln!(
            table,
            "  {:<9} {:<9} {}",
            row.expect.to_string(),
            kernel.to_string(),
            row.describe()
        );
        if !problems.is_empty() {
            let _ = writeln!(bad, "{role}: {}", row.describe());
            for p in problems {
                let _ = writeln!(bad, "    {p}");
            }
            for t in &pred.trace {
                let _ = writeln!(bad, "    packet: {t}");
            }
        }
    }
    if show_matrix() {
        eprintln!(
            "{role} matrix ({backend:?}, {} rows):\n  {:<9} {:<9} row\n{table}",
            rows.len(),
            "intent",
            "kernel"
        );
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{role} ({backend:?}): rows that disagree:\n{bad}"))
    }
}

// --- loading ----------------------------------------------------------------------

/// `iptables-save` output without comment lines and counters.
fn normalize(save: &str) -> String {
    let mut out = String::new();
    for line in save.lines() {
        if line.starts_with('#') {
            continue;
        }
        let line = if line.starts_with(':') {
            match line.rsplit_once(' ') {
                Some((head, tail)) if tail.starts_with('[') && tail.ends_with(']') => head,
                _ => line,
            }
        } else {
            line
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The `*filter` ... `COMMIT` section of a normalized save.
fn filter_table(save: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in save.lines() {
        if line == "*filter" {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
            if line == "COMMIT" {
                break;
            }
        }
    }
    out
}

/// The normalized filter tables of the VPS, `[IPv4, IPv6]`; `Err` unless both hold
/// rules.
fn saved_filters(lab: &Lab) -> Result<[String; 2], String> {
    let (v4, v6) = lab.save(lab.vps());
    let tables = [filter_table(&normalize(&v4)), filter_table(&normalize(&v6))];
    for (t, (fam, raw)) in tables
        .iter()
        .zip([("iptables-save", &v4), ("ip6tables-save", &v6)])
    {
        if !t.lines().any(|l| l.starts_with("-A ")) {
            return Err(format!("{fam} shows no filter rules:\n{raw}"));
        }
    }
    Ok(tables)
}

fn diff(a: &str, b: &str) -> String {
    let mut out = String::new();
    for l in a.lines().filter(|l| !b.lines().any(|m| m == *l)) {
        let _ = writeln!(out, "  - {l}");
    }
    for l in b.lines().filter(|l| !a.lines().any(|m| m == *l)) {
        let _ = writeln!(out, "  + {l}");
    }
    if out.is_empty() {
        out.push_str("  (same lines, different order or count)\n");
    }
    out
}

fn same(what: &str, family: &str, a: &str, b: &str) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!(
            "{what} ({family}):\n{}--- first ---\n{a}--- second ---\n{b}",
            diff(a, b)
        ))
    }
}

const FAMILIES: [&str; 2] = ["iptables-save", "ip6tables-save"];

/// Pipes the sh script into `sh` twice in a fresh lab: exit 0 both times, the same
/// filter tables after each run, DROP policies, and the same tables as loading the
/// restore files.
pub fn sh_twice(role: &str, policy: &Policy) -> Result<(), String> {
    let lab = Lab::try_new(&[])?;
    let vps = lab.vps();
    let script = render(policy, Format::Sh);
    lab.run_sh(vps, &script)
        .map_err(|e| format!("{role}: first run of the sh script: {e}"))?;
    let first = saved_filters(&lab)?;
    lab.run_sh(vps, &script)
        .map_err(|e| format!("{role}: second run of the sh script: {e}"))?;
    let second = saved_filters(&lab)?;
    for ((a, b), fam) in first.iter().zip(&second).zip(FAMILIES) {
        same(
            &format!("{role}: the sh script changed the rules on its second run"),
            fam,
            a,
            b,
        )?;
        for chain in ["INPUT", "FORWARD", "OUTPUT"] {
            let want = format!(":{chain} DROP");
            if !b.lines().any(|l| l == want) {
                return Err(format!(
                    "{role}: {fam} after the sh script lacks `{want}`:\n{b}"
                ));
            }
        }
    }
    // The restore files replace the whole filter table: if nothing changes, the
    // script loaded exactly them.
    lab.load_restore(
        vps,
        &render(policy, Format::Restore),
        &render(policy, Format::Restore6),
    )?;
    let restored = saved_filters(&lab)?;
    for ((a, b), fam) in second.iter().zip(&restored).zip(FAMILIES) {
        same(
            &format!("{role}: the sh script and the restore files load different rules"),
            fam,
            a,
            b,
        )?;
    }
    Ok(())
}

/// The `chain <name> { ... }` blocks of `table inet vpsfw` in a stateless `nft list
/// ruleset`, with each block's `type ... policy ...;` line.
fn nft_chain_heads(ruleset: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_table = false;
    let mut chain: Option<String> = None;
    for line in ruleset.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("table ") {
            in_table = rest.trim_end_matches(" {") == "inet vpsfw";
            continue;
        }
        if !in_table {
            continue;
        }
        if let Some(name) = t.strip_prefix("chain ") {
            chain = Some(name.trim_end_matches(" {").to_owned());
        } else if t.starts_with("type ") {
            if let Some(c) = chain.take() {
                out.push((c, t.to_owned()));
            }
        }
    }
    out
}

/// Pipes the nft sh script into `sh` twice in a fresh lab: exit 0 both times, the same
/// stateless `nft list ruleset` after each run, `policy drop` on input, forward and
/// output, nothing but `table inet vpsfw` in the ruleset and no iptables filter rules;
/// and the same ruleset as loading the `nft -f` file.
pub fn nft_sh_twice(role: &str, policy: &Policy) -> Result<(), String> {
    let lab = Lab::try_new(&[])?;
    let vps = lab.vps();
    let script = render(policy, Format::NftSh);
    lab.run_sh(vps, &script)
        .map_err(|e| format!("{role}: first run of the nft sh script: {e}"))?;
    let first = nft::ruleset_stateless(&lab, vps)?;
    lab.run_sh(vps, &script)
        .map_err(|e| format!("{role}: second run of the nft sh script: {e}"))?;
    let second = nft::ruleset_stateless(&lab, vps)?;
    same(
        &format!("{role}: the nft sh script changed the ruleset on its second run"),
        "nft -s list ruleset",
        &first,
        &second,
    )?;
    let heads = nft_chain_heads(&second);
    for chain in ["input", "forward", "output"] {
        let head = heads.iter().find(|(c, _)| c == chain).map(|(_, h)| h);
        let want = format!("type filter hook {chain} priority filter; policy drop;");
        if head != Some(&want) {
            return Err(format!(
                "{role}: after the nft sh script, chain {chain} of table inet vpsfw is \
                 {head:?}, expected `{want}`:\n{second}"
            ));
        }
    }
    let tables = nft::tables(&lab, vps)?;
    if tables != ["inet vpsfw"] {
        return Err(format!(
            "{role}: after the nft sh script the tables are {tables:?}, expected only \
             inet vpsfw:\n{second}"
        ));
    }
    let (v4, v6) = lab.save(vps);
    for (fam, text) in FAMILIES.iter().zip([&v4, &v6]) {
        if text.lines().any(|l| l.starts_with("-A ") || l == "*filter") {
            return Err(format!(
                "{role}: the nft sh script created iptables rules ({fam}):\n{text}"
            ));
        }
    }
    // The nft file replaces table inet vpsfw: if nothing changes, the script loaded
    // exactly it.
    nft::load(&lab, vps, &render(policy, Format::Nft))?;
    let loaded = nft::ruleset_stateless(&lab, vps)?;
    same(
        &format!(
            "{role}: the nft sh script (first) and the nft file (second) load different rulesets"
        ),
        "nft -s list ruleset",
        &second,
        &loaded,
    )
}

/// The one-command-per-rule output, piped into `sh` (stopping at the first failing
/// command) in a fresh lab, must leave the same filter tables as the restore files.
pub fn commands(role: &str, policy: &Policy) -> Result<(), String> {
    let by_commands = Lab::try_new(&[])?;
    let script = format!("set -e\n{}", render(policy, Format::Commands));
    by_commands
        .run_sh(by_commands.vps(), &script)
        .map_err(|e| format!("{role}: the commands output failed in sh: {e}"))?;
    let by_restore = Lab::try_new(&[])?;
    by_restore.load_restore(
        by_restore.vps(),
        &render(policy, Format::Restore),
        &render(policy, Format::Restore6),
    )?;
    let (a, b) = (saved_filters(&by_commands)?, saved_filters(&by_restore)?);
    for ((a, b), fam) in a.iter().zip(&b).zip(FAMILIES) {
        same(
            &format!("{role}: commands (first) and restore files (second) load different rules"),
            fam,
            a,
            b,
        )?;
    }
    Ok(())
}

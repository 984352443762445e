//! Network-namespace lab for kernel tests.
//!
//! A [`Lab`] is two fresh network namespaces, `vps` (the host whose firewall
//! is under test) and `net` (everybody else), joined by a veth pair that is
//! created directly inside the namespaces, so no interface ever appears in
//! the host namespace. Dropping the `Lab` deletes both namespaces, also when
//! the test panicked.
//!
//! Every firewall command (`iptables*`, `ip6tables*`, `nft`, `ipset`) goes
//! through `ip netns exec <lab namespace>`; the `Lab` methods refuse any
//! namespace name that is not one of its own, so nothing here can touch the
//! host's rules.
//!
//! Packets are sent by probe threads that `setns(2)` into a namespace (the
//! network namespace is per thread, and a socket stays in the namespace it
//! was created in), so no external tools are needed for traffic.
//!
//! Only documentation address ranges are used: 192.0.2.0/24,
//! 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32.

use std::ffi::c_int;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

/// Default probe timeout: long enough for a veth round trip (sub-millisecond)
/// plus ARP/ND, short enough that a dropped probe does not slow the suite.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(400);

/// Address of `vps` on its `eth0` (`/24`).
pub const VPS_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Address of `vps` on its `eth0` (`/64`).
pub const VPS_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// Address of `net` on its `eth0` (`/24`).
pub const NET_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Address of `net` on its `eth0` (`/64`).
pub const NET_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

/// Every namespace this module creates starts with this.
pub const NS_PREFIX: &str = "vpsfw-";

const NETNS_DIR: &str = "/run/netns";

static NS_COUNTER: AtomicU32 = AtomicU32::new(0);
static TOKEN_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_id() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        NS_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// True for the documentation ranges: 192.0.2.0/24, 198.51.100.0/24,
/// 203.0.113.0/24 and 2001:db8::/32.
pub fn is_documentation_addr(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => matches!(
            a.octets(),
            [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _]
        ),
        IpAddr::V6(a) => {
            let s = a.segments();
            s[0] == 0x2001 && s[1] == 0x0db8
        }
    }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

fn command_line(program: &str, args: &[&str]) -> String {
    let mut line = program.to_owned();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line
}

/// Runs `program args...`, feeding `stdin` if given; `Err` (with stderr)
/// unless it exits 0.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, String> {
    let line = command_line(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{line}`: cannot start: {e}"))?;
    let input = child.stdin.take();
    // Feed stdin from a separate thread so a chatty child cannot deadlock
    // us. A write error (EPIPE: the child exited without reading all of
    // its input) is ignored; the exit status is what counts.
    let output = thread::scope(|s| {
        s.spawn(move || {
            if let (Some(mut pipe), Some(text)) = (input, stdin) {
                let _ = pipe.write_all(text.as_bytes());
            }
        });
        child.wait_with_output()
    });
    let output = output.map_err(|e| format!("`{line}`: wait failed: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{line}` failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end(),
            if output.stdout.is_empty() {
                String::new()
            } else {
                format!(
                    "\n--- stdout ---\n{}",
                    String::from_utf8_lossy(&output.stdout).trim_end()
                )
            }
        ));
    }
    Ok(output)
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn netns_path(ns: &str) -> Result<PathBuf, String> {
    if ns.is_empty() || ns == "." || ns == ".." || ns.contains('/') || ns.contains('\0') {
        return Err(format!("invalid network namespace name {ns:?}"));
    }
    Ok(Path::new(NETNS_DIR).join(ns))
}

fn netns_exists(ns: &str) -> bool {
    netns_path(ns).map(|p| p.exists()).unwrap_or(false)
}

/// Names of all named network namespaces (`/run/netns`).
pub fn list_netns() -> Vec<String> {
    let Ok(dir) = fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn netns_del(ns: &str) -> Result<(), String> {
    // Kill anything a test script left running in there (e.g. `sleep &` in
    // `run_sh`): it would keep the namespace alive after its name is gone.
    if let Ok(out) = run("ip", &["netns", "pids", ns], None) {
        for pid in stdout_of(&out).split_whitespace() {
            if let Ok(pid) = pid.parse::<libc::pid_t>() {
                // SAFETY: plain syscall; the pid is a process inside our
                // uniquely named namespace, i.e. one this harness started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
    run("ip", &["netns", "del", ns], None).map(|_| ())
}

// ---------------------------------------------------------------------------
// Availability
// ---------------------------------------------------------------------------

/// `Ok` when kernel tests can run here: effective uid 0 and `ip netns
/// add`/`del` works. `Err(reason)` otherwise.
pub fn kernel_tests_available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!("not running as root (euid {euid})"));
    }
    let probe = format!("{NS_PREFIX}{}-chk", unique_id());
    run("ip", &["netns", "add", &probe], None)
        .map_err(|e| format!("cannot create a network namespace: {e}"))?;
    let present = netns_exists(&probe);
    let deleted = run("ip", &["netns", "del", &probe], None);
    if !present {
        return Err(format!(
            "`ip netns add {probe}` succeeded but {NETNS_DIR}/{probe} does not exist"
        ));
    }
    deleted.map_err(|e| format!("cannot delete a network namespace: {e}"))?;
    Ok(())
}

/// Deletes `vpsfw-<pid>-...` namespaces left behind by test processes that
/// no longer exist (e.g. killed by SIGKILL before `Drop` could run).
/// Namespaces of live processes, including this one, are left alone.
/// Returns the names it deleted.
pub fn sweep_stale_namespaces() -> Vec<String> {
    let mut swept = Vec::new();
    for name in list_netns() {
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(Ok(pid)) = rest.split('-').next().map(str::parse::<u32>) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if netns_del(&name).is_ok() {
            swept.push(name);
        }
    }
    swept
}

// ---------------------------------------------------------------------------
// Lab
// ---------------------------------------------------------------------------

/// Two namespaces, `vps` and `net`, joined by a veth pair (`eth0` on both
/// sides). See the module docs. Deleted on drop.
///
/// Drop [`Listener`]s started in a lab before the lab itself (declare them
/// after it): an open socket keeps its namespace alive, nameless, until it
/// is closed.
pub struct Lab {
    vps: String,
    net: String,
    peers: Vec<IpAddr>,
    /// Namespaces that exist and must be deleted on drop.
    created: Vec<String>,
}

impl Lab {
    /// Builds a lab; `peers` are extra addresses on `net`'s `eth0` (as /32
    /// or /128) that probes can use as source addresses. Panics if setup
    /// fails or a peer is outside the documentation ranges.
    pub fn new(peers: &[IpAddr]) -> Lab {
        Lab::try_new(peers).unwrap_or_else(|e| panic!("network namespace lab setup failed: {e}"))
    }

    /// Like [`Lab::new`] but returns setup errors (anything already created
    /// is deleted). Still panics on a non-documentation peer address, which
    /// is a bug in the test, not the environment.
    pub fn try_new(peers: &[IpAddr]) -> Result<Lab, String> {
        let mut unique: Vec<IpAddr> = Vec::new();
        for &p in peers {
            assert!(
                is_documentation_addr(p),
                "Lab peer address {p} is outside the documentation ranges \
                 (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)"
            );
            assert!(
                p != IpAddr::V4(VPS_V4) && p != IpAddr::V6(VPS_V6),
                "Lab peer address {p} is the vps's own address"
            );
            if p != IpAddr::V4(NET_V4) && p != IpAddr::V6(NET_V6) && !unique.contains(&p) {
                unique.push(p);
            }
        }
        let id = unique_id();
        let mut lab = Lab {
            vps: format!("{NS_PREFIX}{id}-vps"),
            net: format!("{NS_PREFIX}{id}-net"),
            peers: unique,
            created: Vec::new(),
        };
        // On error `lab` is dropped here, which deletes what was created.
        lab.setup()?;
        Ok(lab)
    }

    fn setup(&mut self) -> Result<(), String> {
        for ns in [self.vps.clone(), self.net.clone()] {
            run("ip", &["netns", "add", &ns], None)?;
            self.created.push(ns);
        }
        for ns in [&self.vps, &self.net] {
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    // IPv6 on, and no duplicate address detection, so
                    // addresses (including link-local) are usable at once.
                    "net.ipv6.conf.all.disable_ipv6=0",
                    "net.ipv6.conf.default.disable_ipv6=0",
                    "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0",
                    // No router advertisements/solicitations in the lab.
                    "net.ipv6.conf.all.accept_ra=0",
                    "net.ipv6.conf.default.accept_ra=0",
                    // ICMP error rate limits would turn a REJECT into an
                    // apparent DROP after a handful of probes.
                    "net.ipv4.icmp_ratelimit=0",
                    "net.ipv4.icmp_ratemask=0",
                    "net.ipv6.icmp.ratelimit=0",
                    "net.ipv4.icmp_msgs_per_sec=100000",
                    "net.ipv4.icmp_msgs_burst=100000",
                    // New namespaces inherit IPv4 conf from the host; pin
                    // reverse-path filtering so results do not depend on it.
                    "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0",
                ],
                None,
            )?;
        }
        // Both ends are created directly inside their namespaces.
        run(
            "ip",
            &[
                "link", "add", "name", "eth0", "netns", &self.vps, "type", "veth", "peer", "name",
                "eth0", "netns", &self.net,
            ],
            None,
        )?;
        let mut vps_batch = String::from("link set lo up\nlink set eth0 up\n");
        vps_batch.push_str(&format!("addr add {VPS_V4}/24 dev eth0\n"));
        vps_batch.push_str(&format!("addr add {VPS_V6}/64 dev eth0 nodad\n"));
        vps_batch.push_str("route add 0.0.0.0/0 dev eth0\nroute add ::/0 dev eth0\n");
        let mut net_batch = String::from("link set lo up\nlink set eth0 up\n");
        net_batch.push_str(&format!("addr add {NET_V4}/24 dev eth0\n"));
        net_batch.push_str(&format!("addr add {NET_V6}/64 dev eth0 nodad\n"));
        for p in &self.peers {
            match p {
                IpAddr::V4(a) => net_batch.push_str(&format!("addr add {a}/32 dev eth0\n")),
                IpAddr::V6(a) => net_batch.push_str(&format!("addr add {a}/128 dev eth0 nodad\n")),
            }
        }
        net_batch.push_str("route add 0.0.0.0/0 dev eth0\nroute add ::/0 dev eth0\n");
        run("ip", &["-n", &self.vps, "-batch", "-"], Some(&vps_batch))?;
        run("ip", &["-n", &self.net, "-batch", "-"], Some(&net_batch))?;
        self.wait_ready()
    }

    /// Waits until both `eth0`s have carrier and no address is tentative.
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut pending = Vec::new();
            for ns in [&self.vps, &self.net] {
                let link = run("ip", &["-n", ns, "-o", "link", "show", "dev", "eth0"], None)?;
                if !stdout_of(&link).contains("LOWER_UP") {
                    pending.push(format!("{ns}: eth0 has no carrier"));
                }
                let addrs = run("ip", &["-n", ns, "-o", "addr", "show", "dev", "eth0"], None)?;
                let addrs = stdout_of(&addrs);
                if addrs.contains("tentative") || addrs.contains("dadfailed") {
                    pending.push(format!("{ns}: addresses not ready:\n{addrs}"));
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("lab never became ready: {}", pending.join("; ")));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Name of the namespace whose firewall is under test.
    pub fn vps(&self) -> &str {
        &self.vps
    }

    /// Name of the namespace standing for the rest of the internet.
    pub fn net(&self) -> &str {
        &self.net
    }

    /// Extra addresses configured on `net` (deduplicated).
    pub fn peers(&self) -> &[IpAddr] {
        &self.peers
    }

    fn check_ns(&self, ns: &str) {
        assert!(
            ns == self.vps || ns == self.net,
            "namespace {ns:?} does not belong to this lab ({} / {}); refusing to run there",
            self.vps,
            self.net
        );
    }

    /// Runs `ip netns exec <ns> args...`. `ns` must be `vps()` or `net()`.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<Output, String> {
        self.exec_stdin(ns, args, None)
    }

    /// Like [`Lab::exec`], feeding `stdin` to the command.
    pub fn exec_stdin(
        &self,
        ns: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, String> {
        self.check_ns(ns);
        assert!(!args.is_empty(), "Lab::exec needs a command");
        let mut full = vec!["netns", "exec", ns];
        full.extend_from_slice(args);
        run("ip", &full, stdin)
    }

    /// Runs `script` with `sh` inside `ns` (script on stdin).
    pub fn run_sh(&self, ns: &str, script: &str) -> Result<Output, String> {
        self.exec_stdin(ns, &["sh"], Some(script))
    }

    /// Loads `v4` with `iptables-restore` and `v6` with `ip6tables-restore`
    /// inside `ns`.
    pub fn load_restore(&self, ns: &str, v4: &str, v6: &str) -> Result<(), String> {
        self.exec_stdin(ns, &["iptables-restore", "-w", "5"], Some(v4))?;
        self.exec_stdin(ns, &["ip6tables-restore", "-w", "5"], Some(v6))?;
        Ok(())
    }

    /// Like [`Lab::load_restore`] with `--test`: parse and check only.
    pub fn restore_test(&self, ns: &str, v4: &str, v6: &str) -> Result<(), String> {
        self.exec_stdin(ns, &["iptables-restore", "-w", "5", "--test"], Some(v4))?;
        self.exec_stdin(ns, &["ip6tables-restore", "-w", "5", "--test"], Some(v6))?;
        Ok(())
    }

    /// `(iptables-save, ip6tables-save)` output of `ns`. Panics if either
    /// command fails.
    pub fn save(&self, ns: &str) -> (String, String) {
        let v4 = self
            .exec(ns, &["iptables-save"])
            .unwrap_or_else(|e| panic!("iptables-save in {ns}: {e}"));
        let v6 = self
            .exec(ns, &["ip6tables-save"])
            .unwrap_or_else(|e| panic!("ip6tables-save in {ns}: {e}"));
        (stdout_of(&v4), stdout_of(&v6))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            if let Err(e) = netns_del(&ns) {
                eprintln!("warning: failed to delete lab namespace {ns}: {e}");
            }
        }
    }
}

impl fmt::Debug for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lab")
            .field("vps", &self.vps)
            .field("net", &self.net)
            .field("peers", &self.peers)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Entering a namespace
// ---------------------------------------------------------------------------

/// Moves the *calling thread* into the named network namespace and checks
/// that it arrived. Only call on a thread that is discarded afterwards.
fn enter_netns(ns: &str) -> Result<(), String> {
    let path = netns_path(ns)?;
    let file = File::open(&path).map_err(|e| format!("open {}: {e}", path.display()))?;
    // SAFETY: setns on a valid fd; affects only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!(
            "setns({}) failed: {}",
            path.display(),
            io::Error::last_os_error()
        ));
    }
    let want = file
        .metadata()
        .map_err(|e| format!("stat {}: {e}", path.display()))?;
    let have = fs::metadata("/proc/thread-self/ns/net")
        .map_err(|e| format!("stat /proc/thread-self/ns/net: {e}"))?;
    if (want.dev(), want.ino()) != (have.dev(), have.ino()) {
        return Err(format!(
            "setns({}) returned success but the thread is not in that namespace",
            path.display()
        ));
    }
    Ok(())
}

/// Runs `f` on a fresh thread that has entered network namespace `ns`.
/// If entering fails, `f` is not run. Sockets created by `f` stay in `ns`
/// whichever thread uses them later.
pub fn in_netns<T, F>(ns: &str, f: F) -> Result<T, String>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    thread::scope(|s| {
        let worker = s.spawn(move || -> Result<T, String> {
            enter_netns(ns)?;
            Ok(f())
        });
        worker
            .join()
            .map_err(|p| format!("thread in namespace {ns} panicked: {}", panic_text(&p)))?
    })
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

// ---------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------

/// Transport protocol of a probe or listener hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// What happened to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// TCP: handshake completed and one byte went there and back.
    /// UDP: the echo came back.
    Connected,
    /// Actively refused: TCP RST, or an ICMP/ICMPv6 unreachable
    /// (port/host/net/admin-prohibited) — what `REJECT` produces.
    Refused,
    /// No answer within the timeout — what `DROP` produces. A packet
    /// dropped in the prober's own `OUTPUT` chain (`EPERM` from the kernel)
    /// is reported as this too.
    TimedOut,
    /// The probe itself could not run (bad source address, namespace
    /// missing, unexpected errno, ...). Never a firewall verdict.
    Error(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Connected => f.write_str("Connected"),
            Outcome::Refused => f.write_str("Refused"),
            Outcome::TimedOut => f.write_str("TimedOut"),
            Outcome::Error(e) => write!(f, "Error({e})"),
        }
    }
}

fn classify(context: &str, e: &io::Error) -> Outcome {
    match e.raw_os_error() {
        // RST, ICMP port unreachable / ICMPv6 port unreachable.
        Some(libc::ECONNREFUSED) | Some(libc::ECONNRESET) => return Outcome::Refused,
        // ICMP host/net unreachable, host/net/admin prohibited; ICMPv6
        // admin prohibited (EACCES), no route (ENETUNREACH).
        Some(libc::EHOSTUNREACH) | Some(libc::ENETUNREACH) | Some(libc::EACCES) => {
            return Outcome::Refused
        }
        // Netfilter dropped our own outgoing packet (OUTPUT DROP).
        Some(libc::EPERM) => return Outcome::TimedOut,
        _ => {}
    }
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Outcome::TimedOut,
        _ => Outcome::Error(format!("{context}: {e}")),
    }
}

fn new_token() -> [u8; 16] {
    let n = TOKEN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut t = [0u8; 16];
    t[..4].copy_from_slice(&std::process::id().to_be_bytes());
    t[4..12].copy_from_slice(&n.to_be_bytes());
    t[12..].copy_from_slice(b"vpsf");
    t
}

fn probe_socket(
    ty: Type,
    proto: Protocol,
    src: Option<SocketAddr>,
    dst: SocketAddr,
) -> Result<Socket, Outcome> {
    if let Some(src) = src {
        if src.is_ipv4() != dst.is_ipv4() {
            return Err(Outcome::Error(format!(
                "source {src} and destination {dst} are different families"
            )));
        }
    }
    let sock = Socket::new(Domain::for_address(dst), ty, Some(proto))
        .map_err(|e| Outcome::Error(format!("socket(): {e}")))?;
    sock.set_reuse_address(true)
        .map_err(|e| Outcome::Error(format!("SO_REUSEADDR: {e}")))?;
    if let Some(src) = src {
        sock.bind(&src.into())
            .map_err(|e| Outcome::Error(format!("bind {src}: {e}")))?;
    }
    Ok(sock)
}

fn tcp_probe(src: Option<SocketAddr>, dst: SocketAddr, timeout: Duration) -> Outcome {
    let sock = match probe_socket(Type::STREAM, Protocol::TCP, src, dst) {
        Ok(s) => s,
        Err(o) => return o,
    };
    // Close with RST instead of FIN: no TIME_WAIT, so the same source
    // port can be reused for the next probe at once.
    if let Err(e) = sock.set_linger(Some(Duration::ZERO)) {
        return Outcome::Error(format!("SO_LINGER: {e}"));
    }
    if let Err(e) = sock.connect_timeout(&dst.into(), timeout) {
        return classify(&format!("connect {dst}"), &e);
    }
    let mut stream: TcpStream = sock.into();
    if let Err(e) = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
    {
        return Outcome::Error(format!("socket timeouts: {e}"));
    }
    let token = new_token();
    if let Err(e) = stream.write_all(&token) {
        return classify(&format!("send to {dst}"), &e);
    }
    let mut echo = [0u8; 16];
    match stream.read_exact(&mut echo) {
        Ok(()) if echo == token => Outcome::Connected,
        Ok(()) => Outcome::Error(format!("{dst} echoed {echo:?}, expected {token:?}")),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
            Outcome::Error(format!("{dst} closed the connection without echoing"))
        }
        Err(e) => classify(&format!("receive from {dst}"), &e),
    }
}

fn udp_probe(src: Option<SocketAddr>, dst: SocketAddr, timeout: Duration) -> Outcome {
    let sock = match probe_socket(Type::DGRAM, Protocol::UDP, src, dst) {
        Ok(s) => s,
        Err(o) => return o,
    };
    // Connected UDP socket: ICMP errors are reported as errno on recv.
    if let Err(e) = sock.connect(&dst.into()) {
        return classify(&format!("connect {dst}"), &e);
    }
    let sock: UdpSocket = sock.into();
    let token = new_token();
    if let Err(e) = sock.send(&token) {
        return classify(&format!("send to {dst}"), &e);
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Outcome::TimedOut;
        }
        if let Err(e) = sock.set_read_timeout(Some(left)) {
            return Outcome::Error(format!("SO_RCVTIMEO: {e}"));
        }
        match sock.recv(&mut buf) {
            Ok(n) if buf[..n] == token => return Outcome::Connected,
            // Something stale for this 4-tuple; keep waiting for ours.
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return classify(&format!("receive from {dst}"), &e),
        }
    }
}

/// TCP probe from namespace `ns`: binds `src` (if given, with
/// SO_REUSEADDR), connects to `dst` within `timeout`, then sends a few
/// bytes and waits for the echo. The socket is closed with RST (SO_LINGER
/// 0), so the same source port can be reused immediately.
///
/// Do not run two probes with the same (src, dst) pair *concurrently*.
pub fn tcp_connect(
    ns: &str,
    src: Option<SocketAddr>,
    dst: SocketAddr,
    timeout: Duration,
) -> Outcome {
    in_netns(ns, move || tcp_probe(src, dst, timeout)).unwrap_or_else(Outcome::Error)
}

/// UDP probe from namespace `ns`: sends a datagram from `src` (if given)
/// to `dst` on a connected socket and waits for the echo. `Refused` on an
/// ICMP unreachable, `TimedOut` when nothing comes back.
pub fn udp_exchange(
    ns: &str,
    src: Option<SocketAddr>,
    dst: SocketAddr,
    timeout: Duration,
) -> Outcome {
    in_netns(ns, move || udp_probe(src, dst, timeout)).unwrap_or_else(Outcome::Error)
}

/// A probe description, for running many at once with [`run_probes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub ns: String,
    pub proto: Proto,
    pub src: Option<SocketAddr>,
    pub dst: SocketAddr,
    pub timeout: Duration,
}

impl Probe {
    /// TCP probe with [`PROBE_TIMEOUT`].
    pub fn tcp(ns: &str, src: Option<SocketAddr>, dst: SocketAddr) -> Probe {
        Probe {
            ns: ns.to_owned(),
            proto: Proto::Tcp,
            src,
            dst,
            timeout: PROBE_TIMEOUT,
        }
    }

    /// UDP probe with [`PROBE_TIMEOUT`].
    pub fn udp(ns: &str, src: Option<SocketAddr>, dst: SocketAddr) -> Probe {
        Probe {
            proto: Proto::Udp,
            ..Probe::tcp(ns, src, dst)
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Probe {
        self.timeout = timeout;
        self
    }

    pub fn run(&self) -> Outcome {
        match self.proto {
            Proto::Tcp => tcp_connect(&self.ns, self.src, self.dst, self.timeout),
            Proto::Udp => udp_exchange(&self.ns, self.src, self.dst, self.timeout),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.src {
            Some(src) => write!(f, "{} {} {src} -> {}", self.ns, self.proto, self.dst),
            None => write!(f, "{} {} -> {}", self.ns, self.proto, self.dst),
        }
    }
}

/// Runs all probes concurrently (one thread each); results in input
/// order. Probes must not share a (proto, src, dst) tuple.
pub fn run_probes(probes: &[Probe]) -> Vec<Outcome> {
    thread::scope(|s| {
        let handles: Vec<_> = probes.iter().map(|p| s.spawn(move || p.run())).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|p| {
                    Outcome::Error(format!("probe thread panicked: {}", panic_text(&p)))
                })
            })
            .collect()
    })
}

// ---------------------------------------------------------------------------
// Listener
// ---------------------------------------------------------------------------

/// One connection accepted or datagram echoed by a [`Listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub proto: Proto,
    /// Sender as seen by the listener (source address is not rewritten
    /// anywhere in the lab, so this is the probe's source).
    pub peer: SocketAddr,
    /// The local address/port it arrived on.
    pub local: SocketAddr,
}

/// TCP echo and UDP echo servers inside a namespace, served by a background
/// thread until dropped (stops within ~50 ms).
///
/// TCP: every accepted connection gets its bytes echoed back; closed with
/// RST when the peer closes or the listener stops. UDP: every datagram is
/// echoed to its sender *from the address it was sent to* (IP_PKTINFO), so
/// wildcard sockets answer correctly for every address in the namespace.
pub struct Listener {
    ns: String,
    stop: Arc<AtomicBool>,
    hits: Arc<Mutex<Vec<Hit>>>,
    thread: Option<JoinHandle<()>>,
}

struct Sockets {
    tcp: Vec<TcpListener>,
    udp: Vec<UdpSocket>,
}

impl Listener {
    /// TCP and UDP on every port in `ports`, on `0.0.0.0` and `::`
    /// (IPV6_V6ONLY).
    pub fn start(ns: &str, ports: &[u16]) -> Result<Listener, String> {
        Listener::start_on(
            ns,
            &[
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
            ports,
        )
    }

    /// TCP and UDP on every (ip, port) combination. IPv6 sockets are
    /// IPV6_V6ONLY.
    pub fn start_on(ns: &str, ips: &[IpAddr], ports: &[u16]) -> Result<Listener, String> {
        let ips = ips.to_vec();
        let ports = ports.to_vec();
        let sockets = in_netns(ns, move || open_sockets(&ips, &ports))??;
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let hits = Arc::clone(&hits);
            thread::Builder::new()
                .name(format!("listener-{ns}"))
                .spawn(move || serve(sockets, &stop, &hits))
                .map_err(|e| format!("spawn listener thread: {e}"))?
        };
        Ok(Listener {
            ns: ns.to_owned(),
            stop,
            hits,
            thread: Some(thread),
        })
    }

    /// Namespace the listener runs in.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Everything served so far, in order.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Forgets recorded hits.
    pub fn clear_hits(&self) {
        if let Ok(mut h) = self.hits.lock() {
            h.clear();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                eprintln!("warning: listener thread in {} panicked", self.ns);
            }
        }
    }
}

fn set_int_opt(fd: RawFd, level: c_int, name: c_int, value: c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const c_int).cast(),
            mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn open_sockets(ips: &[IpAddr], ports: &[u16]) -> Result<Sockets, String> {
    let mut out = Sockets {
        tcp: Vec::new(),
        udp: Vec::new(),
    };
    for &ip in ips {
        for &port in ports {
            let addr = SocketAddr::new(ip, port);
            let domain = Domain::for_address(addr);

            let tcp = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))
                .map_err(|e| format!("tcp socket for {addr}: {e}"))?;
            tcp.set_reuse_address(true)
                .map_err(|e| format!("SO_REUSEADDR on tcp {addr}: {e}"))?;
            if ip.is_ipv6() {
                tcp.set_only_v6(true)
                    .map_err(|e| format!("IPV6_V6ONLY on tcp {addr}: {e}"))?;
            }
            tcp.bind(&addr.into())
                .map_err(|e| format!("bind tcp {addr}: {e}"))?;
            tcp.listen(128)
                .map_err(|e| format!("listen tcp {addr}: {e}"))?;
            tcp.set_nonblocking(true)
                .map_err(|e| format!("nonblocking tcp {addr}: {e}"))?;
            out.tcp.push(tcp.into());

            let udp = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
                .map_err(|e| format!("udp socket for {addr}: {e}"))?;
            let fd = udp.as_raw_fd();
            if ip.is_ipv6() {
                udp.set_only_v6(true)
                    .map_err(|e| format!("IPV6_V6ONLY on udp {addr}: {e}"))?;
                set_int_opt(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
                    .map_err(|e| format!("IPV6_RECVPKTINFO on udp {addr}: {e}"))?;
            } else {
                set_int_opt(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
                    .map_err(|e| format!("IP_PKTINFO on udp {addr}: {e}"))?;
            }
            udp.bind(&addr.into())
                .map_err(|e| format!("bind udp {addr}: {e}"))?;
            udp.set_nonblocking(true)
                .map_err(|e| format!("nonblocking udp {addr}: {e}"))?;
            out.udp.push(udp.into());
        }
    }
    Ok(out)
}

/// An accepted connection and when it stops being served.
struct Conn {
    stream: TcpStream,
    deadline: Instant,
}

const CONN_IDLE: Duration = Duration::from_secs(10);

fn record(hits: &Mutex<Vec<Hit>>, hit: Hit) {
    if let Ok(mut h) = hits.lock() {
        h.push(hit);
    }
}

fn serve(sockets: Sockets, stop: &AtomicBool, hits: &Mutex<Vec<Hit>>) {
    let Sockets { tcp, udp } = sockets;
    let mut conns: Vec<Conn> = Vec::new();
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        let mut fds: Vec<libc::pollfd> = tcp
            .iter()
            .map(|l| l.as_raw_fd())
            .chain(udp.iter().map(|u| u.as_raw_fd()))
            .chain(conns.iter().map(|c| c.stream.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid, initialised array of its stated length.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            eprintln!("warning: listener poll failed: {e}");
            return;
        }
        // Connections accepted below are not in `fds` yet: not ready.
        let ready = |i: usize| fds.get(i).is_some_and(|p| p.revents != 0);

        for (i, l) in tcp.iter().enumerate() {
            if !ready(i) {
                continue;
            }
            while let Ok((stream, peer)) = l.accept() {
                let sref = SockRef::from(&stream);
                // RST on close: no TIME_WAIT on either side.
                let ok = sref.set_linger(Some(Duration::ZERO)).is_ok()
                    && stream.set_nonblocking(true).is_ok();
                if !ok {
                    continue;
                }
                if let Ok(local) = stream.local_addr() {
                    record(
                        hits,
                        Hit {
                            proto: Proto::Tcp,
                            peer,
                            local,
                        },
                    );
                }
                conns.push(Conn {
                    stream,
                    deadline: Instant::now() + CONN_IDLE,
                });
            }
        }

        for (j, u) in udp.iter().enumerate() {
            if !ready(tcp.len() + j) {
                continue;
            }
            while let Ok((len, peer, local_ip)) = recv_pktinfo(u, &mut buf) {
                let local_port = u.local_addr().map(|a| a.port()).unwrap_or(0);
                if let Some(ip) = local_ip {
                    record(
                        hits,
                        Hit {
                            proto: Proto::Udp,
                            peer,
                            local: SocketAddr::new(ip, local_port),
                        },
                    );
                }
                let _ = send_from(u, &buf[..len], peer, local_ip);
            }
        }

        let base = tcp.len() + udp.len();
        let now = Instant::now();
        let mut keep = vec![true; conns.len()];
        for (k, c) in conns.iter_mut().enumerate() {
            if now >= c.deadline {
                keep[k] = false;
                continue;
            }
            if !ready(base + k) {
                continue;
            }
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        keep[k] = false;
                        break;
                    }
                    Ok(n) => {
                        // Tiny payloads: the send buffer never fills.
                        if c.stream.write_all(&buf[..n]).is_err() {
                            keep[k] = false;
                            break;
                        }
                        c.deadline = now + CONN_IDLE;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        keep[k] = false;
                        break;
                    }
                }
            }
        }
        let mut k = 0;
        conns.retain(|_| {
            let r = keep[k];
            k += 1;
            r
        });
    }
}

/// Control-message buffer, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 128]);

/// `recvmsg` returning the sender and the local address the datagram was
/// sent to (from IP_PKTINFO / IPV6_PKTINFO).
fn recv_pktinfo(
    sock: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    // SAFETY: all-zero is a valid sockaddr_storage / msghdr.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = CmsgBuf([0; 128]);
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut storage as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len() as _;
    // SAFETY: every pointer in `msg` refers to a live buffer of the stated
    // length for the duration of the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled `storage` and set `msg_namelen`.
    let peer = unsafe { SockAddr::new(storage, msg.msg_namelen) }
        .as_socket()
        .ok_or_else(|| io::Error::other("recvmsg: sender is not an IP address"))?;
    let mut local = None;
    // SAFETY: CMSG_* walk the control buffer the kernel filled, bounded by
    // msg_controllen; payloads are read unaligned with their exact types.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_PKTINFO {
                let info: libc::in_pktinfo =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>());
                local = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    info.ipi_addr.s_addr,
                ))));
            } else if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_PKTINFO {
                let info: libc::in6_pktinfo =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>());
                local = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, peer, local))
}

/// `sendmsg` to `peer` with source address `local` (IP_PKTINFO /
/// IPV6_PKTINFO), so replies leave from the address the request came to.
fn send_from(
    sock: &UdpSocket,
    data: &[u8],
    peer: SocketAddr,
    local: Option<IpAddr>,
) -> io::Result<usize> {
    let dest = SockAddr::from(peer);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let mut cbuf = CmsgBuf([0; 128]);
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = dest.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = dest.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    // SAFETY: the control buffer is large enough for one in6_pktinfo
    // cmsg (CMSG_SPACE(20) = 40 bytes < 128) and aligned for cmsghdr.
    unsafe {
        match local {
            Some(IpAddr::V4(a)) => {
                let info = libc::in_pktinfo {
                    ipi_ifindex: 0,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(a).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                let size = mem::size_of::<libc::in_pktinfo>() as u32;
                msg.msg_control = cbuf.0.as_mut_ptr().cast();
                msg.msg_controllen = libc::CMSG_SPACE(size) as _;
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::IPPROTO_IP;
                (*c).cmsg_type = libc::IP_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>(), info);
            }
            Some(IpAddr::V6(a)) => {
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: a.octets(),
                    },
                    ipi6_ifindex: 0,
                };
                let size = mem::size_of::<libc::in6_pktinfo>() as u32;
                msg.msg_control = cbuf.0.as_mut_ptr().cast();
                msg.msg_controllen = libc::CMSG_SPACE(size) as _;
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::IPPROTO_IPV6;
                (*c).cmsg_type = libc::IPV6_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(), info);
            }
            None => {}
        }
    }
    // SAFETY: every pointer in `msg` refers to a live buffer of the stated
    // length for the duration of the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

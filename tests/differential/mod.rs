//! Differential test: the evaluator against the kernel.
//!
//! Seeded random policies over a small universe of addresses and ports (so rules
//! overlap), built with the run-time builder, rendered, loaded into a namespace; seeded
//! random packets sent one at a time. After each packet the kernel's per-rule packet
//! counters (`iptables-save -c`) say which rule, or which chain policy, decided it; that
//! must be the rule the evaluator names. A mismatch is shrunk to a minimal policy and
//! printed as a reproducer.
//!
//! The same policies and packets also run through the nft backend (`Format::Nft`, `table
//! inet vpsfw`), each in its own lab: there every nft rule carries a `counter`, read with
//! `nft -j list ruleset`, and [`vpsfw::nft::chain_rules`] maps the nft rule that counted
//! the packet back to the policy rule (and family) the evaluator must name. nft chain
//! policies have no counter; a test table (`inet vpsfwtest`) counts the probe packets
//! entering the hook before vpsfw's chain and leaving it accepted, so "no vpsfw rule
//! counted" is a packet decided by the chain policy, and its verdict is checked too.
//!
//! `VPSFW_DIFF_POLICIES` and `VPSFW_DIFF_PACKETS` (per policy) make a longer run;
//! `VPSFW_DIFF_SEED` picks another seed.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol as SockProto, SockAddr, Socket, Type};
use vpsfw::builder::{Builder, RuleBuilder};
use vpsfw::{
    Action, Chain, DecidedBy, Direction, Family, Packet, Policy, Protocol, State, Verdict,
};

use crate::support::netns::{in_netns, Lab};
use crate::support::nft::{self, Backend};

/// A small xorshift generator: reproducible from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const PEERS: &[&str] = &[
    "198.51.100.7",
    "198.51.100.9",
    "198.51.100.200",
    "203.0.113.5",
    "203.0.113.130",
    "192.0.2.2",
    "2001:db8:100::7",
    "2001:db8:100::9",
    "2001:db8:200::5",
    "2001:db8:300::1",
    "2001:db8::2",
];

const RULE_ADDRS: &[&str] = &[
    "198.51.100.7",
    "198.51.100.0/24",
    "198.51.100.0/28",
    "203.0.113.5",
    "203.0.113.0/25",
    "203.0.113.128/25",
    "2001:db8:100::7",
    "2001:db8:100::/48",
    "2001:db8:200::5",
    "2001:db8:200::/64",
    "h1",
    "n1",
    "s1",
    "any",
];

const RULE_PORTS: &[&str] = &[
    "22",
    "53",
    "80",
    "443",
    "1000:2000",
    "1024:",
    ":1023",
    "8080",
    "40000:40100",
];

/// Packet ports: the rules' single ports, both sides of every range boundary (`:1023`,
/// `1024:`, `1000:2000`, `40000:40100`), and ports no rule names.
const PACKET_SPORTS: &[u16] = &[53, 80, 1023, 1024, 1500, 40000, 40100];
const PACKET_DPORTS: &[u16] = &[22, 53, 80, 443, 999, 1000, 2000, 2001, 8080, 9999, 40101];

/// A generated policy: the parts, so a failing one can be shrunk.
#[derive(Clone)]
struct Case {
    input: Verdict,
    output: Verdict,
    rules: Vec<RuleBuilder>,
}

impl Case {
    fn build(&self) -> Policy {
        let mut b = Builder::new()
            .host("h1", &["198.51.100.7", "2001:db8:100::7"])
            .net("n1", &["203.0.113.0/25", "2001:db8:200::/64"])
            // A set with overlapping and adjacent elements of both families: ipset /
            // nft interval set in the kernel, binary search in the evaluator.
            .set(
                "s1",
                &[
                    "198.51.100.0/28",
                    "198.51.100.8/29",
                    "198.51.100.200",
                    "203.0.113.5",
                    "2001:db8:100::/120",
                    "2001:db8:300::1",
                ],
            )
            .policy(Chain::Input, self.input)
            .policy(Chain::Output, self.output)
            // Random rules shadow each other by design: that is what is being tested.
            .allow(&vpsfw::FindingKind::ALL)
            .group("gen");
        for r in &self.rules {
            b = b.rule(r.clone());
        }
        b.build()
            .unwrap_or_else(|e| panic!("generated policy does not build:\n{e}"))
    }
}

fn gen_ports(rng: &mut Rng) -> Vec<&'static str> {
    let mut list: Vec<&str> = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let p = *rng.pick(RULE_PORTS);
        if !list.contains(&p) {
            list.push(p);
        }
    }
    list
}

/// A random rule, and whether it has destination ports (so a sibling that differs only
/// in them can follow it: the renderers merge such neighbours).
fn gen_rule(rng: &mut Rng) -> (RuleBuilder, bool) {
    let action = match rng.below(100) {
        0..=34 => Action::Allow,
        35..=64 => Action::Drop,
        65..=84 => Action::Reject,
        _ => Action::Log,
    };
    let direction = if rng.chance(75) {
        Direction::In
    } else {
        Direction::Out
    };
    let mut r = RuleBuilder::new(action, direction);
    if action == Action::Log {
        r = r.log_prefix("gen");
    }
    let proto = match rng.below(10) {
        0..=3 => Some(Protocol::Tcp),
        4..=6 => Some(Protocol::Udp),
        7 => Some(if rng.chance(50) {
            Protocol::Icmp
        } else {
            Protocol::Icmpv6
        }),
        _ => None,
    };
    if let Some(p) = proto {
        r = r.proto(p);
    }
    // The peer's address: the source of an inbound rule, the destination of an outbound,
    // of a family the protocol allows.
    // Mostly narrow rules, so packets reach deep into the chain and some fall through to
    // the policy; a rare catch-all stays possible.
    if rng.chance(90) {
        let without_any = RULE_ADDRS.len() - usize::from(rng.chance(90));
        let a = *rng.pick(&RULE_ADDRS[..without_any]);
        let v6_only = a.contains(':');
        let v4_only = !v6_only && !matches!(a, "h1" | "n1" | "s1" | "any");
        let clash = match proto.and_then(Protocol::family) {
            Some(Family::V4) => v6_only,
            Some(Family::V6) => v4_only,
            None => false,
        };
        if !clash {
            r = if direction == Direction::In {
                r.from(a)
            } else {
                r.to(a)
            };
        }
    }
    let mut dports = false;
    if proto.is_some_and(|p| p.has_ports()) {
        if rng.chance(80) {
            r = r.to_ports(&gen_ports(rng));
            dports = true;
        }
        if rng.chance(30) {
            r = r.from_ports(&gen_ports(rng));
        }
    }
    if rng.chance(40) {
        let states: &[&[State]] = &[
            &[State::New],
            &[State::New, State::Established],
            &[State::Established, State::Related],
            &[State::Invalid],
        ];
        r = r.state(states[rng.below(states.len())]);
    }
    if rng.chance(10) {
        const IFACES: &[&str] = &["eth0", "lo", "eth+", "veth+", "+"];
        r = r.on(IFACES[rng.below(IFACES.len())]);
    }
    (r, dports)
}

fn gen_case(rng: &mut Rng, rules: usize) -> Case {
    let verdict = |rng: &mut Rng| {
        if rng.chance(50) {
            Verdict::Allow
        } else {
            Verdict::Drop
        }
    };
    Case {
        input: verdict(rng),
        output: verdict(rng),
        rules: {
            // A quarter of the rules with ports get a neighbour that differs only in its
            // ports: rendered as one line (or nft rule) with both rules as origins.
            let mut out = Vec::with_capacity(rules);
            while out.len() < rules {
                let (r, dports) = gen_rule(rng);
                out.push(r.clone());
                if dports && out.len() < rules && rng.chance(25) {
                    out.push(r.to_ports(&gen_ports(rng)));
                }
            }
            out
        },
    }
}

/// One probe packet: direction, protocol and the 4-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Probe {
    direction: Direction,
    tcp: bool,
    peer: SocketAddr,
    vps: SocketAddr,
}

impl Probe {
    fn packet(&self) -> Packet {
        let (src, dst) = match self.direction {
            Direction::Out => (self.vps, self.peer),
            _ => (self.peer, self.vps),
        };
        Packet {
            direction: self.direction,
            iface: "eth0".into(),
            proto: if self.tcp {
                Protocol::Tcp
            } else {
                Protocol::Udp
            },
            src: src.ip(),
            dst: dst.ip(),
            sport: Some(src.port()),
            dport: Some(dst.port()),
            icmp_type: None,
            state: State::New,
        }
    }

    fn text(&self) -> String {
        let p = self.packet();
        let show = |ip: IpAddr, port: u16| SocketAddr::new(ip, port).to_string();
        format!(
            "{} {} from {} to {}",
            self.direction,
            p.proto,
            show(p.src, p.sport.unwrap_or(0)),
            show(p.dst, p.dport.unwrap_or(0))
        )
    }
}

fn gen_probe(rng: &mut Rng, used: &mut HashSet<Probe>) -> Option<Probe> {
    for _ in 0..50 {
        let peer_ip: IpAddr = rng.pick(PEERS).parse().ok()?;
        let vps_ip: IpAddr = if peer_ip.is_ipv4() {
            "192.0.2.1"
        } else {
            "2001:db8::1"
        }
        .parse()
        .ok()?;
        let direction = if rng.chance(75) {
            Direction::In
        } else {
            Direction::Out
        };
        let (sport, dport) = (*rng.pick(PACKET_SPORTS), *rng.pick(PACKET_DPORTS));
        let (peer_port, vps_port) = match direction {
            Direction::Out => (dport, sport),
            _ => (sport, dport),
        };
        let p = Probe {
            direction,
            tcp: rng.chance(50),
            peer: SocketAddr::new(peer_ip, peer_port),
            vps: SocketAddr::new(vps_ip, vps_port),
        };
        // A 4-tuple seen before has a conntrack entry: its packet would not be NEW.
        if used.insert(p) {
            return Some(p);
        }
    }
    None
}

/// Sends the first packet of the probe's flow from the right namespace.
fn send(lab: &Lab, p: &Probe) -> Result<(), String> {
    let (ns, from, to) = match p.direction {
        Direction::Out => (lab.vps(), p.vps, p.peer),
        _ => (lab.net(), p.peer, p.vps),
    };
    let tcp = p.tcp;
    in_netns(ns, move || -> Result<(), String> {
        let domain = if from.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let (ty, proto) = if tcp {
            (Type::STREAM, SockProto::TCP)
        } else {
            (Type::DGRAM, SockProto::UDP)
        };
        let s = Socket::new(domain, ty, Some(proto)).map_err(|e| format!("socket: {e}"))?;
        s.set_reuse_address(true).map_err(|e| e.to_string())?;
        s.bind(&SockAddr::from(from))
            .map_err(|e| format!("bind {from}: {e}"))?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        if tcp {
            // Sends the SYN; the far side never completes the handshake (see `prepare`).
            let _ = s.connect(&SockAddr::from(to));
        } else {
            let _ = s.send_to(b"x", &SockAddr::from(to));
        }
        std::thread::sleep(Duration::from_millis(15));
        Ok(())
    })?
}

/// Per chain: the policy counter and each rule's counter, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counters {
    input: (u64, Vec<u64>),
    output: (u64, Vec<u64>),
}

fn counters(lab: &Lab, family: Family) -> Result<Counters, String> {
    let tool = match family {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    };
    let out = lab.exec(lab.vps(), &[tool, "-c", "-t", "filter"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut c = Counters::default();
    let packets = |s: &str| -> u64 {
        s.trim_start_matches('[')
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some(":INPUT"), _, Some(cnt), _) => c.input.0 = packets(cnt),
            (Some(":OUTPUT"), _, Some(cnt), _) => c.output.0 = packets(cnt),
            (Some(cnt), Some("-A"), Some("INPUT"), _) => c.input.1.push(packets(cnt)),
            (Some(cnt), Some("-A"), Some("OUTPUT"), _) => c.output.1.push(packets(cnt)),
            _ => {}
        }
    }
    Ok(c)
}

/// What decided a packet: the origins (policy rule indexes) of the rendered line whose
/// counter grew, `None` for the policy.
type Decider = Option<Vec<usize>>;

/// The kernel's counters for one packet: every terminal rule (or the policy) whose
/// counter grew, with how much, and the origins of the `log` rules that counted. The
/// kernel holds [`vpsfw::ruleset::rendered_lines`]: a line may stand for several policy
/// rules (merged neighbours), so lines are named by their origins, not by position.
struct KernelCount {
    decided: Vec<(Decider, u64)>,
    logged: Vec<Vec<usize>>,
}

fn kernel_count(
    policy: &Policy,
    family: Family,
    chain: Chain,
    before: &(u64, Vec<u64>),
    after: &(u64, Vec<u64>),
) -> Result<KernelCount, String> {
    let lines = vpsfw::ruleset::rendered_lines(policy, family, chain);
    if lines.len() != after.1.len() || before.1.len() != after.1.len() {
        return Err(format!(
            "the kernel has {} rules in {chain:?}, the policy {}",
            after.1.len(),
            lines.len()
        ));
    }
    let mut decided = Vec::new();
    let mut logged = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        // Probes are tcp/udp: ICMP(v6) rules count only neighbour discovery noise.
        if matches!(
            line.line.rule.proto(),
            Some(Protocol::Icmp | Protocol::Icmpv6)
        ) {
            continue;
        }
        let grew = after.1[i] - before.1[i].min(after.1[i]);
        if grew > 0 {
            if line.line.rule.action() == Action::Log {
                logged.push(line.origins.clone());
            } else {
                decided.push((Some(line.origins.clone()), grew));
            }
        }
    }
    if after.0 > before.0 {
        decided.push((None, after.0 - before.0));
    }
    Ok(KernelCount { decided, logged })
}

/// Whether the kernel's counters show the evaluator's decision: one packet was sent, so
/// exactly one counter (a rule's or the policy's) grows, by one; the line that counted
/// stands for the rule the evaluator names (a merged line for any of its origins: the one
/// the evaluator says decided), and the `log` lines that counted are the evaluator's.
fn agrees(policy: &Policy, p: &Probe, k: &KernelCount) -> bool {
    let d = policy.evaluate(&p.packet());
    let by = match d.by {
        DecidedBy::Rule { line, .. } => Some(line.index),
        DecidedBy::Policy { .. } => None,
    };
    let eval_logged: Vec<usize> = d.logged.iter().map(|(line, _)| line.index).collect();
    let kernel_logged: Vec<usize> = k
        .logged
        .iter()
        .map(|o| match o.as_slice() {
            [one] => *one,
            // Log rules never merge: a log line with several origins is a mismatch.
            _ => usize::MAX,
        })
        .collect();
    let decided_ok = match k.decided.as_slice() {
        [(None, 1)] => by.is_none(),
        [(Some(origins), 1)] => by.is_some_and(|r| origins.contains(&r)),
        _ => false,
    };
    decided_ok && kernel_logged == eval_logged
}

/// The test table in the vps for the nft backend: drops what a `reject` sends to the host
/// itself over `lo` (priority raw, before vpsfw sees it), and counts the tcp/udp packets on
/// eth0 entering each hook before vpsfw's chains (`<chain>_before`) and accepted by them
/// (`<chain>_after`).
const NFT_TEST_TABLE: &str = "\
table inet vpsfwtest {
	chain lo_out {
		type filter hook output priority raw; policy accept;
		oifname \"lo\" drop
	}
	chain input_before {
		type filter hook input priority filter - 10; policy accept;
		iifname \"eth0\" meta l4proto { tcp, udp } counter
	}
	chain input_after {
		type filter hook input priority filter + 10; policy accept;
		iifname \"eth0\" meta l4proto { tcp, udp } counter
	}
	chain output_before {
		type filter hook output priority filter - 10; policy accept;
		oifname \"eth0\" meta l4proto { tcp, udp } counter
	}
	chain output_after {
		type filter hook output priority filter + 10; policy accept;
		oifname \"eth0\" meta l4proto { tcp, udp } counter
	}
}
";

/// Namespace-level plumbing so each probe sends exactly one packet into the chain under
/// test: the peer side never answers (its INPUT drops everything, and it sends no TCP
/// but SYNs and no ICMP at all); neighbours are pinned so no neighbour discovery runs; and
/// in the vps, the `raw` table (which the policy does not touch; `inet vpsfwtest` at
/// priority raw for nft) drops what a `reject` sends to the host itself over `lo`, a
/// second packet that would otherwise count in the filter table.
fn prepare(lab: &Lab, backend: Backend) -> Result<(), String> {
    for (tool, icmp) in [("iptables", "icmp"), ("ip6tables", "ipv6-icmp")] {
        if backend == Backend::Iptables {
            lab.exec(
                lab.vps(),
                &[tool, "-t", "raw", "-A", "OUTPUT", "-o", "lo", "-j", "DROP"],
            )?;
        }
        lab.exec(lab.net(), &[tool, "-P", "INPUT", "DROP"])?;
        lab.exec(
            lab.net(),
            &[
                tool, "-A", "OUTPUT", "-p", "tcp", "!", "--syn", "-j", "DROP",
            ],
        )?;
        lab.exec(lab.net(), &[tool, "-A", "OUTPUT", "-p", icmp, "-j", "DROP"])?;
    }
    if backend == Backend::Nft {
        nft::load(lab, lab.vps(), NFT_TEST_TABLE)?;
    }
    let mac = |ns: &str| -> Result<String, String> {
        let out = lab.exec(ns, &["cat", "/sys/class/net/eth0/address"])?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let (vps_mac, net_mac) = (mac(lab.vps())?, mac(lab.net())?);
    for peer in PEERS {
        lab.exec(
            lab.vps(),
            &[
                "ip",
                "neigh",
                "replace",
                peer,
                "lladdr",
                &net_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )?;
    }
    for vps in ["192.0.2.1", "2001:db8::1"] {
        lab.exec(
            lab.net(),
            &[
                "ip",
                "neigh",
                "replace",
                vps,
                "lladdr",
                &vps_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        )?;
    }
    Ok(())
}

/// A mismatch: the probe and what kernel and evaluator said.
type Mismatch = Option<(Probe, String)>;

/// Loads `policy` into a fresh lab through `backend` and compares kernel and evaluator
/// on `probes`; returns the first mismatch as text. A ruleset the kernel refuses is a
/// mismatch on the first probe, so the shrinker can narrow it down too.
fn compare(policy: &Policy, probes: &[Probe], backend: Backend) -> Result<Mismatch, String> {
    let peers: Vec<IpAddr> = PEERS.iter().filter_map(|p| p.parse().ok()).collect();
    let lab = Lab::try_new(&peers)?;
    prepare(&lab, backend)?;
    let refused = |e: String| Ok(probes.first().map(|p| (*p, e)));
    match backend {
        Backend::Iptables => {
            let v4 = vpsfw::render(policy, vpsfw::Format::Restore);
            let v6 = vpsfw::render(policy, vpsfw::Format::Restore6);
            // The restore files match the policy's sets by name: load them first.
            if !policy.sets().is_empty() {
                let sets = vpsfw::render(policy, vpsfw::Format::Ipset);
                lab.exec_stdin(lab.vps(), &["ipset", "-exist", "restore"], Some(&sets))?;
            }
            if let Err(e) = lab.restore_test(lab.vps(), &v4, &v6) {
                return refused(format!("the kernel refused the restore files: {e}"));
            }
            lab.load_restore(lab.vps(), &v4, &v6)?;
            compare_iptables(&lab, policy, probes)
        }
        Backend::Nft => {
            let text = vpsfw::render(policy, vpsfw::Format::Nft);
            if let Err(e) = nft::check(&lab, lab.vps(), &text) {
                return refused(format!("`nft -c` refused the nft file: {e}"));
            }
            nft::load(&lab, lab.vps(), &text)?;
            compare_nft(&lab, policy, probes)
        }
    }
}

fn compare_iptables(lab: &Lab, policy: &Policy, probes: &[Probe]) -> Result<Mismatch, String> {
    for p in probes {
        let family = if p.peer.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        };
        let chain = p.direction.chain();
        let before = counters(lab, family)?;
        send(lab, p)?;
        let after = counters(lab, family)?;
        let (b, a) = match chain {
            Chain::Output => (&before.output, &after.output),
            _ => (&before.input, &after.input),
        };
        let kernel = kernel_count(policy, family, chain, b, a)?;
        if !agrees(policy, p, &kernel) {
            let d = policy.evaluate(&p.packet());
            let logged: Vec<usize> = d.logged.iter().map(|(line, _)| line.index).collect();
            return Ok(Some((
                *p,
                format!(
                    "kernel counted (origins of the line, as policy rule indexes, or None for the policy; packets) {:?}, logged {:?}; evaluator: {d} (logged rules {logged:?})",
                    kernel.decided, kernel.logged
                ),
            )));
        }
    }
    Ok(None)
}

// --- nft ----------------------------------------------------------------------------

/// An nft rule of a chain: its position (1-based) in [`vpsfw::nft::chain_rules`]. A
/// merged nft rule stands for several policy rules (its origins): the evaluator's rule
/// is found among them, for the family of its line.
type NftRule = usize;

/// The kernel's nft counters for one packet, like [`KernelCount`]: the terminal rules
/// (or `None`, the chain policy) that counted it, the `log` rules that counted it, and
/// how many probe packets entered the hook and left vpsfw's chain accepted.
struct NftCount {
    decided: Vec<(Option<NftRule>, u64)>,
    logged: Vec<NftRule>,
    entered: u64,
    accepted: u64,
}

fn nft_chain_name(chain: Chain) -> &'static str {
    match chain {
        Chain::Input => "input",
        Chain::Forward => "forward",
        Chain::Output => "output",
    }
}

fn nft_count(
    policy: &Policy,
    chain: Chain,
    before: &nft::Counters,
    after: &nft::Counters,
) -> Result<NftCount, String> {
    let name = nft_chain_name(chain);
    let rules = vpsfw::nft::chain_rules(policy, chain);
    let (b, a) = (
        before.chain(vpsfw::nft::TABLE, name),
        after.chain(vpsfw::nft::TABLE, name),
    );
    if a.len() != rules.len() || b.len() != a.len() {
        return Err(format!(
            "the kernel has {} rules in chain {name} of table inet vpsfw, chain_rules lists {}",
            a.len(),
            rules.len()
        ));
    }
    let mut decided = Vec::new();
    let mut logged = Vec::new();
    let mut by_rules = 0;
    for (i, nr) in rules.iter().enumerate() {
        let rule = nr.rule;
        let (Some(then), Some(now)) = (b[i], a[i]) else {
            return Err(format!(
                "nft rule {} of chain {name} has no counter: {rule}",
                i + 1
            ));
        };
        // Probes are tcp/udp: ICMP(v6) rules count only neighbour discovery noise.
        if matches!(rule.proto(), Some(Protocol::Icmp | Protocol::Icmpv6)) {
            continue;
        }
        let grew = now.saturating_sub(then);
        if grew > 0 {
            if rule.action() == Action::Log {
                logged.push(i + 1);
            } else {
                decided.push((Some(i + 1), grew));
                by_rules += grew;
            }
        }
    }
    let grew = |chain: &str| {
        after
            .total(TEST_TABLE, chain)
            .saturating_sub(before.total(TEST_TABLE, chain))
    };
    let entered = grew(&format!("{name}_before"));
    let accepted = grew(&format!("{name}_after"));
    // A packet that entered and no rule counted was decided by the chain policy.
    if entered > by_rules {
        decided.push((None, entered - by_rules));
    }
    Ok(NftCount {
        decided,
        logged,
        entered,
        accepted,
    })
}

const TEST_TABLE: &str = "vpsfwtest";

/// The nft rule the evaluator's line is rendered as: the one standing for the same
/// policy rule (among its origins), written for the line's family or for both.
/// `usize::MAX` when there is none (a mismatch).
fn nft_rule_of(rules: &[vpsfw::nft::NftRule<'_>], index: usize, family: Family) -> NftRule {
    rules
        .iter()
        .position(|r| r.origins.contains(&index) && r.family.is_none_or(|f| f == family))
        .map_or(usize::MAX, |i| i + 1)
}

/// `None` when the nft counters show the evaluator's decision: exactly one probe packet
/// entered the hook, exactly one counter (a rule's, or by elimination the policy's) took
/// it, the `log` rules that counted are the evaluator's, and it left vpsfw's chain
/// accepted exactly when the evaluator accepts it. Otherwise the disagreement as text.
fn nft_disagreement(policy: &Policy, p: &Probe, k: &NftCount) -> Option<String> {
    let packet = p.packet();
    let d = policy.evaluate(&packet);
    let rules = vpsfw::nft::chain_rules(policy, packet.direction.chain());
    let by = match d.by {
        DecidedBy::Rule { line, .. } => Some(nft_rule_of(&rules, line.index, line.family)),
        DecidedBy::Policy { .. } => None,
    };
    let mut eval_logged: Vec<NftRule> = Vec::new();
    for (line, _) in &d.logged {
        let r = nft_rule_of(&rules, line.index, line.family);
        if !eval_logged.contains(&r) {
            eval_logged.push(r);
        }
    }
    let accepted = u64::from(d.outcome == vpsfw::Outcome::Accept);
    if k.entered == 1 && k.decided == [(by, 1)] && k.logged == eval_logged && k.accepted == accepted
    {
        return None;
    }
    Some(format!(
        "kernel (nft) counted (nft rule position in chain_rules, or None for the chain \
         policy; packets) {:?}, logged {:?}, {} packet(s) entered the hook, {} left vpsfw's \
         chain accepted; evaluator: {d} (rule {by:?}, logged {eval_logged:?})",
        k.decided, k.logged, k.entered, k.accepted
    ))
}

/// One `nft -j list ruleset` per probe: the counters after one probe are the counters
/// before the next. The plumbing of [`prepare`] leaves nothing else that could count in
/// between (the peer only ever sends probes, neighbours are pinned, the vps's own
/// neighbour discovery and MLD are ICMPv6, and what the vps sends in reply to a probe is
/// sent while the probe is being handled).
fn compare_nft(lab: &Lab, policy: &Policy, probes: &[Probe]) -> Result<Mismatch, String> {
    let mut before = nft::counters(lab, lab.vps())?;
    for p in probes {
        send(lab, p)?;
        let after = nft::counters(lab, lab.vps())?;
        let k = nft_count(policy, p.direction.chain(), &before, &after)?;
        if let Some(why) = nft_disagreement(policy, p, &k) {
            return Ok(Some((*p, why)));
        }
        before = after;
    }
    Ok(None)
}

/// Drops rules, halves first, then smaller chunks down to single rules, while the
/// mismatch stays; then prints the reproducer.
fn shrink(case: &Case, probe: Probe, backend: Backend) -> String {
    let mut case = case.clone();
    let mut chunk = case.rules.len().div_ceil(2);
    while chunk >= 1 {
        let mut start = 0;
        while start < case.rules.len() {
            let mut smaller = case.clone();
            let end = (start + chunk).min(smaller.rules.len());
            smaller.rules.drain(start..end);
            if let Ok(Some(_)) = compare(&smaller.build(), &[probe], backend) {
                case = smaller;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 {
            break;
        }
        chunk = chunk.div_ceil(2);
    }
    let policy = case.build();
    let why = match compare(&policy, &[probe], backend) {
        Ok(Some((_, w))) => w,
        Ok(None) => "(the minimal policy no longer disagrees on its own)".to_owned(),
        Err(e) => format!("(rerunning the minimal policy failed: {e})"),
    };
    let mut text = format!(
        "minimal reproducer ({backend:?} backend):\n  policy input {}; policy output {};\n",
        case.input, case.output
    );
    for r in policy
        .rules()
        .iter()
        .filter(|r| r.line().is_none() && r.group().is_some_and(|g| g.as_str() == "gen"))
    {
        text.push_str(&format!("  {r}\n"));
    }
    text.push_str(&format!("  packet: {}\n  {why}\n", probe.text()));
    if backend == Backend::Nft {
        text.push_str(&format!(
            "the nft file of the minimal policy:\n{}",
            vpsfw::render(&policy, vpsfw::Format::Nft)
        ));
    }
    text
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One trial: policy number `index` of the seeded series, loaded through `backend`.
pub fn run_one(index: usize, backend: Backend) -> Result<String, String> {
    let seed = env_number("VPSFW_DIFF_SEED", 0x5eed_f00d) as u64;
    let packets = env_number("VPSFW_DIFF_PACKETS", 60);
    let mut rng = Rng(seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let rules = 150 + rng.below(200);
    let case = gen_case(&mut rng, rules);
    let policy = case.build();
    let mut used = HashSet::new();
    let probes: Vec<Probe> = (0..packets)
        .filter_map(|_| gen_probe(&mut rng, &mut used))
        .collect();
    match compare(&policy, &probes, backend)? {
        None => {
            let (mut by_rule, mut outcomes) = (0, [0; 3]);
            for p in &probes {
                let d = policy.evaluate(&p.packet());
                by_rule += usize::from(matches!(d.by, DecidedBy::Rule { .. }));
                outcomes[d.outcome as usize] += 1;
            }
            let through = match backend {
                Backend::Iptables => String::new(),
                Backend::Nft => format!(
                    " through nft ({} nft rules)",
                    vpsfw::nft::rule_count(&policy)
                ),
            };
            Ok(format!(
                "policy {index}: {rules} rules, {} packets agree{through} ({by_rule} decided by a rule; accept/drop/reject {outcomes:?})",
                probes.len()
            ))
        }
        Some((probe, why)) => Err(format!(
            "policy {index} ({backend:?}): {why}\n{}",
            shrink(&case, probe, backend)
        )),
    }
}

/// How many policies the run covers.
pub fn policy_count() -> usize {
    env_number("VPSFW_DIFF_POLICIES", 20)
}

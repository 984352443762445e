//! Kernel tests: load firewall rules into a throwaway network namespace and
//! send real packets through them.
//!
//! Needs root (network namespaces, iptables and nft inside them). Without it every
//! trial is reported as *ignored* (never passed) and a banner explains why;
//! with `CI=true` in the environment, being unable to run them is an error.
//!
//! Trials: `harness::*` check the namespace lab itself; `roles::<role>::*`
//! are the acceptance test of the article's three roles (`examples/`, via
//! `tests/roles/`): `matrix` loads the restore files and runs real probes
//! written from the article's intent, each also checked against the offline
//! evaluator; `sh_twice` runs the sh script twice; `commands` compares the
//! one-command-per-rule output with the restore files; `matrix_nft` and
//! `nft_sh_twice` do the same through the nft backend (`table inet vpsfw`). See
//! `support/roles_matrix.rs`; `VPSFW_SHOW_MATRIX=1` prints every matrix.
//! `differential::*` holds the evaluator to the kernel's per-rule counters on random
//! policies, through iptables and through nft; see `differential/mod.rs`.
//!
//! Nothing here touches the host's network namespace: rules are loaded
//! with `ip netns exec <lab namespace> ...` and packets are sent by threads
//! that entered a lab namespace with setns(2).

#[cfg(target_os = "linux")]
mod roles;

#[cfg(target_os = "linux")]
mod differential;
#[cfg(target_os = "linux")]
mod support;

use libtest_mimic::{Arguments, Failed, Trial};

/// A trial's body.
type TestFn = Box<dyn FnOnce() -> Result<(), Failed> + Send>;

fn is_ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

fn main() {
    let args = Arguments::from_args();
    #[cfg(target_os = "linux")]
    let (available, tests) = (support::netns::kernel_tests_available(), linux::tests());
    #[cfg(not(target_os = "linux"))]
    let (available, tests): (Result<(), String>, Vec<(String, TestFn)>) = (
        Err("kernel tests need Linux network namespaces".to_owned()),
        Vec::new(),
    );

    let skip = match &available {
        Ok(()) => {
            #[cfg(target_os = "linux")]
            for ns in support::netns::sweep_stale_namespaces() {
                eprintln!("kernel tests: deleted stale namespace {ns} left by a dead test run");
            }
            false
        }
        Err(reason) => {
            let line = "=".repeat(78);
            eprintln!("{line}\nKERNEL TESTS SKIPPED: {reason}; run as root\n{line}");
            if is_ci() {
                eprintln!("CI=true: kernel tests must run in CI; failing.");
                std::process::exit(2);
            }
            true
        }
    };

    #[cfg(target_os = "linux")]
    linux::quiet_expected_panics();

    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            let bench = name.starts_with("bench::");
            Trial::test(name, f).with_ignored_flag(skip || bench)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

#[cfg(target_os = "linux")]
mod linux {
    use std::cell::Cell;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::panic::{self, AssertUnwindSafe};
    use std::sync::Mutex;
    use std::time::Instant;

    use libtest_mimic::Failed;

    use crate::support::nft::Backend;
    use crate::support::roles_matrix;
    use crate::TestFn;

    use crate::support::netns::{
        list_netns, run_probes, tcp_connect, udp_exchange, Hit, Lab, Listener, Outcome, Probe,
        Proto, NET_V4, NET_V6, PROBE_TIMEOUT, VPS_V4, VPS_V6,
    };

    type Test = fn() -> Result<(), Failed>;

    thread_local! {
        static EXPECTING_PANIC: Cell<bool> = const { Cell::new(false) };
    }

    /// Wraps the panic hook so panics provoked on purpose through
    /// [`expect_panic`] print one line instead of a message and backtrace.
    pub fn quiet_expected_panics() {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if EXPECTING_PANIC.with(Cell::get) {
                let payload = info.payload();
                let msg = payload
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("?");
                eprintln!("(expected panic: {msg})");
            } else {
                default(info);
            }
        }));
    }

    /// Runs `f`, which must panic; `Err` if it returns normally.
    fn expect_panic<R>(what: &str, f: impl FnOnce() -> R) -> Result<(), Failed> {
        EXPECTING_PANIC.with(|e| e.set(true));
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        EXPECTING_PANIC.with(|e| e.set(false));
        match result {
            Err(_) => Ok(()),
            Ok(_) => Err(format!("expected a panic: {what}").into()),
        }
    }

    /// Every trial: the harness self-tests, the sh-safety checks, the differential
    /// policies (`differential::policy_NN` through iptables, `differential::nft_policy_NN`
    /// through nft), then per role `roles::<role>::matrix`, `sh_twice`, `commands`,
    /// `matrix_nft` and `nft_sh_twice`.
    pub fn tests() -> Vec<(String, TestFn)> {
        let mut all: Vec<(String, TestFn)> = harness_tests()
            .into_iter()
            .map(|(name, f)| (name.to_owned(), Box::new(f) as TestFn))
            .collect();
        type Check = fn(&str, &vpsfw::Policy) -> Result<(), String>;
        let checks: [(&str, Check); 5] = [
            ("matrix", roles_matrix::matrix),
            ("sh_twice", roles_matrix::sh_twice),
            ("commands", roles_matrix::commands),
            ("matrix_nft", roles_matrix::matrix_nft),
            ("nft_sh_twice", roles_matrix::nft_sh_twice),
        ];
        all.push((
            "harness::nft_counter_parser".to_owned(),
            Box::new(|| crate::support::nft::parser_self_test().map_err(Failed::from)),
        ));
        all.push((
            "golden::restore_files_parse".to_owned(),
            Box::new(|| crate::support::sh_safety::golden_files_parse().map_err(Failed::from)),
        ));
        let web = crate::roles::web_server::policy();
        let web2 = web.clone();
        all.push((
            "sh::refused_ruleset_changes_nothing".to_owned(),
            Box::new(move || {
                crate::support::sh_safety::refused_ruleset_changes_nothing(&web)
                    .map_err(Failed::from)
            }),
        ));
        all.push((
            "sh::failed_ipv6_load_restores_ipv4".to_owned(),
            Box::new(move || {
                crate::support::sh_safety::failed_ipv6_load_restores_ipv4(&web2)
                    .map_err(Failed::from)
            }),
        ));
        let (web3, web4) = (
            crate::roles::web_server::policy(),
            crate::roles::web_server::policy(),
        );
        // Benchmarks: ignored unless asked for (`-- --ignored bench`).
        all.push((
            "bench::sets_rules_vs_set".to_owned(),
            Box::new(|| crate::support::sets_kernel::bench_rules_vs_set().map_err(Failed::from)),
        ));
        for (backend, nft) in [("iptables", false), ("nft", true)] {
            all.push((
                format!("sets::{backend}::ten_thousand_networks"),
                Box::new(move || crate::support::sets_kernel::big_set(nft).map_err(Failed::from)),
            ));
            all.push((
                format!("sets::{backend}::reload_changes_contents"),
                Box::new(move || {
                    crate::support::sets_kernel::set_reload(nft).map_err(Failed::from)
                }),
            ));
            all.push((
                format!("merge::{backend}::ports_merged"),
                Box::new(move || {
                    crate::support::merge_kernel::ports_merged(nft).map_err(Failed::from)
                }),
            ));
            all.push((
                format!("merge::{backend}::pair_set"),
                Box::new(move || crate::support::merge_kernel::pair_set(nft).map_err(Failed::from)),
            ));
            all.push((
                format!("merge::{backend}::apply_then_diff_unchanged"),
                Box::new(move || {
                    crate::support::merge_kernel::apply_then_diff_unchanged(nft)
                        .map_err(Failed::from)
                }),
            ));
            for &(preset, trial) in crate::support::harden_kernel::TRIALS {
                all.push((
                    format!("harden::{backend}::{preset}"),
                    Box::new(move || trial(nft).map_err(Failed::from)),
                ));
            }
        }
        for layout in [vpsfw::Layout::Table, vpsfw::Layout::Chains] {
            all.push((
                format!("merge::iptables::edited_run_leaves_no_stale_set_{layout:?}")
                    .to_lowercase(),
                Box::new(move || {
                    crate::support::merge_kernel::edited_run_leaves_no_stale_set(layout)
                        .map_err(Failed::from)
                }),
            ));
        }
        all.push((
            "coexist::iptables_own_chains_keep_other_tools_rules".to_owned(),
            Box::new(move || {
                crate::support::coexist::iptables_chains_survive(&web3).map_err(Failed::from)
            }),
        ));
        all.push((
            "coexist::nft_table_keeps_other_tables".to_owned(),
            Box::new(move || {
                crate::support::coexist::nft_table_survives(&web4).map_err(Failed::from)
            }),
        ));
        for (prefix, backend) in [("policy", Backend::Iptables), ("nft_policy", Backend::Nft)] {
            for index in 0..crate::differential::policy_count() {
                all.push((
                    format!("differential::{prefix}_{index:02}"),
                    Box::new(move || {
                        let summary = crate::differential::run_one(index, backend)?;
                        eprintln!("{summary}");
                        Ok(())
                    }),
                ));
            }
        }
        // The example binaries' --diff / --apply / --confirm / --persist, run as users run
        // them (see support/apply_kernel.rs).
        for (name, trial) in crate::support::apply_kernel::trials() {
            all.push((
                format!("apply::{name}"),
                Box::new(move || trial().map_err(Failed::from)),
            ));
        }
        for (role, policy) in crate::roles::all() {
            for (what, check) in checks {
                let policy = policy.clone();
                all.push((
                    format!("roles::{role}::{what}"),
                    Box::new(move || check(role, &policy).map_err(Failed::from)),
                ));
            }
        }
        all
    }

    fn harness_tests() -> Vec<(&'static str, Test)> {
        vec![
            (
                "harness::no_rules_tcp_udp_both_families",
                no_rules_tcp_udp_both_families,
            ),
            (
                "harness::same_source_port_reusable",
                same_source_port_reusable,
            ),
            ("harness::hand_written_ruleset", hand_written_ruleset),
            (
                "harness::ipv6_drop_policy_without_nd_breaks_ipv6",
                ipv6_without_nd,
            ),
            (
                "harness::output_drop_reports_timed_out",
                output_drop_reports_timed_out,
            ),
            (
                "harness::icmp_errors_not_rate_limited",
                icmp_errors_not_rate_limited,
            ),
            (
                "harness::lab_cleanup_on_drop_and_panic",
                lab_cleanup_on_drop_and_panic,
            ),
            ("harness::loopback_inside_vps", loopback_inside_vps),
            (
                "harness::probe_errors_are_not_verdicts",
                probe_errors_are_not_verdicts,
            ),
            ("harness::namespace_config", namespace_config),
        ]
    }

    const P_198_7: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
    const P_203_99: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 99));
    const P_203_130: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 130));
    const P6_100_7: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 7));
    const P6_100_99: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0x99));

    const ALL_PEERS: &[IpAddr] = &[P_198_7, P_203_99, P_203_130, P6_100_7, P6_100_99];

    fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
        SocketAddr::new(ip.into(), port)
    }

    use Outcome::{Connected, Refused, TimedOut};

    /// Runs all probes in parallel and fails with a table of every
    /// mismatch.
    fn expect_all(cases: &[(Probe, Outcome)]) -> Result<(), Failed> {
        let probes: Vec<Probe> = cases.iter().map(|(p, _)| p.clone()).collect();
        let got = run_probes(&probes);
        let mut bad = Vec::new();
        for ((probe, want), got) in cases.iter().zip(&got) {
            if got != want {
                bad.push(format!("  {probe}: expected {want}, got {got}"));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} of {} probes wrong:\n{}",
                bad.len(),
                cases.len(),
                bad.join("\n")
            )
            .into())
        }
    }

    fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), Failed> {
        if cond {
            Ok(())
        } else {
            Err(msg().into())
        }
    }

    // --- a) no rules --------------------------------------------------------

    fn no_rules_tcp_udp_both_families() -> Result<(), Failed> {
        let lab = Lab::new(ALL_PEERS);
        let vps_l = Listener::start(lab.vps(), &[8080])?;
        let net_l = Listener::start(lab.net(), &[9000])?;
        let (vps, net) = (lab.vps(), lab.net());
        expect_all(&[
            // net -> vps
            (
                Probe::tcp(net, Some(sa(P_203_99, 40001)), sa(VPS_V4, 8080)),
                Connected,
            ),
            (
                Probe::tcp(net, Some(sa(P_203_99, 40002)), sa(VPS_V4, 8081)),
                Refused,
            ),
            (
                Probe::tcp(net, Some(sa(P6_100_7, 40001)), sa(VPS_V6, 8080)),
                Connected,
            ),
            (
                Probe::tcp(net, Some(sa(P6_100_7, 40002)), sa(VPS_V6, 8081)),
                Refused,
            ),
            (
                Probe::udp(net, Some(sa(P_203_99, 40001)), sa(VPS_V4, 8080)),
                Connected,
            ),
            (
                Probe::udp(net, Some(sa(P_203_99, 40002)), sa(VPS_V4, 8081)),
                Refused,
            ),
            (
                Probe::udp(net, Some(sa(P6_100_7, 40001)), sa(VPS_V6, 8080)),
                Connected,
            ),
            (
                Probe::udp(net, Some(sa(P6_100_7, 40002)), sa(VPS_V6, 8081)),
                Refused,
            ),
            (Probe::tcp(net, None, sa(VPS_V4, 8080)), Connected),
            (Probe::tcp(net, None, sa(VPS_V6, 8080)), Connected),
            // vps -> net, to secondary (peer) addresses: the UDP echo must
            // answer from the address it was sent to.
            (Probe::tcp(vps, None, sa(P_198_7, 9000)), Connected),
            (Probe::udp(vps, None, sa(P_198_7, 9000)), Connected),
            (Probe::udp(vps, None, sa(P_203_130, 9000)), Connected),
            (Probe::udp(vps, None, sa(P6_100_99, 9000)), Connected),
            (Probe::udp(vps, None, sa(NET_V6, 9000)), Connected),
            (
                Probe::tcp(vps, Some(sa(VPS_V6, 53)), sa(P6_100_7, 9000)),
                Connected,
            ),
        ])?;

        let hits = vps_l.hits();
        for want in [
            Hit {
                proto: Proto::Tcp,
                peer: sa(P_203_99, 40001),
                local: sa(VPS_V4, 8080),
            },
            Hit {
                proto: Proto::Udp,
                peer: sa(P6_100_7, 40001),
                local: sa(VPS_V6, 8080),
            },
        ] {
            ensure(hits.contains(&want), || {
                format!("vps listener did not record {want:?}; hits: {hits:#?}")
            })?;
        }
        let net_hits = net_l.hits();
        ensure(
            net_hits.contains(&Hit {
                proto: Proto::Tcp,
                peer: sa(VPS_V6, 53),
                local: sa(P6_100_7, 9000),
            }),
            || format!("net listener hits: {net_hits:#?}"),
        )?;
        Ok(())
    }

    fn same_source_port_reusable() -> Result<(), Failed> {
        let lab = Lab::new(ALL_PEERS);
        let _l = Listener::start(lab.vps(), &[8080])?;
        let net = lab.net();
        // Same 4-tuple over and over, alternating with refused attempts
        // from the same source port.
        for round in 0..5 {
            for (src, dst_ip) in [
                (sa(P_203_99, 40001), IpAddr::V4(VPS_V4)),
                (sa(P6_100_7, 40001), IpAddr::V6(VPS_V6)),
            ] {
                let got = tcp_connect(net, Some(src), sa(dst_ip, 8080), PROBE_TIMEOUT);
                ensure(got == Connected, || {
                    format!("round {round}: tcp {src} -> {dst_ip}:8080 gave {got}")
                })?;
                let got = tcp_connect(net, Some(src), sa(dst_ip, 8081), PROBE_TIMEOUT);
                ensure(got == Refused, || {
                    format!("round {round}: tcp {src} -> {dst_ip}:8081 gave {got}")
                })?;
                let got = udp_exchange(net, Some(src), sa(dst_ip, 8080), PROBE_TIMEOUT);
                ensure(got == Connected, || {
                    format!("round {round}: udp {src} -> {dst_ip}:8080 gave {got}")
                })?;
            }
        }
        Ok(())
    }

    // --- b) a hand-written ruleset -------------------------------------------

    const RULES_V4: &str = "\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 198.51.100.7/32 -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
-A INPUT -p udp -m udp --dport 24 -j REJECT --reject-with icmp-port-unreachable
COMMIT
";

    const RULES_V6: &str = "\
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type neighbour-advertisement -j ACCEPT
-A INPUT -s 2001:db8:100::7/128 -p tcp -m tcp --dport 22 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
-A INPUT -p udp -m udp --dport 24 -j REJECT --reject-with icmp6-port-unreachable
COMMIT
";

    fn hand_written_ruleset() -> Result<(), Failed> {
        let lab = Lab::new(ALL_PEERS);
        let (vps, net) = (lab.vps(), lab.net());
        lab.restore_test(vps, RULES_V4, RULES_V6)?;
        let broken = RULES_V4.replace("-j REJECT", "-j NO-SUCH-TARGET");
        ensure(lab.restore_test(vps, &broken, RULES_V6).is_err(), || {
            "iptables-restore --test accepted an unknown target".to_owned()
        })?;
        lab.load_restore(vps, RULES_V4, RULES_V6)?;

        let (v4, v6) = lab.save(vps);
        for (text, needle) in [
            (&v4, ":INPUT DROP"),
            (
                &v4,
                "-A INPUT -s 198.51.100.7/32 -p tcp -m tcp --dport 22 -j ACCEPT",
            ),
            (
                &v6,
                "-A INPUT -s 2001:db8:100::7/128 -p tcp -m tcp --dport 22 -j ACCEPT",
            ),
        ] {
            ensure(text.contains(needle), || {
                format!("save output lacks {needle:?}:\n{text}")
            })?;
        }
        let (net_v4, net_v6) = lab.save(net);
        ensure(
            !net_v4.contains("-A INPUT") && !net_v6.contains("-A INPUT"),
            || format!("rules leaked into the net namespace:\n{net_v4}\n{net_v6}"),
        )?;

        let vps_l = Listener::start(vps, &[22, 23, 24, 8080])?;
        let _net_l = Listener::start(net, &[9000])?;
        expect_all(&[
            // IPv4 inbound
            (
                Probe::tcp(net, Some(sa(P_198_7, 40000)), sa(VPS_V4, 22)),
                Connected,
            ),
            (
                Probe::tcp(net, Some(sa(P_203_99, 40000)), sa(VPS_V4, 22)),
                TimedOut,
            ),
            (
                Probe::tcp(net, Some(sa(P_203_99, 40001)), sa(VPS_V4, 23)),
                Refused,
            ),
            (
                Probe::tcp(net, Some(sa(P_203_99, 40002)), sa(VPS_V4, 8080)),
                TimedOut,
            ),
            (
                Probe::udp(net, Some(sa(P_203_99, 40003)), sa(VPS_V4, 24)),
                Refused,
            ),
            (
                Probe::udp(net, Some(sa(P_203_99, 40004)), sa(VPS_V4, 8080)),
                TimedOut,
            ),
            // IPv6 inbound
            (
                Probe::tcp(net, Some(sa(P6_100_7, 40000)), sa(VPS_V6, 22)),
                Connected,
            ),
            (
                Probe::tcp(net, Some(sa(P6_100_99, 40000)), sa(VPS_V6, 22)),
                TimedOut,
            ),
            (
                Probe::tcp(net, Some(sa(P6_100_99, 40001)), sa(VPS_V6, 23)),
                Refused,
            ),
            (
                Probe::tcp(net, Some(sa(P6_100_99, 40002)), sa(VPS_V6, 8080)),
                TimedOut,
            ),
            (
                Probe::udp(net, Some(sa(P6_100_99, 40003)), sa(VPS_V6, 24)),
                Refused,
            ),
            (
                Probe::udp(net, Some(sa(P6_100_99, 40004)), sa(VPS_V6, 8080)),
                TimedOut,
            ),
            // Outbound: replies come back as ESTABLISHED, ICMP errors and
            // RSTs as RELATED/ESTABLISHED.
            (Probe::tcp(vps, None, sa(NET_V4, 9000)), Connected),
            (Probe::tcp(vps, None, sa(P_198_7, 9000)), Connected),
            (Probe::udp(vps, None, sa(P_203_130, 9000)), Connected),
            (Probe::tcp(vps, None, sa(NET_V4, 9001)), Refused),
            (Probe::udp(vps, None, sa(NET_V4, 9001)), Refused),
            (Probe::tcp(vps, None, sa(NET_V6, 9000)), Connected),
            (Probe::udp(vps, None, sa(P6_100_7, 9000)), Connected),
            (Probe::tcp(vps, None, sa(P6_100_7, 9001)), Refused),
            (Probe::udp(vps, None, sa(NET_V6, 9001)), Refused),
        ])?;

        let hits = vps_l.hits();
        let tcp22: Vec<&Hit> = hits
            .iter()
            .filter(|h| h.proto == Proto::Tcp && h.local.port() == 22)
            .collect();
        ensure(
            tcp22.len() == 2
                && tcp22.iter().any(|h| h.peer == sa(P_198_7, 40000))
                && tcp22.iter().any(|h| h.peer == sa(P6_100_7, 40000)),
            || format!("unexpected connections to port 22: {tcp22:#?}"),
        )?;

        // With conntrack active, the same 4-tuple can be reused at once
        // (probes close with RST, leaving a CLOSE entry that a new SYN
        // replaces), also after a dropped attempt from the same port.
        for round in 0..3 {
            for (src, dst, want) in [
                (sa(P_198_7, 40000), sa(VPS_V4, 22), Connected),
                (sa(P6_100_7, 40000), sa(VPS_V6, 22), Connected),
                (sa(P_203_99, 40001), sa(VPS_V4, 23), Refused),
                (sa(P_198_7, 40005), sa(VPS_V4, 8080), TimedOut),
                (sa(P_198_7, 40005), sa(VPS_V4, 22), Connected),
            ] {
                let got = tcp_connect(net, Some(src), dst, PROBE_TIMEOUT);
                ensure(got == want, || {
                    format!("round {round}: tcp {src} -> {dst}: expected {want}, got {got}")
                })?;
            }
        }
        Ok(())
    }

    fn ipv6_without_nd() -> Result<(), Failed> {
        // The same IPv6 policy minus the neighbour-discovery accepts: ND is
        // not conntrack-tracked, so a DROP policy starves it and even the
        // explicitly allowed port becomes unreachable.
        let lab = Lab::new(ALL_PEERS);
        let (vps, net) = (lab.vps(), lab.net());
        let no_nd: String = RULES_V6
            .lines()
            .filter(|l| !l.contains("icmpv6-type neighbour"))
            .map(|l| format!("{l}\n"))
            .collect();
        lab.load_restore(vps, RULES_V4, &no_nd)?;
        let _l = Listener::start(vps, &[22])?;
        expect_all(&[
            (
                Probe::tcp(net, Some(sa(P6_100_7, 40000)), sa(VPS_V6, 22)),
                TimedOut,
            ),
            // IPv4 (ARP is not filtered by iptables) is unaffected.
            (
                Probe::tcp(net, Some(sa(P_198_7, 40000)), sa(VPS_V4, 22)),
                Connected,
            ),
        ])?;
        // Adding the ND accepts back fixes it. net's neighbour entry for
        // the vps is INCOMPLETE/FAILED by now and would only be retried
        // after the ND retransmit timer (1 s), longer than a probe waits;
        // flush it so the next packet resolves afresh.
        lab.load_restore(vps, RULES_V4, RULES_V6)?;
        lab.exec(net, &["ip", "neigh", "flush", "dev", "eth0"])?;
        expect_all(&[(
            Probe::tcp(net, Some(sa(P6_100_7, 40001)), sa(VPS_V6, 22)),
            Connected,
        )])
    }

    fn output_drop_reports_timed_out() -> Result<(), Failed> {
        let lab = Lab::new(ALL_PEERS);
        let (vps, net) = (lab.vps(), lab.net());
        let _l = Listener::start(net, &[9000])?;
        let v4 = "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                  -A OUTPUT -o eth0 -j DROP\nCOMMIT\n";
        let v6 = "*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
                  -A OUTPUT -o eth0 -p tcp -j DROP\n-A OUTPUT -o eth0 -p udp -j DROP\nCOMMIT\n";
        lab.load_restore(vps, v4, v6)?;
        expect_all(&[
            (Probe::tcp(vps, None, sa(NET_V4, 9000)), TimedOut),
            (Probe::udp(vps, None, sa(NET_V4, 9000)), TimedOut),
            (Probe::tcp(vps, None, sa(NET_V6, 9000)), TimedOut),
            (Probe::udp(vps, None, sa(NET_V6, 9000)), TimedOut),
        ])
    }

    fn icmp_errors_not_rate_limited() -> Result<(), Failed> {
        // The kernel rate-limits ICMP errors per destination (burst ~6,
        // then 1/s); the lab turns that off so REJECT stays visible.
        let lab = Lab::new(ALL_PEERS);
        let net = lab.net();
        for i in 0..40u16 {
            for (src, dst) in [
                (sa(P_203_99, 41000 + i), sa(VPS_V4, 8081)),
                (sa(P6_100_7, 41000 + i), sa(VPS_V6, 8081)),
            ] {
                let got = udp_exchange(net, Some(src), dst, PROBE_TIMEOUT);
                ensure(got == Refused, || {
                    format!("probe #{i} udp {src} -> {dst}: expected Refused, got {got}")
                })?;
            }
        }
        Ok(())
    }

    // --- c) cleanup ----------------------------------------------------------

    fn host_link_leftovers() -> Result<Vec<String>, Failed> {
        // `ip link` is not a firewall command; reading the host's interface
        // list is harmless.
        let out = std::process::Command::new("ip")
            .args(["-o", "-d", "link", "show"])
            .output()
            .map_err(|e| format!("ip link show: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            // A lab interface (or the host end of a veth whose peer is in
            // a lab namespace) would mention the namespace name.
            .filter(|l| l.contains("vpsfw-"))
            .map(str::to_owned)
            .collect())
    }

    fn lab_cleanup_on_drop_and_panic() -> Result<(), Failed> {
        let lab = Lab::new(&[P_198_7, P6_100_7]);
        let names = [lab.vps().to_owned(), lab.net().to_owned()];
        let listed = list_netns();
        for n in &names {
            ensure(listed.contains(n), || format!("{n} not in ip netns list"))?;
            let link = lab.exec(n, &["ip", "-d", "-o", "link", "show", "dev", "eth0"])?;
            let link = String::from_utf8_lossy(&link.stdout).into_owned();
            ensure(link.contains("veth"), || {
                format!("{n}: eth0 is not a veth: {link}")
            })?;
        }
        let leftovers = host_link_leftovers()?;
        ensure(leftovers.is_empty(), || {
            format!("host namespace has lab interfaces: {leftovers:#?}")
        })?;
        drop(lab);
        let listed = list_netns();
        for n in &names {
            ensure(!listed.contains(n), || {
                format!("{n} still exists after drop")
            })?;
        }

        let seen: Mutex<Vec<String>> = Mutex::new(Vec::new());
        expect_panic("test body panicking with a live Lab", || {
            let lab = Lab::new(&[P_203_99]);
            if let Ok(mut s) = seen.lock() {
                s.extend([lab.vps().to_owned(), lab.net().to_owned()]);
            }
            let _l = Listener::start(lab.vps(), &[8080]).expect("listener in vps");
            panic!("intentional panic: checking that Lab cleans up on unwind");
        })?;
        let seen = seen.into_inner().map_err(|_| "poisoned")?;
        ensure(seen.len() == 2, || {
            format!("lab names not recorded: {seen:?}")
        })?;
        let listed = list_netns();
        for n in &seen {
            ensure(!listed.contains(n), || {
                format!("{n} still exists after panic unwound")
            })?;
        }
        let leftovers = host_link_leftovers()?;
        ensure(leftovers.is_empty(), || {
            format!("host namespace has lab interfaces: {leftovers:#?}")
        })?;
        Ok(())
    }

    // --- d) loopback ---------------------------------------------------------

    fn loopback_inside_vps() -> Result<(), Failed> {
        let lab = Lab::new(&[]);
        let vps = lab.vps();
        let _l = Listener::start(vps, &[8080])?;
        let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let cases = [
            (Probe::tcp(vps, None, sa(lo4, 8080)), Connected),
            (Probe::tcp(vps, None, sa(lo6, 8080)), Connected),
            (Probe::udp(vps, None, sa(lo4, 8080)), Connected),
            (Probe::udp(vps, None, sa(lo6, 8080)), Connected),
            (Probe::tcp(vps, None, sa(lo4, 8081)), Refused),
            (Probe::tcp(vps, None, sa(lo6, 8081)), Refused),
            (Probe::udp(vps, None, sa(lo6, 8081)), Refused),
            // Own public addresses are delivered over lo as well.
            (Probe::tcp(vps, None, sa(VPS_V4, 8080)), Connected),
            (Probe::udp(vps, None, sa(VPS_V6, 8080)), Connected),
        ];
        expect_all(&cases)?;
        // Still works under a DROP policy thanks to `-i lo -j ACCEPT`.
        lab.load_restore(vps, RULES_V4, RULES_V6)?;
        expect_all(&cases)
    }

    // --- misc ----------------------------------------------------------------

    fn probe_errors_are_not_verdicts() -> Result<(), Failed> {
        let lab = Lab::new(&[P_203_99]);
        let net = lab.net();
        let started = Instant::now();
        for (what, got) in [
            (
                "source address not configured in net",
                tcp_connect(
                    net,
                    Some(sa(VPS_V4, 40000)),
                    sa(VPS_V4, 8080),
                    PROBE_TIMEOUT,
                ),
            ),
            (
                "source/destination family mismatch",
                udp_exchange(
                    net,
                    Some(sa(P_203_99, 40000)),
                    sa(VPS_V6, 8080),
                    PROBE_TIMEOUT,
                ),
            ),
            (
                "namespace does not exist",
                tcp_connect(
                    "vpsfw-no-such-namespace",
                    None,
                    sa(VPS_V4, 8080),
                    PROBE_TIMEOUT,
                ),
            ),
            (
                "namespace name with a slash",
                tcp_connect("../1", None, sa(VPS_V4, 8080), PROBE_TIMEOUT),
            ),
        ] {
            ensure(matches!(got, Outcome::Error(_)), || {
                format!("{what}: expected Outcome::Error, got {got}")
            })?;
        }
        ensure(started.elapsed() < PROBE_TIMEOUT, || {
            "error probes should fail fast, not wait for a timeout".to_owned()
        })?;

        expect_panic("Lab::exec in a namespace that is not the lab's", || {
            lab.exec("not-a-lab-namespace", &["true"])
        })?;
        expect_panic("Lab with a non-documentation peer address", || {
            Lab::new(&[IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))])
        })?;
        Ok(())
    }

    fn namespace_config() -> Result<(), Failed> {
        let lab = Lab::new(&[P_198_7, P6_100_7]);
        let out = lab.run_sh(
            lab.vps(),
            "ip -o addr show dev eth0; ip route; ip -6 route; \
             sysctl -n net.ipv6.conf.all.disable_ipv6",
        )?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for needle in ["192.0.2.1/24", "2001:db8::1/64", "default dev eth0"] {
            ensure(text.contains(needle), || {
                format!("vps lacks {needle:?}:\n{text}")
            })?;
        }
        ensure(text.trim_end().ends_with('0'), || {
            format!("IPv6 disabled in vps:\n{text}")
        })?;
        let out = lab.run_sh(lab.net(), "ip -o addr show dev eth0")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for needle in ["192.0.2.2/24", "198.51.100.7/32", "2001:db8:100::7/128"] {
            ensure(text.contains(needle), || {
                format!("net lacks {needle:?}:\n{text}")
            })?;
        }
        ensure(!text.contains("tentative"), || {
            format!("tentative addresses in net:\n{text}")
        })?;
        Ok(())
    }
}

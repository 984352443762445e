//! Probes against a loaded policy: real connections from the lab's peer side, each
//! answer checked against what the policy means and what the evaluator predicts.

use std::net::{IpAddr, SocketAddr};

use vpsfw::{Outcome as Verdict, Packet, Policy};

use super::netns::{tcp_connect, Lab, Outcome, PROBE_TIMEOUT};

/// Sends each probe (source address, destination port, whether it must get in) from
/// the lab's peer side, checks the kernel's answer and that the evaluator agrees.
pub fn probe_all(
    lab: &Lab,
    policy: &Policy,
    probes: &[(&str, u16, bool)],
    port_base: u16,
) -> Result<(), String> {
    for (i, &(addr, port, allowed)) in probes.iter().enumerate() {
        let ip: IpAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let vps: IpAddr = if ip.is_ipv4() {
            "192.0.2.1"
        } else {
            "2001:db8::1"
        }
        .parse()
        .map_err(|e| format!("{e}"))?;
        let src = SocketAddr::new(ip, port_base + i as u16);
        let dst = SocketAddr::new(vps, port);
        let got = tcp_connect(lab.net(), Some(src), dst, PROBE_TIMEOUT);
        let want = if allowed {
            Outcome::Connected
        } else {
            Outcome::TimedOut
        };
        if got != want {
            return Err(format!(
                "{src} -> {dst}: the kernel said {got:?}, the policy means {want:?}"
            ));
        }
        let packet: Packet = format!("in tcp from {src} to {dst}").parse()?;
        let predicted = policy.evaluate(&packet).outcome;
        let agrees = matches!(
            (&got, predicted),
            (Outcome::Connected, Verdict::Accept) | (Outcome::TimedOut, Verdict::Drop)
        );
        if !agrees {
            return Err(format!(
                "{src} -> {dst}: the evaluator says {predicted:?}, the kernel {got:?}"
            ));
        }
    }
    Ok(())
}

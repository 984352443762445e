//! Every hardening preset, with defaults and with settings, placed where written.

fn main() {
    let policy = vpsfw::firewall! {
        allow in on lo;
        allow in state established,related;
        harden invalid;
        harden syn_flood limit 100/second burst 200;
        harden conn_rate;
        harden ping limit 2/second burst 4;
        harden port_scan for 120;
        harden log_drops limit 10/minute prefix "DROP: ";
        allow in tcp to https state new;
        admin none;
        policy input drop;
    };
    let v4 = vpsfw::render(&policy, vpsfw::Format::Restore);
    let lines: Vec<&str> = v4.lines().filter(|l| l.starts_with("-A INPUT")).collect();
    // Loopback and replies stay ahead of the presets; the trap and the log come last.
    assert!(lines[0].contains("-i lo") && lines[1].contains("RELATED,ESTABLISHED"), "{v4}");
    assert!(lines[2].contains("--ctstate INVALID") && lines[2].ends_with("-j DROP"), "{v4}");
    assert!(lines[3].contains("--hashlimit-above 100/sec --hashlimit-burst 200 --hashlimit-name vpsfw-syn"), "{v4}");
    assert!(lines[4].contains("--hashlimit-above 20/sec --hashlimit-burst 40 --hashlimit-mode srcip"), "{v4}");
    assert!(lines[5].contains("--icmp-type 8 -m hashlimit --hashlimit-above 2/sec --hashlimit-burst 4"), "{v4}");
    assert!(lines[7].contains("-m recent --rcheck --seconds 120 --name vpsfw-scan"), "{v4}");
    assert!(lines[8].contains("--dport 443"), "{v4}");
    assert!(lines[9].contains("-m limit --limit 10/min") && lines[9].contains("--log-prefix \"DROP: \""), "{v4}");
    assert!(lines[10].contains("-m recent --set --name vpsfw-scan") && lines[10].ends_with("-j DROP"), "{v4}");
    assert_eq!(lines.len(), 11, "{v4}");
    let nft = vpsfw::render(&policy, vpsfw::Format::Nft);
    assert!(nft.contains("set vpsfw_scan_v6 {"), "{nft}");
    assert!(nft.contains("update @vpsfw_scan_v4 { ip saddr }"), "{nft}");
    // The evaluator answers for a packet under every rate, from a source not listed.
    let p: vpsfw::Packet = "in tcp from 203.0.113.9:40000 to 192.0.2.1:443".parse().unwrap();
    assert_eq!(policy.evaluate(&p).outcome, vpsfw::Outcome::Accept);
    let p: vpsfw::Packet = "in tcp from 203.0.113.9:40000 to 192.0.2.1:22".parse().unwrap();
    let d = policy.evaluate(&p);
    assert_eq!(d.outcome, vpsfw::Outcome::Drop);
    assert_eq!(d.logged.len(), 1, "{d}");
    assert!(d.to_string().contains("harden port_scan"), "{d}");
}

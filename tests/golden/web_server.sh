#!/bin/sh
# vpsfw 0.1.0 policy d6f8321d429dcbb8: loads the IPv4 and IPv6 filter tables atomically
# Both rulesets are checked by the kernel's own parser before either is loaded, each
# is loaded in one transaction, and if IPv6 fails the previous IPv4 ruleset is put
# back. Loading replaces rules instead of appending: running this twice gives the
# same ruleset as running it once. Needs POSIX sh and the iptables tools, nothing else.
set -u
PATH="${PATH:-/usr/bin:/bin}:/usr/local/sbin:/usr/sbin:/sbin"
export PATH

die() {
    printf 'vpsfw: %s\n' "$*" >&2
    exit 1
}

for tool in iptables-restore ip6tables-restore iptables-save; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found; install the iptables package (nothing was changed)"
done

rules_v4() {
    cat <<'VPSFW_END_OF_RULES'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
:vpsfw-d6f8321d429dcbb8 - [0:0]
-A INPUT -i lo -m comment --comment common -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type 8 -m hashlimit --hashlimit-above 5/sec --hashlimit-burst 10 --hashlimit-mode srcip --hashlimit-name vpsfw-ping -m comment --comment "harden: ping" -j DROP
-A INPUT -p icmp -m icmp --icmp-type 8 -m comment --comment "harden: ping" -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment common -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -m comment --comment "harden: invalid" -j DROP
-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 200/sec --hashlimit-burst 400 --hashlimit-name vpsfw-syn -m comment --comment "harden: syn_flood" -j DROP
-A INPUT -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 50/sec --hashlimit-burst 100 --hashlimit-mode srcip --hashlimit-name vpsfw-conn -m comment --comment "harden: conn_rate" -j DROP
-A INPUT -s 198.51.100.7/32 -m conntrack --ctstate NEW -m comment --comment server -j ACCEPT
-A INPUT -p tcp -m tcp --sport 1024:65535 -m multiport --dports 80,443 -m conntrack --ctstate NEW -m comment --comment server -j ACCEPT
-A INPUT -m limit --limit 5/min --limit-burst 10 -m comment --comment "harden: log_drops" -j LOG --log-prefix "vpsfw-drop: "
-A OUTPUT -o lo -m comment --comment common -j ACCEPT
-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment common -j ACCEPT
-A OUTPUT -p tcp -m multiport --dports 80,443,53,25 -m conntrack --ctstate NEW -m comment --comment client -j ACCEPT
-A OUTPUT -p udp -m multiport --dports 53,123 -m conntrack --ctstate NEW -m comment --comment client -j ACCEPT
COMMIT
VPSFW_END_OF_RULES
}

rules_v6() {
    cat <<'VPSFW_END_OF_RULES'
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT DROP [0:0]
:vpsfw-d6f8321d429dcbb8 - [0:0]
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 2 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 3 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 4 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 133 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 134 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A INPUT -i lo -m comment --comment common -j ACCEPT
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m hashlimit --hashlimit-above 5/sec --hashlimit-burst 10 --hashlimit-mode srcip --hashlimit-name vpsfw-ping -m comment --comment "harden: ping" -j DROP
-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type 128 -m comment --comment "harden: ping" -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment common -j ACCEPT
-A INPUT -m conntrack --ctstate INVALID -m comment --comment "harden: invalid" -j DROP
-A INPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 200/sec --hashlimit-burst 400 --hashlimit-name vpsfw-syn -m comment --comment "harden: syn_flood" -j DROP
-A INPUT -m conntrack --ctstate NEW -m hashlimit --hashlimit-above 50/sec --hashlimit-burst 100 --hashlimit-mode srcip --hashlimit-name vpsfw-conn -m comment --comment "harden: conn_rate" -j DROP
-A INPUT -s 2001:db8:100::7/128 -m conntrack --ctstate NEW -m comment --comment server -j ACCEPT
-A INPUT -p tcp -m tcp --sport 1024:65535 -m multiport --dports 80,443 -m conntrack --ctstate NEW -m comment --comment server -j ACCEPT
-A INPUT -m limit --limit 5/min --limit-burst 10 -m comment --comment "harden: log_drops" -j LOG --log-prefix "vpsfw-drop: "
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 1 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 2 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 3 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 4 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 133 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 136 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 143 -m comment --comment "common: icmpv6 needed by ipv6" -j ACCEPT
-A OUTPUT -o lo -m comment --comment common -j ACCEPT
-A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment common -j ACCEPT
-A OUTPUT -p tcp -m multiport --dports 80,443,53,25 -m conntrack --ctstate NEW -m comment --comment client -j ACCEPT
-A OUTPUT -p udp -m multiport --dports 53,123 -m conntrack --ctstate NEW -m comment --comment client -j ACCEPT
COMMIT
VPSFW_END_OF_RULES
}

rules_v4 | iptables-restore -w 10 --test ||
    die "the IPv4 ruleset was refused by iptables-restore (nothing was changed)"
rules_v6 | ip6tables-restore -w 10 --test ||
    die "the IPv6 ruleset was refused by ip6tables-restore (nothing was changed)"

saved_v4=$(iptables-save -t filter) ||
    die "could not save the current IPv4 ruleset (nothing was changed)"
if [ -z "$saved_v4" ]; then
    # No filter table yet: the previous state was "accept everything".
    saved_v4=$(printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT')
fi

rules_v4 | iptables-restore -w 10 ||
    { die "loading the IPv4 ruleset failed (nothing was changed)"; }
if ! rules_v6 | ip6tables-restore -w 10; then
    printf '%s\n' "$saved_v4" | iptables-restore -w 10 ||
        die "loading the IPv6 ruleset failed, and so did putting the previous IPv4 ruleset back: check iptables -S now"
    die "loading the IPv6 ruleset failed; the previous IPv4 ruleset was put back"
fi
if command -v ipset >/dev/null 2>&1; then
    for s in $(ipset list -n 2>/dev/null); do
        case $s in
        vpsfw-*) ipset destroy "$s" 2>/dev/null ;;
        esac
    done
fi
printf 'vpsfw: loaded policy d6f8321d429dcbb8 (14 IPv4 and 30 IPv6 rules)\n' >&2

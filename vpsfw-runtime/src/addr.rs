//! Addresses and networks: parsing with messages an admin can act on, and the
//! per-family address a rule matches.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::diag::shown;
use crate::value::Family;

/// Parses `198.51.100.7`, `203.0.113.128/27`, `2001:db8::1` or `2001:db8::/32`.
///
/// A network whose host bits are set is refused with the network it probably meant,
/// because iptables would silently widen it and the admin should see that.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr = parse_addr(addr_text)?;
    let max = match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    let prefix = match prefix_text {
        None => max,
        Some(p) => match p.parse::<u64>() {
            Ok(n) if n <= max.into() => n as u8,
            Ok(n) => {
                return Err(format!(
                    "prefix length /{n} is too long for an {} address; at most /{max}",
                    family_of(addr)
                ))
            }
            Err(_) => return Err(format!("malformed prefix length `/{}`", shown(p))),
        },
    };
    with_prefix(addr, prefix)
}

/// `addr/prefix` as a network, refusing set host bits.
pub fn with_prefix(addr: IpAddr, prefix: u8) -> Result<IpNet, String> {
    let net = IpNet::new(addr, prefix).map_err(|_| {
        format!(
            "prefix length /{prefix} is too long for an {} address; at most /{}",
            family_of(addr),
            if addr.is_ipv4() { 32 } else { 128 }
        )
    })?;
    if net.network() != addr {
        return Err(format!(
            "`{addr}/{prefix}` has host bits set; did you mean the network `{}`?",
            net.trunc()
        ));
    }
    Ok(net)
}

fn family_of(addr: IpAddr) -> Family {
    match addr {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

fn parse_addr(text: &str) -> Result<IpAddr, String> {
    if text.contains(':') {
        return text
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| format!("malformed IPv6 address `{}`", shown(text)));
    }
    if let Ok(a) = text.parse::<Ipv4Addr>() {
        return Ok(IpAddr::V4(a));
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        if let Some(bad) = parts
            .iter()
            .find(|p| p.parse::<u32>().map_or(true, |n| n > 255))
        {
            return Err(format!(
                "octet `{}` of `{}` is out of range; octets run from 0 to 255",
                shown(bad),
                shown(text)
            ));
        }
        return Err(format!(
            "malformed IPv4 address `{}`: leading zeros are ambiguous",
            shown(text)
        ));
    }
    Err(format!(
        "malformed IPv4 address `{}`; expected four octets such as `198.51.100.7`",
        shown(text)
    ))
}

/// What a rule's source or destination matches: an address or network per family, and
/// the policy name it came from, if any. A name with both an IPv4 and an IPv6 address
/// makes one rule of each family.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    name: Option<String>,
    v4: Option<Ipv4Net>,
    v6: Option<Ipv6Net>,
}

impl Address {
    /// At least one family must be present.
    pub fn new(name: Option<String>, v4: Option<Ipv4Net>, v6: Option<Ipv6Net>) -> Option<Self> {
        (v4.is_some() || v6.is_some()).then_some(Address { name, v4, v6 })
    }

    pub(crate) fn raw(name: Option<String>, v4: Option<Ipv4Net>, v6: Option<Ipv6Net>) -> Self {
        Address { name, v4, v6 }
    }

    pub fn from_net(name: Option<String>, net: IpNet) -> Self {
        match net {
            IpNet::V4(n) => Address {
                name,
                v4: Some(n),
                v6: None,
            },
            IpNet::V6(n) => Address {
                name,
                v4: None,
                v6: Some(n),
            },
        }
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn v4(&self) -> Option<Ipv4Net> {
        self.v4
    }

    pub fn v6(&self) -> Option<Ipv6Net> {
        self.v6
    }

    pub fn get(&self, family: Family) -> Option<IpNet> {
        match family {
            Family::V4 => self.v4.map(IpNet::V4),
            Family::V6 => self.v6.map(IpNet::V6),
        }
    }

    pub fn has(&self, family: Family) -> bool {
        self.get(family).is_some()
    }
}

/// The name if there is one, else the address(es), as a policy would write them.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.name {
            return f.write_str(n);
        }
        let show = |net: IpNet| {
            if net.prefix_len() == net.max_prefix_len() {
                net.addr().to_string()
            } else {
                net.to_string()
            }
        };
        match (self.v4, self.v6) {
            (Some(a), Some(b)) => write!(f, "{}, {}", show(a.into()), show(b.into())),
            (Some(a), None) => f.write_str(&show(a.into())),
            (None, Some(b)) => f.write_str(&show(b.into())),
            (None, None) => f.write_str("any"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_networks() {
        assert_eq!(
            parse_net("198.51.100.7").unwrap().to_string(),
            "198.51.100.7/32"
        );
        assert_eq!(parse_net("203.0.113.128/27").unwrap().prefix_len(), 27);
        assert_eq!(parse_net("2001:db8::/32").unwrap().prefix_len(), 32);
    }

    #[test]
    fn explains_mistakes() {
        assert_eq!(
            parse_net("203.0.113.130/27").unwrap_err(),
            "`203.0.113.130/27` has host bits set; did you mean the network `203.0.113.128/27`?"
        );
        assert!(parse_net("198.51.100.256")
            .unwrap_err()
            .contains("octet `256`"));
        assert!(parse_net("198.51.100.0/33").unwrap_err().contains("/33"));
        assert!(parse_net("2001:db8::/129").unwrap_err().contains("/128"));
        assert!(parse_net("2001:db8:::1")
            .unwrap_err()
            .contains("malformed IPv6"));
        assert!(parse_net("198.51.100").unwrap_err().contains("four octets"));
    }
}

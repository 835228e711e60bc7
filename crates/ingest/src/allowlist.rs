//! Which source addresses may deliver, and who is a trusted proxy.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ConfigError;

/// The addresses Showpass publishes for its outgoing webhooks (the `showpass` preset).
pub const SHOWPASS_ADDRESSES: [&str; 4] = [
    "34.83.8.110",
    "34.168.12.250",
    "35.230.81.80",
    "35.230.119.67",
];

/// Allowed source networks, and the proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct Allowlist {
    allowed: Vec<IpNet>,
    trusted_proxies: Vec<IpNet>,
}

impl Allowlist {
    /// From `INGEST_ALLOWLIST` (CIDRs, addresses or `showpass`, comma-separated) and
    /// `INGEST_TRUSTED_PROXIES` (CIDRs or addresses).
    pub fn parse(allowed: &str, trusted_proxies: Option<&str>) -> Result<Self, ConfigError> {
        let mut list = Vec::new();
        for item in allowed.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item.eq_ignore_ascii_case("showpass") {
                list.extend(
                    SHOWPASS_ADDRESSES
                        .iter()
                        .map(|a| net(a, "INGEST_ALLOWLIST").unwrap()),
                );
            } else {
                list.push(net(item, "INGEST_ALLOWLIST")?);
            }
        }
        let proxies = trusted_proxies
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| net(s, "INGEST_TRUSTED_PROXIES"))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allowed: list,
            trusted_proxies: proxies,
        })
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
    /// address in `X-Forwarded-For` (every line of it, in order) that is not itself a trusted
    /// proxy.
    pub fn client_addr(&self, peer: IpAddr, forwarded_for: &[String]) -> IpAddr {
        if !self.is_trusted_proxy(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.iter().rev().map(|h| h.trim()) {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.is_trusted_proxy(ip) {
                        break;
                    }
                }
                // A hop we cannot read ends the chain we can believe.
                Err(_) => break,
            }
        }
        client
    }

    /// Whether a client address may deliver (an empty allowlist allows everyone).
    pub fn allows(&self, client: IpAddr) -> bool {
        self.allowed.is_empty() || self.allowed.iter().any(|n| n.contains(&canonical(client)))
    }

    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|n| n.contains(&canonical(ip)))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn net(s: &str, var: &'static str) -> Result<IpNet, ConfigError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| ConfigError::BadNetwork {
            var,
            value: s.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_showpass_preset_allows_exactly_the_published_addresses() {
        let a = Allowlist::parse("showpass", None).unwrap();
        for addr in SHOWPASS_ADDRESSES {
            assert!(a.allows(ip(addr)));
        }
        assert!(!a.allows(ip("34.83.8.111")));
        assert!(a.allows(ip("::ffff:34.83.8.110")));
    }

    #[test]
    fn an_empty_allowlist_allows_everyone() {
        assert!(
            Allowlist::parse("", None)
                .unwrap()
                .allows(ip("203.0.113.9"))
        );
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let a = Allowlist::parse("showpass", Some("10.0.0.0/8")).unwrap();
        let hops = |s: &[&str]| s.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>();
        let xff = hops(&["34.83.8.110", "10.1.1.1"]);
        assert_eq!(a.client_addr(ip("10.0.0.2"), &xff), ip("34.83.8.110"));
        // From an untrusted peer the header is ignored: it could say anything.
        assert_eq!(a.client_addr(ip("198.51.100.7"), &xff), ip("198.51.100.7"));
        // A forged left-most entry does not win over the hop the proxy saw.
        assert_eq!(
            a.client_addr(ip("10.0.0.2"), &hops(&["34.83.8.110", "198.51.100.7"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn bad_networks_are_named() {
        let err = Allowlist::parse("10.0.0.0/99", None).unwrap_err();
        assert!(err.to_string().contains("INGEST_ALLOWLIST"));
    }
}

//! An IP address or CIDR range, as allowlists and trusted proxies are written.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Invalid;

/// An IP range: a CIDR range with its host bits cleared, or a single address
/// (a /32 or /128 range). IPv4-mapped IPv6 addresses are compared as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange(IpNet);

impl IpRange {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map(|net| Self(net.trunc()))
            .map_err(|_| "is not an IP or CIDR range")
    }

    /// Whether `addr` (canonicalised first) falls in the range.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr.to_canonical())
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> IpRange {
        IpRange::parse(text).expect("range")
    }

    #[test]
    fn single_addresses_become_host_ranges() {
        assert_eq!(range("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(range("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(range("::1").to_string(), "::1/128");
        for refused in ["nope", "10.0.0.0/33", "", "10.0.0.1 "] {
            assert!(IpRange::parse(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn mapped_addresses_match_their_ipv4_range() {
        let net = range("10.0.0.0/8");
        assert!(net.contains("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(!net.contains("11.0.0.1".parse().expect("ip")));
    }
}

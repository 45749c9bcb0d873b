//! The end user's IP address as the partner saw it.

use std::net::IpAddr;

use super::Invalid;

/// An IPv4 or IPv6 literal, kept in canonical text form: IPv4-mapped IPv6 becomes
/// IPv4, and IPv6 is compressed lower-case (RFC 5952, which is what `Ipv6Addr`
/// prints). The canonical text is what is stored and signed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientIp {
    addr: IpAddr,
    text: Box<str>,
}

impl ClientIp {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let addr: IpAddr = text
            .parse()
            .map_err(|_| "must be an IPv4 or IPv6 address")?;
        Ok(Self::from_addr(addr))
    }

    pub fn from_addr(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        Self {
            addr,
            text: addr.to_string().into(),
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalises_what_it_stores_and_signs() {
        let cases = [
            ("203.0.113.42", "203.0.113.42"),
            ("::ffff:203.0.113.42", "203.0.113.42"),
            ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
            (
                "2001:0db8:0000:0000:0001:0000:0000:0001",
                "2001:db8::1:0:0:1",
            ),
            ("::1", "::1"),
        ];
        for (input, canonical) in cases {
            assert_eq!(
                ClientIp::parse(input).map(|ip| ip.as_str().to_owned()),
                Ok(canonical.to_owned())
            );
        }
    }

    #[test]
    fn refuses_non_literals() {
        for bad in [
            "",
            "localhost",
            "1.2.3",
            "1.2.3.4:80",
            " 1.2.3.4",
            "fe80::1%eth0",
            "01.2.3.4",
        ] {
            assert!(ClientIp::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}

//! The per-partner access gate: `Origin` and caller-IP allowlists, and how the
//! caller's address is derived behind trusted proxies.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{ErrorKind, Rejection};
use crate::partner::Partner;

/// A web origin: (scheme, host, port), with the scheme's default port filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Box<str>,
    host: Box<str>,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` as a browser sends it in an `Origin`
    /// header: the text must be the origin's own serialisation (ASCII case
    /// aside, an explicit default port allowed). URL spellings that normalise
    /// to an origin (`/.`, `%61pp`, tabs, a missing `//`, `:0443`) are refused,
    /// as are paths, credentials and the opaque origin `null`. A configured
    /// origin may end with one `/`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.strip_suffix('/').unwrap_or(text);
        let url = url::Url::parse(text).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let origin = url.origin().ascii_serialization();
        let port = url.port_or_known_default()?;
        let with_port = format!("{origin}:{port}");
        if !(text.eq_ignore_ascii_case(&origin) || text.eq_ignore_ascii_case(&with_port)) {
            return None;
        }
        Some(Self {
            scheme: url.scheme().into(),
            host: url.host_str()?.to_ascii_lowercase().into(),
            port,
        })
    }
}

/// Admits a request when its `Origin` (if any) is registered for the partner
/// and its caller address is inside the partner's IP allowlist (if any).
pub fn admit(partner: &Partner, origin: Option<&str>, caller: IpAddr) -> Result<(), Rejection> {
    if let Some(origin) = origin {
        let registered =
            Origin::parse(origin).is_some_and(|o| partner.allowed_origins.contains(&o));
        if !registered {
            return Err(Rejection::new(
                ErrorKind::ForbiddenOrigin,
                "Origin is not registered for this partner",
            ));
        }
    }
    let caller = caller.to_canonical();
    if !partner.allowed_ips.is_empty()
        && !partner.allowed_ips.iter().any(|net| net.contains(&caller))
    {
        return Err(Rejection::new(
            ErrorKind::ForbiddenOrigin,
            "caller address is not on this partner's allowlist",
        ));
    }
    Ok(())
}

/// The proxies whose `X-Forwarded-For` the service believes.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(ranges: Vec<IpNet>) -> Self {
        Self(ranges)
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// The caller's address: the TCP peer, unless the peer is a trusted proxy, in
    /// which case the right-most `X-Forwarded-For` entry that is not itself a
    /// trusted proxy. `forwarded_for` holds the header's values in the order
    /// received. An entry that is not an IP literal ends the walk at the last
    /// address known good, so a garbled header can never widen access.
    pub fn caller<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .collect();
        let mut caller = peer;
        for entry in entries.iter().rev() {
            match entry.trim().parse::<IpAddr>() {
                Ok(addr) => {
                    caller = addr.to_canonical();
                    if !self.trusts(caller) {
                        return caller;
                    }
                }
                Err(_) => return caller,
            }
        }
        caller
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partner::tests::acme;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test IP")
    }

    #[test]
    fn origins_compare_scheme_host_and_effective_port() {
        let registered = Origin::parse("https://app.acme.example").expect("origin");
        for same in [
            "https://app.acme.example",
            "https://APP.acme.example:443",
            "https://app.acme.example/",
        ] {
            assert_eq!(Origin::parse(same).as_ref(), Some(&registered), "{same}");
        }
        for other in [
            "http://app.acme.example",
            "https://app.acme.example:8443",
            "https://acme.example",
        ] {
            assert_ne!(Origin::parse(other).as_ref(), Some(&registered), "{other}");
        }
        for malformed in [
            "null",
            "",
            "app.acme.example",
            "https://app.acme.example/path",
            "https://u:p@app.acme.example",
            "ftp://x.example",
            // Spellings that URL parsing would normalise (found by fuzzing).
            "https://app.acme.example/.",
            "https://app.acme.example/%2e",
            "https://app.acme.\texample",
            "https://%61pp.acme.example",
            "https:app.acme.example",
            "https:\\\\app.acme.example",
            "https://app\u{3002}acme.example",
            "https://app.acme.example:0443",
            "https://app.acme.example//",
        ] {
            assert_eq!(Origin::parse(malformed), None, "{malformed}");
        }
    }

    #[test]
    fn admit_checks_origin_then_ip() {
        let mut spec = acme();
        spec.allowed_ips = vec!["10.0.0.0/8".into(), "::1".into()];
        let partner = spec.build().expect("partner");
        assert!(admit(&partner, None, ip("10.1.2.3")).is_ok());
        assert!(admit(&partner, Some("https://app.acme.example"), ip("::1")).is_ok());
        assert!(
            admit(
                &partner,
                Some("https://app.acme.example"),
                ip("::ffff:10.0.0.1")
            )
            .is_ok()
        );
        let refused = [
            (Some("https://evil.example"), "10.1.2.3"),
            (Some("null"), "10.1.2.3"),
            (None, "192.168.1.1"),
            (Some("https://app.acme.example"), "11.0.0.1"),
        ];
        for (origin, caller) in refused {
            let rejection = admit(&partner, origin, ip(caller)).expect_err(caller);
            assert_eq!(rejection.kind(), ErrorKind::ForbiddenOrigin);
        }
    }

    #[test]
    fn no_ip_list_means_no_ip_gate() {
        let partner = acme().build().expect("partner");
        assert!(admit(&partner, None, ip("198.51.100.7")).is_ok());
    }

    #[test]
    fn caller_address_walks_forwarded_for_from_the_right() {
        let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("net")]);
        let cases = [
            (
                "203.0.113.9",
                vec!["1.1.1.1"],
                "203.0.113.9",
                "untrusted peer: header ignored",
            ),
            ("10.0.0.1", vec![], "10.0.0.1", "trusted peer, no header"),
            (
                "10.0.0.1",
                vec!["1.1.1.1, 2.2.2.2"],
                "2.2.2.2",
                "right-most untrusted entry",
            ),
            (
                "10.0.0.1",
                vec!["1.1.1.1", "2.2.2.2, 10.0.0.7"],
                "2.2.2.2",
                "skips trusted hops across headers",
            ),
            (
                "10.0.0.1",
                vec!["10.0.0.5, 10.0.0.6"],
                "10.0.0.5",
                "all trusted: left-most",
            ),
            (
                "10.0.0.1",
                vec!["1.1.1.1, garbage"],
                "10.0.0.1",
                "garbage stops the walk",
            ),
            (
                "10.0.0.1",
                vec!["1.1.1.1, ::ffff:2.2.2.2"],
                "2.2.2.2",
                "mapped addresses canonicalised",
            ),
            (
                "::ffff:10.0.0.1",
                vec!["3.3.3.3"],
                "3.3.3.3",
                "mapped peer is trusted",
            ),
        ];
        for (peer, headers, expected, why) in cases {
            assert_eq!(proxies.caller(ip(peer), headers), ip(expected), "{why}");
        }
    }
}

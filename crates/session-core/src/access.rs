//! The per-partner access gate and the grammar of the headers it reads:
//! `Authorization: Bearer`, `Origin` and `X-Forwarded-For`.
//!
//! The HTTP adapter hands over raw header bytes ([`GateHeaders`]); every rule
//! about what those bytes mean lives here, so it can be tested and fuzzed
//! without a server. The use case that applies it is
//! [`crate::SessionService::admit_partner`].

use std::net::IpAddr;

use crate::client_token::{self, TokenEnv};
use crate::error::{ErrorKind, Rejection};
use crate::partner::Partner;
use crate::value::{IpRange, Origin};

/// The headers and peer address of a partner API request, as received.
#[derive(Debug, Clone, Copy)]
pub struct GateHeaders<'a> {
    /// The `Authorization` header, if present.
    pub authorization: Option<&'a [u8]>,
    /// The `Origin` header, if present.
    pub origin: Option<&'a [u8]>,
    /// Every `X-Forwarded-For` header value, in the order received.
    pub forwarded_for: &'a [&'a [u8]],
    /// The TCP peer.
    pub peer: IpAddr,
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is
/// case-insensitive (RFC 9110 §11.1); anything else is `missing_token`.
pub fn bearer_token(authorization: Option<&[u8]>) -> Result<&str, Rejection> {
    let missing = || Rejection::of(ErrorKind::MissingToken);
    let value = std::str::from_utf8(authorization.ok_or_else(missing)?).map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    let token = token.trim_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(missing());
    }
    Ok(token)
}

/// The environment of the client token in `authorization`: test only for a
/// well-formed `ct_test_` bearer token, live otherwise (the safe reading).
pub fn token_env(authorization: Option<&[u8]>) -> TokenEnv {
    bearer_token(authorization)
        .ok()
        .and_then(client_token::env_of)
        .unwrap_or(TokenEnv::Live)
}

/// Admits a request when its `Origin` (if any) is registered for the partner
/// and its caller address is inside the partner's IP allowlist (if any). A
/// caller whose address is unknown (`None`) passes only a partner without an
/// allowlist.
pub fn admit(
    partner: &Partner,
    origin: Option<&[u8]>,
    caller: Option<IpAddr>,
) -> Result<(), Rejection> {
    if let Some(origin) = origin {
        let registered =
            Origin::parse_header(origin).is_ok_and(|o| partner.allowed_origins.contains(&o));
        if !registered {
            return Err(Rejection::new(
                ErrorKind::ForbiddenOrigin,
                "Origin is not registered for this partner",
            ));
        }
    }
    if partner.allowed_ips.is_empty() {
        return Ok(());
    }
    match caller {
        Some(addr) if partner.allowed_ips.iter().any(|net| net.contains(addr)) => Ok(()),
        Some(_) => Err(Rejection::new(
            ErrorKind::ForbiddenOrigin,
            "caller address is not on this partner's allowlist",
        )),
        None => Err(Rejection::new(
            ErrorKind::ForbiddenOrigin,
            "caller address cannot be determined from X-Forwarded-For",
        )),
    }
}

/// The proxies whose `X-Forwarded-For` the service believes.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpRange>);

impl TrustedProxies {
    pub fn new(ranges: Vec<IpRange>) -> Self {
        Self(ranges)
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(addr))
    }

    /// The caller's address: the TCP peer, unless the peer is a trusted proxy,
    /// in which case the right-most `X-Forwarded-For` entry that is not itself
    /// a trusted proxy. `forwarded_for` holds the header's values, as bytes, in
    /// the order received.
    ///
    /// Behind a trusted proxy the answer is `None` (unknown) when the walk from
    /// the right meets an entry that is not an IP literal (junk, non-ASCII
    /// bytes, an empty item) before an untrusted address, or finds no untrusted
    /// address at all: a proxy appends to whatever the client sent, so a
    /// garbled or exhausted chain proves nothing about the caller, and a
    /// trusted proxy's own address is never taken for it.
    pub fn caller(&self, peer: IpAddr, forwarded_for: &[&[u8]]) -> Option<IpAddr> {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let entries = forwarded_for
            .iter()
            .rev()
            .flat_map(|value| value.rsplit(|&b| b == b','));
        for entry in entries {
            let addr = parse_forwarded_entry(entry)?.to_canonical();
            if !self.trusts(addr) {
                return Some(addr);
            }
        }
        None
    }
}

/// One `X-Forwarded-For` item: an IP literal between optional spaces or tabs.
fn parse_forwarded_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?;
    text.trim_matches([' ', '\t']).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::example_partner;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test IP")
    }

    fn range(text: &str) -> IpRange {
        IpRange::parse(text).expect("test range")
    }

    #[test]
    fn admit_checks_origin_then_ip() {
        let mut spec = example_partner("acme");
        spec.allowed_ips = vec!["10.0.0.0/8".into(), "::1".into()];
        let partner = spec.build().expect("partner");
        let origin = Some(b"https://app.acme.example".as_slice());
        assert!(admit(&partner, None, Some(ip("10.1.2.3"))).is_ok());
        assert!(admit(&partner, origin, Some(ip("::1"))).is_ok());
        assert!(admit(&partner, origin, Some(ip("::ffff:10.0.0.1"))).is_ok());
        let refused: [(Option<&[u8]>, Option<IpAddr>); 6] = [
            (Some(b"https://evil.example"), Some(ip("10.1.2.3"))),
            (Some(b"null"), Some(ip("10.1.2.3"))),
            (Some(b"https://app.acme.example\xff"), Some(ip("10.1.2.3"))),
            (None, Some(ip("192.168.1.1"))),
            (origin, Some(ip("11.0.0.1"))),
            (None, None),
        ];
        for (origin, caller) in refused {
            let rejection = admit(&partner, origin, caller).expect_err("refused");
            assert_eq!(rejection.kind(), ErrorKind::ForbiddenOrigin, "{caller:?}");
        }
    }

    #[test]
    fn no_ip_list_means_no_ip_gate() {
        let partner = example_partner("acme").build().expect("partner");
        assert!(admit(&partner, None, Some(ip("198.51.100.7"))).is_ok());
        assert!(admit(&partner, None, None).is_ok(), "unknown caller");
    }

    #[test]
    fn bearer_header_shapes() {
        assert_eq!(bearer_token(Some(b"Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some(b"bearer  abc")), Ok("abc"));
        for bad in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Basic abc",
            b"Bearer a b",
            b"Bearerabc",
            b"Bearer \xff",
        ] {
            assert_eq!(
                bearer_token(Some(bad)).map_err(|r| r.kind()),
                Err(ErrorKind::MissingToken),
                "{bad:?}"
            );
        }
        assert_eq!(
            bearer_token(None).map_err(|r| r.kind()),
            Err(ErrorKind::MissingToken)
        );
    }

    #[test]
    fn caller_address_walks_forwarded_for_from_the_right() {
        let proxies = TrustedProxies::new(vec![range("10.0.0.0/8")]);
        /// Peer, `X-Forwarded-For` values, the caller expected, and why.
        type Case<'a> = (&'a str, &'a [&'a [u8]], Option<&'a str>, &'a str);
        let cases: [Case; 13] = [
            (
                "203.0.113.9",
                &[b"1.1.1.1"],
                Some("203.0.113.9"),
                "untrusted peer: header ignored",
            ),
            (
                "203.0.113.9",
                &[b"\xc3\xa9"],
                Some("203.0.113.9"),
                "untrusted peer: junk ignored",
            ),
            ("10.0.0.1", &[], None, "trusted peer, no header: unknown"),
            (
                "10.0.0.1",
                &[b"1.1.1.1, 2.2.2.2"],
                Some("2.2.2.2"),
                "right-most untrusted entry",
            ),
            (
                "10.0.0.1",
                &[b"1.1.1.1", b"2.2.2.2, 10.0.0.7"],
                Some("2.2.2.2"),
                "skips trusted hops across headers",
            ),
            (
                "10.0.0.1",
                &[b"10.0.0.5, 10.0.0.6"],
                None,
                "all trusted: a proxy is never the caller",
            ),
            (
                "10.0.0.1",
                &[b"1.1.1.1, garbage"],
                None,
                "garbage before an untrusted address: unknown",
            ),
            (
                "10.0.0.1",
                &[b"garbage, 1.1.1.1"],
                Some("1.1.1.1"),
                "garbage left of the caller is the client's own",
            ),
            (
                "10.0.0.1",
                &[b"\xc3\xa9"],
                None,
                "non-ASCII bytes, as nginx appends them: unknown",
            ),
            (
                "10.0.0.1",
                &[b"\xc3\xa9, 10.0.0.9"],
                None,
                "non-ASCII behind a trusted hop: unknown",
            ),
            ("10.0.0.1", &[b""], None, "an empty list: unknown"),
            (
                "10.0.0.1",
                &[b"1.1.1.1, \t::ffff:2.2.2.2 "],
                Some("2.2.2.2"),
                "mapped addresses canonicalised, spaces and tabs trimmed",
            ),
            (
                "::ffff:10.0.0.1",
                &[b"3.3.3.3"],
                Some("3.3.3.3"),
                "mapped peer is trusted",
            ),
        ];
        for (peer, headers, expected, why) in cases {
            assert_eq!(proxies.caller(ip(peer), headers), expected.map(ip), "{why}");
        }
    }
}

//! The access gate: `Origin::parse`, `access::admit` and
//! `TrustedProxies::caller` over `X-Forwarded-For` header values as bytes.
//!
//! Beyond "no panic":
//! - `caller` answers the TCP peer (canonical), one of the listed addresses,
//!   or unknown (`None`), never anything else, and never a v4-mapped IPv6
//!   address;
//! - an untrusted peer's header is ignored entirely;
//! - behind a trusted peer the answer is, walking from the right, the first
//!   entry that is not a trusted proxy; an entry that is not an IP literal
//!   (junk, non-UTF-8 bytes, an empty item) met first makes the caller
//!   unknown, and so does a chain of trusted proxies only: a trusted proxy is
//!   never answered;
//! - entries a client prepends cannot change a known answer (spoofing);
//! - an accepted Origin is a http(s) URL whose own serialised origin parses
//!   to the same `Origin`;
//! - `admit` lets a request through iff its Origin (when sent) is registered
//!   and its canonical caller is inside the allowlist (when there is one).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use session_core::access::{TrustedProxies, admit};
use session_core::partner::Partner;
use session_core::value::{IpRange, Origin};
use session_fuzz::partner_spec;

const POOL: [&str; 10] = [
    "10.0.0.1",
    "10.0.0.7",
    "127.0.0.1",
    "::ffff:10.0.0.3",
    "1.1.1.1",
    "2001:db8::1",
    "::1",
    "203.0.113.9",
    "::ffff:203.0.113.9",
    "fe80::1",
];

const PROXY_POOL: [&str; 6] = [
    "10.0.0.0/8",
    "127.0.0.1/32",
    "::1/128",
    "2001:db8::/32",
    "0.0.0.0/0",
    "203.0.113.9/32",
];

#[derive(Arbitrary, Debug)]
enum Ip {
    Pool(u8),
    V4([u8; 4]),
    V6([u8; 16]),
    Mapped([u8; 4]),
}

impl Ip {
    fn addr(&self) -> IpAddr {
        match self {
            Ip::Pool(i) => POOL[usize::from(*i) % POOL.len()].parse().expect("pool"),
            Ip::V4(b) => IpAddr::V4(Ipv4Addr::from(*b)),
            Ip::V6(b) => IpAddr::V6(Ipv6Addr::from(*b)),
            Ip::Mapped(b) => IpAddr::V6(Ipv4Addr::from(*b).to_ipv6_mapped()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Entry {
    /// An address, written with some surrounding spaces/tabs.
    Ip(Ip, u8),
    /// Any bytes, text or not (a proxy appends to whatever the client sent).
    Raw(Vec<u8>),
}

impl Entry {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Entry::Ip(ip, pad) => {
                let left = " ".repeat(usize::from(pad & 3));
                let right = if pad & 4 != 0 { "\t" } else { "" };
                format!("{left}{}{right}", ip.addr()).into_bytes()
            }
            Entry::Raw(bytes) => bytes.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    origin: String,
    origin_from_pool: Option<u8>,
    peer: Ip,
    proxies: u8,
    /// Header values; each is a comma-joined run of entries.
    values: Vec<Vec<Entry>>,
    /// What a client prepends (its own X-Forwarded-For), left of `values`.
    prefix: Vec<Entry>,
}

fn join(entries: &[Entry]) -> Vec<u8> {
    entries
        .iter()
        .map(Entry::bytes)
        .collect::<Vec<_>>()
        .join(&b',')
}

fn gated() -> &'static Partner {
    static PARTNER: std::sync::OnceLock<Partner> = std::sync::OnceLock::new();
    PARTNER.get_or_init(|| {
        let mut spec = partner_spec("gated");
        spec.allowed_origins.push("http://localhost:3000".into());
        spec.allowed_ips = vec!["10.0.0.0/8".into(), "::1".into(), "2001:db8::/48".into()];
        spec.build().expect("partner")
    })
}

const ORIGINS: [&str; 8] = [
    "https://app.gated.example",
    "https://APP.gated.example:443",
    "https://app.gated.example/",
    "http://localhost:3000",
    "http://[::1]:8080",
    "https://app.gated.example:8443",
    "null",
    "https://xn--bcher-kva.example",
];

fuzz_target!(|input: Input| {
    // --- Origin ---
    let origin_text = match input.origin_from_pool {
        Some(i) => format!(
            "{}{}",
            ORIGINS[usize::from(i) % ORIGINS.len()],
            input.origin
        ),
        None => input.origin.clone(),
    };
    let origin = Origin::parse(&origin_text).ok();
    if let Some(o) = &origin {
        let url = url::Url::parse(&origin_text).expect("accepted origin is a URL");
        assert!(matches!(url.scheme(), "http" | "https"));
        let serialised = url.origin().ascii_serialization();
        assert_eq!(
            Origin::parse(&serialised).as_ref(),
            Ok(o),
            "{origin_text:?} vs {serialised:?}"
        );
    }

    // --- admit ---
    let partner = gated();
    // Bit 7 of `proxies` stands for a caller the gate could not determine.
    let caller = (input.proxies & 0x80 == 0).then(|| input.peer.addr());
    let sent_origin = (!origin_text.is_empty()).then_some(origin_text.as_bytes());
    let admitted = admit(partner, sent_origin, caller).is_ok();
    let origin_ok = sent_origin.is_none()
        || origin
            .as_ref()
            .is_some_and(|o| partner.allowed_origins.contains(o));
    let ip_ok = caller.is_some_and(|addr| {
        partner
            .allowed_ips
            .iter()
            .any(|range| range.contains(addr.to_canonical()))
    });
    assert_eq!(
        admitted,
        origin_ok && ip_ok,
        "admit({sent_origin:?}, {caller:?})"
    );

    // --- caller ---
    let nets: Vec<IpNet> = PROXY_POOL
        .iter()
        .enumerate()
        .filter(|(i, _)| input.proxies & (1 << i) != 0)
        .map(|(_, n)| n.parse().expect("net"))
        .collect();
    let trusted = |a: IpAddr| nets.iter().any(|n| n.contains(&a.to_canonical()));
    let proxies = TrustedProxies::new(
        PROXY_POOL
            .iter()
            .enumerate()
            .filter(|(i, _)| input.proxies & (1 << i) != 0)
            .map(|(_, n)| IpRange::parse(n).expect("range"))
            .collect(),
    );
    let values: Vec<Vec<u8>> = input.values.iter().map(|v| join(v)).collect();
    let headers: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let peer = input.peer.addr();
    let result = proxies.caller(peer, &headers);

    if let Some(IpAddr::V6(v6)) = result {
        assert!(
            v6.to_ipv4_mapped().is_none(),
            "mapped address answered: {result:?}"
        );
    }
    if !trusted(peer) {
        assert_eq!(
            result,
            Some(peer.to_canonical()),
            "untrusted peer's header was believed"
        );
        return;
    }
    // Every item of every value, left to right, parsed independently of the
    // product: trimmed of spaces and tabs, then an IP literal or nothing.
    let parsed: Vec<Option<IpAddr>> = values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|item| {
            std::str::from_utf8(item)
                .ok()
                .and_then(|t| t.trim_matches([' ', '\t']).parse::<IpAddr>().ok())
                .map(|a| a.to_canonical())
        })
        .collect();
    // Right-most item that stops the walk: junk or an untrusted address.
    let expected = parsed
        .iter()
        .rev()
        .find(|p| p.is_none_or(|a| !trusted(a)))
        .copied()
        .flatten();
    assert_eq!(result, expected, "walk over {values:?} (peer {peer})");
    if let Some(addr) = result {
        assert!(!trusted(addr), "a trusted proxy was taken for the caller");
        let mut spoofed = vec![join(&input.prefix)];
        spoofed.extend(values.iter().cloned());
        let spoofed: Vec<&[u8]> = spoofed.iter().map(Vec::as_slice).collect();
        let again = proxies.caller(peer, &spoofed);
        assert_eq!(again, result, "a prepended entry changed the caller");
    }
});

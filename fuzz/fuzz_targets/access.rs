//! The access gate: `Origin::parse`, `access::admit` and
//! `TrustedProxies::caller` over `X-Forwarded-For` header values.
//!
//! Beyond "no panic":
//! - `caller` answers the TCP peer (canonical) or one of the listed addresses,
//!   never anything else, and never a v4-mapped IPv6 address;
//! - an untrusted peer's header is ignored entirely;
//! - behind a trusted peer the answer is, walking from the right, the first
//!   entry that is not a trusted proxy; a garbage entry stops the walk at the
//!   last good address; only when every entry is a trusted proxy is the answer
//!   the left-most one (so a trusted proxy is answered only then, or when the
//!   walk stopped on garbage with only trusted hops to its right);
//! - entries a client prepends cannot change an untrusted answer (spoofing);
//! - an accepted Origin is a http(s) URL whose own serialised origin parses
//!   to the same `Origin`;
//! - `admit` lets a request through iff its Origin (when sent) is registered
//!   and its canonical caller is inside the allowlist (when there is one).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use session_core::access::{Origin, TrustedProxies, admit};
use session_core::partner::Partner;
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
    Raw(String),
}

impl Entry {
    fn text(&self) -> String {
        match self {
            Entry::Ip(ip, pad) => {
                let left = " ".repeat(usize::from(pad & 3));
                let right = if pad & 4 != 0 { "\t" } else { "" };
                format!("{left}{}{right}", ip.addr())
            }
            Entry::Raw(s) => s.clone(),
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

fn join(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(Entry::text)
        .collect::<Vec<_>>()
        .join(",")
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
    let origin = Origin::parse(&origin_text);
    if let Some(o) = &origin {
        let url = url::Url::parse(&origin_text).expect("accepted origin is a URL");
        assert!(matches!(url.scheme(), "http" | "https"));
        let serialised = url.origin().ascii_serialization();
        assert_eq!(
            Origin::parse(&serialised).as_ref(),
            Some(o),
            "{origin_text:?} vs {serialised:?}"
        );
    }

    // --- admit ---
    let partner = gated();
    let caller = input.peer.addr();
    let sent_origin = (!origin_text.is_empty()).then_some(origin_text.as_str());
    let admitted = admit(partner, sent_origin, caller).is_ok();
    let origin_ok = sent_origin.is_none()
        || origin
            .as_ref()
            .is_some_and(|o| partner.allowed_origins.contains(o));
    let canonical = caller.to_canonical();
    let ip_ok = partner
        .allowed_ips
        .iter()
        .any(|net| net.contains(&canonical));
    assert_eq!(
        admitted,
        origin_ok && ip_ok,
        "admit({sent_origin:?}, {caller})"
    );

    // --- caller ---
    let nets: Vec<IpNet> = PROXY_POOL
        .iter()
        .enumerate()
        .filter(|(i, _)| input.proxies & (1 << i) != 0)
        .map(|(_, n)| n.parse().expect("net"))
        .collect();
    let trusted = |a: IpAddr| nets.iter().any(|n| n.contains(&a.to_canonical()));
    let proxies = TrustedProxies::new(nets.clone());
    let values: Vec<String> = input.values.iter().map(|v| join(v)).collect();
    let peer = input.peer.addr();
    let result = proxies.caller(peer, values.iter().map(String::as_str));

    if let IpAddr::V6(v6) = result {
        assert!(
            v6.to_ipv4_mapped().is_none(),
            "mapped address answered: {result}"
        );
    }
    let entries: Vec<&str> = values.iter().flat_map(|v| v.split(',')).collect();
    let parsed: Vec<Option<IpAddr>> = entries
        .iter()
        .map(|e| e.trim().parse::<IpAddr>().ok().map(|a| a.to_canonical()))
        .collect();
    assert!(
        result == peer.to_canonical() || parsed.contains(&Some(result)),
        "{result} is neither the peer nor listed"
    );
    if !trusted(peer) {
        assert_eq!(
            result,
            peer.to_canonical(),
            "untrusted peer's header was believed"
        );
        return;
    }
    // Right-most entry that stops the walk: garbage or an untrusted address.
    let stop = parsed.iter().rposition(|p| p.is_none_or(|a| !trusted(a)));
    let expected = match stop {
        None => parsed
            .first()
            .copied()
            .flatten()
            .unwrap_or(peer.to_canonical()),
        Some(k) => match parsed[k] {
            Some(addr) => addr,
            None => parsed
                .get(k + 1)
                .copied()
                .flatten()
                .unwrap_or(peer.to_canonical()),
        },
    };
    assert_eq!(result, expected, "walk over {entries:?} (peer {peer})");

    if !trusted(result) {
        let mut spoofed = vec![join(&input.prefix)];
        spoofed.extend(values.iter().cloned());
        let again = proxies.caller(peer, spoofed.iter().map(String::as_str));
        assert_eq!(again, result, "a prepended entry changed the caller");
    }
});

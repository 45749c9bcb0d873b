//! Every small parser of untrusted text, picked by the first byte: `Amount`,
//! `Email`, `Code`, `ClientIp`, `RedirectUrl`, `Address` (per network family
//! and rule), `PartnerUserId`, `TxType`, `PartnerId`, `Timestamp::parse_rfc3339`,
//! `Signature::parse`, `client_token::is_well_formed`, `TokenDigest::from_hex`,
//! `SessionService::authenticate` (with `access::bearer_token`), `IpRange` and `Object::required_uuid`.
//!
//! Beyond "no panic": accepted text re-parses to the same value and is kept
//! exactly as sent where the value promises it (amount, email, code, address,
//! user id; a URL is kept as the URL it parses to); each accept obeys its documented grammar (checked here
//! by a separate description); `ClientIp` text is canonical; an `Address` the
//! parser accepts can be read back by `Address::from_stored`; a timestamp
//! survives its own `to_rfc3339` output; a bearer token is a non-empty,
//! space-free slice of the header and only
//! the registered token authenticates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::ErrorKind;
use session_core::client_token::{TokenDigest, is_well_formed};
use session_core::json::Object;
use session_core::partner::PartnerId;
use session_core::signing::Signature;
use session_core::time::Timestamp;
use session_core::value::IpRange;
use session_core::value::{
    Address, AddressRule, Amount, ClientIp, Code, Email, PartnerUserId, RedirectUrl, TxType,
};
use session_fuzz::auth_service;

const NETWORKS: [&str; 8] = [
    "ERC20", "trc20", "BTC", "SOL", "CUSTOM", "polygon", "Bitcoin", "x",
];

fn amount(text: &str, decimals: u8) {
    let grammar = {
        let (integer, fraction) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits(integer)
            && fraction.is_none_or(digits)
            && integer.len() <= 18
            && fraction.map_or(0, str::len) <= usize::from(decimals)
            && text.bytes().any(|b| (b'1'..=b'9').contains(&b))
    };
    let parsed = Amount::parse(text, decimals);
    assert_eq!(parsed.is_ok(), grammar, "{text:?} with {decimals} decimals");
    if let Ok(a) = parsed {
        assert_eq!(a.as_str(), text);
        assert_eq!(
            usize::from(a.fraction_digits()),
            text.split_once('.').map_or(0, |(_, f)| f.len())
        );
        assert_eq!(Amount::parse(a.as_str(), decimals).as_ref(), Ok(&a));
    }
}

fn email(text: &str) {
    if let Ok(e) = Email::parse(text) {
        assert_eq!(e.as_str(), text);
        assert!(text.len() <= 254 && text.is_ascii());
        let (local, domain) = text.rsplit_once('@').expect("has @");
        assert!(!local.is_empty() && local.len() <= 64 && !local.contains('@'));
        assert!(!domain.is_empty() && !domain.starts_with('.') && !domain.ends_with('.'));
        assert!(
            !text
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'"')
        );
        assert_eq!(Email::parse(e.as_str()).as_ref(), Ok(&e));
    }
}

fn code(text: &str) {
    let grammar = (1..=32).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let parsed = Code::parse(text);
    assert_eq!(parsed.is_ok(), grammar, "{text:?}");
    if let Ok(c) = parsed {
        assert_eq!(c.as_str(), text);
        assert_eq!(Code::parse(c.as_str()).as_ref(), Ok(&c));
    }
}

fn client_ip(text: &str) {
    let parsed = ClientIp::parse(text);
    assert_eq!(parsed.is_ok(), text.parse::<std::net::IpAddr>().is_ok());
    if let Ok(ip) = parsed {
        let again = ClientIp::parse(ip.as_str()).expect("canonical text re-parses");
        assert_eq!(again, ip);
        assert_eq!(ip.as_str(), ip.addr().to_string());
        assert_eq!(
            ip.addr(),
            text.parse::<std::net::IpAddr>().expect("ip").to_canonical()
        );
        if let std::net::IpAddr::V6(v6) = ip.addr() {
            assert!(v6.to_ipv4_mapped().is_none());
        }
    }
}

fn redirect(text: &str, hosts: &[String]) {
    if let Ok(u) = RedirectUrl::parse(text, hosts) {
        // Kept as the URL the host check parsed, never as sent.
        let parsed = url::Url::parse(text).expect("accepted URL parses");
        assert_eq!(u.as_str(), parsed.as_str());
        assert!(text.len() <= RedirectUrl::MAX_LEN);
        assert_eq!(RedirectUrl::parse(u.as_str(), hosts).as_ref(), Ok(&u));
        let host = parsed.host_str().expect("accepted URL has a host");
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        assert!(
            parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback),
            "{text:?}"
        );
        assert!(parsed.username().is_empty() && parsed.password().is_none());
        if !hosts.is_empty() {
            assert!(hosts.iter().any(|h| h.eq_ignore_ascii_case(host)));
        }
    }
}

fn address(text: &str, selector: u8) {
    let network =
        Code::parse(NETWORKS[usize::from(selector >> 1) % NETWORKS.len()]).expect("network");
    let rule = if selector & 1 == 0 {
        AddressRule::Network
    } else {
        AddressRule::Alphanumeric
    };
    if let Ok(a) = Address::parse(text, &network, rule) {
        assert_eq!(a.as_str(), text);
        assert_eq!(Address::parse(a.as_str(), &network, rule).as_ref(), Ok(&a));
        assert_eq!(
            Address::from_stored(a.as_str()).as_ref(),
            Ok(&a),
            "accepted but unreadable from the store"
        );
        assert!(text.len() <= Address::MAX_LEN);
        if rule == AddressRule::Alphanumeric {
            assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }
}

fn user_id(text: &str) {
    if let Ok(id) = PartnerUserId::parse(text) {
        assert_eq!(id.as_str(), text);
        assert!((1..=128).contains(&text.chars().count()));
        assert!(!text.chars().any(char::is_control));
        assert_eq!(PartnerUserId::parse(id.as_str()).as_ref(), Ok(&id));
    }
}

fn timestamp(text: &str) {
    if let Some(at) = Timestamp::parse_rfc3339(text) {
        let emitted = at.to_rfc3339();
        assert_eq!(
            Timestamp::parse_rfc3339(&emitted),
            Some(at),
            "{text:?} parses to {} µs, emitted as {emitted:?}, which does not read back",
            at.unix_micros()
        );
    }
}

fn small(text: &str, bytes: &[u8]) {
    if let Ok(t) = TxType::parse(text) {
        assert_eq!(t.as_str(), text);
    }
    if let Ok(id) = PartnerId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
    if let Some(sig) = Signature::parse(text) {
        assert_eq!(sig.as_str(), text);
        assert!(sig.matches(text));
        assert_eq!(Signature::parse(sig.as_str()), Some(sig));
    }
    if is_well_formed(text) {
        let body = text
            .strip_prefix("ct_live_")
            .or_else(|| text.strip_prefix("ct_test_"))
            .expect("prefix");
        assert!((43..=128).contains(&body.len()));
    }
    if let Some(digest) = TokenDigest::from_hex(text) {
        assert_eq!(digest.to_hex(), text.to_ascii_lowercase());
    }
    if let Ok(range) = IpRange::parse(text) {
        let shown = range.to_string();
        assert_eq!(
            IpRange::parse(&shown),
            Ok(range),
            "{text:?} shown as {shown:?}"
        );
        let net: ipnet::IpNet = shown.parse().expect("a range shows as CIDR");
        assert_eq!(net, net.trunc(), "host bits cleared");
    }
    let body = serde_json::json!({ "id": text }).to_string();
    if let Ok(object) = Object::parse(body.as_bytes()) {
        if let Ok(id) = object.required_uuid("id") {
            let again = serde_json::json!({ "id": id.to_string() }).to_string();
            let object = Object::parse(again.as_bytes()).expect("a UUID body parses");
            assert_eq!(object.required_uuid("id").ok(), Some(id));
        }
    }
    // `Authorization` through `SessionService::authenticate` (the header
    // parser is private): malformed headers are missing_token, well-formed
    // unknown tokens invalid_token, and only `Bearer <the token>` (scheme in
    // any case, spaces around the token) authenticates.
    let (service, token) = auth_service();
    let outcome = futures_executor::block_on(service.authenticate(Some(bytes)));
    let header = std::str::from_utf8(bytes).ok();
    let presented = header
        .and_then(|h| h.split_once(' '))
        .and_then(|(scheme, rest)| {
            let rest = rest.trim_matches(' ');
            (scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() && !rest.contains(' '))
                .then_some(rest)
        });
    match (outcome, presented) {
        (Ok(partner), Some(p)) => {
            assert_eq!(p, token.as_str());
            assert_eq!(partner.id.as_str(), "acme");
        }
        (Ok(_), None) => panic!("authenticated a malformed header {header:?}"),
        (Err(r), None) => assert_eq!(r.kind(), ErrorKind::MissingToken, "{header:?}"),
        (Err(r), Some(p)) => {
            assert_ne!(p, token.as_str(), "the right token was refused: {header:?}");
            assert_eq!(r.kind(), ErrorKind::InvalidToken, "{header:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&arg, rest)) = rest.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match selector % 10 {
        0 => amount(&text, arg % 20),
        1 => email(&text),
        2 => code(&text),
        3 => client_ip(&text),
        4 => redirect(&text, &[]),
        5 => redirect(
            &text,
            &[
                "app.example.com".to_owned(),
                "localhost".to_owned(),
                "[::1]".to_owned(),
            ],
        ),
        6 => address(&text, arg),
        7 => user_id(&text),
        8 => timestamp(&text),
        _ => small(&text, rest),
    }
});

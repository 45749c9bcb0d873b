//! `SessionRequest::decode(body, &partner)` for four fixture partners (seed
//! partner; sha512-concat + client address + decimals; redirect host list +
//! off-ramp; client address under the default scheme). The first byte picks
//! the partner and whether the rest is a raw body or a structured one
//! (an `arbitrary` set of fields, so the field validators see well-formed JSON).
//!
//! Beyond "no panic": every refusal is decode/missing/validation; an accepted
//! request echoes the body's strings exactly (amount, email, codes, user id,
//! redirect URL), each value re-parses to itself (amount with the currency's
//! decimals, client_ip already canonical text), the redirect host is on the
//! partner's list when it has one, an address appears only for partners that
//! accept one and then obeys their rule (alphanumeric under sha512-concat),
//! and absent optional fields take the partner's defaults.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use session_core::ErrorKind;
use session_core::json::Object;
use session_core::request::SessionRequest;
use session_core::value::{Address, Amount, ClientIp, Code, Email, PartnerUserId, RedirectUrl};
use session_fuzz::partners;

#[derive(Arbitrary, Debug)]
enum Field {
    Str(String),
    Null,
    Number(u8),
    Bool,
    Absent,
}

#[derive(Arbitrary, Debug)]
struct Fields {
    partner_user_id: Field,
    user_email: Field,
    network: Field,
    currency: Field,
    amount: Field,
    tx_type: Field,
    redirect_url: Field,
    client_ip: Field,
    address: Field,
    extra: Option<(String, String)>,
}

fn structured(fields: Fields) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    let mut put = |name: &str, field: Field| {
        let value = match field {
            Field::Str(s) => serde_json::Value::String(s),
            Field::Null => serde_json::Value::Null,
            Field::Number(n) => serde_json::Value::from(n),
            Field::Bool => serde_json::Value::Bool(true),
            Field::Absent => return,
        };
        map.insert(name.to_owned(), value);
    };
    put("partner_user_id", fields.partner_user_id);
    put("user_email", fields.user_email);
    put("network", fields.network);
    put("currency", fields.currency);
    put("amount", fields.amount);
    put("type", fields.tx_type);
    put("redirect_url", fields.redirect_url);
    put("client_ip", fields.client_ip);
    put("address", fields.address);
    if let Some((key, value)) = fields.extra {
        map.insert(key, serde_json::Value::String(value));
    }
    serde_json::to_vec(&map).expect("serialise")
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let partner = &partners()[usize::from(selector & 3)];
    let body = if selector & 4 != 0 {
        let Ok(fields) = Fields::arbitrary_take_rest(Unstructured::new(rest)) else {
            return;
        };
        structured(fields)
    } else {
        rest.to_vec()
    };
    let request = match SessionRequest::decode(&body, partner) {
        Ok(request) => request,
        Err(rejection) => {
            assert!(
                matches!(
                    rejection.kind(),
                    ErrorKind::DecodeError | ErrorKind::MissingParam | ErrorKind::ValidationError
                ),
                "{rejection}"
            );
            return;
        }
    };
    let object = Object::parse(&body).expect("decode accepted a body parse refuses");
    let text = |name: &str| object.str(name).expect("typed").map(str::to_owned);

    assert_eq!(
        text("partner_user_id").as_deref(),
        Some(request.user.partner_user_id.as_str())
    );
    assert_eq!(
        text("user_email").as_deref(),
        Some(request.user.email.as_str())
    );
    assert_eq!(
        text("network").as_deref(),
        Some(request.network.code().as_str())
    );
    assert_eq!(
        text("currency").as_deref(),
        Some(request.currency.code().as_str())
    );
    assert_eq!(text("amount").as_deref(), Some(request.amount.as_str()));
    assert_eq!(
        PartnerUserId::parse(request.user.partner_user_id.as_str()).as_ref(),
        Ok(&request.user.partner_user_id)
    );
    assert_eq!(
        Email::parse(request.user.email.as_str()).as_ref(),
        Ok(&request.user.email)
    );
    assert_eq!(
        Code::parse(request.network.code().as_str()).as_ref(),
        Ok(request.network.code())
    );
    assert_eq!(
        Code::parse(request.currency.code().as_str()).as_ref(),
        Ok(request.currency.code())
    );

    let decimals = partner.widget.decimals_of(request.currency.code());
    assert_eq!(
        Amount::parse(request.amount.as_str(), decimals).as_ref(),
        Ok(&request.amount)
    );
    assert!(request.amount.fraction_digits() <= decimals);

    match text("type") {
        Some(t) => assert_eq!(t, request.tx_type.as_str()),
        None => assert_eq!(request.tx_type, partner.widget.default_type),
    }

    match (text("redirect_url"), &request.redirect_url) {
        (Some(sent), Some(url)) => {
            assert_eq!(
                url::Url::parse(&sent).map(String::from).as_deref(),
                Ok(url.as_str()),
                "redirect_url is kept as the URL the host check parsed"
            );
            assert_eq!(
                RedirectUrl::parse(url.as_str(), &partner.redirect_hosts).as_ref(),
                Ok(url)
            );
            let parsed = url::Url::parse(url.as_str()).expect("accepted URL parses");
            if !partner.redirect_hosts.is_empty() {
                let host = parsed.host_str().expect("accepted URL has a host");
                assert!(
                    partner
                        .redirect_hosts
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(host)),
                    "host {host} not on the list"
                );
            }
            assert!(matches!(parsed.scheme(), "https" | "http"));
            assert!(parsed.username().is_empty() && parsed.password().is_none());
        }
        (Some(_), None) => panic!("redirect_url sent but dropped"),
        (None, url) => assert_eq!(url, &partner.widget.redirect_url),
    }

    match (text("client_ip"), &request.client_ip) {
        (Some(_), Some(ip)) => {
            let again = ClientIp::parse(ip.as_str()).expect("canonical text re-parses");
            assert_eq!(
                again.as_str(),
                ip.as_str(),
                "client_ip text is not canonical"
            );
            assert_eq!(again.addr(), ip.addr());
            assert_eq!(ip.as_str(), ip.addr().to_string());
            if let std::net::IpAddr::V6(v6) = ip.addr() {
                assert!(
                    v6.to_ipv4_mapped().is_none(),
                    "mapped IPv6 kept: {}",
                    ip.as_str()
                );
            }
        }
        (None, None) => {}
        (sent, kept) => panic!("client_ip {sent:?} became {kept:?}"),
    }

    match &request.address {
        Some(address) => {
            assert!(
                partner.accept_client_address,
                "address read for a partner that may not send one"
            );
            assert_eq!(text("address").as_deref(), Some(address.as_str()));
            assert_eq!(
                Address::parse(
                    address.as_str(),
                    request.network.code(),
                    partner.address_rule()
                )
                .as_ref(),
                Ok(address)
            );
            assert!(
                Address::from_stored(address.as_str()).is_ok(),
                "accepted address cannot be read back"
            );
            if partner.address_rule() == session_core::value::AddressRule::Alphanumeric {
                assert!(address.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
            }
        }
        None => assert!(!partner.accept_client_address || text("address").is_none()),
    }
});

//! The provider's inbound events: `ProviderKey::verify(signature, body)` and
//! `ProviderEvent::decode(body, received_at)`, on raw bytes or (odd first byte)
//! a structured body of arbitrary field values.
//!
//! Beyond "no panic": a signature verifies iff it is the body's HMAC in hex
//! of either case (checked against `sign_hex`); refusals are decode/missing/
//! validation only; an accepted event echoes event_id and payment_method
//! (1..=128 / 1..=64 chars, no control characters), its amounts re-parse with
//! 18 decimals, its fiat currency is a code, a missing `occurred_at` means the
//! receipt time, and a present one is the instant the text names and
//! survives the service's own RFC 3339 output (`to_rfc3339` → `parse_rfc3339`),
//! since that text is what the transaction API and webhooks emit.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use session_core::ErrorKind;
use session_core::json::Object;
use session_core::provider::ProviderKey;
use session_core::secret::Secret;
use session_core::session::ProviderEvent;
use session_core::status::{KycStatus, TxStatus};
use session_core::time::Timestamp;
use session_core::value::{Amount, Code};
use uuid::Uuid;

const FIELDS: [&str; 9] = [
    "event_id",
    "merchant_transaction_id",
    "status",
    "crypto_amount",
    "fiat_amount",
    "fiat_currency",
    "payment_method",
    "occurred_at",
    "kyc_status",
];

#[derive(Arbitrary, Debug)]
enum Field {
    Str(String),
    Status(u8),
    Uuid([u8; 16]),
    /// An RFC 3339 shape with arbitrary numbers in every slot.
    Time(u16, u8, u8, u8, u8, u8, Option<u32>, Option<(bool, u8, u8)>),
    Null,
    Number(i64),
    Absent,
}

fn render(field: Field) -> Option<serde_json::Value> {
    Some(match field {
        Field::Str(s) => serde_json::Value::String(s),
        Field::Status(n) => {
            let names: Vec<&str> = TxStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .chain(KycStatus::ALL.iter().map(|s| s.as_str()))
                .collect();
            serde_json::Value::String(names[usize::from(n) % names.len()].to_owned())
        }
        Field::Uuid(bytes) => serde_json::Value::String(Uuid::from_bytes(bytes).to_string()),
        Field::Time(y, mo, d, h, mi, s, frac, offset) => {
            let mut text = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                y % 10_000,
                mo % 13,
                d % 32,
                h % 25,
                mi % 61,
                s % 62
            );
            if let Some(frac) = frac {
                text.push_str(&format!(".{frac}"));
            }
            match offset {
                None => text.push('Z'),
                Some((minus, oh, om)) => text.push_str(&format!(
                    "{}{:02}:{:02}",
                    if minus { '-' } else { '+' },
                    oh % 25,
                    om % 61
                )),
            }
            serde_json::Value::String(text)
        }
        Field::Null => serde_json::Value::Null,
        Field::Number(n) => serde_json::Value::from(n),
        Field::Absent => return None,
    })
}

fn key() -> &'static ProviderKey {
    static KEY: std::sync::OnceLock<ProviderKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| ProviderKey::new(&Secret::new("provider-shared-secret")).expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut presented: Option<Vec<u8>> = None;
    let body = if selector & 1 == 1 {
        let mut u = Unstructured::new(rest);
        let Ok(fields) = (0..FIELDS.len())
            .map(|_| Field::arbitrary(&mut u))
            .collect::<Result<Vec<_>, _>>()
        else {
            return;
        };
        presented = Option::<Vec<u8>>::arbitrary(&mut u).unwrap_or(None);
        let mut map = serde_json::Map::new();
        for (name, field) in FIELDS.iter().zip(fields) {
            if let Some(value) = render(field) {
                map.insert((*name).to_owned(), value);
            }
        }
        serde_json::to_vec(&map).expect("serialise")
    } else {
        rest.to_vec()
    };

    // Signature: the right MAC in either case verifies; any other bytes do not.
    let right = key().sign_hex(&body);
    assert!(key().verify(right.as_bytes(), &body).is_ok());
    assert!(key().verify(right.to_uppercase().as_bytes(), &body).is_ok());
    assert!(key().verify(b"", &body).is_err());
    if let Some(sig) = &presented {
        let accepted = key().verify(sig, &body).is_ok();
        assert_eq!(
            accepted,
            sig.eq_ignore_ascii_case(right.as_bytes()),
            "signature {sig:?}"
        );
    }

    let received_at = Timestamp::from_unix_micros(1_795_509_330_000_000);
    let event = match ProviderEvent::decode(&body, received_at) {
        Ok(event) => event,
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
    let object = Object::parse(&body).expect("decode accepted what parse refuses");
    let text = |name: &str| object.str(name).expect("typed").map(str::to_owned);
    let short = |s: &str, max: usize| {
        (1..=max).contains(&s.chars().count()) && !s.chars().any(char::is_control)
    };

    assert_eq!(text("event_id").as_deref(), Some(event.event_id.as_str()));
    assert!(short(&event.event_id, 128));
    assert_eq!(text("status").as_deref(), Some(event.status.as_str()));
    assert_eq!(
        Uuid::try_parse(&text("merchant_transaction_id").expect("present")).ok(),
        Some(event.merchant_transaction_id)
    );
    for (name, amount) in [
        ("crypto_amount", &event.crypto_amount),
        ("fiat_amount", &event.fiat_amount),
    ] {
        assert_eq!(text(name).as_deref(), amount.as_ref().map(Amount::as_str));
        if let Some(amount) = amount {
            assert_eq!(Amount::parse(amount.as_str(), 18).as_ref(), Ok(amount));
        }
    }
    assert_eq!(
        text("fiat_currency").as_deref(),
        event.fiat_currency.as_ref().map(Code::as_str)
    );
    assert_eq!(text("payment_method"), event.payment_method);
    if let Some(method) = &event.payment_method {
        assert!(short(method, 64));
    }
    assert_eq!(
        text("kyc_status").as_deref(),
        event.kyc_status.map(KycStatus::as_str)
    );
    match text("occurred_at") {
        None => assert_eq!(event.occurred_at, received_at),
        Some(sent) => {
            assert_eq!(Timestamp::parse_rfc3339(&sent), Some(event.occurred_at));
            let emitted = event.occurred_at.to_rfc3339();
            assert!(
                Timestamp::parse_rfc3339(&emitted) == Some(event.occurred_at),
                "occurred_at {sent:?} is emitted as {emitted:?}, which does not read back"
            );
        }
    }
});

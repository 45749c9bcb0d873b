//! `InitRequest::decode` (the hosted widget's `POST /widget/init` body) on raw
//! bytes, or, when the first byte is odd, on a structured body of arbitrary
//! field values. Beyond "no panic": refusals are decode/missing/validation
//! only; an accepted request has all nine fields, its two ids are the UUIDs the
//! body spelled (any form `Uuid` reads), and every other field is echoed
//! byte for byte (these are compared with the stored session later, so any
//! normalisation here would be a signature bypass or a false refusal).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use session_core::ErrorKind;
use session_core::json::Object;
use session_core::request::InitRequest;
use uuid::Uuid;

const FIELDS: [&str; 9] = [
    "widget_id",
    "merchant_transaction_id",
    "init_token",
    "signature",
    "address",
    "currency",
    "network",
    "amount",
    "type",
];

#[derive(Arbitrary, Debug)]
enum Field {
    Str(String),
    Uuid([u8; 16], u8),
    Null,
    Number(i8),
    Absent,
}

fn structured(fields: Vec<Field>, extra: Option<String>) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    for (name, field) in FIELDS.iter().zip(fields) {
        let value = match field {
            Field::Str(s) => serde_json::Value::String(s),
            Field::Uuid(bytes, form) => {
                let id = Uuid::from_bytes(bytes);
                serde_json::Value::String(match form % 4 {
                    0 => id.hyphenated().to_string(),
                    1 => id.simple().to_string(),
                    2 => id.braced().to_string(),
                    _ => id.urn().to_string().to_uppercase(),
                })
            }
            Field::Null => serde_json::Value::Null,
            Field::Number(n) => serde_json::Value::from(n),
            Field::Absent => continue,
        };
        map.insert((*name).to_owned(), value);
    }
    if let Some(key) = extra {
        map.insert(key, serde_json::Value::Bool(false));
    }
    serde_json::to_vec(&map).expect("serialise")
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let body = if selector & 1 == 1 {
        let mut u = Unstructured::new(rest);
        let Ok(fields) = (0..FIELDS.len())
            .map(|_| Field::arbitrary(&mut u))
            .collect::<Result<Vec<_>, _>>()
        else {
            return;
        };
        let extra = Option::<String>::arbitrary(&mut u).unwrap_or(None);
        structured(fields, extra)
    } else {
        rest.to_vec()
    };
    let request = match InitRequest::decode(&body) {
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
    let object = Object::parse(&body).expect("decode accepted what parse refuses");
    assert_eq!(
        object.len(),
        FIELDS.len(),
        "unknown or missing fields accepted"
    );
    let text = |name: &str| object.required_str(name).expect("string field").to_owned();
    assert_eq!(
        Uuid::try_parse(&text("widget_id")).ok(),
        Some(request.widget_id)
    );
    assert_eq!(
        Uuid::try_parse(&text("merchant_transaction_id")).ok(),
        Some(request.merchant_transaction_id)
    );
    assert_eq!(text("init_token"), request.init_token);
    assert_eq!(text("signature"), request.signature);
    assert_eq!(text("address"), request.address);
    assert_eq!(text("currency"), request.currency);
    assert_eq!(text("network"), request.network);
    assert_eq!(text("amount"), request.amount);
    assert_eq!(text("type"), request.tx_type);
});

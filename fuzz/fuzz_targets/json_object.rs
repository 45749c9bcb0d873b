//! `session_core::json::Object::parse` on arbitrary bytes. Beyond "no panic":
//! it accepts exactly the documents `serde_json` reads as an object with no
//! duplicate key at any depth (duplicates detected by an independent member
//! counter), every refusal is `decode_error`, each member reads back as the
//! type serde_json saw, and `Object::check` against a fixed schema never panics
//! and keeps its messages short.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::ErrorKind;
use session_core::json::{Object, Schema, Value};
use session_fuzz::{raw_member_count, value_member_count};

const SCHEMA: Schema = Schema {
    required: &["a", "partner_user_id"],
    optional: &["b", ""],
};

fuzz_target!(|data: &[u8]| {
    let ours = Object::parse(data);
    let theirs = serde_json::from_slice::<serde_json::Value>(data);
    // Members at all depths, duplicates included, vs. after serde_json's maps
    // collapsed them: equal iff no object anywhere repeats a key.
    let duplicate_free = |value: &serde_json::Value| {
        raw_member_count(data).expect("serde_json read it once") == value_member_count(value)
    };
    match (&ours, &theirs) {
        (Ok(object), Ok(value)) => {
            let map = value.as_object().expect("we accepted a non-object");
            assert!(duplicate_free(value), "we accepted a duplicate key");
            assert_eq!(object.len(), map.len());
            for (key, expected) in map {
                let got = object.get(key).expect("member missing");
                match (got, expected) {
                    (Value::Str(a), serde_json::Value::String(b)) => assert_eq!(a, b),
                    (Value::Null, serde_json::Value::Null) => {}
                    (Value::Other(_), v) if !v.is_string() && !v.is_null() => {}
                    (got, expected) => panic!("member {key:?}: {got:?} vs {expected:?}"),
                }
            }
            match object.check(&SCHEMA) {
                Ok(()) => {}
                Err(rejection) => {
                    assert!(matches!(
                        rejection.kind(),
                        ErrorKind::MissingParam | ErrorKind::ValidationError
                    ));
                    // Unknown keys are shown cut to 64 chars (escaped: ≤ 10 bytes each).
                    assert!(rejection.message().len() <= 64 * 10 + 32);
                }
            }
        }
        (Ok(_), Err(error)) => panic!("we accepted what serde_json refuses: {error}"),
        (Err(rejection), Ok(value)) => {
            assert_eq!(rejection.kind(), ErrorKind::DecodeError);
            assert!(
                !value.is_object() || !duplicate_free(value),
                "we refused a duplicate-free object: {}",
                rejection.message()
            );
        }
        (Err(rejection), Err(_)) => assert_eq!(rejection.kind(), ErrorKind::DecodeError),
    }
});

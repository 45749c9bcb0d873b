//! `signing::encode_v2_message`, the length-prefixed message the default
//! `hmac-sha512` signature covers. Two 8-tuples of strings come from the input:
//! the first arbitrary, the second either arbitrary or the first with bytes
//! moved across a field boundary (the classic `("ab","c")` vs `("a","bc")`).
//!
//! Beyond "no panic": the encoding is injective (distinct tuples give distinct
//! bytes), it decodes back to the tag and the eight fields, and at the
//! signature level a signature over one tuple verifies for that tuple under
//! `SigningKeys::verify` and never for a distinct tuple under `hmac-sha512`.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use session_core::secret::Secret;
use session_core::signing::{
    SignatureScheme, SignedFields, SigningKey, SigningKeys, V2_TAG, encode_v2_message,
};
use session_core::time::Timestamp;

type Tuple = [String; 8];

fn fields(t: &Tuple) -> SignedFields<'_> {
    SignedFields {
        merchant_transaction_id: &t[0],
        address: &t[1],
        client_ip: &t[2],
        currency: &t[3],
        network: &t[4],
        amount: &t[5],
        tx_type: &t[6],
        widget_id: &t[7],
    }
}

fn encode(t: &Tuple) -> Vec<u8> {
    let mut out = Vec::new();
    encode_v2_message(&fields(t), &mut out);
    out
}

fn decode(mut rest: &[u8]) -> Vec<String> {
    let mut parts = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= 4, "truncated length prefix");
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(rest.len() >= 4 + len, "length prefix past the end");
        parts.push(String::from_utf8(rest[4..4 + len].to_vec()).expect("utf8"));
        rest = &rest[4 + len..];
    }
    parts
}

/// Moves `count` characters from the end of field `from` to the start of
/// field `from + 1` (or the reverse).
fn shift(t: &Tuple, from: u8, count: u8, leftwards: bool) -> Tuple {
    let mut out = t.clone();
    let i = usize::from(from) % 7;
    for _ in 0..count % 8 {
        if leftwards {
            if out[i + 1].is_empty() {
                break;
            }
            let c = out[i + 1].remove(0);
            out[i].push(c);
        } else {
            let Some(c) = out[i].pop() else { break };
            out[i + 1].insert(0, c);
        }
    }
    out
}

fn keys() -> &'static [SigningKeys; 2] {
    static KEYS: std::sync::OnceLock<[SigningKeys; 2]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let key = |s: &str| SigningKey::new("k1", Secret::new(s), None).expect("key");
        [
            SigningKeys::new(SignatureScheme::HmacSha512, key("partner-secret"), vec![]),
            SigningKeys::new(SignatureScheme::Sha512Concat, key("partner-secret"), vec![]),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(a) = Tuple::arbitrary(&mut u) else {
        return;
    };
    let Ok(mode) = u8::arbitrary(&mut u) else {
        return;
    };
    let b = if mode & 1 == 0 {
        let (Ok(from), Ok(count)) = (u8::arbitrary(&mut u), u8::arbitrary(&mut u)) else {
            return;
        };
        shift(&a, from, count, mode & 2 != 0)
    } else {
        let Ok(b) = Tuple::arbitrary(&mut u) else {
            return;
        };
        b
    };
    let (left, right) = (encode(&a), encode(&b));
    assert_eq!(
        left == right,
        a == b,
        "encoding is not injective: {a:?} vs {b:?}"
    );
    let parts = decode(&left);
    assert_eq!(parts.len(), 9);
    assert_eq!(parts[0], V2_TAG);
    assert_eq!(&parts[1..], &a[..]);

    let now = Timestamp::from_unix_seconds(0);
    for keys in keys() {
        let signature = keys.sign(&fields(&a));
        assert!(keys.verify(&fields(&a), signature.as_str(), now));
        assert!(!keys.verify(&fields(&a), &signature.as_str()[..130], now));
        if keys.scheme() == SignatureScheme::HmacSha512 && a != b {
            assert!(
                !keys.verify(&fields(&b), signature.as_str(), now),
                "{a:?} and {b:?} share a signature"
            );
        }
    }
});

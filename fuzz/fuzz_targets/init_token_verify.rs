//! `TokenKeys::verify(token, sub, aud, now)` on three kinds of input, picked by
//! the first byte:
//! 0. an arbitrary string as the token;
//! 1. a minted token (current key `t1` or rotated-out key `t0`) edited by a
//!    list of byte flips, insertions, deletions and part swaps from the input;
//! 2. an arbitrary claims payload correctly signed with the real key (what a
//!    key holder could mint), to exercise the claims parser.
//!
//! Beyond "no panic": only the exact minted token is accepted (an edited
//! token is `Invalid`, never `Expired` or `Ok`), the minted token verifies
//! before `exp` and is `Expired` from `exp` on, a wrong sub or aud is
//! `Invalid`; a signed payload verifies only if it is a JSON object with
//! exactly jti/sub/aud (strings) and iat/exp (integers) and no duplicate, and
//! the returned claims are those values.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use session_core::init_token::{MintedToken, TokenKey, TokenKeys, TokenRefusal};
use session_core::secret::Secret;
use session_core::time::Timestamp;
use session_fuzz::{raw_member_count, value_member_count};
use sha2::Sha256;

const SUB: &str = "550e8400-e29b-41d4-a716-446655440000";
const AUD: &str = "fb359d09-fff6-4b1f-906c-b9062b135065";
const IAT: i64 = 1_795_509_330;
const TTL: i64 = 3_600;
const SECRET: &str = "init-token-key-for-tests-0123456789";

struct Fixture {
    keys: TokenKeys,
    minted: [MintedToken; 2],
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let old =
            TokenKey::new("t0", &Secret::new("previous-init-token-key-0123456789ab")).expect("key");
        let new = TokenKey::new("t1", &Secret::new(SECRET)).expect("key");
        let by_old = TokenKeys::new(old.clone(), vec![]).mint(
            SUB,
            AUD,
            Timestamp::from_unix_seconds(IAT),
            TTL,
            [7; 16],
        );
        let keys = TokenKeys::new(new, vec![old]);
        let by_new = keys.mint(SUB, AUD, Timestamp::from_unix_seconds(IAT), TTL, [9; 16]);
        Fixture {
            keys,
            minted: [by_new, by_old],
        }
    })
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Flip(u16, u8),
    Insert(u16, u8),
    Delete(u16),
    SwapParts(u8, u8),
    Append(String),
}

fn edit(token: &str, edits: Vec<Edit>) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    for e in edits {
        let at = |i: u16, len: usize| usize::from(i) % (len + 1);
        match e {
            Edit::Flip(i, x) if !bytes.is_empty() => {
                let i = usize::from(i) % bytes.len();
                bytes[i] ^= x.max(1);
            }
            Edit::Flip(..) => {}
            Edit::Insert(i, b) => {
                let i = at(i, bytes.len());
                bytes.insert(i, b);
            }
            Edit::Delete(i) if !bytes.is_empty() => {
                let i = usize::from(i) % bytes.len();
                bytes.remove(i);
            }
            Edit::Delete(_) => {}
            Edit::SwapParts(a, b) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut parts: Vec<&str> = text.split('.').collect();
                let n = parts.len();
                parts.swap(usize::from(a) % n, usize::from(b) % n);
                bytes = parts.join(".").into_bytes();
            }
            Edit::Append(s) => bytes.extend_from_slice(s.as_bytes()),
        }
    }
    bytes
}

/// Signs `payload` as the service would, built here from `hmac` directly so
/// the JWS assembly (header bytes, base64url, MAC input) is checked too.
fn sign(payload: &[u8]) -> String {
    let header = B64.encode(r#"{"alg":"HS256","typ":"JWT","kid":"t1"}"#);
    let input = format!("{header}.{}", B64.encode(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(input.as_bytes());
    format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let mut u = Unstructured::new(rest);
    let now_offset = i64::from(i16::arbitrary(&mut u).unwrap_or(0)) * 4;
    let now = Timestamp::from_unix_seconds(IAT + now_offset);
    let expect_minted = |result: Result<_, TokenRefusal>| {
        // The exact minted token: valid before exp, Expired from exp on.
        if now_offset < TTL {
            assert!(
                result.is_ok(),
                "minted token refused at offset {now_offset}: {result:?}"
            );
        } else {
            assert_eq!(result.err(), Some(TokenRefusal::Expired));
        }
    };
    match selector % 3 {
        0 => {
            let token = String::from_utf8_lossy(u.take_rest()).into_owned();
            let result = f.keys.verify(&token, SUB, AUD, now);
            if f.minted.iter().any(|m| m.token == token) {
                expect_minted(result);
            } else {
                assert_eq!(result, Err(TokenRefusal::Invalid), "{token:?}");
            }
        }
        1 => {
            let minted = &f.minted[usize::from(selector / 3) % 2];
            let edits = Vec::<Edit>::arbitrary_take_rest(u).unwrap_or_default();
            let bytes = edit(&minted.token, edits);
            let Ok(token) = String::from_utf8(bytes) else {
                return;
            };
            let result = f.keys.verify(&token, SUB, AUD, now);
            if token == minted.token {
                expect_minted(result);
                assert_eq!(
                    f.keys.verify(&token, AUD, AUD, now),
                    Err(TokenRefusal::Invalid)
                );
                assert_eq!(
                    f.keys.verify(&token, SUB, SUB, now),
                    Err(TokenRefusal::Invalid)
                );
                let claims = f
                    .keys
                    .verify(&token, SUB, AUD, Timestamp::from_unix_seconds(IAT))
                    .expect("fresh");
                assert_eq!((claims.sub.as_str(), claims.aud.as_str()), (SUB, AUD));
                assert_eq!(claims.jti, minted.jti);
            } else if f.minted.iter().all(|m| m.token != token) {
                assert_eq!(
                    result,
                    Err(TokenRefusal::Invalid),
                    "edited token accepted: {token:?}"
                );
            }
        }
        _ => {
            let payload = u.take_rest();
            let token = sign(payload);
            // The independent HMAC must agree with the product's on its own tokens.
            if payload.is_empty() {
                let minted = &f.minted[0].token;
                let (input, _) = minted.rsplit_once('.').expect("three parts");
                let (_, claims_b64) = input.split_once('.').expect("three parts");
                let claims = B64.decode(claims_b64).expect("b64");
                assert_eq!(
                    &sign(&claims),
                    minted,
                    "reference HMAC disagrees with the product"
                );
            }
            let result = f
                .keys
                .verify(&token, SUB, AUD, Timestamp::from_unix_seconds(0));
            let value: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
            let well_typed = value
                .as_ref()
                .and_then(|v| v.as_object())
                .is_some_and(|map| {
                    map.len() == 5
                        && ["jti", "sub", "aud"]
                            .iter()
                            .all(|k| map.get(*k).is_some_and(|v| v.is_string()))
                        && ["iat", "exp"]
                            .iter()
                            .all(|k| map.get(*k).is_some_and(|v| v.is_i64()))
                })
                && value
                    .as_ref()
                    .is_some_and(|v| raw_member_count(payload) == Some(value_member_count(v)));
            match result {
                Ok(claims) => {
                    assert!(
                        well_typed,
                        "claims accepted: {:?}",
                        String::from_utf8_lossy(payload)
                    );
                    let v = value.expect("parsed");
                    assert_eq!(v["jti"].as_str(), Some(claims.jti.as_str()));
                    assert_eq!((claims.sub.as_str(), claims.aud.as_str()), (SUB, AUD));
                    assert_eq!(
                        v["iat"].as_i64().map(Timestamp::from_unix_seconds),
                        Some(claims.issued_at)
                    );
                    assert_eq!(
                        v["exp"].as_i64().map(Timestamp::from_unix_seconds),
                        Some(claims.expires_at)
                    );
                }
                Err(TokenRefusal::Expired) => assert!(well_typed),
                Err(TokenRefusal::Invalid) => {
                    let v = value.filter(|_| well_typed);
                    let matches = v.is_some_and(|v| v["sub"] == SUB && v["aud"] == AUD);
                    assert!(
                        !matches || token.len() > 1024,
                        "well-formed claims refused: {:?}",
                        String::from_utf8_lossy(payload)
                    );
                }
            }
        }
    }
});

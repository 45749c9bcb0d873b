//! `Idempotency-Key` on `POST /widget/session`: the key's syntax, the
//! fingerprint that decides whether a retry is "the same request", and the
//! answer a store keeps under a key.
//!
//! Two requests are the same when their decoded bodies hold the same members
//! with the same values: key order, whitespace and JSON escapes do not matter
//! (`"\u0041"` is `"A"`), a member's presence does (an absent `type` is not
//! `"type": "buy"`, even when `buy` is the default, because a later change of
//! the default would make them differ).

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::Rejection;
use crate::json::{Object, Value};
use crate::partner::PartnerId;
use crate::session::Session;
use crate::time::Timestamp;

/// The header's name, as messages show it.
pub const HEADER: &str = "Idempotency-Key";

/// The longest key, in characters, after unquoting.
pub const MAX_KEY_LEN: usize = 255;

/// A partner's idempotency key: 1 to 255 printable ASCII characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(Box<str>);

impl IdempotencyKey {
    /// Reads the header's values (every `Idempotency-Key` line of the
    /// request). `None` when there is none; a `validation_error` naming the
    /// header when there are several or the value is not a key.
    ///
    /// A value may be given bare (`abc`) or, as the IETF draft defines it, as
    /// a Structured Fields string (`"abc"`, with `\"` and `\\` escapes); both
    /// name the same key.
    pub fn from_header(values: &[&[u8]]) -> Result<Option<Self>, Rejection> {
        match values {
            [] => Ok(None),
            [value] => Self::parse(value)
                .map(Some)
                .map_err(|why| Rejection::invalid(HEADER, why)),
            _ => Err(Rejection::invalid(HEADER, "must be given once")),
        }
    }

    /// Parses one header value.
    pub fn parse(value: &[u8]) -> Result<Self, &'static str> {
        let key = match value {
            [b'"', inner @ .., b'"'] => unquote(inner)?,
            [b'"', ..] => return Err("a quoted key must end with a quote"),
            [b' ', ..] | [.., b' '] => return Err("must not begin or end with a space"),
            bare => String::from_utf8(bare.to_vec()).map_err(|_| "must be printable ASCII")?,
        };
        if key.is_empty() {
            return Err("must not be empty");
        }
        if key.len() > MAX_KEY_LEN {
            return Err("must be at most 255 characters");
        }
        if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err("must be printable ASCII");
        }
        Ok(Self(key.into_boxed_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The content of a Structured Fields string: `\"` and `\\` are the only
/// escapes; a bare quote or any other backslash is malformed.
fn unquote(inner: &[u8]) -> Result<String, &'static str> {
    let mut out = String::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&byte) = bytes.next() {
        let unescaped = match byte {
            b'\\' => match bytes.next() {
                Some(&escaped @ (b'"' | b'\\')) => escaped,
                _ => return Err("a quoted key may only escape '\"' and '\\'"),
            },
            b'"' => return Err("a quoted key must escape its quotes"),
            other => other,
        };
        if !(0x20..=0x7e).contains(&unescaped) {
            return Err("must be printable ASCII");
        }
        out.push(char::from(unescaped));
    }
    Ok(out)
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are the partner's, not secrets, but they can be long: show a
        // bounded prefix.
        let shown: String = self.0.chars().take(32).collect();
        write!(f, "IdempotencyKey({shown:?})")
    }
}

/// SHA-256 over a canonical encoding of a decoded request body.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `object`'s members. The encoding sorts members by
    /// name and frames every name and value with its length and kind, so two
    /// different member sets can never encode alike.
    pub fn of(object: &Object<'_>) -> Self {
        let mut members: Vec<(&str, &Value<'_>)> = object.members().collect();
        members.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut hash = Sha256::new();
        hash.update(u64_bytes(members.len()));
        for (name, value) in members {
            hash.update(u64_bytes(name.len()));
            hash.update(name.as_bytes());
            match value {
                Value::Str(text) => {
                    hash.update([b's']);
                    hash.update(u64_bytes(text.len()));
                    hash.update(text.as_bytes());
                }
                Value::Null => hash.update([b'n']),
                // A value of another type is refused by every field that reads
                // it; only a field the partner's configuration ignores may hold
                // one, and its content does not change the request.
                Value::Other(kind) => {
                    hash.update([b'o']);
                    hash.update(u64_bytes(kind.len()));
                    hash.update(kind.as_bytes());
                }
            }
        }
        Self(hash.finalize().into())
    }

    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn u64_bytes(n: usize) -> [u8; 8] {
    u64::try_from(n).unwrap_or(u64::MAX).to_be_bytes()
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", hex::encode(&self.0[..8]))
    }
}

/// What is kept under a key: the request's fingerprint and the session it
/// created. The answer is the session's, rendered again with its init token
/// reminted (`TokenKeys::remint`), so no live token is kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub fingerprint: Fingerprint,
    pub session: Arc<Session>,
}

/// What a store writes under a key together with the session it created.
#[derive(Debug, Clone)]
pub struct KeyedAnswer {
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
    /// Which of the key's sessions this is: the session's id is
    /// [`keyed_transaction_id`] of its partner, the key and this.
    pub generation: u32,
    /// Answers created before this are expired. A store that still holds
    /// keys written before ids were derived from them (PostgreSQL, for one
    /// `--idempotency-ttl` after the upgrade) needs it to tell whether such
    /// a key still holds the first generation.
    pub expired_before: Timestamp,
}

impl KeyedAnswer {
    /// The id a session of `partner` written under this answer must have in
    /// `namespace`.
    pub fn transaction_id(&self, namespace: &IdNamespace, partner: &PartnerId) -> Uuid {
        keyed_transaction_id(namespace, partner, &self.key, self.generation)
    }
}

/// A deployment's space of keyed transaction ids: 16 bytes drawn once when
/// its store is created and never changed, the same on every instance
/// sharing the store. Two deployments (staging and production, two regions)
/// then give one partner's key different ids. It is not a secret: it
/// separates id spaces, it does not hide them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdNamespace([u8; 16]);

impl IdNamespace {
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A new namespace drawn from `random`.
    pub fn random(random: &dyn crate::random::Random) -> Self {
        let mut bytes = [0u8; 16];
        random.fill(&mut bytes);
        Self(bytes)
    }

    /// 32 lowercase hex digits, as a store keeps it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

/// What a store knows of a partner's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// A session created within the key's lifetime holds it.
    Held(StoredAnswer),
    /// No live session holds the key: the next one to take it is its
    /// `generation`-th (0 for a key never used, one more than the newest
    /// expired holder's otherwise).
    Free { generation: u32 },
}

/// The `merchant_transaction_id` of the `generation`-th session `partner`
/// opens under `key` in the deployment's `namespace`: a version 8 UUID over
/// SHA-256 of the four, length-framed under a label of its own.
///
/// Deriving the id from the key, rather than drawing it at random, makes the
/// transaction's primary key the key's uniqueness: of two requests with one
/// key, on any instance, the second insert of the same id fails. So the key
/// needs no index of its own, and a look-up by key is a look-up by
/// transaction id, which a store distributed by transaction (docs/scaling.md)
/// answers from one node. A key outlives its `--idempotency-ttl` as a new
/// generation: the id changes, the uniqueness does not.
///
/// Random ids are version 4, so the two kinds never meet. No secret goes in:
/// the id is no more secret than a random one (partners log it, webhooks
/// carry it), and a secret would make every stored key unreachable once
/// rotated; the namespace is fixed for the store's life. The derivation must
/// never change: a stored key is found only by its id (docs/signing.md has a
/// test vector).
pub fn keyed_transaction_id(
    namespace: &IdNamespace,
    partner: &PartnerId,
    key: &IdempotencyKey,
    generation: u32,
) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(ID_LABEL);
    hash.update(namespace.as_bytes());
    hash.update(u64_bytes(partner.as_str().len()));
    hash.update(partner.as_str().as_bytes());
    hash.update(u64_bytes(key.as_str().len()));
    hash.update(key.as_str().as_bytes());
    hash.update(generation.to_be_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Keeps [`keyed_transaction_id`]'s hashes apart from every other SHA-256
/// this service computes.
const ID_LABEL: &[u8] = b"widget-session idempotency-key transaction id v1\0";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(value: &str) -> Result<String, &'static str> {
        IdempotencyKey::parse(value.as_bytes()).map(|k| k.as_str().to_owned())
    }

    fn fingerprint(body: &str) -> Fingerprint {
        Fingerprint::of(&Object::parse(body.as_bytes()).expect("object"))
    }

    /// The derivation is part of the stored data: a key written under one
    /// derivation is found under no other. This vector is in docs/signing.md.
    #[test]
    fn keyed_ids_never_change() {
        let id = |partner: &str, key: &str, generation| {
            keyed_transaction_id(
                &NAMESPACE,
                &PartnerId::parse(partner).expect("partner"),
                &IdempotencyKey::parse(key.as_bytes()).expect("key"),
                generation,
            )
            .to_string()
        };
        assert_eq!(
            id("acme", "order-1042", 0),
            "731f5b69-ae01-87b6-9d1e-b51cb9cc9d7c"
        );
        assert_eq!(
            id("acme", "order-1042", 1),
            "b3562260-fb1d-8877-94e6-fff4f753ffb7"
        );
        // The framing keeps the partner's end apart from the key's start.
        assert_ne!(id("acme", "order-1042", 0), id("acm", "eorder-1042", 0));
        assert_ne!(id("acme", "order-1042", 0), id("globex", "order-1042", 0));
        let elsewhere = IdNamespace::from_bytes([0xee; 16]);
        let key = IdempotencyKey::parse(b"order-1042").expect("key");
        let acme = PartnerId::parse("acme").expect("partner");
        assert_ne!(
            keyed_transaction_id(&elsewhere, &acme, &key, 0).to_string(),
            id("acme", "order-1042", 0),
            "another deployment, another id"
        );
    }

    /// The namespace of the test vector in docs/signing.md.
    const NAMESPACE: IdNamespace = IdNamespace::from_bytes(*b"0123456789abcdef");

    #[test]
    fn namespaces_round_trip_through_hex() {
        let hex = NAMESPACE.to_hex();
        assert_eq!(hex, "30313233343536373839616263646566");
        assert_eq!(IdNamespace::from_hex(&hex), Some(NAMESPACE));
        assert_eq!(IdNamespace::from_hex("3031"), None);
        assert_eq!(IdNamespace::from_hex(&"zz".repeat(16)), None);
    }

    #[test]
    fn keyed_ids_are_never_random_ones() {
        let keyed = keyed_transaction_id(
            &NAMESPACE,
            &PartnerId::parse("acme").expect("partner"),
            &IdempotencyKey::parse(b"k").expect("key"),
            0,
        );
        assert_eq!(keyed.get_version_num(), 8);
        let random = crate::testing::CountingRandom::default();
        for _ in 0..64 {
            assert_eq!(crate::random::uuid_v4(&random).get_version_num(), 4);
        }
    }

    #[test]
    fn keys_are_bare_or_structured_field_strings() {
        assert_eq!(key("retry-42").as_deref(), Ok("retry-42"));
        assert_eq!(key("\"retry-42\"").as_deref(), Ok("retry-42"));
        assert_eq!(key("\"a \\\"b\\\" \\\\c\"").as_deref(), Ok("a \"b\" \\c"));
        assert_eq!(key("with space").as_deref(), Ok("with space"));
        assert_eq!(key(&"k".repeat(255)).map(|k| k.len()), Ok(255));
        assert_eq!(
            key(&format!("\"{}\"", "k".repeat(255))).map(|k| k.len()),
            Ok(255),
            "the limit applies to the key, not its quotes"
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in [
            "",
            "\"\"",
            "\"open",
            "\"a\"b\"",
            "\"a\\nb\"",
            "tab\there",
            "caf\u{e9}",
            "\u{7f}",
            " lead",
            "trail ",
        ] {
            assert!(key(bad).is_err(), "{bad:?} accepted");
        }
        assert!(key(&"k".repeat(256)).is_err());
    }

    #[test]
    fn the_header_is_optional_but_never_repeated() {
        assert_eq!(IdempotencyKey::from_header(&[]), Ok(None));
        let refusal = IdempotencyKey::from_header(&[b"a", b"b"]).expect_err("twice");
        assert!(refusal.message().starts_with("Idempotency-Key"));
        let refusal = IdempotencyKey::from_header(&[b""]).expect_err("empty");
        assert_eq!(refusal.kind(), crate::ErrorKind::ValidationError);
        assert!(refusal.message().starts_with("Idempotency-Key"));
    }

    #[test]
    fn order_whitespace_and_escapes_do_not_change_the_fingerprint() {
        let a = fingerprint(r#"{"amount":"100","currency":"USDT"}"#);
        assert_eq!(
            a,
            fingerprint(r#"{ "currency" : "USDT",  "amount":"100" }"#)
        );
        assert_eq!(
            a,
            fingerprint(r#"{"amount":"1\u0030\u0030","currency":"USDT"}"#)
        );
    }

    #[test]
    fn values_names_and_presence_change_the_fingerprint() {
        let a = fingerprint(r#"{"amount":"100","currency":"USDT"}"#);
        for other in [
            r#"{"amount":"100.0","currency":"USDT"}"#,
            r#"{"amount":"100","currency":"USDC"}"#,
            r#"{"amount":"100","currency":"USDT","type":"buy"}"#,
            r#"{"amount":"100","currency":"USDT","type":null}"#,
            r#"{"amount":"100"}"#,
            r#"{"amount":"100","currenc":"USDT"}"#,
            // The framing keeps a name's end apart from its value's start.
            r#"{"amount":"100","currencyU":"SDT"}"#,
        ] {
            assert_ne!(a, fingerprint(other), "{other}");
        }
    }

    proptest! {
        #[test]
        fn member_order_never_matters(
            members in proptest::collection::btree_map("[a-z]{1,8}", "[ -~]{0,12}", 0..8),
            seed in any::<u64>(),
        ) {
            let mut listed: Vec<(String, String)> = members.into_iter().collect();
            let encode = |list: &[(String, String)]| {
                let map: Vec<String> = list
                    .iter()
                    .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).expect("k"), serde_json::to_string(v).expect("v")))
                    .collect();
                format!("{{{}}}", map.join(","))
            };
            let forward = fingerprint(&encode(&listed));
            // A deterministic shuffle from the seed.
            let len = listed.len();
            let mut state = seed;
            for i in (1..len).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let j = usize::try_from(state >> 33).unwrap_or(0) % (i + 1);
                listed.swap(i, j);
            }
            prop_assert_eq!(forward, fingerprint(&encode(&listed)));
        }

        #[test]
        fn different_string_values_differ(
            name in "[a-z]{1,8}",
            a in "[ -~]{0,16}",
            b in "[ -~]{0,16}",
        ) {
            prop_assume!(a != b);
            let body = |v: &str| format!("{{{}:{}}}", serde_json::to_string(&name).expect("n"), serde_json::to_string(v).expect("v"));
            prop_assert_ne!(fingerprint(&body(&a)), fingerprint(&body(&b)));
        }

        #[test]
        fn keyed_ids_are_version_8_and_differ_when_any_input_does(
            partner_a in "[a-z0-9-]{1,12}",
            partner_b in "[a-z0-9-]{1,12}",
            key_a in "[#-~]{1,24}",
            key_b in "[#-~]{1,24}",
            generation_a in 0u32..4,
            generation_b in 0u32..4,
        ) {
            let id = |partner: &str, key: &str, generation: u32| {
                keyed_transaction_id(
                    &NAMESPACE,
                    &PartnerId::parse(partner).expect("partner"),
                    &IdempotencyKey::parse(key.as_bytes()).expect("key"),
                    generation,
                )
            };
            let a = id(&partner_a, &key_a, generation_a);
            prop_assert_eq!(a.get_version_num(), 8);
            prop_assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
            prop_assert_eq!(a, id(&partner_a, &key_a, generation_a), "deterministic");
            let same = (&partner_a, &key_a, generation_a) == (&partner_b, &key_b, generation_b);
            prop_assert_eq!(a == id(&partner_b, &key_b, generation_b), same);
        }

        #[test]
        fn parsing_never_panics_and_accepted_keys_are_printable(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(key) = IdempotencyKey::parse(&bytes) {
                prop_assert!((1..=MAX_KEY_LEN).contains(&key.as_str().len()));
                prop_assert!(key.as_str().bytes().all(|b| (0x20..=0x7e).contains(&b)));
            }
        }
    }
}

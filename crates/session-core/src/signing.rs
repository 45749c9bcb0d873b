//! The session `signature`: both schemes of SPEC.md §5, the exact bytes of which
//! are specified in `docs/signing.md`.
//!
//! A signature is `v2:` followed by 128 lower-case hex digits. The default scheme
//! is HMAC-SHA512 over a length-prefixed encoding of the session's fields; the
//! provider-compatible scheme is `sha512_hex(address + secret + client_ip +
//! merchant_transaction_id)`.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha512};

use crate::secret::{Secret, constant_time_eq};
use crate::time::Timestamp;

type HmacSha512 = Hmac<Sha512>;

/// The domain-separation tag that opens every `hmac-sha512` message.
pub const V2_TAG: &str = "widget-session-v2";

/// Which formula a partner's widget verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureScheme {
    /// HMAC-SHA512 over the length-prefixed field encoding (the default).
    HmacSha512,
    /// `sha512_hex(address + secret + client_ip + merchant_transaction_id)`.
    Sha512Concat,
}

impl SignatureScheme {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "hmac-sha512" => Some(Self::HmacSha512),
            "sha512-concat" => Some(Self::Sha512Concat),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha512 => "hmac-sha512",
            Self::Sha512Concat => "sha512-concat",
        }
    }
}

/// The session fields a signature covers, in signing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedFields<'a> {
    pub merchant_transaction_id: &'a str,
    pub address: &'a str,
    /// Canonical client IP, or `""` when the partner sent none.
    pub client_ip: &'a str,
    pub currency: &'a str,
    pub network: &'a str,
    pub amount: &'a str,
    pub tx_type: &'a str,
    pub widget_id: &'a str,
}

impl SignedFields<'_> {
    /// The fields in the order they are encoded.
    pub fn in_order(&self) -> [&str; 8] {
        [
            self.merchant_transaction_id,
            self.address,
            self.client_ip,
            self.currency,
            self.network,
            self.amount,
            self.tx_type,
            self.widget_id,
        ]
    }
}

/// Appends the `hmac-sha512` message for `fields` to `out`: the tag and each
/// field as a 4-byte big-endian byte length followed by its UTF-8 bytes.
pub fn encode_v2_message(fields: &SignedFields<'_>, out: &mut Vec<u8>) {
    for part in std::iter::once(V2_TAG).chain(fields.in_order()) {
        // Every field is bounded far below 4 GiB by validation; saturate anyway
        // rather than wrap.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
}

/// `v2:` + 128 lower-case hex digits, held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; Signature::LEN]);

impl Signature {
    pub const LEN: usize = 3 + 128;

    /// All zeros: the value a session holds for the moment between being
    /// assembled and being signed from its own fields.
    pub(crate) fn unsigned() -> Self {
        Self::from_digest(&[0; 64])
    }

    fn from_digest(digest: &[u8]) -> Self {
        let mut text = [0u8; Self::LEN];
        text[..3].copy_from_slice(b"v2:");
        // 64 digest bytes fill exactly the 128 hex digits after the prefix.
        if hex::encode_to_slice(digest, &mut text[3..]).is_err() {
            text[3..].fill(b'0');
        }
        Self(text)
    }

    /// Parses a stored signature; `None` unless it is `v2:` + 128 lower-case hex.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let well_formed = bytes.len() == Self::LEN
            && bytes.starts_with(b"v2:")
            && bytes[3..]
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut text = [0u8; Self::LEN];
        well_formed.then(|| {
            text.copy_from_slice(bytes);
            Self(text)
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into the buffer.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Constant-time comparison with what a client presented.
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(&self.0, presented.as_bytes())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signing secret of a partner, prepared for fast use.
#[derive(Clone)]
pub struct SigningKey {
    kid: Arc<str>,
    secret: Secret,
    /// HMAC state already keyed with the secret: cloning it per message skips the
    /// key schedule, which is a third of the cost of a short HMAC.
    keyed: HmacSha512,
    not_after: Option<Timestamp>,
}

impl SigningKey {
    /// `None` when the secret is empty (the spec requires a non-empty string).
    pub fn new(
        kid: impl Into<Arc<str>>,
        secret: Secret,
        not_after: Option<Timestamp>,
    ) -> Option<Self> {
        if secret.expose().is_empty() {
            return None;
        }
        let keyed = HmacSha512::new_from_slice(secret.expose().as_bytes()).ok()?;
        Some(Self {
            kid: kid.into(),
            secret,
            keyed,
            not_after,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key id, shared with every session it signs.
    pub fn kid_shared(&self) -> &Arc<str> {
        &self.kid
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// The end of this key's grace period, when it has been rotated out.
    pub fn not_after(&self) -> Option<Timestamp> {
        self.not_after
    }

    pub fn sign(&self, scheme: SignatureScheme, fields: &SignedFields<'_>) -> Signature {
        match scheme {
            SignatureScheme::HmacSha512 => {
                let mut mac = self.keyed.clone();
                let mut message = Vec::with_capacity(256);
                encode_v2_message(fields, &mut message);
                mac.update(&message);
                Signature::from_digest(&mac.finalize().into_bytes())
            }
            SignatureScheme::Sha512Concat => {
                let mut hash = Sha512::new();
                hash.update(fields.address.as_bytes());
                hash.update(self.secret.expose().as_bytes());
                hash.update(fields.client_ip.as_bytes());
                hash.update(fields.merchant_transaction_id.as_bytes());
                Signature::from_digest(&hash.finalize())
            }
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A partner's signing scheme and keys: the current key signs; it and any
/// rotated-out key still inside its grace period verify.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    scheme: SignatureScheme,
    current: SigningKey,
    previous: Vec<SigningKey>,
}

impl SigningKeys {
    pub fn new(scheme: SignatureScheme, current: SigningKey, previous: Vec<SigningKey>) -> Self {
        Self {
            scheme,
            current,
            previous,
        }
    }

    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    pub fn previous(&self) -> &[SigningKey] {
        &self.previous
    }

    pub fn sign(&self, fields: &SignedFields<'_>) -> Signature {
        self.current.sign(self.scheme, fields)
    }

    /// Whether `presented` is the signature of `fields` under a key valid at `now`.
    /// Every candidate is computed and compared in constant time.
    pub fn verify(&self, fields: &SignedFields<'_>, presented: &str, now: Timestamp) -> bool {
        std::iter::once(&self.current)
            .chain(
                self.previous
                    .iter()
                    .filter(|key| key.not_after.is_none_or(|end| now < end)),
            )
            .fold(false, |found, key| {
                key.sign(self.scheme, fields).matches(presented) | found
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fields() -> SignedFields<'static> {
        SignedFields {
            merchant_transaction_id: "550e8400-e29b-41d4-a716-446655440000",
            address: "TXYZabcdefghijkmnopqrstuvwxyz12345",
            client_ip: "203.0.113.42",
            currency: "USDT",
            network: "TRC20",
            amount: "100",
            tx_type: "buy",
            widget_id: "fb359d09-fff6-4b1f-906c-b9062b135065",
        }
    }

    fn key(secret: &str) -> SigningKey {
        SigningKey::new("k1", Secret::new(secret), None).expect("non-empty secret")
    }

    #[test]
    fn hmac_scheme_matches_an_independent_computation() {
        let mut message = Vec::new();
        encode_v2_message(&fields(), &mut message);
        let mut mac = HmacSha512::new_from_slice(b"s3cret").expect("any key length");
        mac.update(&message);
        let expected = format!("v2:{}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            key("s3cret")
                .sign(SignatureScheme::HmacSha512, &fields())
                .as_str(),
            expected
        );
    }

    #[test]
    fn concat_scheme_is_the_provider_formula() {
        let f = fields();
        let concatenated = format!(
            "{}{}{}{}",
            f.address, "s3cret", f.client_ip, f.merchant_transaction_id
        );
        let expected = format!(
            "v2:{}",
            hex::encode(Sha512::digest(concatenated.as_bytes()))
        );
        assert_eq!(
            key("s3cret")
                .sign(SignatureScheme::Sha512Concat, &f)
                .as_str(),
            expected
        );
    }

    #[test]
    fn signature_text_is_v2_and_lower_hex() {
        let signature = key("x").sign(SignatureScheme::HmacSha512, &fields());
        assert_eq!(Signature::parse(signature.as_str()), Some(signature));
        assert_eq!(Signature::parse(&signature.as_str().to_uppercase()), None);
        assert_eq!(Signature::parse("v2:abc"), None);
        assert!(signature.matches(signature.as_str()));
        assert!(!signature.matches(&signature.as_str()[..130]));
    }

    #[test]
    fn empty_secret_is_refused() {
        assert!(SigningKey::new("k", Secret::new(""), None).is_none());
    }

    #[test]
    fn previous_key_verifies_only_during_its_grace_period() {
        let old = SigningKey::new(
            "k0",
            Secret::new("old"),
            Some(Timestamp::from_unix_seconds(100)),
        )
        .expect("key");
        let keys = SigningKeys::new(SignatureScheme::HmacSha512, key("new"), vec![old.clone()]);
        let by_old = old.sign(SignatureScheme::HmacSha512, &fields());
        assert!(keys.verify(&fields(), by_old.as_str(), Timestamp::from_unix_seconds(99)));
        assert!(!keys.verify(
            &fields(),
            by_old.as_str(),
            Timestamp::from_unix_seconds(100)
        ));
        let by_new = keys.sign(&fields());
        assert!(keys.verify(
            &fields(),
            by_new.as_str(),
            Timestamp::from_unix_seconds(1_000)
        ));
        let mut tampered = fields();
        tampered.amount = "1000";
        assert!(!keys.verify(&tampered, by_new.as_str(), Timestamp::from_unix_seconds(1)));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        assert!(!format!("{:?}", key("topsecretvalue")).contains("topsecretvalue"));
    }

    fn tuple() -> impl Strategy<Value = [String; 8]> {
        // Short strings over an alphabet that includes the bytes a naive
        // concatenation or a 0x00 separator would confuse.
        let part = proptest::string::string_regex("[a\\x00\\x01:|b]{0,5}").expect("regex");
        proptest::array::uniform8(part)
    }

    fn as_fields(t: &[String; 8]) -> SignedFields<'_> {
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

    proptest! {
        #[test]
        fn distinct_field_tuples_never_share_message_bytes(a in tuple(), b in tuple()) {
            prop_assume!(a != b);
            let (mut left, mut right) = (Vec::new(), Vec::new());
            encode_v2_message(&as_fields(&a), &mut left);
            encode_v2_message(&as_fields(&b), &mut right);
            prop_assert_ne!(left, right);
        }

        #[test]
        fn moving_bytes_across_a_boundary_changes_the_message(t in tuple(), from in 0usize..7) {
            // The classic ambiguity: ("ab", "c") vs ("a", "bc").
            let mut shifted = t.clone();
            if let Some(last) = shifted[from].pop() {
                shifted[from + 1].insert(0, last);
                let (mut left, mut right) = (Vec::new(), Vec::new());
                encode_v2_message(&as_fields(&t), &mut left);
                encode_v2_message(&as_fields(&shifted), &mut right);
                prop_assert_ne!(left, right);
            }
        }

        #[test]
        fn message_decodes_back_to_its_fields(t in tuple()) {
            let mut message = Vec::new();
            encode_v2_message(&as_fields(&t), &mut message);
            let mut rest = message.as_slice();
            let mut parts = Vec::new();
            while rest.len() >= 4 {
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                parts.push(String::from_utf8(rest[4..4 + len].to_vec()).expect("utf8"));
                rest = &rest[4 + len..];
            }
            prop_assert!(rest.is_empty());
            prop_assert_eq!(&parts[0], V2_TAG);
            prop_assert_eq!(&parts[1..], &t[..]);
        }
    }
}

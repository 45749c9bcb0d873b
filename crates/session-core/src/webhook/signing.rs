//! Standard Webhooks v1 signatures: `webhook-signature: v1,<base64 HMAC-SHA256
//! of "<webhook-id>.<webhook-timestamp>.<body>">`, keyed by the base64-decoded
//! part of a `whsec_` secret. During a secret's rotation grace the header
//! carries one signature per key, space-separated, so a partner verifying
//! with either the old or the new secret accepts it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::{Secret, constant_time_eq};
use crate::time::Timestamp;

/// What begins every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// One webhook signing key: the HMAC-SHA256 state keyed once.
#[derive(Clone)]
pub struct WebhookKey(Hmac<Sha256>);

impl fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookKey(<redacted>)")
    }
}

impl WebhookKey {
    /// The key of a `whsec_<base64>` secret (the prefix may be left out, as
    /// Standard Webhooks libraries allow). The decoded key must not be empty.
    pub fn from_secret(secret: &Secret) -> Result<Self, &'static str> {
        let text = secret.expose();
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        let key = B64
            .decode(encoded)
            .map_err(|_| "must be whsec_ followed by base64")?;
        if key.is_empty() {
            return Err("must be whsec_ followed by base64 of at least one byte");
        }
        Hmac::new_from_slice(&key)
            .map(Self)
            .map_err(|_| "is not a usable HMAC key")
    }

    /// `v1,<base64 signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        let mut signature = String::with_capacity(3 + 44);
        signature.push_str("v1,");
        B64.encode_string(mac.finalize().into_bytes(), &mut signature);
        signature
    }

    /// Whether `header` (a `webhook-signature` value: space-separated
    /// `version,signature` items) holds this key's v1 signature of the
    /// message. Lengths are compared before the constant-time comparison, so
    /// an empty `v1,` never passes.
    pub fn verifies(&self, header: &str, id: &str, timestamp: i64, body: &[u8]) -> bool {
        let expected = self.sign(id, timestamp, body);
        header.split(' ').any(|presented| {
            presented.len() == expected.len()
                && constant_time_eq(presented.as_bytes(), expected.as_bytes())
        })
    }
}

/// A partner's webhook keys: the current one, and rotated-out ones that
/// still sign until the end of their grace period.
#[derive(Debug, Clone)]
pub struct WebhookKeys {
    current: WebhookKey,
    previous: Vec<(WebhookKey, Timestamp)>,
}

impl WebhookKeys {
    pub fn new(current: WebhookKey, previous: Vec<(WebhookKey, Timestamp)>) -> Self {
        Self { current, previous }
    }

    /// The `webhook-signature` header of one attempt at `now`: the current
    /// key's signature, then one per rotated-out key still in its grace.
    pub fn signature_header(
        &self,
        id: &str,
        timestamp: i64,
        body: &[u8],
        now: Timestamp,
    ) -> String {
        let mut header = self.current.sign(id, timestamp, body);
        for (key, not_after) in &self.previous {
            if now < *not_after {
                header.push(' ');
                header.push_str(&key.sign(id, timestamp, body));
            }
        }
        header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks project's published vector.
    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn key(secret: &str) -> WebhookKey {
        WebhookKey::from_secret(&Secret::new(secret)).expect("valid secret")
    }

    #[test]
    fn matches_the_standard_webhooks_vector() {
        assert_eq!(key(SECRET).sign(ID, TIMESTAMP, BODY), SIGNATURE);
        let unprefixed = SECRET.trim_start_matches(SECRET_PREFIX);
        assert_eq!(key(unprefixed).sign(ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn verification_needs_the_exact_signature() {
        let key = key(SECRET);
        assert!(key.verifies(SIGNATURE, ID, TIMESTAMP, BODY));
        assert!(key.verifies(&format!("v1,AAAA {SIGNATURE}"), ID, TIMESTAMP, BODY));
        for wrong in ["", "v1,", "v1", &SIGNATURE[..SIGNATURE.len() - 1]] {
            assert!(!key.verifies(wrong, ID, TIMESTAMP, BODY), "{wrong:?}");
        }
        assert!(!key.verifies(SIGNATURE, ID, TIMESTAMP + 1, BODY));
        assert!(!key.verifies(SIGNATURE, "msg_other", TIMESTAMP, BODY));
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for bad in ["whsec_", "whsec_!!!", "whsec_a", ""] {
            assert!(
                WebhookKey::from_secret(&Secret::new(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rotated_out_keys_sign_until_their_grace_ends() {
        let old = key("whsec_b2xkLWtleQ==");
        let keys = WebhookKeys::new(
            key(SECRET),
            vec![(old.clone(), Timestamp::from_unix_seconds(100))],
        );
        let during = keys.signature_header(ID, TIMESTAMP, BODY, Timestamp::from_unix_seconds(99));
        let parts: Vec<&str> = during.split(' ').collect();
        assert_eq!(parts, [SIGNATURE, old.sign(ID, TIMESTAMP, BODY).as_str()]);
        let after = keys.signature_header(ID, TIMESTAMP, BODY, Timestamp::from_unix_seconds(100));
        assert_eq!(after, SIGNATURE);
    }
}

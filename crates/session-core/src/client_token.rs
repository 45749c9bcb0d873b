//! Partner `client_token`s: generation, shape check and the digest they are
//! stored and looked up by.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};

use crate::partner::PartnerId;
use crate::random::Random;
use crate::time::Timestamp;

/// The environment a token belongs to, visible in its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEnv {
    Live,
    Test,
}

impl TokenEnv {
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Live => "ct_live_",
            Self::Test => "ct_test_",
        }
    }
}

/// 32 random bytes (256 bits) encode to this many base64url characters.
const BODY_LEN: usize = 43;
/// Tokens supplied by operators (bootstrap files) may be longer; never shorter.
const MAX_BODY_LEN: usize = 128;

/// The SHA-256 of a client token: all the service ever stores of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short, non-secret handle for operators (first 8 hex digits of the digest).
    pub fn short_id(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", self.short_id())
    }
}

/// A new token with at least 256 random bits: `ct_live_` or `ct_test_` followed
/// by 43 base64url characters.
pub fn generate(env: TokenEnv, random: &dyn Random) -> String {
    let mut bytes = [0u8; 32];
    random.fill(&mut bytes);
    let mut token = String::with_capacity(8 + BODY_LEN);
    token.push_str(env.prefix());
    B64.encode_string(bytes, &mut token);
    token
}

/// A stored client token, as operators see it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTokenRecord {
    pub digest: TokenDigest,
    pub partner_id: PartnerId,
    pub label: String,
    pub created_at: Timestamp,
    /// End of the grace period once rotated.
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

impl ClientTokenRecord {
    /// A token record that is active from `now` until rotated or revoked.
    pub fn active(
        digest: TokenDigest,
        partner: PartnerId,
        label: impl Into<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            digest,
            partner_id: partner,
            label: label.into(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
        }
    }

    /// Whether the token authenticates at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|end| now < end)
    }
}

/// A token just issued: the plaintext, to be shown once, and the record to
/// store (which holds only its digest).
pub struct IssuedToken {
    pub token: String,
    pub record: ClientTokenRecord,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("record", &self.record)
            .finish()
    }
}

/// Issues a new active token of `partner`: generated from `random`, labelled,
/// created `now`. The caller stores `record` and shows `token` once.
pub fn issue(
    env: TokenEnv,
    partner: PartnerId,
    label: impl Into<String>,
    now: Timestamp,
    random: &dyn Random,
) -> IssuedToken {
    let token = generate(env, random);
    let record = ClientTokenRecord::active(TokenDigest::of(&token), partner, label, now);
    IssuedToken { token, record }
}

/// The environment a well-formed client token belongs to, by its prefix.
pub fn env_of(token: &str) -> Option<TokenEnv> {
    if !is_well_formed(token) {
        return None;
    }
    [TokenEnv::Live, TokenEnv::Test]
        .into_iter()
        .find(|env| token.starts_with(env.prefix()))
}

/// Whether `token` has the shape of a client token. A token that does not is
/// refused without a store lookup.
pub fn is_well_formed(token: &str) -> bool {
    let body = token
        .strip_prefix(TokenEnv::Live.prefix())
        .or_else(|| token.strip_prefix(TokenEnv::Test.prefix()));
    body.is_some_and(|body| {
        (BODY_LEN..=MAX_BODY_LEN).contains(&body.len())
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::CountingRandom;

    #[test]
    fn generated_tokens_are_well_formed_and_carry_256_bits() {
        let token = generate(TokenEnv::Test, &CountingRandom::default());
        assert!(token.starts_with("ct_test_"));
        assert_eq!(B64.decode(&token[8..]).expect("base64url").len(), 32);
        assert!(is_well_formed(&token));
        assert!(is_well_formed(&generate(
            TokenEnv::Live,
            &CountingRandom::default()
        )));
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        let body = "A".repeat(43);
        for bad in [
            String::new(),
            format!("ct_prod_{body}"),
            format!("ct_test_{}", "A".repeat(42)),
            format!("ct_test_{}", "A".repeat(129)),
            format!("ct_test_{}!", "A".repeat(43)),
            body.clone(),
        ] {
            assert!(!is_well_formed(&bad), "{bad:?}");
        }
    }

    #[test]
    fn digest_is_sha256_and_debug_shows_only_a_prefix() {
        let digest = TokenDigest::of("abc");
        assert_eq!(
            digest.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TokenDigest::from_hex(&digest.to_hex()), Some(digest));
        assert_eq!(format!("{digest:?}"), "TokenDigest(ba7816bf)");
    }
}

//! The `init_token`: a compact JWS (HS256, `typ: JWT`) that any JWT library can
//! read, minted per session and redeemed once by the hosted widget.
//!
//! Verification is strict and needs no store: the header must be byte-for-byte
//! one this service mints (which pins the algorithm and key id), the MAC must
//! match in constant time, and the claims must be exactly `jti`, `sub`, `aud`,
//! `iat`, `exp` with the right types.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::secret::Secret;
use crate::time::Timestamp;

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of the random `jti`.
const JTI_BYTES: usize = 16;
/// Tokens longer than this are refused before any decoding work.
const MAX_TOKEN_LEN: usize = 1024;

/// A key the service signs init tokens with, identified by `kid`.
#[derive(Clone)]
pub struct TokenKey {
    kid: Box<str>,
    keyed: HmacSha256,
    /// The base64url of this key's JOSE header, computed once.
    header: Box<str>,
}

impl TokenKey {
    /// `None` when the secret is shorter than 32 bytes (RFC 7518 §3.2 asks for a
    /// key at least as long as the hash output) or the kid is not a short token.
    pub fn new(kid: &str, secret: &Secret) -> Option<Self> {
        let kid_ok = !kid.is_empty()
            && kid.len() <= 64
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !kid_ok || secret.expose().len() < 32 {
            return None;
        }
        let keyed = HmacSha256::new_from_slice(secret.expose().as_bytes()).ok()?;
        let header_json = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#);
        Some(Self {
            kid: kid.into(),
            keyed,
            header: B64.encode(header_json).into(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The signing key and any older keys still accepted for verification.
#[derive(Debug, Clone)]
pub struct TokenKeys {
    current: TokenKey,
    previous: Vec<TokenKey>,
}

/// The claims of a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitTokenClaims {
    pub jti: String,
    /// The session's `merchant_transaction_id`.
    pub sub: String,
    /// The session's `widget_id`.
    pub aud: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A freshly minted token and the facts the store keeps about it.
#[derive(Debug, Clone)]
pub struct MintedToken {
    pub token: String,
    pub jti: String,
    pub expires_at: Timestamp,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Not a token this service minted, or not for this session and widget.
    Invalid,
    /// Authentic, but past `exp`.
    Expired,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims<'a> {
    #[serde(borrow)]
    jti: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    sub: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    aud: std::borrow::Cow<'a, str>,
    iat: i64,
    exp: i64,
}

impl TokenKeys {
    pub fn new(current: TokenKey, previous: Vec<TokenKey>) -> Self {
        Self { current, previous }
    }

    pub fn current(&self) -> &TokenKey {
        &self.current
    }

    /// Mints a token for session `sub` and widget `aud`, valid `ttl_seconds` from `now`.
    /// `jti_bytes` must be fresh randomness.
    pub fn mint(
        &self,
        sub: &str,
        aud: &str,
        now: Timestamp,
        ttl_seconds: i64,
        jti_bytes: [u8; JTI_BYTES],
    ) -> MintedToken {
        let jti = B64.encode(jti_bytes);
        let iat = now.unix_seconds();
        let exp = iat.saturating_add(ttl_seconds);
        MintedToken {
            token: self.assemble(&jti, sub, aud, iat, exp),
            jti,
            expires_at: Timestamp::from_unix_seconds(exp),
        }
    }

    /// The token [`Self::mint`] gave a session minted at `issued_at` with
    /// `jti`, expiring at `expires_at`: the same bytes while the current key
    /// is the one that minted it (tokens are deterministic in their claims).
    /// An idempotent replay uses it to repeat an answer without keeping a
    /// live token at rest.
    pub fn remint(
        &self,
        sub: &str,
        aud: &str,
        issued_at: Timestamp,
        expires_at: Timestamp,
        jti: &str,
    ) -> String {
        self.assemble(
            jti,
            sub,
            aud,
            issued_at.unix_seconds(),
            expires_at.unix_seconds(),
        )
    }

    fn assemble(&self, jti: &str, sub: &str, aud: &str, iat: i64, exp: i64) -> String {
        // `sub` and `aud` are UUIDs and `jti` is base64url: nothing to escape.
        // Built by hand: this runs once per session, and `format!` costs more
        // than the rest of the assembly.
        let mut claims = String::with_capacity(160);
        for part in [
            r#"{"jti":""#,
            jti,
            r#"","sub":""#,
            sub,
            r#"","aud":""#,
            aud,
            r#"","iat":"#,
        ] {
            claims.push_str(part);
        }
        push_integer(&mut claims, iat);
        claims.push_str(r#","exp":"#);
        push_integer(&mut claims, exp);
        claims.push('}');
        let key = &self.current;
        let mut token = String::with_capacity(key.header.len() + claims.len() * 4 / 3 + 50);
        token.push_str(&key.header);
        token.push('.');
        B64.encode_string(claims.as_bytes(), &mut token);
        let mut mac = key.keyed.clone();
        mac.update(token.as_bytes());
        token.push('.');
        B64.encode_string(mac.finalize().into_bytes(), &mut token);
        token
    }

    /// Verifies authenticity, then that the token is for session `sub` and widget
    /// `aud`, then expiry. Touches nothing but memory.
    pub fn verify(
        &self,
        token: &str,
        sub: &str,
        aud: &str,
        now: Timestamp,
    ) -> Result<InitTokenClaims, TokenRefusal> {
        let claims = self.authentic_claims(token).ok_or(TokenRefusal::Invalid)?;
        if claims.sub != sub || claims.aud != aud {
            return Err(TokenRefusal::Invalid);
        }
        if now.unix_seconds() >= claims.expires_at.unix_seconds() {
            return Err(TokenRefusal::Expired);
        }
        Ok(claims)
    }

    /// Verifies authenticity, then that the token is for session `sub`, then
    /// expiry, leaving the widget (`aud`) to the caller: for a session whose
    /// widget is known only once it is loaded.
    pub fn verify_subject(
        &self,
        token: &str,
        sub: &str,
        now: Timestamp,
    ) -> Result<InitTokenClaims, TokenRefusal> {
        let claims = self.authentic_claims(token).ok_or(TokenRefusal::Invalid)?;
        if claims.sub != sub {
            return Err(TokenRefusal::Invalid);
        }
        if now.unix_seconds() >= claims.expires_at.unix_seconds() {
            return Err(TokenRefusal::Expired);
        }
        Ok(claims)
    }

    fn authentic_claims(&self, token: &str) -> Option<InitTokenClaims> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut parts = token.split('.');
        let (header, payload, mac_b64) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| *key.header == *header)?;
        let presented_mac = B64.decode(mac_b64).ok()?;
        let mut mac = key.keyed.clone();
        mac.update(&token.as_bytes()[..header.len() + 1 + payload.len()]);
        mac.verify_slice(&presented_mac).ok()?;
        let payload = B64.decode(payload).ok()?;
        let claims: Claims<'_> = serde_json::from_slice(&payload).ok()?;
        Some(InitTokenClaims {
            jti: claims.jti.into_owned(),
            sub: claims.sub.into_owned(),
            aud: claims.aud.into_owned(),
            issued_at: Timestamp::from_unix_seconds(claims.iat),
            expires_at: Timestamp::from_unix_seconds(claims.exp),
        })
    }
}

/// Appends the decimal form of `value`.
fn push_integer(out: &mut String, value: i64) {
    let mut digits = [0u8; 20];
    let mut rest = value.unsigned_abs();
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push('-');
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or("0"));
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "550e8400-e29b-41d4-a716-446655440000";
    const AUD: &str = "fb359d09-fff6-4b1f-906c-b9062b135065";

    fn keys(kid: &str, secret: &str) -> TokenKeys {
        TokenKeys::new(
            TokenKey::new(kid, &Secret::new(secret)).expect("valid key"),
            vec![],
        )
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(seconds)
    }

    fn secret32(fill: char) -> String {
        fill.to_string().repeat(32)
    }

    #[test]
    fn round_trip_reads_back_the_claims() {
        let keys = keys("t1", &secret32('a'));
        let minted = keys.mint(SUB, AUD, at(1_000), 3_600, [7; 16]);
        let claims = keys
            .verify(&minted.token, SUB, AUD, at(1_001))
            .expect("valid token");
        assert_eq!(claims.jti, minted.jti);
        assert_eq!(
            (claims.issued_at, claims.expires_at),
            (at(1_000), at(4_600))
        );
        assert_eq!(minted.expires_at, at(4_600));
    }

    #[test]
    fn any_jwt_library_can_read_it() {
        let minted = keys("t1", &secret32('a')).mint(SUB, AUD, at(1_000), 60, [1; 16]);
        let parts: Vec<&str> = minted.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[0]).expect("b64")).expect("json");
        assert_eq!(
            header,
            serde_json::json!({"alg": "HS256", "typ": "JWT", "kid": "t1"})
        );
        let mut mac = HmacSha256::new_from_slice(secret32('a').as_bytes()).expect("key");
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        assert_eq!(B64.encode(mac.finalize().into_bytes()), parts[2]);
    }

    #[test]
    fn expiry_is_distinguished_from_forgery() {
        let keys = keys("t1", &secret32('a'));
        let minted = keys.mint(SUB, AUD, at(1_000), 60, [1; 16]);
        assert!(keys.verify(&minted.token, SUB, AUD, at(1_059)).is_ok());
        assert_eq!(
            keys.verify(&minted.token, SUB, AUD, at(1_060)),
            Err(TokenRefusal::Expired)
        );
    }

    #[test]
    fn refuses_tokens_for_another_session_or_widget() {
        let keys = keys("t1", &secret32('a'));
        let minted = keys.mint(SUB, AUD, at(1_000), 60, [1; 16]);
        assert_eq!(
            keys.verify(&minted.token, AUD, AUD, at(1_000)),
            Err(TokenRefusal::Invalid)
        );
        assert_eq!(
            keys.verify(&minted.token, SUB, SUB, at(1_000)),
            Err(TokenRefusal::Invalid)
        );
    }

    #[test]
    fn refuses_forgeries_and_garbage() {
        let keys = keys("t1", &secret32('a'));
        let other = self::keys("t1", &secret32('b'));
        let minted = keys.mint(SUB, AUD, at(1_000), 60, [1; 16]);
        let parts: Vec<&str> = minted.token.split('.').collect();
        let none_alg = format!(
            "{}.{}.",
            B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        let longer_exp = {
            let claims =
                format!(r#"{{"jti":"x","sub":"{SUB}","aud":"{AUD}","iat":1000,"exp":999999}}"#);
            format!("{}.{}.{}", parts[0], B64.encode(claims), parts[2])
        };
        let forged = other.mint(SUB, AUD, at(1_000), 60, [1; 16]).token;
        let cases = [
            ("empty", String::new()),
            ("two parts", format!("{}.{}", parts[0], parts[1])),
            ("four parts", format!("{}.x", minted.token)),
            ("alg none", none_alg),
            ("edited claims", longer_exp),
            ("other key", forged),
            ("padding added", format!("{}=", minted.token)),
            ("huge", "a".repeat(5_000)),
            (
                "flipped mac",
                format!(
                    "{}{}",
                    &minted.token[..minted.token.len() - 1],
                    if minted.token.ends_with('A') {
                        'B'
                    } else {
                        'A'
                    }
                ),
            ),
        ];
        for (why, token) in cases {
            assert_eq!(
                keys.verify(&token, SUB, AUD, at(1_000)),
                Err(TokenRefusal::Invalid),
                "{why}"
            );
        }
    }

    #[test]
    fn refuses_claims_with_extra_or_mistyped_fields() {
        let keys = keys("t1", &secret32('a'));
        let sign = |claims: &str| {
            let key = keys.current();
            let signing_input = format!("{}.{}", key.header, B64.encode(claims));
            let mut mac = key.keyed.clone();
            mac.update(signing_input.as_bytes());
            format!(
                "{signing_input}.{}",
                B64.encode(mac.finalize().into_bytes())
            )
        };
        let good = format!(r#"{{"jti":"j","sub":"{SUB}","aud":"{AUD}","iat":1000,"exp":2000}}"#);
        assert!(keys.verify(&sign(&good), SUB, AUD, at(1_000)).is_ok());
        for claims in [
            format!(r#"{{"jti":"j","sub":"{SUB}","aud":"{AUD}","iat":1000,"exp":"2000"}}"#),
            format!(
                r#"{{"jti":"j","sub":"{SUB}","aud":"{AUD}","iat":1000,"exp":2000,"admin":true}}"#
            ),
            format!(r#"{{"sub":"{SUB}","aud":"{AUD}","iat":1000,"exp":2000}}"#),
        ] {
            assert_eq!(
                keys.verify(&sign(&claims), SUB, AUD, at(1_000)),
                Err(TokenRefusal::Invalid),
                "{claims}"
            );
        }
    }

    #[test]
    fn rotated_key_still_verifies() {
        let old = TokenKey::new("t0", &Secret::new(secret32('o'))).expect("key");
        let new = TokenKey::new("t1", &Secret::new(secret32('n'))).expect("key");
        let minted_old = TokenKeys::new(old.clone(), vec![]).mint(SUB, AUD, at(1_000), 60, [1; 16]);
        let rotated = TokenKeys::new(new, vec![old]);
        assert!(
            rotated
                .verify(&minted_old.token, SUB, AUD, at(1_000))
                .is_ok()
        );
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for value in [0, 7, 10, 1_795_509_330, -1, i64::MAX, i64::MIN] {
            let mut out = String::new();
            push_integer(&mut out, value);
            assert_eq!(out, value.to_string());
        }
    }

    #[test]
    fn key_requirements() {
        assert!(TokenKey::new("k", &Secret::new("short")).is_none());
        assert!(TokenKey::new("bad kid\"", &Secret::new(secret32('a'))).is_none());
        assert!(TokenKey::new("", &Secret::new(secret32('a'))).is_none());
    }

    #[test]
    fn a_reminted_token_is_the_minted_one() {
        let keys = keys("t1", &secret32('r'));
        let now = Timestamp::from_unix_micros(1_795_509_330_654_321);
        let minted = keys.mint(SUB, AUD, now, 3_600, [9; JTI_BYTES]);
        let again = keys.remint(SUB, AUD, now, minted.expires_at, &minted.jti);
        assert_eq!(again, minted.token);
        let other = keys.remint(
            SUB,
            AUD,
            now.plus_seconds(1),
            minted.expires_at,
            &minted.jti,
        );
        assert_ne!(other, minted.token, "iat is part of the token");
    }
}

//! The payment provider's inbound events: signature check on the raw body and
//! decoding into a validated [`ProviderEvent`].

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{ErrorKind, Rejection};
use crate::json::{Object, Schema};
use crate::secret::Secret;
use crate::session::ProviderEvent;
use crate::status::{KycStatus, parse_status};
use crate::time::Timestamp;
use crate::value::{Amount, Code};

/// Fraction digits accepted in provider-reported amounts.
const PROVIDER_DECIMALS: u8 = 18;

/// How far ahead of our clock an `occurred_at` may be. A provider clock that
/// runs further ahead would make every later report look older than the last
/// one and freeze the transaction's KYC status (SPEC.md §4).
const MAX_CLOCK_AHEAD_SECONDS: i64 = 5 * 60;

/// The shared secret the provider signs its event bodies with.
#[derive(Clone)]
pub struct ProviderKey(Hmac<Sha256>);

impl std::fmt::Debug for ProviderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderKey(<redacted>)")
    }
}

impl ProviderKey {
    /// `None` for an empty secret.
    pub fn new(secret: &Secret) -> Option<Self> {
        if secret.expose().is_empty() {
            return None;
        }
        Hmac::new_from_slice(secret.expose().as_bytes())
            .ok()
            .map(Self)
    }

    /// Checks `X-Signature`: the hex HMAC-SHA256 of the raw body, compared in
    /// constant time. Upper- or lower-case hex is accepted.
    pub fn verify(&self, signature: &[u8], body: &[u8]) -> Result<(), Rejection> {
        let refused = || Rejection::of(ErrorKind::InvalidProviderSignature);
        let mut presented = [0u8; 32];
        hex::decode_to_slice(signature, &mut presented).map_err(|_| refused())?;
        let mut mac = self.0.clone();
        mac.update(body);
        mac.verify_slice(&presented).map_err(|_| refused())
    }

    /// The signature of `body`, for tests and tools that act as the provider.
    pub fn sign_hex(&self, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

pub const EVENT_SCHEMA: Schema = Schema {
    required: &["event_id", "merchant_transaction_id", "status"],
    optional: &[
        "crypto_amount",
        "fiat_amount",
        "fiat_currency",
        "payment_method",
        "occurred_at",
        "kyc_status",
    ],
};

fn short_text(name: &str, text: &str, max: usize) -> Result<String, Rejection> {
    let ok = (1..=max).contains(&text.chars().count()) && !text.chars().any(char::is_control);
    if ok {
        Ok(text.to_owned())
    } else {
        Err(Rejection::invalid(
            name,
            &format!("must be 1 to {max} characters without control characters"),
        ))
    }
}

impl ProviderEvent {
    /// Decodes an event body. `received_at` stands in for a missing
    /// `occurred_at`, and bounds a given one: more than five minutes ahead of
    /// it is refused.
    pub fn decode(body: &[u8], received_at: Timestamp) -> Result<Self, Rejection> {
        let object = Object::parse(body)?;
        object.check(&EVENT_SCHEMA)?;
        let amount = |name: &str| {
            object
                .str(name)?
                .map(|text| {
                    Amount::parse(text, PROVIDER_DECIMALS)
                        .map_err(|why| Rejection::invalid(name, why))
                })
                .transpose()
        };
        Ok(Self {
            event_id: short_text("event_id", object.required_str("event_id")?, 128)?,
            merchant_transaction_id: object.required_uuid("merchant_transaction_id")?,
            status: parse_status("status", object.required_str("status")?)?,
            crypto_amount: amount("crypto_amount")?,
            fiat_amount: amount("fiat_amount")?,
            fiat_currency: object
                .str("fiat_currency")?
                .map(|text| {
                    Code::parse(text).map_err(|why| Rejection::invalid("fiat_currency", why))
                })
                .transpose()?,
            payment_method: object
                .str("payment_method")?
                .map(|text| short_text("payment_method", text, 64))
                .transpose()?,
            occurred_at: match object.str("occurred_at")? {
                Some(text) => {
                    let at = Timestamp::parse_rfc3339(text).ok_or_else(|| {
                        Rejection::invalid("occurred_at", "must be an RFC 3339 timestamp")
                    })?;
                    if at > received_at.plus_seconds(MAX_CLOCK_AHEAD_SECONDS) {
                        return Err(Rejection::invalid(
                            "occurred_at",
                            "must not be more than 5 minutes in the future",
                        ));
                    }
                    at
                }
                None => received_at,
            },
            kyc_status: object
                .str("kyc_status")?
                .map(|text| {
                    KycStatus::parse(text).ok_or_else(|| {
                        Rejection::invalid(
                            "kyc_status",
                            "must be one of not_started, pending, verified, failed",
                        )
                    })
                })
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::TxStatus;

    fn key() -> ProviderKey {
        ProviderKey::new(&Secret::new("provider-secret")).expect("key")
    }

    #[test]
    fn signature_is_hex_hmac_sha256_of_the_raw_body() {
        let body = br#"{"event_id":"e1"}"#;
        let signature = key().sign_hex(body);
        assert!(key().verify(signature.as_bytes(), body).is_ok());
        assert!(
            key()
                .verify(signature.to_uppercase().as_bytes(), body)
                .is_ok()
        );
        let refused = [b"".as_slice(), b"zz", &signature.as_bytes()[..62]];
        for presented in refused {
            assert_eq!(
                key().verify(presented, body).map_err(|r| r.kind()),
                Err(ErrorKind::InvalidProviderSignature)
            );
        }
        assert!(
            key()
                .verify(signature.as_bytes(), br#"{"event_id":"e2"}"#)
                .is_err()
        );
        assert!(ProviderKey::new(&Secret::new("")).is_none());
    }

    #[test]
    fn decodes_a_full_event() {
        let body = br#"{"event_id":"e1","merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000","status":"completed",
            "crypto_amount":"100","fiat_amount":"92.15","fiat_currency":"EUR","payment_method":"card","occurred_at":"2026-11-24T10:00:00Z","kyc_status":"verified"}"#;
        let received_at = Timestamp::parse_rfc3339("2026-11-24T10:01:00Z").expect("ts");
        let event = ProviderEvent::decode(body, received_at).expect("valid");
        assert_eq!(event.status, TxStatus::Completed);
        assert_eq!(
            event.fiat_amount.as_ref().map(Amount::as_str),
            Some("92.15")
        );
        assert_eq!(event.kyc_status, Some(KycStatus::Verified));
        assert_eq!(
            event.occurred_at,
            Timestamp::parse_rfc3339("2026-11-24T10:00:00Z").expect("ts")
        );
    }

    #[test]
    fn missing_occurred_at_means_receipt_time() {
        let body = br#"{"event_id":"e1","merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000","status":"processing"}"#;
        let at = Timestamp::from_unix_seconds(5);
        assert_eq!(
            ProviderEvent::decode(body, at).expect("valid").occurred_at,
            at
        );
    }

    #[test]
    fn occurred_at_more_than_five_minutes_ahead_is_refused() {
        let now = Timestamp::parse_rfc3339("2026-11-24T10:00:00Z").expect("ts");
        let body = |at: &str| {
            format!(
                r#"{{"event_id":"e1","merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000","status":"processing","occurred_at":"{at}"}}"#
            )
        };
        for ok in [
            "2026-11-24T10:05:00Z",
            "2026-11-24T09:00:00Z",
            "2026-11-24T12:04:59+02:00",
        ] {
            assert!(
                ProviderEvent::decode(body(ok).as_bytes(), now).is_ok(),
                "{ok} is not too far ahead"
            );
        }
        for ahead in [
            "2026-11-24T10:05:00.000001Z",
            "2026-11-24T11:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let refusal =
                ProviderEvent::decode(body(ahead).as_bytes(), now).expect_err("too far ahead");
            assert_eq!(refusal.kind(), ErrorKind::ValidationError, "{ahead}");
            assert!(refusal.message().contains("occurred_at"), "{ahead}");
        }
    }

    #[test]
    fn malformed_events_get_the_matrix_codes() {
        let base =
            r#""event_id":"e1","merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000""#;
        let cases = [
            ("{".to_owned(), ErrorKind::DecodeError),
            (format!("{{{base}}}"), ErrorKind::MissingParam),
            (format!(r#"{{{base},"status":"done"}}"#), ErrorKind::ValidationError),
            (format!(r#"{{{base},"status":"pending","fiat_amount":"-1"}}"#), ErrorKind::ValidationError),
            (format!(r#"{{{base},"status":"pending","kyc_status":"ok"}}"#), ErrorKind::ValidationError),
            (format!(r#"{{{base},"status":"pending","occurred_at":"yesterday"}}"#), ErrorKind::ValidationError),
            (format!(r#"{{{base},"status":"pending","note":"x"}}"#), ErrorKind::ValidationError),
            (r#"{"event_id":"","merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000","status":"pending"}"#.to_owned(), ErrorKind::ValidationError),
            (r#"{"event_id":"e","merchant_transaction_id":"x","status":"pending"}"#.to_owned(), ErrorKind::ValidationError),
        ];
        for (body, kind) in cases {
            assert_eq!(
                ProviderEvent::decode(body.as_bytes(), Timestamp::UNIX_EPOCH).map_err(|r| r.kind()),
                Err(kind),
                "{body}"
            );
        }
    }
}

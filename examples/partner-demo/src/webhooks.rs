//! Receiving the service's webhooks: verify the Standard Webhooks signature
//! over the raw body *before* reading it, then deduplicate by `webhook-id`
//! (delivery is at least once).

use http::HeaderMap;
use standardwebhooks::Webhook;

/// A verified status change.
#[derive(Debug, Clone)]
pub struct StatusChange {
    /// `webhook-id`: the same on every attempt of one event.
    pub webhook_id: String,
    pub merchant_transaction_id: String,
    pub status: String,
}

/// Why a webhook was refused: the service retries until it gets a 2xx, so a
/// refusal is only for requests that are not the service's.
#[derive(Debug)]
pub enum Refused {
    /// Missing or wrong signature, or a timestamp too far from now (a replay).
    Signature(String),
    /// Signed, but not the shape documented (docs/webhooks.md).
    Body(String),
}

/// Checks the signature with the partner's `whsec_` secret, then decodes.
pub fn verify(secret: &Webhook, headers: &HeaderMap, body: &[u8]) -> Result<StatusChange, Refused> {
    secret
        .verify(body, headers)
        .map_err(|e| Refused::Signature(e.to_string()))?;
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let event: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Refused::Body(e.to_string()))?;
    let text = |name: &str| {
        event[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Refused::Body(format!("{name} is not a string")))
    };
    Ok(StatusChange {
        webhook_id,
        merchant_transaction_id: text("merchant_transaction_id")?,
        status: text("status")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signed(body: &[u8], timestamp: i64) -> HeaderMap {
        let webhook = Webhook::new(SECRET).expect("secret");
        let signature = webhook.sign("msg_1", timestamp, body).expect("signed");
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().expect("header"));
        headers.insert(
            "webhook-timestamp",
            timestamp.to_string().parse().expect("header"),
        );
        headers.insert("webhook-signature", signature.parse().expect("header"));
        headers
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "Standard Webhooks checks timestamps against the system clock"
    )]
    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
    }

    #[test]
    fn verified_events_are_decoded_and_tampered_ones_refused() {
        let webhook = Webhook::new(SECRET).expect("secret");
        let body = br#"{"merchant_transaction_id":"m1","status":"completed","type":"buy"}"#;
        let headers = signed(body, now());
        let change = verify(&webhook, &headers, body).expect("verified");
        assert_eq!(
            (change.webhook_id.as_str(), change.status.as_str()),
            ("msg_1", "completed")
        );

        let tampered = br#"{"merchant_transaction_id":"m1","status":"failed","type":"buy"}"#;
        assert!(matches!(
            verify(&webhook, &headers, tampered),
            Err(Refused::Signature(_))
        ));
        let stale = signed(body, now() - 3_600);
        assert!(matches!(
            verify(&webhook, &stale, body),
            Err(Refused::Signature(_))
        ));
        let other = Webhook::new("whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==").expect("secret");
        assert!(matches!(
            verify(&other, &headers, body),
            Err(Refused::Signature(_))
        ));
    }
}

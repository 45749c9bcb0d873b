//! The webhook body: the Proof webhook shape, built from an outbox event.
//! docs/webhooks.md documents it field by field.

use serde::Serialize;
use session_core::session::StatusChanged;

/// The body's fields, in the documented order.
#[derive(Serialize)]
struct Body<'a> {
    merchant_transaction_id: String,
    #[serde(rename = "type")]
    tx_type: &'a str,
    status: &'a str,
    currency: &'a str,
    network: &'a str,
    /// `""` until the provider reports it, as in `GET /widget/transactions`.
    crypto_amount: &'a str,
    fiat_currency: &'a str,
    fiat_amount: &'a str,
    created_at: String,
    updated_at: String,
}

/// The JSON bytes POSTed for `event`.
pub fn body(event: &StatusChanged) -> Vec<u8> {
    let body = Body {
        merchant_transaction_id: event.merchant_transaction_id.hyphenated().to_string(),
        tx_type: event.tx_type.as_str(),
        status: event.status.as_str(),
        currency: event.currency.as_str(),
        network: event.network.as_str(),
        crypto_amount: event.crypto_amount.as_deref().unwrap_or(""),
        fiat_currency: event.fiat_currency.as_str(),
        fiat_amount: event.fiat_amount.as_deref().unwrap_or(""),
        created_at: event.created_at.to_rfc3339(),
        updated_at: event.updated_at.to_rfc3339(),
    };
    // A struct of strings always serialises.
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use session_core::partner::PartnerId;
    use session_core::status::TxStatus;
    use session_core::time::Timestamp;
    use session_core::value::{Code, TxType};

    use super::*;

    fn code(text: &str) -> Code {
        Code::parse(text).expect("code")
    }

    #[test]
    fn the_body_is_the_documented_one() {
        let event = StatusChanged {
            merchant_transaction_id: "550e8400-e29b-41d4-a716-446655440000"
                .parse()
                .expect("uuid"),
            partner_id: PartnerId::parse("acme").expect("id"),
            tx_type: TxType::Buy,
            status: TxStatus::Processing,
            currency: code("USDT"),
            network: code("TRC20"),
            crypto_amount: None,
            fiat_currency: code("EUR"),
            fiat_amount: Some("92.15".into()),
            payment_method: Some("card".into()),
            created_at: Timestamp::parse_rfc3339("2026-11-24T10:00:00Z").expect("time"),
            updated_at: Timestamp::parse_rfc3339("2026-11-24T10:01:30.25Z").expect("time"),
            occurred_at: Timestamp::parse_rfc3339("2026-11-24T10:01:29Z").expect("time"),
        };
        // The body of the `status-processing` vector of docs/webhooks.md.
        let expected = r#"{"merchant_transaction_id":"550e8400-e29b-41d4-a716-446655440000","type":"buy","status":"processing","currency":"USDT","network":"TRC20","crypto_amount":"","fiat_currency":"EUR","fiat_amount":"92.15","created_at":"2026-11-24T10:00:00.000000Z","updated_at":"2026-11-24T10:01:30.250000Z"}"#;
        assert_eq!(String::from_utf8(body(&event)).expect("utf-8"), expected);
    }
}

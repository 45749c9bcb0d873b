//! The outbox row's JSON form: a DTO owned by this adapter (the core's
//! `StatusChanged` carries no serde derives), versioned so that a dispatcher
//! can read rows written by an older or newer binary.

use serde::{Deserialize, Serialize};
use session_core::partner::PartnerId;
use session_core::session::StatusChanged;
use session_core::status::TxStatus;
use session_core::time::Timestamp;
use session_core::value::{Code, TxType};

use crate::error::{Fault, corrupt};
use crate::rows::parsed;

/// The version of [`OutboxEvent`] this binary writes.
const VERSION: u32 = 1;

/// `outbox.event`. Timestamps are RFC 3339 with microseconds, exact both ways
/// and readable in psql.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OutboxEvent {
    pub(crate) v: u32,
    pub(crate) merchant_transaction_id: String,
    pub(crate) partner_id: String,
    #[serde(rename = "type")]
    pub(crate) tx_type: String,
    pub(crate) status: String,
    pub(crate) currency: String,
    pub(crate) network: String,
    pub(crate) crypto_amount: Option<String>,
    pub(crate) fiat_currency: String,
    pub(crate) fiat_amount: Option<String>,
    pub(crate) payment_method: Option<String>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) occurred_at: String,
}

impl From<&StatusChanged> for OutboxEvent {
    fn from(change: &StatusChanged) -> Self {
        Self {
            v: VERSION,
            merchant_transaction_id: change.merchant_transaction_id.hyphenated().to_string(),
            partner_id: change.partner_id.as_str().to_owned(),
            tx_type: change.tx_type.as_str().to_owned(),
            status: change.status.as_str().to_owned(),
            currency: change.currency.as_str().to_owned(),
            network: change.network.as_str().to_owned(),
            crypto_amount: change.crypto_amount.clone(),
            fiat_currency: change.fiat_currency.as_str().to_owned(),
            fiat_amount: change.fiat_amount.clone(),
            payment_method: change.payment_method.clone(),
            created_at: change.created_at.to_rfc3339(),
            updated_at: change.updated_at.to_rfc3339(),
            occurred_at: change.occurred_at.to_rfc3339(),
        }
    }
}

impl OutboxEvent {
    pub(crate) fn into_domain(self) -> Result<StatusChanged, Fault> {
        let at = |field: &str, text: &str| {
            Timestamp::parse_rfc3339(text)
                .ok_or_else(|| corrupt(format_args!("outbox event {field}: {text:?}")))
        };
        Ok(StatusChanged {
            merchant_transaction_id: parsed(
                "outbox merchant_transaction_id",
                uuid::Uuid::parse_str(&self.merchant_transaction_id),
            )?,
            partner_id: parsed("outbox partner_id", PartnerId::parse(&self.partner_id))?,
            tx_type: parsed("outbox type", TxType::parse(&self.tx_type))?,
            status: TxStatus::parse(&self.status)
                .ok_or_else(|| corrupt(format_args!("outbox status {:?}", self.status)))?,
            currency: parsed("outbox currency", Code::parse(&self.currency))?,
            network: parsed("outbox network", Code::parse(&self.network))?,
            crypto_amount: self.crypto_amount,
            fiat_currency: parsed("outbox fiat_currency", Code::parse(&self.fiat_currency))?,
            fiat_amount: self.fiat_amount,
            payment_method: self.payment_method,
            created_at: at("created_at", &self.created_at)?,
            updated_at: at("updated_at", &self.updated_at)?,
            occurred_at: at("occurred_at", &self.occurred_at)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> Code {
        Code::parse(text).expect("fixture code")
    }

    #[test]
    fn events_round_trip_through_json_exactly() {
        let change = StatusChanged {
            merchant_transaction_id: uuid::Uuid::from_u128(0x1234),
            partner_id: PartnerId::parse("acme").expect("fixture id"),
            tx_type: TxType::Sell,
            status: TxStatus::Completed,
            currency: code("USDT"),
            network: code("TRC20"),
            crypto_amount: Some("10.5".into()),
            fiat_currency: code("EUR"),
            fiat_amount: None,
            payment_method: Some("card".into()),
            created_at: Timestamp::from_unix_micros(1_795_509_330_123_456),
            updated_at: Timestamp::from_unix_micros(1_795_509_331_000_001),
            occurred_at: Timestamp::from_unix_micros(-1),
        };
        let json = serde_json::to_value(OutboxEvent::from(&change)).expect("serialises");
        assert_eq!(json["type"], "sell");
        assert_eq!(json["v"], 1);
        assert_eq!(json["created_at"], "2026-11-24T08:35:30.123456Z");
        let back: OutboxEvent = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back.into_domain().expect("valid"), change);
    }
}

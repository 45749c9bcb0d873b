//! The JSON the service answers with. Only this module knows field names and
//! order; the domain types carry no serde derives.

use serde::Serialize;

use crate::json_out::ObjectWriter;
use session_core::live::TxUpdate;
use session_core::session::{Session, StoredSession};
use session_core::status::KycStatus;
use session_core::value::{Code, PartnerUserId};
use session_core::{CreatedSession, EventReport, Simulated};

pub const INIT_TOKEN_TYPE: &str = "sdk_partner_authorization";

/// The 22 fields of the seed page, in its order, shaped for `proofWidget.run`.
/// Written by hand: this is the response of the hottest route.
pub fn created_session(created: &CreatedSession) -> Vec<u8> {
    let s = &created.session;
    let mut out = ObjectWriter::with_capacity(1024);
    ids(&mut out, s);
    out.str("address", s.address.as_str());
    out.str("signature", s.signature.as_str());
    out.str("init_token", &created.init_token);
    out.str("init_token_type", INIT_TOKEN_TYPE);
    widget_settings(&mut out, s, s.widget.fiat_currency.as_str());
    out.finish()
}

/// What the widget needs once its token is redeemed: the session's fields
/// without the token, with its status and the fiat currency it now has.
pub fn redeemed(stored: &StoredSession) -> Vec<u8> {
    let s = &stored.session;
    let mut out = ObjectWriter::with_capacity(1024);
    ids(&mut out, s);
    out.str("status", stored.state.status.as_str());
    out.str("address", s.address.as_str());
    out.str("signature", s.signature.as_str());
    widget_settings(&mut out, s, stored.state.fiat_currency.as_str());
    out.finish()
}

/// `merchant_transaction_id` and `widget_id`, the two fields both widget
/// answers open with.
fn ids(out: &mut ObjectWriter, s: &Session) {
    let mut id_buf = [0u8; 36];
    let mut widget_buf = [0u8; 36];
    out.str(
        "merchant_transaction_id",
        s.merchant_transaction_id
            .hyphenated()
            .encode_lower(&mut id_buf),
    );
    out.str(
        "widget_id",
        s.widget
            .widget_id
            .hyphenated()
            .encode_lower(&mut widget_buf),
    );
}

/// The widget's settings, from `currency` to `redirect_url`, the tail both
/// widget answers share.
fn widget_settings(out: &mut ObjectWriter, s: &Session, fiat_currency: &str) {
    out.str("currency", s.currency.as_str());
    out.strs("currencies", s.widget.currencies.iter().map(Code::as_str));
    out.bool("fix_currency", true);
    out.str("network", s.network.as_str());
    out.strs("networks", s.widget.networks.iter().map(Code::as_str));
    out.strs("fix_network", [s.network.as_str()]);
    out.str("amount", s.amount.as_str());
    out.bool("fix_amount", true);
    out.str("fiat_currency", fiat_currency);
    out.strs(
        "fiat_currencies",
        s.widget.fiat_currencies.iter().map(Code::as_str),
    );
    out.bool("fix_fiat_currency", false);
    out.bool("fix_fiat_amount", true);
    out.str("type", s.tx_type.as_str());
    out.str("lang", &s.widget.lang);
    out.str("theme", &s.widget.theme);
    out.str(
        "redirect_url",
        s.redirect_url.as_ref().map_or("", |url| url.as_str()),
    );
}

/// `GET /widget/transactions/{id}`: amounts are `""` until known.
#[derive(Serialize)]
struct TransactionBody<'a> {
    merchant_transaction_id: String,
    partner_user_id: &'a str,
    #[serde(rename = "type")]
    tx_type: &'static str,
    status: &'static str,
    currency: &'a str,
    network: &'a str,
    crypto_amount: &'a str,
    fiat_currency: &'a str,
    fiat_amount: &'a str,
    created_at: String,
    updated_at: String,
}

pub fn transaction(stored: &StoredSession) -> impl Serialize + '_ {
    let s = &stored.session;
    let state = &stored.state;
    TransactionBody {
        merchant_transaction_id: s.id_text(),
        partner_user_id: s.user.partner_user_id.as_str(),
        tx_type: s.tx_type.as_str(),
        status: state.status.as_str(),
        currency: s.currency.as_str(),
        network: s.network.as_str(),
        crypto_amount: state.crypto_amount.as_deref().unwrap_or(""),
        fiat_currency: state.fiat_currency.as_str(),
        fiat_amount: state.fiat_amount.as_deref().unwrap_or(""),
        created_at: s.created_at.to_rfc3339(),
        updated_at: state.updated_at.to_rfc3339(),
    }
}

#[derive(Serialize)]
struct KycBody<'a> {
    partner_user_id: &'a str,
    status: &'static str,
}

pub fn kyc<'a>(user: &'a PartnerUserId, status: KycStatus) -> impl Serialize + 'a {
    KycBody {
        partner_user_id: user.as_str(),
        status: status.as_str(),
    }
}

#[derive(Serialize)]
struct EventReportBody<'a> {
    event_id: &'a str,
    merchant_transaction_id: String,
    applied: bool,
    duplicate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored_because: Option<&'static str>,
}

pub fn event_report(report: &EventReport) -> impl Serialize + '_ {
    EventReportBody {
        event_id: &report.event_id,
        merchant_transaction_id: report.merchant_transaction_id.hyphenated().to_string(),
        applied: report.applied,
        duplicate: report.duplicate,
        status: report.status.map(|s| s.as_str()),
        ignored_because: report.ignored_because.map(|why| why.as_str()),
    }
}

#[derive(Serialize)]
struct SimulatedBody {
    merchant_transaction_id: String,
    status: &'static str,
    applied: bool,
}

/// The sandbox simulator's answer: the transaction's status afterwards, and
/// whether the outcome changed it.
pub fn simulated(simulated: &Simulated) -> impl Serialize + use<> {
    SimulatedBody {
        merchant_transaction_id: simulated.merchant_transaction_id.hyphenated().to_string(),
        status: simulated.status.as_str(),
        applied: simulated.applied,
    }
}

/// A `GET /ws` message: one state of a transaction. Amounts are `""` until
/// known, as in `GET /widget/transactions/{id}`; `payment_method` is left out
/// while unknown.
#[derive(Serialize)]
struct TxUpdateBody<'a> {
    event: &'static str,
    merchant_transaction_id: String,
    #[serde(rename = "type")]
    tx_type: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_method: Option<&'a str>,
    currency: &'a str,
    fiat_currency: &'a str,
    fiat_amount: &'a str,
    crypto_amount: &'a str,
    occurred_at: String,
    sequence: u64,
}

/// The text of the `tx.update` message for `update`.
pub fn tx_update(update: &TxUpdate) -> String {
    let state = &update.state;
    let body = TxUpdateBody {
        event: "tx.update",
        merchant_transaction_id: state.merchant_transaction_id.hyphenated().to_string(),
        tx_type: state.tx_type.as_str(),
        status: state.status.as_str(),
        payment_method: state.payment_method.as_deref(),
        currency: state.currency.as_str(),
        fiat_currency: state.fiat_currency.as_str(),
        fiat_amount: state.fiat_amount.as_deref().unwrap_or(""),
        crypto_amount: state.crypto_amount.as_deref().unwrap_or(""),
        occurred_at: state.occurred_at.to_rfc3339(),
        sequence: update.sequence,
    };
    // Strings and integers only: encoding cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

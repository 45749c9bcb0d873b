//! Rows to domain values and back: the exact `timestamptz` codec, the text
//! form of list columns written through `unnest`, and the mapping of a
//! `transactions` row to a [`StoredSession`].

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use postgres_types::{FromSql, IsNull, ToSql, Type, accepts, to_sql_checked};
use session_core::partner::{PartnerId, WidgetView};
use session_core::session::{EndUser, KycState, Session, StoredSession, TxState};
use session_core::signing::Signature;
use session_core::status::{KycStatus, TxStatus};
use session_core::time::Timestamp;
use session_core::value::{
    Address, Amount, ClientIp, Code, Email, PartnerUserId, RedirectUrl, TxType,
};
use tokio_postgres::Row;

use crate::error::{Fault, corrupt};

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A [`Timestamp`] as `timestamptz`. Both count whole microseconds (PostgreSQL
/// from 2000-01-01, the core from 1970-01-01), so the binary codec is an exact
/// integer shift: no float, no rounding, no calendar library in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgTime(pub(crate) Timestamp);

impl ToSql for PgTime {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let micros = self
            .0
            .unix_micros()
            .checked_sub(PG_EPOCH_OFFSET_MICROS)
            .ok_or("timestamp out of range")?;
        out.put_i64(micros);
        Ok(IsNull::No)
    }

    accepts!(TIMESTAMPTZ);
    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgTime {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        let bytes: [u8; 8] = raw.try_into().map_err(|_| "timestamptz must be 8 bytes")?;
        let micros = i64::from_be_bytes(bytes)
            .checked_add(PG_EPOCH_OFFSET_MICROS)
            .ok_or("timestamp out of range (infinity?)")?;
        Ok(Self(Timestamp::from_unix_micros(micros)))
    }

    accepts!(TIMESTAMPTZ);
}

/// Reads a `timestamptz` column.
pub(crate) fn time(row: &Row, column: &str) -> Result<Timestamp, Fault> {
    Ok(row.try_get::<_, PgTime>(column)?.0)
}

/// Reads a nullable `timestamptz` column.
pub(crate) fn maybe_time(row: &Row, column: &str) -> Result<Option<Timestamp>, Fault> {
    Ok(row.try_get::<_, Option<PgTime>>(column)?.map(|t| t.0))
}

pub(crate) fn maybe_pg_time(at: Option<Timestamp>) -> Option<PgTime> {
    at.map(PgTime)
}

/// The text input form of a `text[]`: `{"a","b"}`, every element quoted with
/// `"` and `\` escaped, so any string survives (commas, braces, the word NULL).
///
/// Group commit sends one row's lists as one element of a `text[]` parameter
/// and casts it back with `::text[]` in SQL: `unnest` flattens a
/// multi-dimensional array, and a 2-D array would need every row's list to
/// have the same length.
pub(crate) fn text_array_literal<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::with_capacity(32);
    out.push('{');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// Converts one stored field, naming the column when it does not parse.
pub(crate) fn parsed<T, E: fmt::Display>(column: &str, result: Result<T, E>) -> Result<T, Fault> {
    result.map_err(|why| corrupt(format_args!("{column}: {why}")))
}

fn some<T>(column: &str, value: Option<T>) -> Result<T, Fault> {
    value.ok_or_else(|| corrupt(format_args!("{column}: unexpected value")))
}

fn codes(column: &str, list: Vec<String>) -> Result<Vec<Code>, Fault> {
    list.iter()
        .map(|code| parsed(column, Code::parse(code)))
        .collect()
}

/// The columns [`stored_session`] reads, as a literal for `concat!`, so
/// the statements that select a session are `&'static str`.
macro_rules! session_columns {
    () => {
        "merchant_transaction_id, partner_id, partner_user_id, user_email, tx_type, \
         currency, network, amount, address, client_ip, redirect_url, widget_id, \
         widget_currencies, widget_networks, widget_fiat_currency, widget_fiat_currencies, \
         widget_lang, widget_theme, signature, signing_kid, init_token_jti, \
         init_token_expires_at, created_at, redeemed_at, status, crypto_amount, fiat_amount, \
         fiat_currency, payment_method, updated_at, test_mode"
    };
}
pub(crate) use session_columns;

/// Rebuilds a session from its `transactions` row. Values were validated when
/// they were written; they are parsed again so that a row edited by hand
/// cannot smuggle an invalid value into the core.
pub(crate) fn stored_session(row: &Row) -> Result<StoredSession, Fault> {
    let text = |column: &str| row.try_get::<_, &str>(column);
    let network = parsed("network", Code::parse(text("network")?))?;
    let widget = WidgetView {
        widget_id: row.try_get("widget_id")?,
        currencies: codes("widget_currencies", row.try_get("widget_currencies")?)?,
        networks: codes("widget_networks", row.try_get("widget_networks")?)?,
        fiat_currency: parsed(
            "widget_fiat_currency",
            Code::parse(text("widget_fiat_currency")?),
        )?,
        fiat_currencies: codes(
            "widget_fiat_currencies",
            row.try_get("widget_fiat_currencies")?,
        )?,
        lang: row.try_get("widget_lang")?,
        theme: row.try_get("widget_theme")?,
    };
    let session = Session {
        merchant_transaction_id: row.try_get("merchant_transaction_id")?,
        partner_id: parsed("partner_id", PartnerId::parse(text("partner_id")?))?,
        user: EndUser {
            partner_user_id: parsed(
                "partner_user_id",
                PartnerUserId::parse(text("partner_user_id")?),
            )?,
            email: parsed("user_email", Email::parse(text("user_email")?))?,
        },
        tx_type: parsed("tx_type", TxType::parse(text("tx_type")?))?,
        currency: parsed("currency", Code::parse(text("currency")?))?,
        // Stored amounts passed the currency's precision when they were created;
        // the precision may have changed since, so only the generic bound applies.
        amount: parsed("amount", Amount::parse(text("amount")?, 18))?,
        address: parsed("address", Address::from_stored(text("address")?))?,
        network,
        client_ip: row
            .try_get::<_, Option<&str>>("client_ip")?
            .map(|ip| parsed("client_ip", ClientIp::parse(ip)))
            .transpose()?,
        redirect_url: row
            .try_get::<_, Option<&str>>("redirect_url")?
            .map(|url| parsed("redirect_url", RedirectUrl::parse(url, &[])))
            .transpose()?,
        widget: Arc::new(widget),
        signature: some("signature", Signature::parse(text("signature")?))?,
        signing_kid: Arc::from(row.try_get::<_, &str>("signing_kid")?),
        init_token_jti: row.try_get("init_token_jti")?,
        init_token_expires_at: time(row, "init_token_expires_at")?,
        created_at: time(row, "created_at")?,
        test_mode: row.try_get("test_mode")?,
    };
    let state = TxState {
        status: some("status", TxStatus::parse(text("status")?))?,
        crypto_amount: row.try_get("crypto_amount")?,
        fiat_amount: row.try_get("fiat_amount")?,
        fiat_currency: parsed("fiat_currency", Code::parse(text("fiat_currency")?))?,
        payment_method: row.try_get("payment_method")?,
        updated_at: time(row, "updated_at")?,
    };
    Ok(StoredSession {
        session: Arc::new(session),
        state,
        redeemed_at: maybe_time(row, "redeemed_at")?,
    })
}

/// An end user's KYC state from `kyc_status` and `kyc_updated_at`.
pub(crate) fn kyc_state(row: &Row) -> Result<KycState, Fault> {
    Ok(KycState {
        status: some("kyc_status", KycStatus::parse(row.try_get("kyc_status")?))?,
        updated_at: maybe_time(row, "kyc_updated_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_shift_exactly_between_epochs() {
        let cases = [
            (PG_EPOCH_OFFSET_MICROS, 0),
            (0, -PG_EPOCH_OFFSET_MICROS),
            (
                1_795_509_330_123_456,
                1_795_509_330_123_456 - PG_EPOCH_OFFSET_MICROS,
            ),
            (-1, -1 - PG_EPOCH_OFFSET_MICROS),
        ];
        for (unix, pg) in cases {
            let mut out = BytesMut::new();
            PgTime(Timestamp::from_unix_micros(unix))
                .to_sql(&Type::TIMESTAMPTZ, &mut out)
                .expect("in range");
            assert_eq!(out.as_ref(), pg.to_be_bytes(), "{unix} encodes");
            let back = PgTime::from_sql(&Type::TIMESTAMPTZ, &out).expect("decodes");
            assert_eq!(back.0.unix_micros(), unix, "{unix} round-trips");
        }
        assert!(PgTime::from_sql(&Type::TIMESTAMPTZ, &i64::MAX.to_be_bytes()).is_err());
        assert!(PgTime::from_sql(&Type::TIMESTAMPTZ, &[0; 4]).is_err());
    }

    #[test]
    fn array_literals_quote_every_element() {
        let cases: [(&[&str], &str); 5] = [
            (&[], "{}"),
            (&["USDT"], r#"{"USDT"}"#),
            (&["a,b", "{c}"], r#"{"a,b","{c}"}"#),
            (&["NULL", ""], r#"{"NULL",""}"#),
            (&[r#"q"u\o"#], r#"{"q\"u\\o"}"#),
        ];
        for (items, expected) in cases {
            assert_eq!(
                text_array_literal(items.iter().copied()),
                expected,
                "{items:?}"
            );
        }
    }
}

//! The partner tables in SQL: reading `PartnerSpec`s and token records back,
//! writing a whole spec, and the token updates that announce themselves with
//! `pg_notify` in the same statement or transaction.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use session_core::client_token::TokenDigest;
use session_core::partner::{
    PartnerId, PartnerSpec, PreviousWebhookSecret, RateLimit, SigningKeySpec, WalletSpec,
    WidgetSpec,
};
use session_core::ports::{ClientTokenRecord, StoreError};
use session_core::secret::Secret;
use session_core::time::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::db::Client;
use crate::error::{Fault, corrupt};
use crate::rows::{PgTime, maybe_pg_time, maybe_time, parsed, time};

/// The LISTEN/NOTIFY channel of partner changes. The payload is
/// `<instance id> <partner id>`, so an instance can skip its own notifications.
pub(crate) const CHANNEL: &str = "session_partners";

/// Every partner (or only `only`), with its lists in stored order, sorted by id.
/// Run inside one transaction so the six reads see one state.
pub(crate) async fn load_specs(
    tx: &Transaction<'_>,
    only: Option<&str>,
) -> Result<Vec<PartnerSpec>, Fault> {
    let statement = tx
        .prepare_cached(
            "SELECT id, name, offramp_enabled, accept_client_address, redirect_hosts, \
                    webhook_url, webhook_secret, signature_scheme, widget_id, \
                    widget_currencies, widget_networks, widget_fiat_currency, \
                    widget_fiat_currencies, widget_default_type, widget_lang, widget_theme, \
                    widget_redirect_url, widget_decimal_codes, widget_decimal_digits, \
                    rate_limit_per_second, rate_limit_burst \
             FROM partners WHERE $1::text IS NULL OR id = $1 ORDER BY id COLLATE \"C\"",
        )
        .await?;
    let partners = tx.query(&statement, &[&only]).await?;
    let mut specs = partners
        .iter()
        .map(partner_spec)
        .collect::<Result<Vec<_>, _>>()?;
    let index: HashMap<String, usize> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| (spec.id.clone(), i))
        .collect();
    // The query of a child table's rows, as one `&'static str`.
    macro_rules! children {
        ($table:literal, $columns:literal) => {
            concat!(
                "SELECT partner_id, ",
                $columns,
                " FROM ",
                $table,
                " WHERE $1::text IS NULL OR partner_id = $1 ORDER BY partner_id, ordinal"
            )
        };
    }
    let read = async |query: &'static str| {
        let statement = tx.prepare_cached(query).await?;
        Ok::<_, Fault>(tx.query(&statement, &[&only]).await?)
    };
    // Children of a partner created after the first read cannot appear: the
    // transaction is REPEATABLE READ, so every read sees the same snapshot.
    let mut each_child =
        |rows: Vec<Row>, add: &dyn Fn(&mut PartnerSpec, &Row) -> Result<(), Fault>| {
            for row in &rows {
                let partner: &str = row.try_get("partner_id")?;
                if let Some(&i) = index.get(partner) {
                    add(&mut specs[i], row)?;
                }
            }
            Ok::<(), Fault>(())
        };
    let origins = read(children!("partner_origins", "origin")).await?;
    each_child(origins, &|spec, row| {
        spec.allowed_origins.push(row.try_get("origin")?);
        Ok(())
    })?;
    let ips = read(children!("partner_ips", "ip_range")).await?;
    each_child(ips, &|spec, row| {
        spec.allowed_ips.push(row.try_get("ip_range")?);
        Ok(())
    })?;
    let wallets = read(children!(
        "partner_wallets",
        "currency, network, address, active"
    ))
    .await?;
    each_child(wallets, &|spec, row| {
        spec.wallets.push(WalletSpec {
            currency: row.try_get("currency")?,
            network: row.try_get("network")?,
            address: row.try_get("address")?,
            active: row.try_get("active")?,
        });
        Ok(())
    })?;
    let keys = read(children!("partner_signing_keys", "kid, secret, not_after")).await?;
    each_child(keys, &|spec, row| {
        spec.signing_keys.push(SigningKeySpec {
            kid: row.try_get("kid")?,
            secret: Secret::new(row.try_get::<_, String>("secret")?),
            not_after: maybe_time(row, "not_after")?,
        });
        Ok(())
    })?;
    let webhook = read(children!("partner_webhook_secrets", "secret, not_after")).await?;
    each_child(webhook, &|spec, row| {
        spec.webhook_previous_secrets.push(PreviousWebhookSecret {
            secret: Secret::new(row.try_get::<_, String>("secret")?),
            not_after: time(row, "not_after")?,
        });
        Ok(())
    })?;
    Ok(specs)
}

fn partner_spec(row: &Row) -> Result<PartnerSpec, Fault> {
    let codes: Vec<String> = row.try_get("widget_decimal_codes")?;
    let digits: Vec<i16> = row.try_get("widget_decimal_digits")?;
    let decimals = codes
        .into_iter()
        .zip(digits)
        .map(|(code, digits)| Ok((code, parsed("widget_decimal_digits", u8::try_from(digits))?)))
        .collect::<Result<Vec<_>, Fault>>()?;
    let per_second: Option<i64> = row.try_get("rate_limit_per_second")?;
    let burst: Option<i64> = row.try_get("rate_limit_burst")?;
    let rate_limit = match (per_second, burst) {
        (Some(per_second), Some(burst)) => {
            let per_second = parsed("rate_limit_per_second", u32::try_from(per_second))?;
            let burst = parsed("rate_limit_burst", u32::try_from(burst))?;
            Some(parsed("rate_limit", RateLimit::new(per_second, burst))?)
        }
        _ => None,
    };
    Ok(PartnerSpec {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        allowed_origins: Vec::new(),
        allowed_ips: Vec::new(),
        offramp_enabled: row.try_get("offramp_enabled")?,
        accept_client_address: row.try_get("accept_client_address")?,
        redirect_hosts: row.try_get("redirect_hosts")?,
        webhook_url: row.try_get("webhook_url")?,
        webhook_secret: row
            .try_get::<_, Option<String>>("webhook_secret")?
            .map(Secret::new),
        signature_scheme: row.try_get("signature_scheme")?,
        webhook_previous_secrets: Vec::new(),
        signing_keys: Vec::new(),
        widget: WidgetSpec {
            widget_id: row.try_get("widget_id")?,
            currencies: row.try_get("widget_currencies")?,
            networks: row.try_get("widget_networks")?,
            fiat_currency: row.try_get("widget_fiat_currency")?,
            fiat_currencies: row.try_get("widget_fiat_currencies")?,
            default_type: row.try_get("widget_default_type")?,
            lang: row.try_get("widget_lang")?,
            theme: row.try_get("widget_theme")?,
            redirect_url: row.try_get("widget_redirect_url")?,
            decimals,
        },
        wallets: Vec::new(),
        rate_limit,
    })
}

/// Every client token, or those of one partner, in `tokens()` order. One
/// statement: it needs no transaction of its own.
pub(crate) async fn load_tokens(
    client: &impl GenericClient,
    partner: Option<&str>,
) -> Result<Vec<ClientTokenRecord>, Fault> {
    // Exactly the columns `token_record` reads.
    let statement = client
        .prepare_cached(
            "SELECT digest, partner_id, label, created_at, expires_at, revoked_at \
             FROM client_tokens \
             WHERE $1::text IS NULL OR partner_id = $1 ORDER BY partner_id, created_at, digest",
        )
        .await?;
    let rows = client.query(&statement, &[&partner]).await?;
    rows.iter().map(token_record).collect()
}

fn token_record(row: &Row) -> Result<ClientTokenRecord, Fault> {
    Ok(ClientTokenRecord {
        digest: digest(row)?,
        partner_id: parsed("partner_id", PartnerId::parse(row.try_get("partner_id")?))?,
        label: row.try_get("label")?,
        created_at: time(row, "created_at")?,
        expires_at: maybe_time(row, "expires_at")?,
        revoked_at: maybe_time(row, "revoked_at")?,
    })
}

fn digest(row: &Row) -> Result<TokenDigest, Fault> {
    let bytes: &[u8] = row.try_get("digest")?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt("client_tokens.digest is not 32 bytes"))?;
    Ok(TokenDigest::from_bytes(bytes))
}

/// A token as the directory needs it when the snapshot does not have it yet.
#[derive(Debug)]
pub(crate) struct TokenRow {
    pub(crate) partner_id: String,
    pub(crate) expires_at: Option<Timestamp>,
    pub(crate) revoked: bool,
}

pub(crate) async fn find_token(
    client: &Client,
    digest: &TokenDigest,
) -> Result<Option<TokenRow>, Fault> {
    let statement = client
        .prepare_cached(
            "SELECT partner_id, expires_at, revoked_at IS NOT NULL AS revoked \
             FROM client_tokens WHERE digest = $1",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&digest.as_bytes().as_slice()])
        .await?;
    row.map(|row| {
        Ok(TokenRow {
            partner_id: row.try_get("partner_id")?,
            expires_at: maybe_time(&row, "expires_at")?,
            revoked: row.try_get("revoked")?,
        })
    })
    .transpose()
}

/// Writes `spec` as the whole configuration of its partner (lists replaced)
/// and announces it, inside the caller's transaction.
pub(crate) async fn write_spec(
    tx: &Transaction<'_>,
    spec: &PartnerSpec,
    payload: &str,
) -> Result<(), Fault> {
    let widget = &spec.widget;
    let (decimal_codes, decimal_digits): (Vec<&str>, Vec<i16>) = widget
        .decimals
        .iter()
        .map(|(code, digits)| (code.as_str(), i16::from(*digits)))
        .unzip();
    let rate_per_second = spec.rate_limit.map(|l| i64::from(l.per_second()));
    let rate_burst = spec.rate_limit.map(|l| i64::from(l.burst()));
    tx.execute(
        "INSERT INTO partners (id, name, offramp_enabled, accept_client_address, redirect_hosts, \
             webhook_url, webhook_secret, signature_scheme, widget_id, widget_currencies, \
             widget_networks, widget_fiat_currency, widget_fiat_currencies, widget_default_type, \
             widget_lang, widget_theme, widget_redirect_url, widget_decimal_codes, \
             widget_decimal_digits, rate_limit_per_second, rate_limit_burst) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, \
                 $20, $21) \
         ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
             offramp_enabled = EXCLUDED.offramp_enabled, \
             accept_client_address = EXCLUDED.accept_client_address, \
             redirect_hosts = EXCLUDED.redirect_hosts, webhook_url = EXCLUDED.webhook_url, \
             webhook_secret = EXCLUDED.webhook_secret, \
             signature_scheme = EXCLUDED.signature_scheme, widget_id = EXCLUDED.widget_id, \
             widget_currencies = EXCLUDED.widget_currencies, \
             widget_networks = EXCLUDED.widget_networks, \
             widget_fiat_currency = EXCLUDED.widget_fiat_currency, \
             widget_fiat_currencies = EXCLUDED.widget_fiat_currencies, \
             widget_default_type = EXCLUDED.widget_default_type, \
             widget_lang = EXCLUDED.widget_lang, widget_theme = EXCLUDED.widget_theme, \
             widget_redirect_url = EXCLUDED.widget_redirect_url, \
             widget_decimal_codes = EXCLUDED.widget_decimal_codes, \
             widget_decimal_digits = EXCLUDED.widget_decimal_digits, \
             rate_limit_per_second = EXCLUDED.rate_limit_per_second, \
             rate_limit_burst = EXCLUDED.rate_limit_burst, updated_at = now()",
        &[
            &spec.id,
            &spec.name,
            &spec.offramp_enabled,
            &spec.accept_client_address,
            &spec.redirect_hosts,
            &spec.webhook_url,
            &spec.webhook_secret.as_ref().map(Secret::expose),
            &spec.signature_scheme,
            &widget.widget_id,
            &widget.currencies,
            &widget.networks,
            &widget.fiat_currency,
            &widget.fiat_currencies,
            &widget.default_type,
            &widget.lang,
            &widget.theme,
            &widget.redirect_url,
            &decimal_codes,
            &decimal_digits,
            &rate_per_second,
            &rate_burst,
        ],
    )
    .await?;
    // The lists are replaced wholesale: they are short, and an ordinal-keyed
    // diff would buy nothing for a write that happens on operator action only.
    tx.execute(
        "WITH origins AS (DELETE FROM partner_origins WHERE partner_id = $1), \
              ips AS (DELETE FROM partner_ips WHERE partner_id = $1), \
              wallets AS (DELETE FROM partner_wallets WHERE partner_id = $1), \
              keys AS (DELETE FROM partner_signing_keys WHERE partner_id = $1), \
              webhook AS (DELETE FROM partner_webhook_secrets WHERE partner_id = $1) \
         SELECT 1",
        &[&spec.id],
    )
    .await?;
    tx.execute(
        "INSERT INTO partner_origins (partner_id, ordinal, origin) \
         SELECT $1, ordinal::integer, origin FROM unnest($2::text[]) WITH ORDINALITY AS u(origin, ordinal)",
        &[&spec.id, &spec.allowed_origins],
    )
    .await?;
    tx.execute(
        "INSERT INTO partner_ips (partner_id, ordinal, ip_range) \
         SELECT $1, ordinal::integer, ip_range FROM unnest($2::text[]) WITH ORDINALITY AS u(ip_range, ordinal)",
        &[&spec.id, &spec.allowed_ips],
    )
    .await?;
    let currencies: Vec<&str> = spec.wallets.iter().map(|w| w.currency.as_str()).collect();
    let networks: Vec<&str> = spec.wallets.iter().map(|w| w.network.as_str()).collect();
    let addresses: Vec<&str> = spec.wallets.iter().map(|w| w.address.as_str()).collect();
    let active: Vec<bool> = spec.wallets.iter().map(|w| w.active).collect();
    tx.execute(
        "INSERT INTO partner_wallets (partner_id, ordinal, currency, network, address, active) \
         SELECT $1, ordinal::integer, currency, network, address, active \
         FROM unnest($2::text[], $3::text[], $4::text[], $5::boolean[]) \
              WITH ORDINALITY AS u(currency, network, address, active, ordinal)",
        &[&spec.id, &currencies, &networks, &addresses, &active],
    )
    .await?;
    let kids: Vec<&str> = spec.signing_keys.iter().map(|k| k.kid.as_str()).collect();
    let secrets: Vec<&str> = spec
        .signing_keys
        .iter()
        .map(|k| k.secret.expose())
        .collect();
    let not_after: Vec<Option<PgTime>> = spec
        .signing_keys
        .iter()
        .map(|k| maybe_pg_time(k.not_after))
        .collect();
    tx.execute(
        "INSERT INTO partner_signing_keys (partner_id, ordinal, kid, secret, not_after) \
         SELECT $1, ordinal::integer, kid, secret, not_after \
         FROM unnest($2::text[], $3::text[], $4::timestamptz[]) \
              WITH ORDINALITY AS u(kid, secret, not_after, ordinal)",
        &[&spec.id, &kids, &secrets, &not_after],
    )
    .await?;
    let previous: Vec<&str> = spec
        .webhook_previous_secrets
        .iter()
        .map(|old| old.secret.expose())
        .collect();
    let previous_until: Vec<PgTime> = spec
        .webhook_previous_secrets
        .iter()
        .map(|old| PgTime(old.not_after))
        .collect();
    tx.execute(
        "INSERT INTO partner_webhook_secrets (partner_id, ordinal, secret, not_after) \
         SELECT $1, ordinal::integer, secret, not_after \
         FROM unnest($2::text[], $3::timestamptz[]) WITH ORDINALITY AS u(secret, not_after, ordinal)",
        &[&spec.id, &previous, &previous_until],
    )
    .await?;
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
        .await?;
    Ok(())
}

/// Inserts a token unless its digest exists; `true` when it was inserted.
pub(crate) async fn insert_token(
    client: &Client,
    token: &ClientTokenRecord,
    payload: &str,
) -> Result<bool, Fault> {
    // One statement: the insert and its notification commit together, and
    // nothing is announced when the digest was known already.
    let statement = client
        .prepare_cached(
            "WITH added AS ( \
                 INSERT INTO client_tokens \
                     (digest, partner_id, label, created_at, expires_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (digest) DO NOTHING RETURNING 1) \
             SELECT pg_notify($7, $8) FROM added",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &token.digest.as_bytes().as_slice(),
                &token.partner_id.as_str(),
                &token.label,
                &PgTime(token.created_at),
                &maybe_pg_time(token.expires_at),
                &maybe_pg_time(token.revoked_at),
                &CHANNEL,
                &payload,
            ],
        )
        .await
        .map_err(|error| {
            // The only foreign key of client_tokens is the partner.
            if error.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                Fault(StoreError::Failed(format!(
                    "unknown partner {}",
                    token.partner_id
                )))
            } else {
                Fault::from(error)
            }
        })?;
    Ok(!rows.is_empty())
}

/// Which timestamp of a token an update sets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TokenChange {
    /// Rotation: the end of the grace period.
    Expire,
    Revoke,
}

/// Sets a token's `expires_at` or `revoked_at`; `false` if the partner has no
/// such token.
pub(crate) async fn update_token(
    client: &Client,
    partner: &PartnerId,
    digest: &TokenDigest,
    change: TokenChange,
    at: Timestamp,
    payload: &str,
) -> Result<bool, Fault> {
    let column = match change {
        TokenChange::Expire => "expires_at",
        TokenChange::Revoke => "revoked_at",
    };
    let statement = client
        .prepare_cached(&format!(
            "WITH changed AS ( \
                 UPDATE client_tokens SET {column} = $3 \
                 WHERE digest = $1 AND partner_id = $2 RETURNING 1) \
             SELECT pg_notify($4, $5) FROM changed"
        ))
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &digest.as_bytes().as_slice(),
                &partner.as_str(),
                &PgTime(at),
                &CHANNEL,
                &payload,
            ],
        )
        .await?;
    Ok(!rows.is_empty())
}

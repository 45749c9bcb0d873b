//! A partner as operators read it, in JSON: the bootstrap file's field names
//! (`widget` an object, `wallets` an array), plus what only the store knows
//! (signing key ids, token states). The CLI's `--json` and the admin API
//! answer with it. It carries no secret: signing keys appear by kid, the
//! webhook secret only as set or not set, tokens by digest prefix.

use serde::Serialize;

use crate::partner::PartnerSpec;
use crate::ports::{ClientTokenRecord, DeliveryView, webhook_id};
use crate::time::Timestamp;

use super::tokens::{TokenCounts, TokenState, display_ids};

#[derive(Debug, Clone, Serialize)]
pub struct PartnerView {
    pub id: String,
    pub name: String,
    pub offramp_enabled: bool,
    pub accept_client_address: bool,
    pub signature_scheme: String,
    pub signing_keys: Vec<KeyView>,
    pub webhook_url: Option<String>,
    pub webhook_secret_set: bool,
    pub allowed_origins: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub redirect_hosts: Vec<String>,
    pub widget: WidgetView,
    pub wallets: Vec<WalletView>,
    /// `null`: the server's `--default-rate-limit` applies.
    pub rate_limit: Option<RateLimitView>,
    pub token_counts: TokenCounts,
    /// Only for one partner, not in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<TokenView>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyView {
    pub kid: String,
    /// The key that signs new sessions; the others only verify.
    pub current: bool,
    pub not_after: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WidgetView {
    pub widget_id: String,
    #[serde(rename = "type")]
    pub tx_type: String,
    pub currencies: Vec<String>,
    pub networks: Vec<String>,
    pub fiat_currency: String,
    pub fiat_currencies: Vec<String>,
    pub lang: String,
    pub theme: String,
    pub redirect_url: Option<String>,
    pub decimals: Vec<DecimalsView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecimalsView {
    pub currency: String,
    pub decimals: u8,
}

#[derive(Debug, Clone, Serialize)]
pub struct WalletView {
    pub currency: String,
    pub network: String,
    pub address: String,
    pub active: bool,
}

/// A partner's own request budget, as in the bootstrap file;
/// `per_second: 0` is unlimited.
#[derive(Debug, Clone, Serialize)]
pub struct RateLimitView {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    /// The id operators type: the digest's first 8 hex digits (more if shared).
    pub token_id: String,
    /// The token's SHA-256, which is all the store keeps; not a secret.
    pub sha256: String,
    pub label: String,
    /// `active`, `rotating`, `expired` or `revoked`.
    pub state: &'static str,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl PartnerView {
    /// `with_tokens`: list each token (one partner), not only the counts.
    pub fn new(
        spec: &PartnerSpec,
        tokens: &[ClientTokenRecord],
        now: Timestamp,
        with_tokens: bool,
    ) -> Self {
        let or =
            |value: &str, default: &str| if value.is_empty() { default } else { value }.to_owned();
        let widget = &spec.widget;
        Self {
            id: spec.id.clone(),
            name: spec.name.clone(),
            offramp_enabled: spec.offramp_enabled,
            accept_client_address: spec.accept_client_address,
            signature_scheme: or(&spec.signature_scheme, "hmac-sha512"),
            signing_keys: spec
                .signing_keys
                .iter()
                .enumerate()
                .map(|(i, key)| KeyView {
                    kid: key.kid.clone(),
                    current: i == 0,
                    not_after: key.not_after.map(Timestamp::to_rfc3339),
                })
                .collect(),
            webhook_url: spec.webhook_url.clone(),
            webhook_secret_set: spec.webhook_secret.is_some(),
            allowed_origins: spec.allowed_origins.clone(),
            allowed_ips: spec.allowed_ips.clone(),
            redirect_hosts: spec.redirect_hosts.clone(),
            widget: WidgetView {
                widget_id: widget.widget_id.clone(),
                tx_type: or(&widget.default_type, "buy"),
                currencies: widget.currencies.clone(),
                networks: widget.networks.clone(),
                fiat_currency: widget.fiat_currency.clone(),
                fiat_currencies: widget.fiat_currencies.clone(),
                lang: or(&widget.lang, "en"),
                theme: or(&widget.theme, "light"),
                redirect_url: widget.redirect_url.clone(),
                decimals: widget
                    .decimals
                    .iter()
                    .map(|(currency, decimals)| DecimalsView {
                        currency: currency.clone(),
                        decimals: *decimals,
                    })
                    .collect(),
            },
            wallets: spec
                .wallets
                .iter()
                .map(|w| WalletView {
                    currency: w.currency.clone(),
                    network: w.network.clone(),
                    address: w.address.clone(),
                    active: w.active,
                })
                .collect(),
            rate_limit: spec.rate_limit.map(|limit| RateLimitView {
                per_second: limit.per_second(),
                burst: limit.burst(),
            }),
            token_counts: TokenCounts::of(tokens, now),
            tokens: with_tokens.then(|| token_views(tokens, now)),
        }
    }
}

fn token_views(tokens: &[ClientTokenRecord], now: Timestamp) -> Vec<TokenView> {
    let refs = tokens.iter().collect::<Vec<_>>();
    tokens
        .iter()
        .zip(display_ids(&refs))
        .map(|(t, token_id)| TokenView {
            token_id,
            sha256: t.digest.to_hex(),
            label: t.label.clone(),
            state: TokenState::of(t, now).name(),
            created_at: t.created_at.to_rfc3339(),
            expires_at: t.expires_at.map(Timestamp::to_rfc3339),
            revoked_at: t.revoked_at.map(Timestamp::to_rfc3339),
        })
        .collect()
}

/// A webhook delivery as operators see it (`webhooks list --json`, and the
/// admin API's list): the fields SPEC.md §2 names, and when.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRow {
    pub id: String,
    pub partner: String,
    pub merchant_transaction_id: String,
    pub status: &'static str,
    pub state: &'static str,
    pub attempts: u32,
    pub last_result: Option<String>,
    pub committed_at: String,
    pub next_attempt_at: Option<String>,
}

impl From<&DeliveryView> for DeliveryRow {
    fn from(view: &DeliveryView) -> Self {
        Self {
            id: webhook_id(view.id),
            partner: view.partner_id.to_string(),
            merchant_transaction_id: view.merchant_transaction_id.hyphenated().to_string(),
            status: view.status.as_str(),
            state: view.state.as_str(),
            attempts: view.attempts,
            last_result: view.last_result.clone(),
            committed_at: view.committed_at.to_rfc3339(),
            next_attempt_at: view.next_attempt_at.map(Timestamp::to_rfc3339),
        }
    }
}

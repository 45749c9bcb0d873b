//! What `list` and `show` print: a partner as JSON (stable field names, lists
//! as arrays, RFC 3339 timestamps) and as aligned text. Built from the spec
//! and token records, it carries no secret: signing keys appear by kid,
//! the webhook secret only as set or not set, tokens by digest prefix. The
//! JSON answers of the commands that change something live here too; only
//! those of a command that generated a secret carry it, shown that once.

use serde::Serialize;
use session_core::partner::PartnerSpec;
use session_core::ports::ClientTokenRecord;
use session_core::time::Timestamp;

use super::tokens::{TokenCounts, TokenState, display_ids};

#[derive(Debug, Serialize)]
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
    /// Only in `show`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<TokenView>>,
}

#[derive(Debug, Serialize)]
pub struct KeyView {
    pub kid: String,
    /// The key that signs new sessions; the others only verify.
    pub current: bool,
    pub not_after: Option<String>,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
pub struct DecimalsView {
    pub currency: String,
    pub decimals: u8,
}

#[derive(Debug, Serialize)]
pub struct WalletView {
    pub currency: String,
    pub network: String,
    pub address: String,
    pub active: bool,
}

/// A partner's own request budget, as in the bootstrap file;
/// `per_second: 0` is unlimited.
#[derive(Debug, Serialize)]
pub struct RateLimitView {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Serialize)]
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
    /// `with_tokens`: list each token (for `show`), not only the counts.
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

    /// The full text of `show`: one fact per line, values aligned.
    pub fn show_text(&self) -> String {
        let mut rows = Rows::default();
        rows.one("id", &self.id);
        rows.one("name", &self.name);
        rows.one("offramp", enabled(self.offramp_enabled));
        rows.one(
            "client address",
            if self.accept_client_address {
                "accepted"
            } else {
                "ignored"
            },
        );
        rows.one("signature scheme", &self.signature_scheme);
        rows.many("signing keys", self.key_lines(), "none");
        rows.one("webhook url", self.webhook_url.as_deref().unwrap_or("none"));
        rows.one("webhook secret", self.webhook_secret());
        rows.many(
            "origins",
            self.allowed_origins.clone(),
            "none (requests with an Origin header are refused)",
        );
        rows.many("ips", self.allowed_ips.clone(), "any");
        rows.many("redirect hosts", self.redirect_hosts.clone(), "any");
        let w = &self.widget;
        rows.one("widget id", &w.widget_id);
        rows.one("type", &w.tx_type);
        rows.one("currencies", &w.currencies.join(", "));
        rows.one("networks", &w.networks.join(", "));
        rows.one("fiat currency", &w.fiat_currency);
        rows.one("fiat currencies", &w.fiat_currencies.join(", "));
        rows.one("lang", &w.lang);
        rows.one("theme", &w.theme);
        rows.one("redirect url", w.redirect_url.as_deref().unwrap_or("none"));
        rows.one("decimals", &self.decimals_text());
        rows.many("wallets", self.wallet_lines(), "none");
        rows.one("rate limit", &self.rate_limit_text());
        rows.one("tokens", &self.counts_text());
        if let Some(tokens) = &self.tokens {
            let table = tokens
                .iter()
                .map(|t| {
                    let when = match (t.state, &t.expires_at, &t.revoked_at) {
                        ("revoked", _, Some(at)) => format!("revoked {at}"),
                        ("rotating", Some(end), _) => format!("works until {end}"),
                        ("expired", Some(end), _) => format!("expired {end}"),
                        _ => String::new(),
                    };
                    vec![
                        t.token_id.clone(),
                        t.state.to_owned(),
                        format!("{:?}", t.label),
                        format!("created {}", t.created_at),
                        when,
                    ]
                })
                .collect::<Vec<_>>();
            rows.many("", columns(&table), "");
        }
        rows.render("")
    }

    /// The block of `list`: the partner's headline and a summary per line.
    pub fn list_text(&self) -> String {
        let mut rows = Rows::default();
        rows.one("tokens", &self.counts_text());
        rows.one("origins", &join_or(&self.allowed_origins, "none"));
        rows.one("ips", &join_or(&self.allowed_ips, "any"));
        rows.one("wallets", &join_or(&self.wallet_lines(), "none"));
        let w = &self.widget;
        rows.one(
            "widget",
            &format!(
                "{} {}: {} on {}; fiat {} of {}",
                w.widget_id,
                w.tx_type,
                w.currencies.join(", "),
                w.networks.join(", "),
                w.fiat_currency,
                w.fiat_currencies.join(", ")
            ),
        );
        rows.one("offramp", enabled(self.offramp_enabled));
        rows.one(
            "signing keys",
            &format!(
                "{} ({})",
                self.key_lines().join(", "),
                self.signature_scheme
            ),
        );
        rows.one(
            "webhook",
            &match &self.webhook_url {
                Some(url) => format!("{url} (secret {})", self.webhook_secret()),
                None => "none".to_owned(),
            },
        );
        rows.one("rate limit", &self.rate_limit_text());
        format!("{}  {}\n{}", self.id, self.name, rows.render("  "))
    }

    fn webhook_secret(&self) -> &'static str {
        if self.webhook_secret_set {
            "set"
        } else {
            "not set"
        }
    }

    fn key_lines(&self) -> Vec<String> {
        self.signing_keys
            .iter()
            .map(|k| match (&k.not_after, k.current) {
                (_, true) => format!("{} current", k.kid),
                (Some(end), false) => format!("{} verifies until {end}", k.kid),
                (None, false) => format!("{} verifies", k.kid),
            })
            .collect()
    }

    fn wallet_lines(&self) -> Vec<String> {
        let table = self
            .wallets
            .iter()
            .map(|w| {
                vec![
                    format!("{}/{}", w.currency, w.network),
                    w.address.clone(),
                    if w.active { "active" } else { "inactive" }.to_owned(),
                ]
            })
            .collect::<Vec<_>>();
        columns(&table)
    }

    fn rate_limit_text(&self) -> String {
        match &self.rate_limit {
            None => "server default (--default-rate-limit)".to_owned(),
            Some(limit) if limit.per_second == 0 => "unlimited".to_owned(),
            Some(limit) => format!("{}/s, burst {}", limit.per_second, limit.burst),
        }
    }

    fn counts_text(&self) -> String {
        let c = &self.token_counts;
        format!(
            "{} active, {} rotating, {} expired, {} revoked",
            c.active, c.rotating, c.expired, c.revoked
        )
    }

    fn decimals_text(&self) -> String {
        let list = self
            .widget
            .decimals
            .iter()
            .map(|d| format!("{}={}", d.currency, d.decimals))
            .collect::<Vec<_>>();
        if list.is_empty() {
            "8 for every currency".to_owned()
        } else {
            format!("{} (others 8)", list.join(", "))
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

fn enabled(on: bool) -> &'static str {
    if on { "enabled" } else { "disabled" }
}

fn join_or(list: &[String], empty: &str) -> String {
    if list.is_empty() {
        empty.to_owned()
    } else {
        list.join(", ")
    }
}

/// Pads every column but the last to its widest cell, and trims the line.
pub fn columns(table: &[Vec<String>]) -> Vec<String> {
    let width = |col: usize| {
        table
            .iter()
            .filter_map(|row| row.get(col))
            .map(|cell| cell.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = (0..table.iter().map(Vec::len).max().unwrap_or(0))
        .map(width)
        .collect::<Vec<_>>();
    table
        .iter()
        .map(|row| {
            let mut line = String::new();
            for (cell, w) in row.iter().zip(&widths) {
                line.push_str(&format!("{cell:<w$}  "));
            }
            line.trim_end().to_owned()
        })
        .collect()
}

/// Labelled lines, values aligned after the widest label.
#[derive(Default)]
struct Rows(Vec<(String, String)>);

impl Rows {
    fn one(&mut self, label: &str, value: &str) {
        self.0.push((label.to_owned(), value.to_owned()));
    }

    /// A list: the first value beside the label, the rest beneath it.
    fn many(&mut self, label: &str, values: Vec<String>, empty: &str) {
        if values.is_empty() {
            if !empty.is_empty() {
                self.one(label, empty);
            }
            return;
        }
        for (i, value) in values.into_iter().enumerate() {
            let label = if i == 0 { label } else { "" };
            self.0.push((label.to_owned(), value));
        }
    }

    fn render(&self, indent: &str) -> String {
        let width = self
            .0
            .iter()
            .map(|(label, _)| label.chars().count())
            .max()
            .unwrap_or(0);
        let mut text = String::new();
        for (label, value) in &self.0 {
            let line = format!("{indent}{label:<width$}  {value}");
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// The JSON of a configuration change.
#[derive(Serialize)]
pub(super) struct ChangeJson<'a> {
    pub(super) partner_id: &'a str,
    pub(super) changed: bool,
    pub(super) summary: &'a str,
    /// Present only when the command generated it: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) signing_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) webhook_secret: Option<&'a str>,
}

#[derive(Serialize)]
pub(super) struct IssuedJson<'a> {
    pub(super) partner_id: &'a str,
    pub(super) token_id: &'a str,
    pub(super) token: &'a str,
    pub(super) label: &'a str,
    /// Only for a rotation: the token replaced and the end of its grace period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) replaces: Option<ReplacedJson<'a>>,
}

#[derive(Serialize)]
pub(super) struct ReplacedJson<'a> {
    pub(super) token_id: &'a str,
    pub(super) expires_at: String,
}

#[derive(Serialize)]
pub(super) struct RevokedJson<'a> {
    pub(super) partner_id: &'a str,
    pub(super) token_id: &'a str,
    pub(super) changed: bool,
    pub(super) revoked_at: String,
}

#[derive(Serialize)]
pub(super) struct KeyRotatedJson<'a> {
    pub(super) partner_id: &'a str,
    pub(super) kid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) secret: Option<&'a str>,
    pub(super) previous: PreviousKeyJson<'a>,
    pub(super) dropped: &'a [String],
}

#[derive(Serialize)]
pub(super) struct PreviousKeyJson<'a> {
    pub(super) kid: &'a str,
    /// `null` when the grace was 0 and the key was dropped at once.
    pub(super) not_after: Option<String>,
}

/// The JSON of `webhook-secret rotate`.
#[derive(Serialize)]
pub(super) struct WebhookSecretRotatedJson<'a> {
    pub(super) partner_id: &'a str,
    /// Only when generated: shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) webhook_secret: Option<&'a str>,
    /// `null` when the grace was 0 and the old secret was dropped at once.
    pub(super) previous_not_after: Option<String>,
    /// Rotated-out secrets past their grace, removed by this rotation.
    pub(super) dropped: usize,
}

/// The JSON of `list`.
#[derive(Serialize)]
pub(super) struct ListJson<'a> {
    pub(super) partners: &'a [PartnerView],
}

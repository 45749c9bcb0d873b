//! What `list` and `show` print: a partner as aligned text, from the view
//! the core builds (`session_core::admin::PartnerView`, also their `--json`
//! and the admin API's answer), which carries no secret. The JSON answers of
//! the commands that change something live here too; only those of a command
//! that generated a secret carry it, shown that once.

use serde::Serialize;
use session_core::admin::PartnerView;

/// A partner's view, as text.
pub struct Text<'a>(pub &'a PartnerView);

impl std::ops::Deref for Text<'_> {
    type Target = PartnerView;

    fn deref(&self) -> &PartnerView {
        self.0
    }
}

impl Text<'_> {
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

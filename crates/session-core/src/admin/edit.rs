//! Changes to a partner's configuration as pure functions of a `PartnerSpec`
//! and what the operator asked for. Nothing here touches the store; the use
//! cases (`crate::service::admin`) validate the result with
//! `PartnerSpec::build` and write it.

use crate::error::{ErrorKind, Rejection};
use crate::partner::{
    PartnerSpec, PreviousWebhookSecret, RateLimit, SigningKeySpec, WalletSpec, next_kid,
    webhook_secret,
};
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::value::{IpRange, Origin};

use super::tokens::GracePeriod;

/// What an edit did to the spec, in words for the operator (field names and
/// values that are not secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Changed(String),
    /// The spec already said so; nothing is written.
    Unchanged(String),
}

impl Change {
    pub fn summary(&self) -> &str {
        match self {
            Self::Changed(what) | Self::Unchanged(what) => what,
        }
    }

    pub const fn changed(&self) -> bool {
        matches!(self, Self::Changed(_))
    }
}

/// Secrets a change generated. The CLI shows them once; the admin API never
/// does (SPEC.md §6: its answers carry no secret but a new client token).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Generated {
    pub signing_secret: Option<String>,
    pub webhook_secret: Option<String>,
}

/// Draws a fresh secret: 32 random bytes as 64 hex digits.
pub type SecretSource<'a> = &'a mut dyn FnMut() -> String;

/// A change to a partner's settings: each `Some` field replaces the stored
/// value; `None` leaves it. Lists replace the stored list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerPatch {
    pub name: Option<String>,
    pub offramp_enabled: Option<bool>,
    pub accept_client_address: Option<bool>,
    /// `Some(None)`: no more webhooks (the webhook secret is forgotten too).
    pub webhook_url: Option<Option<String>>,
    pub webhook_secret: Option<String>,
    pub redirect_hosts: Option<Vec<String>>,
    pub signature_scheme: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
    pub allowed_ips: Option<Vec<String>>,
    pub wallets: Option<Vec<WalletSpec>>,
    /// The partner's request budget; `Some(None)`: back to the server's
    /// default (`--default-rate-limit`).
    pub rate_limit: Option<Option<RateLimit>>,
    pub widget: WidgetPatch,
}

/// A change to the widget configuration, field by field as [`PartnerPatch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WidgetPatch {
    pub widget_id: Option<String>,
    pub currencies: Option<Vec<String>>,
    pub networks: Option<Vec<String>>,
    pub fiat_currency: Option<String>,
    pub fiat_currencies: Option<Vec<String>>,
    /// `buy` or `sell`.
    pub default_type: Option<String>,
    pub lang: Option<String>,
    pub theme: Option<String>,
    /// `Some(None)`: no default redirect.
    pub redirect_url: Option<Option<String>>,
    pub decimals: Option<Vec<(String, u8)>>,
}

/// Which wallet an operator means: the pair, and the address when the pair
/// has several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletSelector {
    pub currency: String,
    pub network: String,
    pub address: Option<String>,
}

/// Fills in what a new partner's spec leaves out: a signing key `k1` with a
/// generated secret when it has none, a generated webhook secret when it has a
/// webhook but no secret. Returns what was generated.
pub fn complete_new_partner(spec: &mut PartnerSpec, fresh: SecretSource<'_>) -> Generated {
    let mut generated = Generated::default();
    if spec.signing_keys.is_empty() {
        let secret = fresh();
        generated.signing_secret = Some(secret.clone());
        spec.signing_keys.push(SigningKeySpec {
            kid: "k1".into(),
            secret: Secret::new(secret),
            not_after: None,
        });
    }
    if spec.webhook_url.is_some() && spec.webhook_secret.is_none() {
        let secret = webhook_secret(&fresh());
        generated.webhook_secret = Some(secret.clone());
        spec.webhook_secret = Some(Secret::new(secret));
    }
    generated
}

/// Applies `patch`. A webhook set for the first time gets a generated secret
/// unless one is given. Refuses a patch that names nothing.
pub fn apply_patch(
    spec: &mut PartnerSpec,
    patch: &PartnerPatch,
    fresh: SecretSource<'_>,
) -> Result<(Change, Generated), Rejection> {
    let mut fields = Fields::default();
    let mut generated = Generated::default();
    if let Some(name) = &patch.name {
        fields.set("name", &mut spec.name, name.clone());
    }
    if let Some(on) = patch.offramp_enabled {
        fields.set("offramp", &mut spec.offramp_enabled, on);
    }
    if let Some(on) = patch.accept_client_address {
        fields.set("accept_client_address", &mut spec.accept_client_address, on);
    }
    match &patch.webhook_url {
        Some(None) => {
            fields.set("webhook_url", &mut spec.webhook_url, None);
            fields.set("webhook_secret", &mut spec.webhook_secret, None);
        }
        Some(Some(url)) => fields.set("webhook_url", &mut spec.webhook_url, Some(url.clone())),
        None => {}
    }
    if let Some(secret) = &patch.webhook_secret {
        if spec.webhook_url.is_none() {
            return Err(Rejection::new(
                ErrorKind::ValidationError,
                "webhook_secret needs a webhook: give webhook_url too (--webhook-url)",
            ));
        }
        fields.set(
            "webhook_secret",
            &mut spec.webhook_secret,
            Some(Secret::new(secret.as_str())),
        );
    }
    if spec.webhook_url.is_some() && spec.webhook_secret.is_none() {
        let secret = webhook_secret(&fresh());
        generated.webhook_secret = Some(secret.clone());
        fields.set(
            "webhook_secret",
            &mut spec.webhook_secret,
            Some(Secret::new(secret)),
        );
    }
    if let Some(hosts) = &patch.redirect_hosts {
        for host in hosts {
            check_host(host)?;
        }
        fields.set("redirect_hosts", &mut spec.redirect_hosts, hosts.clone());
    }
    if let Some(scheme) = &patch.signature_scheme {
        fields.set(
            "signature_scheme",
            &mut spec.signature_scheme,
            scheme.clone(),
        );
    }
    if let Some(origins) = &patch.allowed_origins {
        fields.set(
            "allowed_origins",
            &mut spec.allowed_origins,
            origins.clone(),
        );
    }
    if let Some(ips) = &patch.allowed_ips {
        fields.set("allowed_ips", &mut spec.allowed_ips, ips.clone());
    }
    if let Some(wallets) = &patch.wallets {
        fields.set("wallets", &mut spec.wallets, wallets.clone());
    }
    if let Some(limit) = patch.rate_limit {
        fields.set("rate_limit", &mut spec.rate_limit, limit);
    }
    let mut widget_fields = Fields::default();
    apply_widget(&mut widget_fields, &mut spec.widget, &patch.widget);
    let change = match (fields.changed.is_empty(), widget_fields.changed.is_empty()) {
        _ if !fields.mentioned && !widget_fields.mentioned => {
            return Err(Rejection::new(
                ErrorKind::ValidationError,
                "nothing to change: give at least one setting",
            ));
        }
        (true, true) => Change::Unchanged("every value given is already set".into()),
        (true, false) => Change::Changed(format!("widget {} updated", widget_fields.list())),
        (false, _) => {
            let mut names = fields.changed;
            names.extend(widget_fields.changed.iter().map(|name| match *name {
                "currencies" => "widget.currencies",
                "networks" => "widget.networks",
                "fiat_currency" => "widget.fiat_currency",
                "fiat_currencies" => "widget.fiat_currencies",
                "type" => "widget.type",
                "lang" => "widget.lang",
                "theme" => "widget.theme",
                "redirect_url" => "widget.redirect_url",
                "decimals" => "widget.decimals",
                _ => "widget.widget_id",
            }));
            Change::Changed(format!("{} updated", names.join(", ")))
        }
    };
    Ok((change, generated))
}

fn apply_widget(fields: &mut Fields, widget: &mut crate::partner::WidgetSpec, patch: &WidgetPatch) {
    if let Some(id) = &patch.widget_id {
        fields.set("widget_id", &mut widget.widget_id, id.clone());
    }
    if let Some(list) = &patch.currencies {
        fields.set("currencies", &mut widget.currencies, list.clone());
    }
    if let Some(list) = &patch.networks {
        fields.set("networks", &mut widget.networks, list.clone());
    }
    if let Some(code) = &patch.fiat_currency {
        fields.set("fiat_currency", &mut widget.fiat_currency, code.clone());
    }
    if let Some(list) = &patch.fiat_currencies {
        fields.set("fiat_currencies", &mut widget.fiat_currencies, list.clone());
    }
    if let Some(tx_type) = &patch.default_type {
        fields.set("type", &mut widget.default_type, tx_type.clone());
    }
    if let Some(lang) = &patch.lang {
        fields.set("lang", &mut widget.lang, lang.clone());
    }
    if let Some(theme) = &patch.theme {
        fields.set("theme", &mut widget.theme, theme.clone());
    }
    if let Some(url) = &patch.redirect_url {
        fields.set("redirect_url", &mut widget.redirect_url, url.clone());
    }
    if let Some(list) = &patch.decimals {
        fields.set("decimals", &mut widget.decimals, list.clone());
    }
}

pub fn add_origin(spec: &mut PartnerSpec, origin: &str) -> Change {
    if spec.allowed_origins.iter().any(|o| same_origin(o, origin)) {
        return Change::Unchanged(format!("origin {origin} is already allowed"));
    }
    // An unparseable origin is left to `build`, which names the field.
    spec.allowed_origins.push(origin.to_owned());
    Change::Changed(format!("origin {origin} added"))
}

pub fn remove_origin(spec: &mut PartnerSpec, origin: &str) -> Result<Change, Rejection> {
    let before = spec.allowed_origins.len();
    spec.allowed_origins.retain(|o| !same_origin(o, origin));
    if spec.allowed_origins.len() == before {
        return Err(Rejection::new(
            ErrorKind::NotFound,
            format!("partner {} has no origin {origin}", spec.id),
        ));
    }
    Ok(Change::Changed(format!("origin {origin} removed")))
}

pub fn add_ip(spec: &mut PartnerSpec, range: &str) -> Result<Change, Rejection> {
    let net = IpRange::parse(range).map_err(|why| invalid(format!("{range:?} {why}")))?;
    if spec
        .allowed_ips
        .iter()
        .any(|r| IpRange::parse(r) == Ok(net))
    {
        return Ok(Change::Unchanged(format!("{net} is already allowed")));
    }
    let gate = if spec.allowed_ips.is_empty() {
        " (the IP gate is now on: only listed ranges may call)"
    } else {
        ""
    };
    spec.allowed_ips.push(net.to_string());
    Ok(Change::Changed(format!("ip range {net} added{gate}")))
}

pub fn remove_ip(spec: &mut PartnerSpec, range: &str) -> Result<Change, Rejection> {
    let net = IpRange::parse(range).map_err(|why| invalid(format!("{range:?} {why}")))?;
    let before = spec.allowed_ips.len();
    spec.allowed_ips
        .retain(|r| IpRange::parse(r) != Ok(net) && r != range);
    if spec.allowed_ips.len() == before {
        return Err(Rejection::new(
            ErrorKind::NotFound,
            format!("partner {} has no ip range {net}", spec.id),
        ));
    }
    let gate = if spec.allowed_ips.is_empty() {
        " (no ranges left: any caller IP is allowed)"
    } else {
        ""
    };
    Ok(Change::Changed(format!("ip range {net} removed{gate}")))
}

pub fn add_wallet(spec: &mut PartnerSpec, wallet: &WalletSpec) -> Result<Change, Rejection> {
    let name = wallet_name(wallet);
    match spec.wallets.iter().find(|w| {
        w.currency == wallet.currency && w.network == wallet.network && w.address == wallet.address
    }) {
        Some(existing) if existing.active == wallet.active => {
            Ok(Change::Unchanged(format!("wallet {name} already exists")))
        }
        Some(_) => Err(Rejection::new(
            ErrorKind::Conflict,
            format!(
                "wallet {name} exists with another state: change its state instead (`partners wallet activate` or `deactivate`)"
            ),
        )),
        None => {
            spec.wallets.push(wallet.clone());
            let state = if wallet.active { "" } else { " (inactive)" };
            Ok(Change::Changed(format!("wallet {name} added{state}")))
        }
    }
}

pub fn remove_wallet(
    spec: &mut PartnerSpec,
    selector: &WalletSelector,
) -> Result<Change, Rejection> {
    let index = select_wallet(spec, selector)?;
    let wallet = spec.wallets.remove(index);
    Ok(Change::Changed(format!(
        "wallet {} removed",
        wallet_name(&wallet)
    )))
}

pub fn set_wallet_active(
    spec: &mut PartnerSpec,
    selector: &WalletSelector,
    active: bool,
) -> Result<Change, Rejection> {
    let index = select_wallet(spec, selector)?;
    let wallet = &mut spec.wallets[index];
    let name = wallet_name(wallet);
    let state = if active { "active" } else { "inactive" };
    if wallet.active == active {
        return Ok(Change::Unchanged(format!(
            "wallet {name} is already {state}"
        )));
    }
    wallet.active = active;
    Ok(Change::Changed(format!("wallet {name} is now {state}")))
}

/// What a signing-key rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRotation {
    pub kid: String,
    /// The new secret, when it was generated.
    pub generated_secret: Option<String>,
    pub previous_kid: String,
    /// When the previous key stops verifying; `None` when it was dropped at once.
    pub previous_until: Option<Timestamp>,
    /// Rotated-out keys whose grace period had ended, and were removed.
    pub dropped: Vec<String>,
}

/// Makes a new key current (`k1` → `k2`), keeps the previous current key until
/// `now + grace`, and drops every key whose grace period is over at `now`.
pub fn rotate_signing_key(
    spec: &mut PartnerSpec,
    now: Timestamp,
    grace: GracePeriod,
    secret: Option<&str>,
    fresh: SecretSource<'_>,
) -> Result<KeyRotation, Rejection> {
    let Some(current) = spec.signing_keys.first().cloned() else {
        return Err(Rejection::new(
            ErrorKind::Conflict,
            format!("partner {} has no signing key to rotate", spec.id),
        ));
    };
    if secret.is_some_and(|s| Secret::new(s) == current.secret) {
        return Err(invalid(format!(
            "the new secret is the current key {}'s secret: give another one",
            current.kid
        )));
    }
    let (secret, generated_secret) = match secret {
        Some(secret) => (secret.to_owned(), None),
        None => {
            let secret = fresh();
            (secret.clone(), Some(secret))
        }
    };
    let mut kid = next_kid(&current.kid);
    while spec.signing_keys.iter().any(|k| k.kid == kid) {
        kid = next_kid(&kid);
    }
    let until = now.plus_seconds(grace.seconds());
    let previous_kid = current.kid.clone();
    let previous_until = (until > now).then_some(until);
    let mut keys = vec![SigningKeySpec {
        kid: kid.clone(),
        secret: Secret::new(secret),
        not_after: None,
    }];
    if previous_until.is_some() {
        keys.push(SigningKeySpec {
            not_after: previous_until,
            ..current
        });
    }
    let mut dropped = vec![];
    for key in spec.signing_keys.drain(1..) {
        if key.not_after.is_some_and(|end| end <= now) {
            dropped.push(key.kid);
        } else {
            keys.push(key);
        }
    }
    spec.signing_keys = keys;
    Ok(KeyRotation {
        kid,
        generated_secret,
        previous_kid,
        previous_until,
        dropped,
    })
}

/// What a webhook-secret rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSecretRotation {
    /// The new secret when it was generated.
    pub generated_secret: Option<String>,
    /// When the previous secret stops signing; `None` when dropped at once.
    pub previous_until: Option<Timestamp>,
    /// Rotated-out secrets whose grace had ended, removed now.
    pub dropped: usize,
}

/// Makes `secret` (or a fresh one) the partner's webhook secret; the current
/// one keeps signing until `now + grace` (dropped at once for a grace of 0).
pub fn rotate_webhook_secret(
    spec: &mut PartnerSpec,
    now: Timestamp,
    grace: GracePeriod,
    secret: Option<&str>,
    fresh: SecretSource<'_>,
) -> Result<WebhookSecretRotation, Rejection> {
    if spec.webhook_url.is_none() {
        return Err(Rejection::new(
            ErrorKind::Conflict,
            format!(
                "partner {} has no webhook_url: set one first (partners set {} --webhook-url ...)",
                spec.id, spec.id
            ),
        ));
    }
    let current = spec.webhook_secret.clone();
    if secret.is_some_and(|s| current.as_ref().is_some_and(|c| *c == Secret::new(s))) {
        return Err(invalid(
            "the new secret is the current one: give another one".into(),
        ));
    }
    let (secret, generated_secret) = match secret {
        Some(secret) => (secret.to_owned(), None),
        None => {
            let secret = webhook_secret(&fresh());
            (secret.clone(), Some(secret))
        }
    };
    let before = spec.webhook_previous_secrets.len();
    spec.webhook_previous_secrets
        .retain(|old| old.not_after > now);
    let dropped = before - spec.webhook_previous_secrets.len();
    let until = now.plus_seconds(grace.seconds());
    let previous_until = (until > now).then_some(until);
    if let (Some(old), Some(not_after)) = (current, previous_until) {
        spec.webhook_previous_secrets.insert(
            0,
            PreviousWebhookSecret {
                secret: old,
                not_after,
            },
        );
    }
    spec.webhook_secret = Some(Secret::new(secret));
    Ok(WebhookSecretRotation {
        generated_secret,
        previous_until,
        dropped,
    })
}

/// A redirect host as operators must give it: a bare host name.
pub fn check_host(host: &str) -> Result<(), Rejection> {
    let plausible = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
        && !host.contains("://");
    if plausible {
        Ok(())
    } else {
        Err(invalid(format!(
            "redirect host {host:?} must be a bare host name, e.g. app.example.com"
        )))
    }
}

fn invalid(message: String) -> Rejection {
    Rejection::new(ErrorKind::ValidationError, message)
}

/// Origins compare as the gate compares them, (scheme, host, port); text that
/// does not parse compares as text so it can still be removed.
fn same_origin(a: &str, b: &str) -> bool {
    match (Origin::parse(a), Origin::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn wallet_name(wallet: &WalletSpec) -> String {
    format!("{}/{} {}", wallet.currency, wallet.network, wallet.address)
}

fn select_wallet(spec: &PartnerSpec, selector: &WalletSelector) -> Result<usize, Rejection> {
    let matches: Vec<usize> = spec
        .wallets
        .iter()
        .enumerate()
        .filter(|(_, w)| {
            w.currency == selector.currency
                && w.network == selector.network
                && selector.address.as_ref().is_none_or(|a| *a == w.address)
        })
        .map(|(index, _)| index)
        .collect();
    let pair = format!("{}/{}", selector.currency, selector.network);
    match matches.as_slice() {
        [index] => Ok(*index),
        [] => Err(Rejection::new(
            ErrorKind::NotFound,
            match &selector.address {
                Some(address) => format!("partner {} has no wallet {pair} {address}", spec.id),
                None => format!("partner {} has no wallet for {pair}", spec.id),
            },
        )),
        several => Err(invalid(format!(
            "partner {} has {} wallets for {pair} ({}): give the address (--address)",
            spec.id,
            several.len(),
            several
                .iter()
                .map(|i| spec.wallets[*i].address.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Collects which fields an edit changed.
#[derive(Default)]
struct Fields {
    changed: Vec<&'static str>,
    mentioned: bool,
}

impl Fields {
    fn set<T: PartialEq>(&mut self, name: &'static str, field: &mut T, value: T) {
        self.mentioned = true;
        if *field != value {
            *field = value;
            if !self.changed.contains(&name) {
                self.changed.push(name);
            }
        }
    }

    fn list(&self) -> String {
        self.changed.join(", ")
    }
}

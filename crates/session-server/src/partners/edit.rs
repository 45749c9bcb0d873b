//! Changes to a partner's configuration as pure functions of a `PartnerSpec`
//! and the command's arguments. Nothing here touches the store; the caller
//! validates the result with `PartnerSpec::build` and writes it.

use session_core::partner::{
    PartnerSpec, PreviousWebhookSecret, RateLimit, SigningKeySpec, WalletSpec, WidgetSpec,
    next_kid, webhook_secret,
};
use session_core::secret::Secret;
use session_core::time::Timestamp;
use session_core::value::{IpRange, Origin};

use super::args::{
    CreateArgs, CurrencyDecimals, GracePeriod, RateArg, SetArgs, WalletAddArgs, WalletSelector,
    WidgetSetArgs,
};

/// What an edit did to the spec, in words for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Changed(String),
    /// The spec already said so; nothing is written.
    Unchanged(String),
}

/// Secrets a command generated: the operator sees them once, in its output.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Generated {
    pub signing_secret: Option<String>,
    pub webhook_secret: Option<String>,
}

/// Draws a fresh secret: 32 random bytes as 64 hex digits.
pub type SecretSource<'a> = &'a mut dyn FnMut() -> String;

/// The budget `--rate-limit R|default` and `--burst B` name: `None` for the
/// server's default; without `--burst`, twice the rate.
pub fn rate_limit(rate: RateArg, burst: Option<u32>) -> Result<Option<RateLimit>, String> {
    let per_second = match (rate, burst) {
        (RateArg::Default, None) => return Ok(None),
        (RateArg::Default, Some(_)) => {
            return Err("--burst needs a number of requests per second in --rate-limit".into());
        }
        (RateArg::PerSecond(per_second), _) => per_second,
    };
    let limit = match burst {
        Some(burst) => RateLimit::new(per_second, burst),
        None => RateLimit::with_default_burst(per_second),
    };
    limit
        .map(Some)
        .map_err(|why| format!("--rate-limit/--burst: {why}"))
}

/// The spec `partners create` writes, and the secrets it generated.
pub fn new_partner(
    args: &CreateArgs,
    fresh: SecretSource<'_>,
) -> Result<(PartnerSpec, Generated), String> {
    let rate_limit = match args.rate_limit {
        Some(rate) => rate_limit(rate, args.burst)?,
        None => None,
    };
    let mut generated = Generated::default();
    let signing_secret = args.signing_secret.clone().unwrap_or_else(|| {
        let secret = fresh();
        generated.signing_secret = Some(secret.clone());
        secret
    });
    let webhook_secret = args.webhook_url.as_ref().map(|_| {
        args.webhook_secret.clone().unwrap_or_else(|| {
            let secret = webhook_secret(&fresh());
            generated.webhook_secret = Some(secret.clone());
            secret
        })
    });
    let spec = PartnerSpec {
        id: args.id.to_string(),
        name: args.name.clone(),
        allowed_origins: args.origins.clone(),
        allowed_ips: args.ips.clone(),
        offramp_enabled: args.offramp,
        accept_client_address: args.accept_client_address,
        redirect_hosts: args.redirect_hosts.clone(),
        webhook_url: args.webhook_url.clone(),
        webhook_secret: webhook_secret.map(Secret::new),
        webhook_previous_secrets: vec![],
        signature_scheme: args.signature_scheme.as_str().into(),
        signing_keys: vec![SigningKeySpec {
            kid: "k1".into(),
            secret: Secret::new(signing_secret),
            not_after: None,
        }],
        widget: WidgetSpec {
            widget_id: args.widget_id.to_string(),
            currencies: args.currencies.clone(),
            networks: args.networks.clone(),
            fiat_currency: args.fiat_currency.clone(),
            fiat_currencies: args.fiat_currencies.clone(),
            default_type: args.tx_type.as_str().into(),
            lang: args.lang.clone(),
            theme: args.theme.clone(),
            redirect_url: args.redirect_url.clone(),
            decimals: decimals(&args.decimals),
        },
        wallets: vec![],
        rate_limit,
    };
    Ok((spec, generated))
}

/// Applies `partners set`. A webhook set for the first time gets a generated
/// secret unless one is given.
pub fn apply_set(
    spec: &mut PartnerSpec,
    args: &SetArgs,
    fresh: SecretSource<'_>,
) -> Result<(Change, Generated), String> {
    let mut fields = Fields::default();
    let mut generated = Generated::default();
    if let Some(name) = &args.name {
        fields.set("name", &mut spec.name, name.clone());
    }
    if let Some(on) = args.offramp {
        fields.set("offramp", &mut spec.offramp_enabled, on);
    }
    if let Some(on) = args.accept_client_address {
        fields.set("accept_client_address", &mut spec.accept_client_address, on);
    }
    if args.no_webhook {
        fields.set("webhook_url", &mut spec.webhook_url, None);
        fields.set("webhook_secret", &mut spec.webhook_secret, None);
    }
    if let Some(url) = &args.webhook_url {
        fields.set("webhook_url", &mut spec.webhook_url, Some(url.clone()));
    }
    if let Some(secret) = &args.webhook_secret {
        if spec.webhook_url.is_none() {
            return Err("--webhook-secret needs a webhook: give --webhook-url too".into());
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
    if args.no_redirect_hosts {
        fields.set("redirect_hosts", &mut spec.redirect_hosts, vec![]);
    }
    if let Some(hosts) = &args.redirect_hosts {
        for host in hosts {
            check_host(host)?;
        }
        fields.set("redirect_hosts", &mut spec.redirect_hosts, hosts.clone());
    }
    if let Some(scheme) = args.signature_scheme {
        fields.set(
            "signature_scheme",
            &mut spec.signature_scheme,
            scheme.as_str().to_owned(),
        );
    }
    if let Some(rate) = args.rate_limit {
        fields.set(
            "rate_limit",
            &mut spec.rate_limit,
            rate_limit(rate, args.burst)?,
        );
    }
    Ok((fields.finish()?, generated))
}

/// Applies `partners widget set`.
pub fn apply_widget_set(spec: &mut PartnerSpec, args: &WidgetSetArgs) -> Result<Change, String> {
    let widget = &mut spec.widget;
    let mut fields = Fields::default();
    if let Some(id) = args.widget_id {
        fields.set("widget_id", &mut widget.widget_id, id.to_string());
    }
    if let Some(list) = &args.currencies {
        fields.set("currencies", &mut widget.currencies, list.clone());
    }
    if let Some(list) = &args.networks {
        fields.set("networks", &mut widget.networks, list.clone());
    }
    if let Some(code) = &args.fiat_currency {
        fields.set("fiat_currency", &mut widget.fiat_currency, code.clone());
    }
    if let Some(list) = &args.fiat_currencies {
        fields.set("fiat_currencies", &mut widget.fiat_currencies, list.clone());
    }
    if let Some(tx_type) = args.tx_type {
        fields.set("type", &mut widget.default_type, tx_type.as_str().into());
    }
    if let Some(lang) = &args.lang {
        fields.set("lang", &mut widget.lang, lang.clone());
    }
    if let Some(theme) = &args.theme {
        fields.set("theme", &mut widget.theme, theme.clone());
    }
    if args.no_redirect_url {
        fields.set("redirect_url", &mut widget.redirect_url, None);
    }
    if let Some(url) = &args.redirect_url {
        fields.set("redirect_url", &mut widget.redirect_url, Some(url.clone()));
    }
    if args.no_decimals {
        fields.set("decimals", &mut widget.decimals, vec![]);
    }
    if let Some(list) = &args.decimals {
        fields.set("decimals", &mut widget.decimals, decimals(list));
    }
    fields.finish().map(|change| match change {
        Change::Changed(what) => Change::Changed(format!("widget {what}")),
        unchanged => unchanged,
    })
}

pub fn add_origin(spec: &mut PartnerSpec, origin: &str) -> Change {
    if spec.allowed_origins.iter().any(|o| same_origin(o, origin)) {
        return Change::Unchanged(format!("origin {origin} is already allowed"));
    }
    // An unparseable origin is left to `build`, which names the field.
    spec.allowed_origins.push(origin.to_owned());
    Change::Changed(format!("origin {origin} added"))
}

pub fn remove_origin(spec: &mut PartnerSpec, origin: &str) -> Result<Change, String> {
    let before = spec.allowed_origins.len();
    spec.allowed_origins.retain(|o| !same_origin(o, origin));
    if spec.allowed_origins.len() == before {
        return Err(format!(
            "partner {} has no origin {origin} (see `partners show {}`)",
            spec.id, spec.id
        ));
    }
    Ok(Change::Changed(format!("origin {origin} removed")))
}

pub fn add_ip(spec: &mut PartnerSpec, range: &str) -> Result<Change, String> {
    let net = IpRange::parse(range).map_err(|why| format!("{range:?} {why}"))?;
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

pub fn remove_ip(spec: &mut PartnerSpec, range: &str) -> Result<Change, String> {
    let net = IpRange::parse(range).map_err(|why| format!("{range:?} {why}"))?;
    let before = spec.allowed_ips.len();
    spec.allowed_ips
        .retain(|r| IpRange::parse(r) != Ok(net) && r != range);
    if spec.allowed_ips.len() == before {
        return Err(format!("partner {} has no ip range {net}", spec.id));
    }
    let gate = if spec.allowed_ips.is_empty() {
        " (no ranges left: any caller IP is allowed)"
    } else {
        ""
    };
    Ok(Change::Changed(format!("ip range {net} removed{gate}")))
}

pub fn add_wallet(spec: &mut PartnerSpec, args: &WalletAddArgs) -> Result<Change, String> {
    let wallet = WalletSpec {
        currency: args.currency.clone(),
        network: args.network.clone(),
        address: args.address.clone(),
        active: !args.inactive,
    };
    let name = wallet_name(&wallet);
    match spec.wallets.iter().find(|w| {
        w.currency == wallet.currency && w.network == wallet.network && w.address == wallet.address
    }) {
        Some(existing) if existing.active == wallet.active => {
            Ok(Change::Unchanged(format!("wallet {name} already exists")))
        }
        Some(_) => Err(format!(
            "wallet {name} exists with another state: use `partners wallet activate` or `deactivate`"
        )),
        None => {
            spec.wallets.push(wallet);
            let state = if args.inactive { " (inactive)" } else { "" };
            Ok(Change::Changed(format!("wallet {name} added{state}")))
        }
    }
}

pub fn remove_wallet(spec: &mut PartnerSpec, selector: &WalletSelector) -> Result<Change, String> {
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
) -> Result<Change, String> {
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

/// What `signing-key rotate` did.
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
) -> Result<KeyRotation, String> {
    let Some(current) = spec.signing_keys.first().cloned() else {
        return Err(format!("partner {} has no signing key to rotate", spec.id));
    };
    if secret.is_some_and(|s| s == current.secret.expose()) {
        return Err(format!(
            "the new secret is the current key {}'s secret: give another one",
            current.kid
        ));
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

fn decimals(list: &[CurrencyDecimals]) -> Vec<(String, u8)> {
    list.iter()
        .map(|d| (d.currency.clone(), d.digits))
        .collect()
}

/// Origins compare as the gate compares them, (scheme, host, port); text that
/// does not parse compares as text so it can still be removed.
fn same_origin(a: &str, b: &str) -> bool {
    match (Origin::parse(a), Origin::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn check_host(host: &str) -> Result<(), String> {
    let plausible = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
        && !host.contains("://");
    if plausible {
        Ok(())
    } else {
        Err(format!(
            "redirect host {host:?} must be a bare host name, e.g. app.example.com"
        ))
    }
}

fn wallet_name(wallet: &WalletSpec) -> String {
    format!("{}/{} {}", wallet.currency, wallet.network, wallet.address)
}

fn select_wallet(spec: &PartnerSpec, selector: &WalletSelector) -> Result<usize, String> {
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
        [] => Err(match &selector.address {
            Some(address) => format!("partner {} has no wallet {pair} {address}", spec.id),
            None => format!("partner {} has no wallet for {pair}", spec.id),
        }),
        several => Err(format!(
            "partner {} has {} wallets for {pair} ({}): give --address",
            spec.id,
            several.len(),
            several
                .iter()
                .map(|i| spec.wallets[*i].address.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
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

    fn finish(self) -> Result<Change, String> {
        if !self.mentioned {
            return Err("nothing to change: give at least one option (see --help)".into());
        }
        Ok(if self.changed.is_empty() {
            Change::Unchanged("every value given is already set".into())
        } else {
            Change::Changed(format!("{} updated", self.changed.join(", ")))
        })
    }
}

/// What `webhook-secret rotate` did.
#[derive(Debug)]
pub struct WebhookSecretRotation {
    /// The new secret when it was generated (shown once).
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
) -> Result<WebhookSecretRotation, String> {
    if spec.webhook_url.is_none() {
        return Err(format!(
            "partner {} has no webhook_url: set one first (partners set {} --webhook-url ...)",
            spec.id, spec.id
        ));
    }
    let current = spec.webhook_secret.clone();
    if secret.is_some_and(|s| current.as_ref().is_some_and(|c| c.expose() == s)) {
        return Err("the new secret is the current one: give another one".into());
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

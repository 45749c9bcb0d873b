//! The admin API's request bodies, decoded into what the operations take, in
//! the check order of SPEC.md §1: one JSON object without duplicate keys
//! (`decode_error`), then required fields (`missing_param`), then unknown
//! fields and each field's type (`validation_error`). Field names are the
//! bootstrap file's; nested ones are named by their path (`widget.currencies`,
//! `wallets[1].address`). A message never repeats a value, which may be a
//! secret.

use serde_json::{Map, Value};

use crate::client_token::TokenEnv;
use crate::error::{ErrorKind, Rejection};
use crate::json::Object;
use crate::partner::{PartnerId, PartnerSpec, RateLimit, SigningKeySpec, WalletSpec, WidgetSpec};
use crate::secret::Secret;
use crate::time::Timestamp;

use super::edit::{PartnerPatch, WalletSelector, WidgetPatch};
use super::tokens::GracePeriod;

/// `POST /admin/partners`: a new partner, as a `[[partner]]` entry of the
/// bootstrap file in JSON. Secrets it leaves out are generated later
/// ([`super::edit::complete_new_partner`]).
pub fn new_partner(body: &[u8]) -> Result<PartnerSpec, Rejection> {
    let root = parse(body)?;
    let top = Members::root(&root);
    top.check(
        &["id", "name", "widget"],
        &[
            "allowed_origins",
            "allowed_ips",
            "offramp_enabled",
            "accept_client_address",
            "redirect_hosts",
            "webhook_url",
            "webhook_secret",
            "signing_secret",
            "signature_scheme",
            "wallets",
            "rate_limit",
        ],
    )?;
    let id = top.req_str("id")?;
    PartnerId::parse(&id).map_err(|why| Rejection::invalid("id", why))?;
    let name = top.req_str("name")?;
    let widget = top
        .object("widget")?
        .ok_or_else(|| Rejection::missing("widget"))?;
    widget.check(
        &[
            "widget_id",
            "currencies",
            "networks",
            "fiat_currency",
            "fiat_currencies",
        ],
        &["type", "lang", "theme", "redirect_url", "decimals"],
    )?;
    let widget = WidgetSpec {
        widget_id: widget.req_str("widget_id")?,
        currencies: widget.req_strings("currencies")?,
        networks: widget.req_strings("networks")?,
        fiat_currency: widget.req_str("fiat_currency")?,
        fiat_currencies: widget.req_strings("fiat_currencies")?,
        default_type: widget.str("type")?.unwrap_or_else(|| "buy".into()),
        lang: widget.str("lang")?.unwrap_or_else(|| "en".into()),
        theme: widget.str("theme")?.unwrap_or_else(|| "light".into()),
        redirect_url: widget.nullable_str("redirect_url")?.flatten(),
        decimals: widget.decimals("decimals")?.unwrap_or_default(),
    };
    let webhook_url = top.nullable_str("webhook_url")?.flatten();
    let webhook_secret = top.secret("webhook_secret")?;
    if webhook_secret.is_some() && webhook_url.is_none() {
        return Err(Rejection::invalid(
            "webhook_secret",
            "needs a webhook: give webhook_url too",
        ));
    }
    let signing_keys = top
        .secret("signing_secret")?
        .map(|secret| SigningKeySpec {
            kid: "k1".into(),
            secret,
            not_after: None,
        })
        .into_iter()
        .collect();
    Ok(PartnerSpec {
        id,
        name,
        allowed_origins: top.strings("allowed_origins")?.unwrap_or_default(),
        allowed_ips: top.strings("allowed_ips")?.unwrap_or_default(),
        offramp_enabled: top.bool("offramp_enabled")?.unwrap_or(false),
        accept_client_address: top.bool("accept_client_address")?.unwrap_or(false),
        redirect_hosts: top.strings("redirect_hosts")?.unwrap_or_default(),
        webhook_url,
        webhook_secret,
        webhook_previous_secrets: vec![],
        signature_scheme: top
            .str("signature_scheme")?
            .unwrap_or_else(|| "hmac-sha512".into()),
        signing_keys,
        widget,
        wallets: top.wallets("wallets")?.unwrap_or_default(),
        rate_limit: top.rate_limit("rate_limit")?.flatten(),
    })
}

/// `PATCH /admin/partners/{id}`: any of the bootstrap entry's settings;
/// `null` removes `webhook_url` and `widget.redirect_url`, and gives
/// `rate_limit` back to the server's default.
pub fn patch(body: &[u8]) -> Result<PartnerPatch, Rejection> {
    let root = parse(body)?;
    let top = Members::root(&root);
    top.check(
        &[],
        &[
            "name",
            "allowed_origins",
            "allowed_ips",
            "offramp_enabled",
            "accept_client_address",
            "redirect_hosts",
            "webhook_url",
            "webhook_secret",
            "signature_scheme",
            "wallets",
            "rate_limit",
            "widget",
        ],
    )?;
    let mut patch = PartnerPatch {
        name: top.str("name")?,
        offramp_enabled: top.bool("offramp_enabled")?,
        accept_client_address: top.bool("accept_client_address")?,
        webhook_url: top.nullable_str("webhook_url")?,
        webhook_secret: top.secret("webhook_secret")?.map(|s| s.expose().to_owned()),
        redirect_hosts: top.strings("redirect_hosts")?,
        signature_scheme: top.str("signature_scheme")?,
        allowed_origins: top.strings("allowed_origins")?,
        allowed_ips: top.strings("allowed_ips")?,
        wallets: top.wallets("wallets")?,
        rate_limit: top.rate_limit("rate_limit")?,
        widget: WidgetPatch::default(),
    };
    if let Some(widget) = top.object("widget")? {
        widget.check(
            &[],
            &[
                "widget_id",
                "currencies",
                "networks",
                "fiat_currency",
                "fiat_currencies",
                "type",
                "lang",
                "theme",
                "redirect_url",
                "decimals",
            ],
        )?;
        patch.widget = WidgetPatch {
            widget_id: widget.str("widget_id")?,
            currencies: widget.strings("currencies")?,
            networks: widget.strings("networks")?,
            fiat_currency: widget.str("fiat_currency")?,
            fiat_currencies: widget.strings("fiat_currencies")?,
            default_type: widget.str("type")?,
            lang: widget.str("lang")?,
            theme: widget.str("theme")?,
            redirect_url: widget.nullable_str("redirect_url")?,
            decimals: widget.decimals("decimals")?,
        };
    }
    Ok(patch)
}

/// `POST /admin/partners/{id}/tokens`: `env` (`live`, the default, or
/// `test`) and an optional `label`.
pub fn token_issue(body: &[u8]) -> Result<(TokenEnv, Option<String>), Rejection> {
    let root = parse(body)?;
    let top = Members::root(&root);
    top.check(&[], &["env", "label"])?;
    Ok((top.env("env")?, top.str("label")?))
}

/// `POST /admin/partners/{id}/tokens/{token_id}/rotate`: `grace` (default
/// 24 h), the new token's `env` and `label`.
pub fn token_rotate(body: &[u8]) -> Result<(GracePeriod, TokenEnv, Option<String>), Rejection> {
    let root = parse(body)?;
    let top = Members::root(&root);
    top.check(&[], &["grace", "env", "label"])?;
    Ok((
        top.grace("grace")?.unwrap_or(GracePeriod::DEFAULT),
        top.env("env")?,
        top.str("label")?,
    ))
}

/// Signing-key and webhook-secret rotation: `grace` (default 24 h) and the new
/// `secret` (generated when absent).
pub fn secret_rotation(body: &[u8]) -> Result<(GracePeriod, Option<Secret>), Rejection> {
    let root = parse(body)?;
    let top = Members::root(&root);
    top.check(&[], &["grace", "secret"])?;
    Ok((
        top.grace("grace")?.unwrap_or(GracePeriod::DEFAULT),
        top.secret("secret")?,
    ))
}

/// A body of one required string field, such as `{"origin": "..."}`.
pub fn one_string(body: &[u8], field: &'static str) -> Result<String, Rejection> {
    let root = parse(body)?;
    let top = Members::root(&root);
    top.check(&[field], &[])?;
    top.req_str(field)
}

/// `POST /admin/partners/{id}/wallets`: one wallet (`active` defaults to true).
pub fn wallet(body: &[u8]) -> Result<WalletSpec, Rejection> {
    let root = parse(body)?;
    wallet_of(&Members::root(&root))
}

/// `PATCH /admin/partners/{id}/wallets`: which wallet, and its new `active`.
pub fn wallet_state(body: &[u8]) -> Result<(WalletSelector, bool), Rejection> {
    let root = parse(body)?;
    let top = Members::root(&root);
    top.check(&["currency", "network", "active"], &["address"])?;
    let selector = WalletSelector {
        currency: top.req_str("currency")?,
        network: top.req_str("network")?,
        address: top.str("address")?,
    };
    let active = top
        .bool("active")?
        .ok_or_else(|| Rejection::missing("active"))?;
    Ok((selector, active))
}

/// `POST /admin/webhooks/replay`: `partner` and `since` (RFC 3339).
pub fn replay(body: &[u8]) -> Result<(PartnerId, Timestamp), Rejection> {
    let root = parse(body)?;
    let top = Members::root(&root);
    top.check(&["partner", "since"], &[])?;
    let partner = PartnerId::parse(&top.req_str("partner")?)
        .map_err(|why| Rejection::invalid("partner", why))?;
    let since = Some(top.req_str("since")?)
        .filter(|text| text.ends_with('Z'))
        .and_then(|text| Timestamp::parse_rfc3339(&text))
        .ok_or_else(|| Rejection::invalid("since", "must be an RFC 3339 time in UTC (Z)"))?;
    Ok((partner, since))
}

/// The body as one JSON object: the strict reader refuses syntax errors,
/// non-objects and duplicate keys at any depth first.
fn parse(body: &[u8]) -> Result<Map<String, Value>, Rejection> {
    Object::parse(body)?;
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Rejection::of(ErrorKind::DecodeError)),
    }
}

fn wallet_of(members: &Members<'_>) -> Result<WalletSpec, Rejection> {
    members.check(&["currency", "network", "address"], &["active"])?;
    Ok(WalletSpec {
        currency: members.req_str("currency")?,
        network: members.req_str("network")?,
        address: members.req_str("address")?,
        active: members.bool("active")?.unwrap_or(true),
    })
}

/// One object's members, named under `at` (`""` or `"widget."`).
struct Members<'v> {
    at: String,
    map: &'v Map<String, Value>,
}

impl<'v> Members<'v> {
    fn root(map: &'v Map<String, Value>) -> Self {
        Self {
            at: String::new(),
            map,
        }
    }

    fn name(&self, field: &str) -> String {
        format!("{}{field}", self.at)
    }

    fn invalid(&self, field: &str, why: &str) -> Rejection {
        Rejection::invalid(&self.name(field), why)
    }

    fn missing(&self, field: &str) -> Rejection {
        Rejection::missing(&self.name(field))
    }

    /// The first required field absent or `null` is `missing_param`, then the
    /// first unknown one is `validation_error`.
    fn check(&self, required: &[&str], optional: &[&str]) -> Result<(), Rejection> {
        if let Some(missing) = required
            .iter()
            .find(|name| matches!(self.map.get(**name), None | Some(Value::Null)))
        {
            return Err(Rejection::missing(&self.name(missing)));
        }
        if let Some(unknown) = self
            .map
            .keys()
            .find(|key| !required.contains(&key.as_str()) && !optional.contains(&key.as_str()))
        {
            return Err(Rejection::unknown_field(&self.at, unknown));
        }
        Ok(())
    }

    /// A string field; absent is `None`, `null` or another type is refused.
    fn str(&self, field: &str) -> Result<Option<String>, Rejection> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(self.invalid(field, "must be a string")),
        }
    }

    fn req_str(&self, field: &str) -> Result<String, Rejection> {
        self.str(field)?
            .ok_or_else(|| Rejection::missing(&self.name(field)))
    }

    /// A string that may be `null`: absent `None`, `null` `Some(None)`.
    fn nullable_str(&self, field: &str) -> Result<Option<Option<String>>, Rejection> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(text)) => Ok(Some(Some(text.clone()))),
            Some(_) => Err(self.invalid(field, "must be a string or null")),
        }
    }

    /// A non-empty secret string.
    fn secret(&self, field: &str) -> Result<Option<Secret>, Rejection> {
        match self.str(field)? {
            Some(text) if text.is_empty() => Err(self.invalid(field, "must not be empty")),
            other => Ok(other.map(Secret::new)),
        }
    }

    fn bool(&self, field: &str) -> Result<Option<bool>, Rejection> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Bool(on)) => Ok(Some(*on)),
            Some(_) => Err(self.invalid(field, "must be true or false")),
        }
    }

    fn strings(&self, field: &str) -> Result<Option<Vec<String>>, Rejection> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    _ => Err(self.invalid(field, "must be an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.invalid(field, "must be an array of strings")),
        }
    }

    fn req_strings(&self, field: &str) -> Result<Vec<String>, Rejection> {
        self.strings(field)?
            .ok_or_else(|| Rejection::missing(&self.name(field)))
    }

    fn object(&self, field: &str) -> Result<Option<Members<'v>>, Rejection> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Members {
                at: format!("{}{field}.", self.at),
                map,
            })),
            Some(_) => Err(self.invalid(field, "must be an object")),
        }
    }

    /// Fraction digits per currency: `{"USDT": 6}` as in the bootstrap file,
    /// or `[{"currency": "USDT", "decimals": 6}]` as the views show it.
    fn decimals(&self, field: &str) -> Result<Option<Vec<(String, u8)>>, Rejection> {
        let digits = |value: &Value| {
            value
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .filter(|n| *n <= 18)
                .ok_or_else(|| self.invalid(field, "decimals must be whole numbers from 0 to 18"))
        };
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(code, value)| Ok((code.clone(), digits(value)?)))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    let entry = item.as_object().filter(|e| e.len() == 2).ok_or_else(|| {
                        self.invalid(field, "items must be {\"currency\", \"decimals\"}")
                    })?;
                    let currency = entry.get("currency").and_then(Value::as_str);
                    match (currency, entry.get("decimals")) {
                        (Some(code), Some(value)) => Ok((code.to_owned(), digits(value)?)),
                        _ => Err(self.invalid(field, "items must be {\"currency\", \"decimals\"}")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.invalid(field, "must be an object of currency to decimals")),
        }
    }

    fn wallets(&self, field: &str) -> Result<Option<Vec<WalletSpec>>, Rejection> {
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Object(map) => wallet_of(&Members {
                        at: format!("{}{field}[{i}].", self.at),
                        map,
                    }),
                    _ => Err(self.invalid(field, "must be an array of wallet objects")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(self.invalid(field, "must be an array of wallet objects")),
        }
    }

    /// A request budget as in the bootstrap file, `{"per_second": R,
    /// "burst": B}` (`burst` defaults to twice the rate; `per_second` 0 is
    /// unlimited); `null`: the server's default. Absent `None`, `null`
    /// `Some(None)`.
    fn rate_limit(&self, field: &str) -> Result<Option<Option<RateLimit>>, Rejection> {
        let members = match self.map.get(field) {
            None => return Ok(None),
            Some(Value::Null) => return Ok(Some(None)),
            Some(Value::Object(map)) => Members {
                at: format!("{}{field}.", self.at),
                map,
            },
            Some(_) => {
                return Err(self.invalid(
                    field,
                    "must be an object {\"per_second\", \"burst\"} or null",
                ));
            }
        };
        members.check(&["per_second"], &["burst"])?;
        let count = |name: &str, why: &str| match members.map.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| members.invalid(name, why)),
        };
        let per_second = count(
            "per_second",
            "must be a whole number from 0 (unlimited) to 1000000",
        )?
        .ok_or_else(|| members.missing("per_second"))?;
        let burst = count("burst", "must be a whole number from 1 to 4294967295")?;
        let limit = match burst {
            Some(burst) => RateLimit::new(per_second, burst),
            None => RateLimit::with_default_burst(per_second),
        };
        limit
            .map(|limit| Some(Some(limit)))
            .map_err(|why| self.invalid(field, why))
    }

    /// `90s`, `15m`, `24h`, `7d` or `0`, or a number of seconds.
    fn grace(&self, field: &str) -> Result<Option<GracePeriod>, Rejection> {
        let why = "must be a duration like 90s, 15m, 24h, 7d or 0 (at most 365d), or whole seconds";
        match self.map.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => GracePeriod::parse(text)
                .map(Some)
                .map_err(|_| self.invalid(field, why)),
            Some(Value::Number(n)) => n
                .as_i64()
                .and_then(GracePeriod::of_seconds)
                .map(Some)
                .ok_or_else(|| self.invalid(field, why)),
            Some(_) => Err(self.invalid(field, why)),
        }
    }

    fn env(&self, field: &str) -> Result<TokenEnv, Rejection> {
        match self.str(field)?.as_deref() {
            None | Some("live") => Ok(TokenEnv::Live),
            Some("test") => Ok(TokenEnv::Test),
            Some(_) => Err(self.invalid(field, "must be live or test")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDGET: &str = r#""widget": {"widget_id": "fb359d09-fff6-4b1f-906c-b9062b135065",
        "currencies": ["USDT"], "networks": ["TRC20"], "fiat_currency": "EUR",
        "fiat_currencies": ["EUR"]}"#;

    fn kind_and_message(result: Result<PartnerSpec, Rejection>) -> (ErrorKind, String) {
        let rejection = result.expect_err("refused");
        (rejection.kind(), rejection.message().to_owned())
    }

    #[test]
    fn a_minimal_partner_gets_the_bootstrap_defaults() {
        let body = format!(r#"{{"id": "acme", "name": "Acme", {WIDGET}}}"#);
        let spec = new_partner(body.as_bytes()).expect("decodes");
        assert_eq!(spec.signature_scheme, "hmac-sha512");
        assert_eq!(spec.widget.default_type, "buy");
        assert!(spec.signing_keys.is_empty(), "generated later");
        assert!(spec.wallets.is_empty() && spec.webhook_url.is_none());
    }

    #[test]
    fn refusals_name_the_field_and_never_repeat_a_secret() {
        let cases: Vec<(String, ErrorKind, &str)> = vec![
            ("{".into(), ErrorKind::DecodeError, ""),
            ("[]".into(), ErrorKind::DecodeError, ""),
            (
                format!(r#"{{"id": "a", "id": "b", "name": "x", {WIDGET}}}"#),
                ErrorKind::DecodeError,
                "duplicate",
            ),
            (r#"{"id": "acme"}"#.into(), ErrorKind::MissingParam, "name"),
            (
                r#"{"id": "acme", "name": "x", "widget": {}}"#.into(),
                ErrorKind::MissingParam,
                "widget.widget_id",
            ),
            (
                format!(r#"{{"id": "acme", "name": "x", "colour": 1, {WIDGET}}}"#),
                ErrorKind::ValidationError,
                "colour",
            ),
            (
                format!(r#"{{"id": "Acme!", "name": "x", {WIDGET}}}"#),
                ErrorKind::ValidationError,
                "id",
            ),
            (
                format!(r#"{{"id": "acme", "name": "x", "offramp_enabled": "yes", {WIDGET}}}"#),
                ErrorKind::ValidationError,
                "offramp_enabled",
            ),
            (
                format!(
                    r#"{{"id": "acme", "name": "x", "wallets": [{{"currency": "USDT"}}], {WIDGET}}}"#
                ),
                ErrorKind::MissingParam,
                "wallets[0].network",
            ),
            (
                format!(
                    r#"{{"id": "acme", "name": "x", "webhook_secret": "whsec_c2VjcmV0", {WIDGET}}}"#
                ),
                ErrorKind::ValidationError,
                "webhook_secret",
            ),
            (
                format!(r#"{{"id": "acme", "name": "x", "signing_secret": 42, {WIDGET}}}"#),
                ErrorKind::ValidationError,
                "signing_secret",
            ),
        ];
        for (body, kind, field) in cases {
            let (got, message) = kind_and_message(new_partner(body.as_bytes()));
            assert_eq!(got, kind, "{body}: {message}");
            assert!(message.contains(field), "{body}: {message}");
            assert!(!message.contains("c2VjcmV0"), "{message}");
        }
    }

    #[test]
    fn a_patch_tells_absent_from_null() {
        let patch = patch(
            br#"{"webhook_url": null, "widget": {"redirect_url": null, "decimals": {"USDT": 6}}}"#,
        )
        .expect("decodes");
        assert_eq!(patch.webhook_url, Some(None));
        assert_eq!(patch.widget.redirect_url, Some(None));
        assert_eq!(patch.widget.decimals, Some(vec![("USDT".into(), 6)]));
        assert_eq!(patch.name, None);
        let refused = super::patch(br#"{"name": null}"#).expect_err("null name");
        assert_eq!(refused.kind(), ErrorKind::ValidationError);
        let refused = super::patch(br#"{"widget": {"decimals": {"USDT": 19}}}"#).expect_err("19");
        assert!(refused.message().contains("widget.decimals"), "{refused}");
    }

    #[test]
    fn rate_limits_are_budgets_or_null() {
        let limit = |body: &str| patch(body.as_bytes()).map(|p| p.rate_limit);
        assert_eq!(limit("{\"name\": \"x\"}"), Ok(None), "absent: unchanged");
        assert_eq!(
            limit(r#"{"rate_limit": null}"#),
            Ok(Some(None)),
            "the default"
        );
        assert_eq!(
            limit(r#"{"rate_limit": {"per_second": 5, "burst": 10}}"#),
            Ok(Some(RateLimit::new(5, 10).ok()))
        );
        assert_eq!(
            limit(r#"{"rate_limit": {"per_second": 5}}"#),
            Ok(Some(RateLimit::new(5, 10).ok())),
            "the burst defaults to twice the rate"
        );
        assert_eq!(
            limit(r#"{"rate_limit": {"per_second": 0}}"#),
            Ok(Some(Some(RateLimit::UNLIMITED)))
        );
        for (bad, kind, field) in [
            (
                r#"{"rate_limit": 5}"#,
                ErrorKind::ValidationError,
                "rate_limit",
            ),
            (
                r#"{"rate_limit": {}}"#,
                ErrorKind::MissingParam,
                "rate_limit.per_second",
            ),
            (
                r#"{"rate_limit": {"per_second": 5, "window": 2}}"#,
                ErrorKind::ValidationError,
                "rate_limit.window",
            ),
            (
                r#"{"rate_limit": {"per_second": -1}}"#,
                ErrorKind::ValidationError,
                "rate_limit.per_second",
            ),
            (
                r#"{"rate_limit": {"per_second": 1.5}}"#,
                ErrorKind::ValidationError,
                "rate_limit.per_second",
            ),
            (
                r#"{"rate_limit": {"per_second": 5, "burst": 0}}"#,
                ErrorKind::ValidationError,
                "burst",
            ),
            (
                r#"{"rate_limit": {"per_second": 2000000}}"#,
                ErrorKind::ValidationError,
                "at most 1000000",
            ),
            (
                r#"{"rate_limit": {"per_second": 5, "burst": 4294967296}}"#,
                ErrorKind::ValidationError,
                "rate_limit.burst",
            ),
        ] {
            let refused = limit(bad).expect_err(bad);
            assert_eq!(refused.kind(), kind, "{bad}: {refused}");
            assert!(refused.message().contains(field), "{bad}: {refused}");
        }
        let body = format!(
            r#"{{"id": "acme", "name": "x", "rate_limit": {{"per_second": 7}}, {WIDGET}}}"#
        );
        let spec = new_partner(body.as_bytes()).expect("decodes");
        assert_eq!(spec.rate_limit, RateLimit::new(7, 14).ok());
        let body = format!(r#"{{"id": "acme", "name": "x", "rate_limit": null, {WIDGET}}}"#);
        let spec = new_partner(body.as_bytes()).expect("decodes");
        assert_eq!(spec.rate_limit, None);
    }

    #[test]
    fn graces_are_durations_or_seconds() {
        let rotate = |body: &str| token_rotate(body.as_bytes()).map(|(g, _, _)| g.seconds());
        assert_eq!(rotate("{}"), Ok(86_400));
        assert_eq!(rotate(r#"{"grace": "0"}"#), Ok(0));
        assert_eq!(rotate(r#"{"grace": 90}"#), Ok(90));
        assert_eq!(rotate(r#"{"grace": "15m"}"#), Ok(900));
        for bad in [
            r#"{"grace": -1}"#,
            r#"{"grace": "1w"}"#,
            r#"{"grace": true}"#,
        ] {
            assert_eq!(
                rotate(bad).map_err(|r| r.kind()),
                Err(ErrorKind::ValidationError),
                "{bad}"
            );
        }
    }
}

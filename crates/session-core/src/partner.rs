//! A partner's configuration, validated once when it is loaded (from a bootstrap
//! file, the operator CLI or a store) and shared read-only by every request.

use std::fmt;
use std::sync::Arc;

use uuid::Uuid;

use crate::secret::Secret;
use crate::signing::{SignatureScheme, SigningKey, SigningKeys};
use crate::time::Timestamp;
use crate::value::{
    Address, AddressRule, Code, DEFAULT_DECIMALS, IpRange, Origin, RedirectUrl, TxType,
};
use crate::webhook::{WebhookKey, WebhookKeys};

/// A partner's identifier: 1–64 chars of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartnerId(Arc<str>);

impl PartnerId {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(text.into()))
        } else {
            Err("partner id must be 1 to 64 chars of [a-z0-9_-]")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the widget shows. Every session keeps the view it was created with, so
/// a later configuration change does not alter a session already handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetView {
    pub widget_id: Uuid,
    pub currencies: Vec<Code>,
    pub networks: Vec<Code>,
    pub fiat_currency: Code,
    pub fiat_currencies: Vec<Code>,
    pub lang: String,
    pub theme: String,
}

/// The widget's view and the defaults a session request may override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetConfig {
    pub view: Arc<WidgetView>,
    pub default_type: TxType,
    pub redirect_url: Option<RedirectUrl>,
    /// Fraction digits per currency; currencies not listed allow 8.
    pub decimals: Vec<(Code, u8)>,
}

impl WidgetConfig {
    pub fn decimals_of(&self, currency: &Code) -> u8 {
        self.decimals
            .iter()
            .find(|(code, _)| code == currency)
            .map_or(DEFAULT_DECIMALS, |(_, digits)| *digits)
    }
}

/// A destination wallet the service resolves for (currency, network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wallet {
    pub currency: Code,
    pub network: Code,
    pub address: Address,
    pub active: bool,
}

/// Where and how status changes are pushed to the partner.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    pub url: String,
    pub keys: WebhookKeys,
}

/// A partner's request budget on the partner API (SPEC.md §2 "Rate limits"):
/// `per_second` requests a second on average, up to `burst` at once. A
/// `per_second` of 0 means unlimited (and the burst is then 0 too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    per_second: u32,
    burst: u32,
}

impl RateLimit {
    /// The highest rate a budget may name. Above it the interval between two
    /// requests would be shorter than a microsecond: no limit at all in practice.
    pub const MAX_PER_SECOND: u32 = 1_000_000;

    /// A budget of `per_second` with room for `burst` requests at once. With
    /// `per_second` 0 (unlimited) the burst is ignored.
    pub fn new(per_second: u32, burst: u32) -> Result<Self, &'static str> {
        if per_second == 0 {
            return Ok(Self::UNLIMITED);
        }
        if per_second > Self::MAX_PER_SECOND {
            return Err("per_second must be at most 1000000 (0: unlimited)");
        }
        if burst == 0 {
            return Err("burst must be at least 1 when per_second is not 0");
        }
        Ok(Self { per_second, burst })
    }

    /// `per_second` with a burst of twice the rate: the budget a bare rate
    /// means (the server's `--default-rate-limit`, a bootstrap entry or a CLI
    /// call without a burst).
    pub fn with_default_burst(per_second: u32) -> Result<Self, &'static str> {
        Self::new(per_second, per_second.saturating_mul(2))
    }

    /// No limit.
    pub const UNLIMITED: Self = Self {
        per_second: 0,
        burst: 0,
    };

    pub const fn per_second(self) -> u32 {
        self.per_second
    }

    pub const fn burst(self) -> u32 {
        self.burst
    }

    pub const fn is_unlimited(self) -> bool {
        self.per_second == 0
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unlimited() {
            f.write_str("unlimited")
        } else {
            write!(f, "{}/s, burst {}", self.per_second, self.burst)
        }
    }
}

/// A partner, ready for requests.
#[derive(Debug, Clone)]
pub struct Partner {
    pub id: PartnerId,
    pub name: String,
    pub allowed_origins: Vec<Origin>,
    /// Empty: no IP gate.
    pub allowed_ips: Vec<IpRange>,
    pub offramp_enabled: bool,
    pub accept_client_address: bool,
    /// Empty: any host.
    pub redirect_hosts: Vec<String>,
    pub webhook: Option<WebhookTarget>,
    pub signing: SigningKeys,
    pub widget: WidgetConfig,
    pub wallets: Vec<Wallet>,
    /// `None`: the server's default budget applies.
    pub rate_limit: Option<RateLimit>,
}

impl Partner {
    /// The first active wallet for (currency, network).
    pub fn active_wallet(&self, currency: &Code, network: &Code) -> Option<&Wallet> {
        self.wallets
            .iter()
            .find(|w| w.active && w.currency == *currency && w.network == *network)
    }

    /// How strictly client-sent addresses are checked for this partner.
    pub fn address_rule(&self) -> AddressRule {
        match self.signing.scheme() {
            SignatureScheme::HmacSha512 => AddressRule::Network,
            SignatureScheme::Sha512Concat => AddressRule::Alphanumeric,
        }
    }
}

/// A rotated-out webhook secret and the end of its grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousWebhookSecret {
    pub secret: Secret,
    pub not_after: Timestamp,
}

/// A signing secret as configured, before it is prepared for use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeySpec {
    pub kid: String,
    pub secret: Secret,
    /// Set when the key has been rotated out: it verifies until then.
    pub not_after: Option<Timestamp>,
}

/// `k1` → `k2`; anything else gets a `-2` suffix: the key id a new signing
/// key takes over from the current one.
pub fn next_kid(kid: &str) -> String {
    match kid.strip_prefix('k').and_then(|n| n.parse::<u32>().ok()) {
        Some(n) => format!("k{}", n.saturating_add(1)),
        None => format!("{kid}-2"),
    }
}

/// A generated webhook secret: `whsec_` and then `generated` (a fresh
/// [`crate::random::hex_secret`], whose 64 characters are valid base64: the
/// key is their 48 decoded bytes, carrying the 256 random bits).
pub fn webhook_secret(generated: &str) -> String {
    format!("{}{generated}", crate::webhook::signing::SECRET_PREFIX)
}

/// A partner as written in a bootstrap file or stored by an adapter: plain text
/// that [`PartnerSpec::build`] validates into a [`Partner`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartnerSpec {
    pub id: String,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub offramp_enabled: bool,
    pub accept_client_address: bool,
    pub redirect_hosts: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<Secret>,
    /// Rotated-out webhook secrets: each still signs, beside the current one,
    /// until its `not_after`.
    pub webhook_previous_secrets: Vec<PreviousWebhookSecret>,
    /// `hmac-sha512` (default) or `sha512-concat`.
    pub signature_scheme: String,
    /// The first key signs; later keys are rotated-out keys still in their grace period.
    pub signing_keys: Vec<SigningKeySpec>,
    pub widget: WidgetSpec,
    pub wallets: Vec<WalletSpec>,
    /// The partner's own request budget; `None`: the server's default.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WidgetSpec {
    pub widget_id: String,
    pub currencies: Vec<String>,
    pub networks: Vec<String>,
    pub fiat_currency: String,
    pub fiat_currencies: Vec<String>,
    pub default_type: String,
    pub lang: String,
    pub theme: String,
    pub redirect_url: Option<String>,
    pub decimals: Vec<(String, u8)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletSpec {
    pub currency: String,
    pub network: String,
    pub address: String,
    pub active: bool,
}

/// Why a partner configuration was refused; names the partner and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl PartnerSpec {
    /// Validates every field; the first problem is reported with its field name.
    pub fn build(&self) -> Result<Partner, ConfigError> {
        let fail = |field: &str, why: &dyn fmt::Display| {
            ConfigError(format!("partner {:?}: {field}: {why}", self.id))
        };
        let id = PartnerId::parse(&self.id).map_err(|e| fail("id", &e))?;
        if self.name.trim().is_empty() {
            return Err(fail("name", &"must not be empty"));
        }
        let allowed_origins = self
            .allowed_origins
            .iter()
            .map(|o| {
                Origin::parse(o).map_err(|why| fail("allowed_origins", &format!("{o:?} {why}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let allowed_ips = self
            .allowed_ips
            .iter()
            .map(|text| {
                IpRange::parse(text).map_err(|why| fail("allowed_ips", &format!("{text:?} {why}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let redirect_hosts = self
            .redirect_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect::<Vec<_>>();
        let scheme = match self.signature_scheme.as_str() {
            "" => SignatureScheme::HmacSha512,
            text => SignatureScheme::parse(text)
                .ok_or_else(|| fail("signature_scheme", &"must be hmac-sha512 or sha512-concat"))?,
        };
        let signing = build_signing_keys(scheme, &self.signing_keys)
            .map_err(|why| fail("signing_secret", &why))?;
        let widget = self
            .widget
            .build(&redirect_hosts)
            .map_err(|(field, why)| fail(&format!("widget.{field}"), &why))?;
        let address_rule = match scheme {
            SignatureScheme::HmacSha512 => AddressRule::Network,
            SignatureScheme::Sha512Concat => AddressRule::Alphanumeric,
        };
        let wallets = self
            .wallets
            .iter()
            .map(|w| w.build(address_rule).map_err(|why| fail("wallet", &why)))
            .collect::<Result<Vec<_>, _>>()?;
        let webhook = match (&self.webhook_url, &self.webhook_secret) {
            (Some(url), Some(secret)) => {
                RedirectUrl::parse(url, &[]).map_err(|why| fail("webhook_url", &why))?;
                let key =
                    WebhookKey::from_secret(secret).map_err(|why| fail("webhook_secret", &why))?;
                let previous = self
                    .webhook_previous_secrets
                    .iter()
                    .map(|old| {
                        WebhookKey::from_secret(&old.secret)
                            .map(|key| (key, old.not_after))
                            .map_err(|why| fail("webhook_secret (rotated out)", &why))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(WebhookTarget {
                    url: url.clone(),
                    keys: WebhookKeys::new(key, previous),
                })
            }
            (Some(_), None) => return Err(fail("webhook_secret", &"is required with webhook_url")),
            (None, _) => None,
        };
        Ok(Partner {
            id,
            name: self.name.clone(),
            allowed_origins,
            allowed_ips,
            offramp_enabled: self.offramp_enabled,
            accept_client_address: self.accept_client_address,
            redirect_hosts,
            webhook,
            signing,
            widget,
            wallets,
            rate_limit: self.rate_limit,
        })
    }
}

fn build_signing_keys(
    scheme: SignatureScheme,
    specs: &[SigningKeySpec],
) -> Result<SigningKeys, String> {
    let mut keys = specs.iter().map(|spec| {
        SigningKey::new(spec.kid.as_str(), spec.secret.clone(), spec.not_after)
            .ok_or_else(|| format!("key {:?} must be a non-empty string", spec.kid))
    });
    let current = keys
        .next()
        .ok_or("at least one signing key is required")??;
    let previous = keys.collect::<Result<Vec<_>, _>>()?;
    Ok(SigningKeys::new(scheme, current, previous))
}

impl WidgetSpec {
    fn build(&self, redirect_hosts: &[String]) -> Result<WidgetConfig, (&'static str, String)> {
        let codes = |field: &'static str, list: &[String]| {
            if list.is_empty() {
                return Err((field, "must list at least one code".to_owned()));
            }
            list.iter()
                .map(|c| Code::parse(c).map_err(|why| (field, format!("{c:?} {why}"))))
                .collect::<Result<Vec<_>, _>>()
        };
        let widget_id = Uuid::parse_str(&self.widget_id)
            .map_err(|_| ("widget_id", "must be a UUID".to_owned()))?;
        let currencies = codes("currencies", &self.currencies)?;
        let networks = codes("networks", &self.networks)?;
        let fiat_currency =
            Code::parse(&self.fiat_currency).map_err(|why| ("fiat_currency", why.to_owned()))?;
        let fiat_currencies = codes("fiat_currencies", &self.fiat_currencies)?;
        let default_type = match self.default_type.as_str() {
            "" => TxType::Buy,
            text => TxType::parse(text).map_err(|why| ("type", why.to_owned()))?,
        };
        let redirect_url = self
            .redirect_url
            .as_deref()
            .map(|url| {
                RedirectUrl::parse(url, redirect_hosts)
                    .map_err(|why| ("redirect_url", why.to_owned()))
            })
            .transpose()?;
        let decimals = self
            .decimals
            .iter()
            .map(|(code, digits)| match Code::parse(code) {
                Ok(code) if *digits <= 18 => Ok((code, *digits)),
                _ => Err((
                    "decimals",
                    format!("{code:?} = {digits} is not a currency with 0 to 18 decimals"),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let text = |field: &'static str, value: &str, default: &str| {
            let value = if value.is_empty() { default } else { value };
            if value.len() > 32
                || !value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err((field, "must be up to 32 chars of [A-Za-z0-9_-]".to_owned()));
            }
            Ok(value.to_owned())
        };
        let view = WidgetView {
            widget_id,
            currencies,
            networks,
            fiat_currency,
            fiat_currencies,
            lang: text("lang", &self.lang, "en")?,
            theme: text("theme", &self.theme, "light")?,
        };
        Ok(WidgetConfig {
            view: Arc::new(view),
            default_type,
            redirect_url,
            decimals,
        })
    }
}

impl WalletSpec {
    fn build(&self, rule: AddressRule) -> Result<Wallet, String> {
        let currency = Code::parse(&self.currency)
            .map_err(|why| format!("currency {:?} {why}", self.currency))?;
        let network = Code::parse(&self.network)
            .map_err(|why| format!("network {:?} {why}", self.network))?;
        let address = Address::parse(&self.address, &network, rule)
            .map_err(|why| format!("address for {currency}/{network} {why}"))?;
        Ok(Wallet {
            currency,
            network,
            address,
            active: self.active,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The example partner, with USDT limited to 6 decimals; tests adjust it
    /// field by field.
    pub(crate) fn acme() -> PartnerSpec {
        let mut spec = crate::testing::example_partner("acme");
        spec.widget.decimals = vec![("USDT".into(), 6)];
        spec
    }

    #[test]
    fn a_complete_spec_builds() {
        let partner = acme().build().expect("valid spec");
        assert_eq!(partner.id.as_str(), "acme");
        let usdt = Code::parse("USDT").expect("code");
        assert_eq!(partner.widget.decimals_of(&usdt), 6);
        assert_eq!(
            partner
                .widget
                .decimals_of(&Code::parse("BTC").expect("code")),
            8
        );
        let trc20 = Code::parse("TRC20").expect("code");
        assert!(partner.active_wallet(&usdt, &trc20).is_some());
        assert!(
            partner
                .active_wallet(&usdt, &Code::parse("ERC20").expect("code"))
                .is_none()
        );
    }

    #[test]
    fn each_invalid_field_is_named() {
        type Edit = Box<dyn Fn(&mut PartnerSpec)>;
        let cases: Vec<(&str, Edit)> = vec![
            ("id", Box::new(|s| s.id = "Acme!".into())),
            ("name", Box::new(|s| s.name = " ".into())),
            (
                "allowed_origins",
                Box::new(|s| s.allowed_origins = vec!["app.acme.example".into()]),
            ),
            (
                "allowed_ips",
                Box::new(|s| s.allowed_ips = vec!["10.0.0.0/33".into()]),
            ),
            (
                "signature_scheme",
                Box::new(|s| s.signature_scheme = "md5".into()),
            ),
            (
                "signing_secret",
                Box::new(|s| s.signing_keys[0].secret = Secret::new("")),
            ),
            ("signing_secret", Box::new(|s| s.signing_keys.clear())),
            (
                "widget.widget_id",
                Box::new(|s| s.widget.widget_id = "nope".into()),
            ),
            (
                "widget.currencies",
                Box::new(|s| s.widget.currencies.clear()),
            ),
            (
                "widget.networks",
                Box::new(|s| s.widget.networks = vec!["TRC 20".into()]),
            ),
            (
                "widget.type",
                Box::new(|s| s.widget.default_type = "hold".into()),
            ),
            (
                "widget.redirect_url",
                Box::new(|s| s.widget.redirect_url = Some("http://acme.example".into())),
            ),
            (
                "widget.decimals",
                Box::new(|s| s.widget.decimals = vec![("USDT".into(), 19)]),
            ),
            ("widget.lang", Box::new(|s| s.widget.lang = "en US".into())),
            ("wallet", Box::new(|s| s.wallets[0].address = "0x00".into())),
            (
                "webhook_secret",
                Box::new(|s| s.webhook_url = Some("https://hooks.acme.example/x".into())),
            ),
        ];
        for (field, mutate) in cases {
            let mut spec = acme();
            mutate(&mut spec);
            let error = spec.build().expect_err(field);
            assert!(error.0.contains(field), "{field}: {error}");
        }
    }

    #[test]
    fn concat_scheme_partners_need_alphanumeric_wallets() {
        let mut spec = acme();
        spec.signature_scheme = "sha512-concat".into();
        spec.wallets[0] = WalletSpec {
            currency: "USDT".into(),
            network: "CUSTOM".into(),
            address: "acct:12345678".into(),
            active: true,
        };
        assert!(spec.build().is_err());
        spec.wallets[0].address = "acct12345678".into();
        assert!(spec.build().is_ok());
    }

    #[test]
    fn rate_limits_are_checked_when_made() {
        let limit = RateLimit::new(5, 10).expect("valid");
        assert_eq!((limit.per_second(), limit.burst()), (5, 10));
        assert!(!limit.is_unlimited());
        assert_eq!(limit.to_string(), "5/s, burst 10");
        assert_eq!(
            RateLimit::new(0, 7),
            Ok(RateLimit::UNLIMITED),
            "0 per second is unlimited, whatever the burst"
        );
        assert_eq!(RateLimit::UNLIMITED.to_string(), "unlimited");
        assert!(RateLimit::new(5, 0).is_err_and(|why| why.contains("burst")));
        assert!(RateLimit::new(RateLimit::MAX_PER_SECOND + 1, 1).is_err());
        let default = RateLimit::with_default_burst(100).expect("valid");
        assert_eq!((default.per_second(), default.burst()), (100, 200));
        assert_eq!(RateLimit::with_default_burst(0), Ok(RateLimit::UNLIMITED));
    }

    #[test]
    fn the_rate_limit_reaches_the_built_partner() {
        let mut spec = acme();
        assert_eq!(spec.build().expect("valid").rate_limit, None);
        spec.rate_limit = Some(RateLimit::new(5, 10).expect("valid"));
        assert_eq!(spec.build().expect("valid").rate_limit, spec.rate_limit);
    }

    #[test]
    fn key_ids_advance() {
        assert_eq!(next_kid("k1"), "k2");
        assert_eq!(next_kid("k41"), "k42");
        assert_eq!(next_kid("primary"), "primary-2");
    }
}

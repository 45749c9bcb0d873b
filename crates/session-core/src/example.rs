//! The example partner of the seed page and its example request: the one
//! partner configuration that dev mode, tests, benches and fuzz targets start
//! from and adjust, so a new partner setting is written into it once.

use crate::partner::{PartnerSpec, SigningKeySpec, WalletSpec, WidgetSpec};
use crate::secret::Secret;

/// The seed page's widget.
pub const WIDGET_ID: &str = "fb359d09-fff6-4b1f-906c-b9062b135065";

/// A TRC20 destination wallet.
pub const TRON_WALLET: &str = "TXYZabcdefghijkmnopqrstuvwxyz12345";

/// An ERC20 destination wallet.
pub const ETHEREUM_WALLET: &str = "0x52908400098527886E0F7030069857D2E4169EE7";

/// The seed page's `POST /widget/session` body.
pub const SEED_BODY: &str = r#"{
    "partner_user_id": "user-123",
    "user_email": "user@example.com",
    "network": "TRC20",
    "currency": "USDT",
    "amount": "100",
    "type": "buy",
    "client_ip": "203.0.113.42"
}"#;

/// The seed page's partner under id `id`: on-ramp only, origin
/// `https://app.<id>.example`, no IP gate, hmac-sha512 with signing secret
/// `<id>-signing-secret` (key `k1`), USDT on TRC20 and ERC20 with an active
/// TRC20 wallet only, EUR/USD fiat, redirect `https://app.<id>.example/done`,
/// the server's default request budget.
pub fn partner(id: &str) -> PartnerSpec {
    PartnerSpec {
        id: id.into(),
        name: format!("{id} wallet"),
        allowed_origins: vec![format!("https://app.{id}.example")],
        allowed_ips: vec![],
        offramp_enabled: false,
        accept_client_address: false,
        redirect_hosts: vec![],
        webhook_url: None,
        webhook_secret: None,
        webhook_previous_secrets: vec![],
        signature_scheme: "hmac-sha512".into(),
        signing_keys: vec![SigningKeySpec {
            kid: "k1".into(),
            secret: Secret::new(format!("{id}-signing-secret")),
            not_after: None,
        }],
        widget: WidgetSpec {
            widget_id: WIDGET_ID.into(),
            currencies: vec!["USDT".into()],
            networks: vec!["TRC20".into(), "ERC20".into()],
            fiat_currency: "EUR".into(),
            fiat_currencies: vec!["EUR".into(), "USD".into()],
            default_type: "buy".into(),
            lang: "en".into(),
            theme: "light".into(),
            redirect_url: Some(format!("https://app.{id}.example/done")),
            decimals: vec![],
        },
        wallets: vec![wallet("USDT", "TRC20", TRON_WALLET)],
        rate_limit: None,
    }
}

/// An active wallet.
pub fn wallet(currency: &str, network: &str, address: &str) -> WalletSpec {
    WalletSpec {
        currency: currency.into(),
        network: network.into(),
        address: address.into(),
        active: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_partner_builds_for_any_valid_id() {
        for id in ["acme", "demo", "other-1"] {
            let partner = partner(id).build().expect("example partner builds");
            assert_eq!(partner.id.as_str(), id);
        }
    }
}

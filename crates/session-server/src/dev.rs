//! Dev mode: a demo partner in the in-memory store and a banner that shows a
//! new user how to open their first session.

use std::net::SocketAddr;

use session_core::client_token::{self, TokenDigest, TokenEnv};
use session_core::partner::{PartnerId, PartnerSpec, SigningKeySpec, WalletSpec, WidgetSpec};
use session_core::ports::{ClientTokenRecord, PartnerRegistry};
use session_core::random::{Random, hex_secret};
use session_core::secret::Secret;
use session_core::time::Clock;

pub const DEMO_PARTNER: &str = "demo";

/// The demo partner's client token and signing secret, shown once in the
/// banner so a newcomer can recompute a signature from docs/signing.md.
pub struct Demo {
    pub client_token: String,
    pub signing_secret: Secret,
}

/// Installs the demo partner with a fresh client token.
pub async fn install(
    registry: &dyn PartnerRegistry,
    clock: &dyn Clock,
    random: &dyn Random,
) -> Result<Demo, String> {
    let signing_secret = Secret::new(hex_secret(random));
    let spec = PartnerSpec {
        id: DEMO_PARTNER.into(),
        name: "Demo Wallet".into(),
        allowed_origins: vec!["http://localhost:3000".into()],
        allowed_ips: vec![],
        offramp_enabled: true,
        accept_client_address: false,
        redirect_hosts: vec![],
        webhook_url: None,
        webhook_secret: None,
        signature_scheme: "hmac-sha512".into(),
        signing_keys: vec![SigningKeySpec {
            kid: "k1".into(),
            secret: signing_secret.clone(),
            not_after: None,
        }],
        widget: WidgetSpec {
            widget_id: "fb359d09-fff6-4b1f-906c-b9062b135065".into(),
            currencies: vec!["USDT".into()],
            networks: vec!["TRC20".into(), "ERC20".into()],
            fiat_currency: "EUR".into(),
            fiat_currencies: vec!["EUR".into(), "USD".into()],
            default_type: "buy".into(),
            lang: "en".into(),
            theme: "light".into(),
            redirect_url: Some("https://app.example.com/done".into()),
            decimals: vec![],
        },
        wallets: vec![
            WalletSpec {
                currency: "USDT".into(),
                network: "TRC20".into(),
                address: "TXYZabcdefghijkmnopqrstuvwxyz12345".into(),
                active: true,
            },
            WalletSpec {
                currency: "USDT".into(),
                network: "ERC20".into(),
                address: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
                active: true,
            },
        ],
    };
    registry
        .put_partner(&spec)
        .await
        .map_err(|e| e.to_string())?;
    let client_token = client_token::generate(TokenEnv::Test, random);
    let record = ClientTokenRecord {
        digest: TokenDigest::of(&client_token),
        partner_id: PartnerId::parse(DEMO_PARTNER).map_err(str::to_owned)?,
        label: "dev".into(),
        created_at: clock.now(),
        expires_at: None,
        revoked_at: None,
    };
    registry
        .add_token(&record)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Demo {
        client_token,
        signing_secret,
    })
}

/// What dev mode prints on standard output (not the log): the demo token, its
/// signing secret, the provider secret events are verified with, and a request
/// that works as shown.
pub fn banner(
    demo: &Demo,
    provider_secret: &Secret,
    public: SocketAddr,
    admin: SocketAddr,
) -> String {
    format!(
        "\
session-server is running in dev mode (in-memory store: nothing is kept after exit)

  public API   http://{public}
  admin        http://{admin}/healthz  http://{admin}/readyz
  partner      {DEMO_PARTNER}
  client_token {token}
  signing secret (hmac-sha512 key of the signature, docs/signing.md) {signing}
  provider secret (X-Signature key for POST /provider/events) {provider}

Open a widget session:

  curl -s -X POST http://{public}/widget/session \\
    -H 'Authorization: Bearer {token}' \\
    -H 'Content-Type: application/json' \\
    -d '{{\"partner_user_id\":\"user-123\",\"user_email\":\"user@example.com\",\"network\":\"TRC20\",\"currency\":\"USDT\",\"amount\":\"100\",\"type\":\"buy\",\"client_ip\":\"203.0.113.42\"}}'
",
        token = demo.client_token,
        signing = demo.signing_secret.expose(),
        provider = provider_secret.expose(),
    )
}

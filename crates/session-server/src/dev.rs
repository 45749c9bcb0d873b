//! Dev mode: a demo partner in the in-memory store and a banner that shows a
//! new user how to open their first session.

use std::net::SocketAddr;

use session_core::client_token::{self, TokenEnv};
use session_core::example;
use session_core::partner::{self, PartnerId};
use session_core::ports::PartnerRegistry;
use session_core::random::{Random, hex_secret};
use session_core::secret::Secret;
use session_core::time::Clock;

pub const DEMO_PARTNER: &str = "demo";

/// Where `cargo run -p partner-demo` listens by default: the demo partner's
/// webhooks go there.
const PARTNER_DEMO_WEBHOOK: &str = "http://127.0.0.1:3000/webhooks";

/// The demo partner's client token and signing secret, shown once in the
/// banner so a newcomer can recompute a signature from docs/signing.md.
pub struct Demo {
    pub client_token: String,
    pub signing_secret: Secret,
    pub webhook_secret: Secret,
}

/// Installs the demo partner with a fresh client token.
pub async fn install(
    registry: &dyn PartnerRegistry,
    clock: &dyn Clock,
    random: &dyn Random,
) -> Result<Demo, String> {
    // The example partner, opened up for a laptop: off-ramp on, a local
    // partner page as its origin and webhook receiver (the partner demo's
    // defaults), a wallet on each network, fresh secrets.
    let mut spec = example::partner(DEMO_PARTNER);
    spec.name = "Demo Wallet".into();
    spec.allowed_origins = vec![
        "http://localhost:3000".into(),
        "http://127.0.0.1:3000".into(),
    ];
    let webhook_secret = Secret::new(partner::webhook_secret(&hex_secret(random)));
    spec.webhook_url = Some(PARTNER_DEMO_WEBHOOK.into());
    spec.webhook_secret = Some(webhook_secret.clone());
    spec.offramp_enabled = true;
    let signing_secret = Secret::new(hex_secret(random));
    spec.signing_keys[0].secret = signing_secret.clone();
    spec.wallets
        .push(example::wallet("USDT", "ERC20", example::ETHEREUM_WALLET));
    registry
        .put_partner(&spec)
        .await
        .map_err(|e| e.to_string())?;
    let partner = PartnerId::parse(DEMO_PARTNER).map_err(str::to_owned)?;
    let issued = client_token::issue(TokenEnv::Test, partner, "dev", clock.now(), random);
    registry
        .add_token(&issued.record)
        .await
        .map_err(|e| e.to_string())?;
    let client_token = issued.token;
    Ok(Demo {
        client_token,
        signing_secret,
        webhook_secret,
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

The sandbox is on: the partner demo (its webhooks come to {PARTNER_DEMO_WEBHOOK}) runs against
this service with:

  PARTNER_DEMO_CLIENT_TOKEN={token} \\
  PARTNER_DEMO_WEBHOOK_SECRET={webhook} \\
  cargo run -p partner-demo -- --service-url http://{public}
",
        token = demo.client_token,
        signing = demo.signing_secret.expose(),
        provider = provider_secret.expose(),
        webhook = demo.webhook_secret.expose(),
    )
}

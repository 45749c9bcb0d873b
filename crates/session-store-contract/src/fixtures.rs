//! Partners, client tokens and sessions for the contract cases, and for the
//! adapters' own tests.

use std::sync::Arc;

use session_core::client_token::TokenDigest;
use session_core::example;
use session_core::partner::{
    Partner, PartnerId, PartnerSpec, PreviousWebhookSecret, RateLimit, SigningKeySpec,
};
use session_core::ports::{ClientTokenRecord, PartnerRegistry};
use session_core::secret::Secret;
use session_core::session::{EndUser, Session, signed_fields};
use session_core::signing::Signature;
use session_core::time::Timestamp;
use session_core::value::{
    Address, Amount, ClientIp, Code, Email, PartnerUserId, RedirectUrl, TxType,
};
use uuid::Uuid;

/// A fixed instant `seconds` after a base date, with a sub-second part so
/// microsecond precision is exercised.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_795_509_330_123_456 + seconds * 1_000_000)
}

/// The example partner with every optional field set: an IP gate, a second
/// origin, redirect hosts, a webhook with a rotated-out secret, a rotated-out
/// signing key, a second
/// currency with decimals, an inactive second wallet, a request budget of its
/// own.
pub fn partner_spec(id: &str) -> PartnerSpec {
    let mut spec = example::partner(id);
    spec.name = format!("Partner {id}");
    spec.allowed_origins.push("http://localhost:3000".into());
    spec.allowed_ips = vec!["10.0.0.0/8".into(), "::1/128".into()];
    spec.offramp_enabled = true;
    spec.redirect_hosts = vec![format!("app.{id}.example")];
    spec.webhook_url = Some(format!("https://hooks.{id}.example/proof"));
    // Distinct per partner, and valid base64 after the prefix: each byte of
    // the id as four hex digits (a multiple of four base64 characters).
    let encoded: String = id.bytes().map(|b| format!("{b:02x}{b:02x}")).collect();
    spec.webhook_secret = Some(Secret::new(format!("whsec_{encoded}")));
    spec.webhook_previous_secrets = vec![PreviousWebhookSecret {
        secret: Secret::new(format!("whsec_{encoded}AAAA")),
        not_after: at(3_600),
    }];
    spec.signing_keys = vec![
        SigningKeySpec {
            kid: "k2".into(),
            secret: Secret::new(format!("{id}-signing-2")),
            not_after: None,
        },
        SigningKeySpec {
            kid: "k1".into(),
            secret: Secret::new(format!("{id}-signing-1")),
            not_after: Some(at(86_400)),
        },
    ];
    spec.widget.currencies.push("USDC".into());
    spec.widget.theme = "dark".into();
    spec.widget.decimals = vec![("USDT".into(), 6)];
    let mut erc20 = example::wallet("USDT", "ERC20", example::ETHEREUM_WALLET);
    erc20.active = false;
    spec.wallets.push(erc20);
    spec.rate_limit = RateLimit::new(5, 10).ok();
    spec
}

/// Registers partner `id` ([`partner_spec`]) and returns it built.
pub async fn partner(store: &impl PartnerRegistry, id: &str) -> Partner {
    let spec = partner_spec(id);
    store.put_partner(&spec).await.expect("put partner");
    spec.build().expect("fixture partner builds")
}

/// Client token `n` of `partner`: active (neither expired nor revoked),
/// created at `at(n)`, its digest distinct per partner and `n`.
pub fn token(partner: &str, n: u8) -> ClientTokenRecord {
    ClientTokenRecord::active(
        TokenDigest::of(&format!("ct_test_{partner}_{n}")),
        PartnerId::parse(partner).unwrap_or_else(|why| panic!("{why}")),
        format!("token {n}"),
        at(i64::from(n)),
    )
}

fn parse<T>(result: Result<T, &'static str>) -> T {
    match result {
        Ok(value) => value,
        Err(why) => panic!("fixture value is invalid: {why}"),
    }
}

/// A session of `partner` for end user `user`, distinct per `n`.
pub fn sample_session(partner: &Partner, user: &str, email: &str, n: u32) -> Arc<Session> {
    let widget = partner.widget.view.clone();
    let network = parse(Code::parse("TRC20"));
    let mut session = Session {
        merchant_transaction_id: Uuid::new_v4(),
        partner_id: partner.id.clone(),
        user: EndUser {
            partner_user_id: parse(PartnerUserId::parse(user)),
            email: parse(Email::parse(email)),
        },
        tx_type: TxType::Buy,
        currency: parse(Code::parse("USDT")),
        amount: parse(Amount::parse(&format!("{n}.5"), 8)),
        address: parse(Address::parse(
            "TXYZabcdefghijkmnopqrstuvwxyz12345",
            &network,
            partner.address_rule(),
        )),
        network,
        client_ip: (n % 2 == 0).then(|| parse(ClientIp::parse("2001:db8::1"))),
        redirect_url: (n % 3 != 0)
            .then(|| parse(RedirectUrl::parse("https://app.example/done?n=1", &[]))),
        widget: Arc::clone(&widget),
        signature: Signature::parse(&format!("v2:{}", "0".repeat(128)))
            .unwrap_or_else(|| panic!("zero signature parses")),
        signing_kid: partner.signing.current().kid_shared().clone(),
        init_token_jti: format!("jti-{n}-{}", Uuid::new_v4().simple()),
        init_token_expires_at: at(3_600),
        created_at: at(i64::from(n)),
        // Both values go through the stores: odd sessions are test ones.
        test_mode: n % 2 == 1,
    };
    let id = session.id_text();
    let widget_id = session.widget.widget_id.to_string();
    session.signature = partner
        .signing
        .sign(&signed_fields(&session, &id, &widget_id));
    Arc::new(session)
}

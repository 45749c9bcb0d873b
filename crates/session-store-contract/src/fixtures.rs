//! Partners, client tokens and sessions for the contract cases, and for the
//! adapters' own tests.

use std::sync::Arc;

use session_core::client_token::TokenDigest;
use session_core::partner::{
    Partner, PartnerId, PartnerSpec, SigningKeySpec, WalletSpec, WidgetSpec,
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

/// A complete partner configuration with every optional field set.
pub fn partner_spec(id: &str) -> PartnerSpec {
    PartnerSpec {
        id: id.into(),
        name: format!("Partner {id}"),
        allowed_origins: vec![
            format!("https://app.{id}.example"),
            "http://localhost:3000".into(),
        ],
        allowed_ips: vec!["10.0.0.0/8".into(), "::1/128".into()],
        offramp_enabled: true,
        accept_client_address: false,
        redirect_hosts: vec![format!("app.{id}.example")],
        webhook_url: Some(format!("https://hooks.{id}.example/proof")),
        webhook_secret: Some(Secret::new(format!("whsec_{id}"))),
        signature_scheme: "hmac-sha512".into(),
        signing_keys: vec![
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
        ],
        widget: WidgetSpec {
            widget_id: "fb359d09-fff6-4b1f-906c-b9062b135065".into(),
            currencies: vec!["USDT".into(), "USDC".into()],
            networks: vec!["TRC20".into(), "ERC20".into()],
            fiat_currency: "EUR".into(),
            fiat_currencies: vec!["EUR".into(), "USD".into()],
            default_type: "buy".into(),
            lang: "en".into(),
            theme: "dark".into(),
            redirect_url: Some(format!("https://app.{id}.example/done")),
            decimals: vec![("USDT".into(), 6)],
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
                active: false,
            },
        ],
    }
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
    ClientTokenRecord {
        digest: TokenDigest::of(&format!("ct_test_{partner}_{n}")),
        partner_id: PartnerId::parse(partner).unwrap_or_else(|why| panic!("{why}")),
        label: format!("token {n}"),
        created_at: at(i64::from(n)),
        expires_at: None,
        revoked_at: None,
    }
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
    };
    let id = session.id_text();
    let widget_id = session.widget.widget_id.to_string();
    session.signature = partner
        .signing
        .sign(&signed_fields(&session, &id, &widget_id));
    Arc::new(session)
}

//! Shared fixtures for the fuzz targets: partners shaped like the HTTP tests'
//! `partner_spec`, deterministic clock and randomness, an independent JSON
//! member counter, and (in [`world`]) a whole `App` wired on a `MemStore`.
//!
//! Everything here is test scaffolding: it may panic on a broken fixture,
//! because a broken fixture is a bug in the harness, not in the product.

pub mod world;

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use session_core::partner::{Partner, PartnerSpec, SigningKeySpec, WalletSpec, WidgetSpec};
use session_core::random::Random;
use session_core::secret::Secret;
use session_core::time::{Clock, Timestamp};

pub const WIDGET_ID: &str = "fb359d09-fff6-4b1f-906c-b9062b135065";
pub const TRON_WALLET: &str = "TXYZabcdefghijkmnopqrstuvwxyz12345";
pub const PROVIDER_SECRET: &str = "provider-shared-secret";
pub const WIDGET_ORIGIN: &str = "https://widget.example";
/// 2026-11-24T08:35:30Z, the HTTP tests' clock.
pub const NOW_MICROS: i64 = 1_795_509_330_000_000;

/// The acme partner of the seed page, with variations by id (a copy of
/// `crates/session-http/tests/it/support.rs::partner_spec`).
pub fn partner_spec(id: &str) -> PartnerSpec {
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
        signature_scheme: "hmac-sha512".into(),
        signing_keys: vec![SigningKeySpec {
            kid: "k1".into(),
            secret: Secret::new(format!("{id}-signing-secret")),
            not_after: None,
        }],
        widget: WidgetSpec {
            widget_id: WIDGET_ID.into(),
            currencies: vec!["USDT".into()],
            networks: vec![
                "TRC20".into(),
                "ERC20".into(),
                "BEP20".into(),
                "POLYGON".into(),
            ],
            fiat_currency: "EUR".into(),
            fiat_currencies: vec!["EUR".into(), "USD".into()],
            default_type: "buy".into(),
            lang: "en".into(),
            theme: "light".into(),
            redirect_url: Some("https://app.example.com/done".into()),
            decimals: vec![],
        },
        wallets: vec![WalletSpec {
            currency: "USDT".into(),
            network: "TRC20".into(),
            address: TRON_WALLET.into(),
            active: true,
        }],
    }
}

/// Four partners that between them switch on every branch of
/// `SessionRequest::decode`: the plain seed partner; one that accepts a client
/// address under `sha512-concat` (alphanumeric addresses only) with currency
/// decimals; one with a redirect host list and off-ramp; one that accepts a
/// client address under the default scheme.
pub fn partners() -> &'static [Partner; 4] {
    static PARTNERS: OnceLock<[Partner; 4]> = OnceLock::new();
    PARTNERS.get_or_init(|| {
        let plain = partner_spec("acme");
        let mut concat = partner_spec("concat");
        concat.accept_client_address = true;
        concat.signature_scheme = "sha512-concat".into();
        concat.widget.decimals = vec![("USDT".into(), 6), ("BTC".into(), 0)];
        concat.widget.currencies.push("BTC".into());
        let mut hosts = partner_spec("hosts");
        hosts.redirect_hosts = vec!["app.example.com".into(), "LOCALHOST".into()];
        hosts.offramp_enabled = true;
        hosts.widget.default_type = "sell".into();
        let mut own = partner_spec("own");
        own.accept_client_address = true;
        own.widget.redirect_url = None;
        [plain, concat, hosts, own].map(|spec| spec.build().expect("fixture partner builds"))
    })
}

/// A clock stopped at [`NOW_MICROS`].
#[derive(Debug)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.0)
    }
}

/// Deterministic "randomness" (a counter through a mixing step), so a crash
/// found on one run reproduces on the next.
#[derive(Debug, Default)]
pub struct CountingRandom(AtomicU64);

impl Random for CountingRandom {
    fn fill(&self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let n = self.0.fetch_add(1, Ordering::Relaxed);
            // splitmix64: distinct counters give distinct, well-spread words.
            let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// How many object members `bytes` holds at every depth, counting duplicates,
/// or `None` when it is not a single JSON value. Written independently of
/// `session_core::json` (no key tracking at all): comparing it with the
/// member count of a `serde_json::Value` (whose maps keep one entry per key)
/// tells whether a document has a duplicate key anywhere.
pub fn raw_member_count(bytes: &[u8]) -> Option<usize> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let count = de.deserialize_any(Counter).ok()?;
    de.end().ok()?;
    Some(count)
}

/// Object members at every depth of a parsed value.
pub fn value_member_count(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Object(map) => {
            map.len() + map.values().map(value_member_count).sum::<usize>()
        }
        serde_json::Value::Array(items) => items.iter().map(value_member_count).sum(),
        _ => 0,
    }
}

struct Counter;

impl<'de> de::DeserializeSeed<'de> for Counter {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_any(Counter)
    }
}

impl<'de> Visitor<'de> for Counter {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_i64<E>(self, _: i64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_u64<E>(self, _: u64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_f64<E>(self, _: f64) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_str<E>(self, _: &str) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_unit<E>(self) -> Result<usize, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut total = 0;
        while let Some(n) = seq.next_element_seed(Counter)? {
            total += n;
        }
        Ok(total)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        let mut total = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            total += 1 + map.next_value_seed(Counter)?;
        }
        Ok(total)
    }
}

/// A `SessionService` on a `MemStore` holding the acme partner and one active
/// client token (returned), for driving `authenticate` (whose header parser,
/// `bearer_token`, is private to the core).
pub fn auth_service() -> &'static (session_core::SessionService, String) {
    use std::sync::Arc;

    use session_core::client_token::{self, TokenDigest, TokenEnv};
    use session_core::init_token::{TokenKey, TokenKeys};
    use session_core::partner::PartnerId;
    use session_core::ports::{ClientTokenRecord, ConfiguredWallets, PartnerRegistry};
    use session_core::{Ports, SessionService, Settings};
    use session_store_mem::MemStore;

    static SERVICE: OnceLock<(SessionService, String)> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let store = Arc::new(MemStore::new());
        let random = Arc::new(CountingRandom::default());
        let token = client_token::generate(TokenEnv::Live, random.as_ref());
        futures_executor::block_on(async {
            store
                .put_partner(&partner_spec("acme"))
                .await
                .expect("partner");
            let record = ClientTokenRecord {
                digest: TokenDigest::of(&token),
                partner_id: PartnerId::parse("acme").expect("id"),
                label: "fuzz".into(),
                created_at: Timestamp::from_unix_micros(NOW_MICROS),
                expires_at: None,
                revoked_at: None,
            };
            store.add_token(&record).await.expect("token");
        });
        let ports = Ports {
            partners: store.clone(),
            wallets: Arc::new(ConfiguredWallets),
            sessions: store,
            clock: Arc::new(FixedClock(NOW_MICROS)),
            random,
        };
        let keys = TokenKeys::new(
            TokenKey::new("t1", &Secret::new("init-token-key-for-tests-0123456789")).expect("key"),
            vec![],
        );
        let service = SessionService::new(
            ports,
            keys,
            None,
            Settings {
                init_token_ttl_seconds: 60,
            },
        );
        (service, token)
    })
}

/// Whether `SESSION_FUZZ_TRACE` is set: targets then print what they send and
/// receive, for reading an artifact (`cargo fuzz run <target> <artifact>`).
#[allow(clippy::disallowed_methods)] // A harness switch, not product configuration.
pub fn trace() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SESSION_FUZZ_TRACE").is_some())
}

//! Shared fixtures for the fuzz targets: partners shaped like the HTTP tests'
//! `partner_spec`, deterministic clock and randomness, an independent JSON
//! member counter, and (in [`world`]) a whole `App` wired on a `MemStore`.
//!
//! Everything here is test scaffolding: it may panic on a broken fixture,
//! because a broken fixture is a bug in the harness, not in the product.

pub mod world;

use std::fmt;
use std::sync::OnceLock;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use session_core::partner::{Partner, PartnerSpec};
use session_core::time::Timestamp;

pub use session_core::example::{TRON_WALLET, WIDGET_ID};
pub use session_core::testing::{CountingRandom, FixedClock, NOW_MICROS};

pub const PROVIDER_SECRET: &str = "provider-shared-secret";
pub const WIDGET_ORIGIN: &str = "https://widget.example";

/// The example partner under `id`, shaped like the HTTP tests' partners: the
/// upstream-fault networks listed, and a default redirect on `app.example.com`
/// (the host list of the `hosts` partner below).
pub fn partner_spec(id: &str) -> PartnerSpec {
    let mut spec = session_core::example::partner(id);
    spec.widget.networks = ["TRC20", "ERC20", "BEP20", "POLYGON"]
        .map(String::from)
        .to_vec();
    spec.widget.redirect_url = Some("https://app.example.com/done".into());
    spec
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

    use session_core::access::TrustedProxies;
    use session_core::client_token::{self, TokenEnv};
    use session_core::partner::PartnerId;
    use session_core::ports::{ConfiguredWallets, PartnerRegistry};
    use session_core::{Ports, SessionService, Settings};
    use session_store_mem::MemStore;

    static SERVICE: OnceLock<(SessionService, String)> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let store = Arc::new(MemStore::new());
        let random = Arc::new(CountingRandom::default());
        let partner = PartnerId::parse("acme").expect("id");
        let now = Timestamp::from_unix_micros(NOW_MICROS);
        let issued = client_token::issue(TokenEnv::Live, partner, "fuzz", now, random.as_ref());
        futures_executor::block_on(async {
            store
                .put_partner(&partner_spec("acme"))
                .await
                .expect("partner");
            store.add_token(&issued.record).await.expect("token");
        });
        let token = issued.token;
        let ports = Ports {
            partners: store.clone(),
            wallets: Arc::new(ConfiguredWallets),
            sessions: store.clone(),
            idempotency: store.clone(),
            feed: store,
            clock: Arc::new(FixedClock::default()),
            random,
        };
        let keys = session_core::testing::token_keys();
        let service = SessionService::new(
            ports,
            keys,
            None,
            Settings {
                init_token_ttl_seconds: 60,
                trusted_proxies: TrustedProxies::default(),
                idempotency_ttl_seconds: session_core::service::DEFAULT_IDEMPOTENCY_TTL_SECONDS,
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

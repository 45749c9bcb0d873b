//! Shared setup for the criterion benches in `benches/benches/`: the seed
//! request, a partner built from a spec, signing and token keys, and a
//! `SessionService` wired on the in-memory store with a real clock and CSPRNG.
//!
//! Everything here is built once per bench, outside the measured closure.

use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use session_core::access::TrustedProxies;
use session_core::init_token::{TokenKey, TokenKeys};
use session_core::partner::{Partner, PartnerSpec};
use session_core::ports::ConfiguredWallets;
use session_core::secret::Secret;
use session_core::signing::{SignatureScheme, SignedFields, SigningKeys};
use session_core::{Ports, SessionService, Settings};
use session_store_mem::MemStore;

/// Criterion settings that keep `cargo bench -p benches` to a couple of
/// minutes on two cores: 1 s warm-up, 3 s of measurement, 50 samples.
pub fn quick_criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

pub use session_core::example::{SEED_BODY, TRON_WALLET, WIDGET_ID};

/// The partner's signing secret in every bench (19 bytes, like a typical one):
/// the example partner's, under id `acme`.
pub const SIGNING_SECRET: &str = "acme-signing-secret";

/// The seed example's signed fields (the `hmac-seed` vector of `docs/signing.md`).
pub fn seed_fields() -> SignedFields<'static> {
    SignedFields {
        merchant_transaction_id: "550e8400-e29b-41d4-a716-446655440000",
        address: TRON_WALLET,
        client_ip: "203.0.113.42",
        currency: "USDT",
        network: "TRC20",
        amount: "100",
        tx_type: "buy",
        widget_id: WIDGET_ID,
    }
}

/// The example partner (`acme`), signing with `scheme`.
pub fn partner_spec(scheme: SignatureScheme) -> PartnerSpec {
    let mut spec = session_core::example::partner("acme");
    spec.signature_scheme = scheme.as_str().into();
    spec
}

/// [`partner_spec`] validated into a ready [`Partner`].
pub fn partner(scheme: SignatureScheme) -> Partner {
    partner_spec(scheme)
        .build()
        .expect("the bench partner spec is valid")
}

/// The prepared signing keys of [`partner`] (keyed HMAC state built once).
pub fn signing_keys(scheme: SignatureScheme) -> SigningKeys {
    partner(scheme).signing
}

/// Init-token keys with a 32-byte-plus secret, as the server configures them.
pub fn token_keys() -> TokenKeys {
    let key = TokenKey::new("t1", &Secret::new("init-token-key-for-benches-0123456789"))
        .expect("kid and 37-byte secret are valid");
    TokenKeys::new(key, vec![])
}

pub mod client;
pub mod live;

/// The production clock and randomness, compiled in from the server's source
/// (so the benches do not link the whole server for two small types).
#[path = "../../crates/session-server/src/system.rs"]
mod system;
pub use system::{OsRandom, SystemClock};

/// A `SessionService` on one [`MemStore`] behind every port, configured wallets,
/// the system clock, a real CSPRNG and [`token_keys`]; init tokens live 1 hour.
pub fn mem_service() -> SessionService {
    let store = Arc::new(MemStore::new());
    let ports = Ports {
        partners: store.clone(),
        wallets: Arc::new(ConfiguredWallets),
        sessions: store.clone(),
        idempotency: store.clone(),
        feed: store,
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
    };
    let settings = Settings {
        init_token_ttl_seconds: 3_600,
        trusted_proxies: TrustedProxies::default(),
        idempotency_ttl_seconds: session_core::service::DEFAULT_IDEMPOTENCY_TTL_SECONDS,
    };
    SessionService::new(ports, token_keys(), None, settings)
}

/// A single-threaded tokio runtime: the bench measures one request's work, not
/// a scheduler.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime starts")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The benches only measure; these checks keep their setup honest under
    // `cargo test --workspace`, which does not build bench targets.

    #[test]
    fn seed_fields_sign_to_the_documented_vector() {
        let signature = signing_keys(SignatureScheme::HmacSha512).sign(&seed_fields());
        assert_eq!(
            signature.as_str(),
            "v2:7bef4aa5e8ee3dc08c78a93dc168b3e985e84b9fefb0236a1fcf50cac7fedad5\
             92646fd9dcf12b858e2235dc0d568511e723f28a4ad3da31de911a2871c02a87",
            "the hmac-seed vector of docs/signing.md"
        );
    }

    #[test]
    fn mem_service_creates_the_seed_session() {
        let service = mem_service();
        let partner = partner(SignatureScheme::HmacSha512);
        let created = current_thread_runtime()
            .block_on(service.create_session(&partner, SEED_BODY.as_bytes()))
            .expect("the seed body creates a session");
        assert_eq!(created.session.address.as_str(), TRON_WALLET);
        assert!(created.session.signature.as_str().starts_with("v2:"));
    }
}

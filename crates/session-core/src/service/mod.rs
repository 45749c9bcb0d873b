//! The use cases: each takes raw request input, runs the pure checks, calls the
//! ports, and answers with a domain value or a [`Rejection`].

pub mod admin;
mod auth;
mod create;
mod events;
mod follow;
mod query;
mod redeem;
mod sandbox;

use std::sync::Arc;

pub use create::{CreatedSession, RenderAnswer, SessionAnswer};
pub use events::EventReport;
pub use follow::Following;
pub use sandbox::{Outcome, Simulated, SimulationGrant};

use crate::access::TrustedProxies;
use crate::error::{ErrorKind, Rejection};
use crate::init_token::TokenKeys;
use crate::ports::{
    IdempotencyStore, PartnerDirectory, SessionStore, StatusFeed, StoreError, UpstreamError,
    WalletDirectory,
};
use crate::provider::ProviderKey;
use crate::random::Random;
use crate::time::Clock;

/// Behaviour an operator tunes.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lifetime of an init token, in seconds.
    pub init_token_ttl_seconds: i64,
    /// The proxies whose `X-Forwarded-For` names the partner API's caller.
    pub trusted_proxies: TrustedProxies,
    /// How long an answer stays replayable under its `Idempotency-Key`.
    pub idempotency_ttl_seconds: i64,
}

/// `--idempotency-ttl`'s default: a day, as the IETF draft suggests.
pub const DEFAULT_IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3_600;

/// The adapters the use cases run on, chosen once at the composition root.
#[derive(Clone)]
pub struct Ports {
    pub partners: Arc<dyn PartnerDirectory>,
    pub wallets: Arc<dyn WalletDirectory>,
    pub sessions: Arc<dyn SessionStore>,
    /// Answers kept under `Idempotency-Key`s.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Live changes of transactions, for `GET /ws`.
    pub feed: Arc<dyn StatusFeed>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ports")
    }
}

/// The service's use cases over its ports.
#[derive(Debug, Clone)]
pub struct SessionService {
    ports: Ports,
    tokens: TokenKeys,
    provider_key: Option<ProviderKey>,
    settings: Settings,
}

impl SessionService {
    /// `provider_key` is `None` when no provider secret is configured: every
    /// provider event is then refused as unsigned.
    pub fn new(
        ports: Ports,
        tokens: TokenKeys,
        provider_key: Option<ProviderKey>,
        settings: Settings,
    ) -> Self {
        Self {
            ports,
            tokens,
            provider_key,
            settings,
        }
    }
}

/// Store faults become 503 (retryable) or 500; the cause goes to the logs only.
pub fn store_rejection(error: StoreError) -> Rejection {
    let kind = match error {
        StoreError::Unavailable(_) => ErrorKind::StoreUnavailable,
        StoreError::Conflict(_) | StoreError::Failed(_) => ErrorKind::DbError,
    };
    Rejection::of(kind).with_detail(error.to_string())
}

fn upstream_rejection(error: UpstreamError) -> Rejection {
    let (kind, detail) = match error {
        UpstreamError::Rejected(detail) => (ErrorKind::ProviderError, detail),
        UpstreamError::Unreachable(detail) => (ErrorKind::UpstreamUnavailable, detail),
        UpstreamError::InvalidResponse(detail) => (ErrorKind::UpstreamInvalidResponse, detail),
    };
    Rejection::of(kind).with_detail(detail)
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Ports and partners for the use-case tests.

    use std::sync::Mutex;

    use super::*;
    use crate::partner::Partner;
    use crate::ports::{
        ConfiguredWallets, MockIdempotencyStore, MockPartnerDirectory, MockSessionStore,
        MockWalletDirectory,
    };
    use crate::secret::Secret;
    pub use crate::testing::{CountingRandom, FixedClock, NOW_MICROS, example_partner, token_keys};

    /// The fixtures' `--idempotency-ttl`.
    pub const IDEMPOTENCY_TTL_SECONDS: i64 = 600;

    /// The mock store's id namespace.
    pub const TEST_NAMESPACE: crate::idempotency::IdNamespace =
        crate::idempotency::IdNamespace::from_bytes([0x5a; 16]);

    pub fn partner() -> Arc<Partner> {
        Arc::new(example_partner("acme").build().expect("fixture partner"))
    }

    /// Mocks that refuse any call not expected by the test.
    pub struct Mocks {
        pub partners: MockPartnerDirectory,
        pub wallets: Option<MockWalletDirectory>,
        pub sessions: MockSessionStore,
        pub idempotency: MockIdempotencyStore,
        pub feed: ScriptedFeed,
    }

    impl Mocks {
        pub fn new() -> Self {
            let mut idempotency = MockIdempotencyStore::new();
            idempotency
                .expect_id_namespace()
                .return_const(TEST_NAMESPACE);
            Self {
                partners: MockPartnerDirectory::new(),
                wallets: None,
                sessions: MockSessionStore::new(),
                idempotency,
                feed: ScriptedFeed::default(),
            }
        }

        pub fn service(self) -> SessionService {
            let wallets: Arc<dyn WalletDirectory> = match self.wallets {
                Some(mock) => Arc::new(mock),
                None => Arc::new(ConfiguredWallets),
            };
            let ports = Ports {
                partners: Arc::new(self.partners),
                wallets,
                sessions: Arc::new(self.sessions),
                idempotency: Arc::new(self.idempotency),
                feed: Arc::new(self.feed),
                clock: Arc::new(FixedClock::default()),
                random: Arc::new(CountingRandom::default()),
            };
            let provider = ProviderKey::new(&Secret::new("provider-secret"));
            SessionService::new(
                ports,
                token_keys(),
                provider,
                Settings {
                    init_token_ttl_seconds: 3_600,
                    trusted_proxies: TrustedProxies::default(),
                    idempotency_ttl_seconds: IDEMPOTENCY_TTL_SECONDS,
                },
            )
        }
    }

    /// Captures what a store mock was asked to write.
    pub type Captured<T> = Arc<Mutex<Vec<T>>>;

    /// A feed that records which transactions were subscribed to and yields
    /// the updates it was given, then `Closed`.
    #[derive(Debug, Default, Clone)]
    pub struct ScriptedFeed {
        pub subscribed: Captured<uuid::Uuid>,
        pub updates: Vec<crate::live::TxUpdate>,
    }

    struct Scripted(std::vec::IntoIter<crate::live::TxUpdate>);

    #[async_trait::async_trait]
    impl crate::ports::FeedSubscription for Scripted {
        async fn next(&mut self) -> crate::live::FeedNext {
            self.0
                .next()
                .map_or(crate::live::FeedNext::Closed, |update| {
                    crate::live::FeedNext::Update(Arc::new(update))
                })
        }
    }

    #[async_trait::async_trait]
    impl StatusFeed for ScriptedFeed {
        async fn subscribe(
            &self,
            id: uuid::Uuid,
        ) -> Result<Box<dyn crate::ports::FeedSubscription>, StoreError> {
            self.subscribed.lock().expect("not poisoned").push(id);
            Ok(Box::new(Scripted(self.updates.clone().into_iter())))
        }
    }

    /// A session as `create_session` makes it for [`partner`].
    pub fn created_session() -> Arc<crate::session::Session> {
        let mut mocks = Mocks::new();
        mocks.sessions.expect_insert_session().returning(|_| Ok(()));
        let body = br#"{"partner_user_id":"u","user_email":"u@example.com","network":"TRC20","currency":"USDT","amount":"1"}"#;
        futures_executor::block_on(mocks.service().create_session(&partner(), body))
            .expect("created")
            .session
    }
}

//! The use cases: each takes raw request input, runs the pure checks, calls the
//! ports, and answers with a domain value or a [`Rejection`].

mod auth;
mod create;
mod events;
mod query;
mod redeem;

use std::sync::Arc;

pub use create::CreatedSession;
pub use events::EventReport;

use crate::access::TrustedProxies;
use crate::error::{ErrorKind, Rejection};
use crate::init_token::TokenKeys;
use crate::ports::{PartnerDirectory, SessionStore, StoreError, UpstreamError, WalletDirectory};
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
}

/// The adapters the use cases run on, chosen once at the composition root.
#[derive(Clone)]
pub struct Ports {
    pub partners: Arc<dyn PartnerDirectory>,
    pub wallets: Arc<dyn WalletDirectory>,
    pub sessions: Arc<dyn SessionStore>,
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
        ConfiguredWallets, MockPartnerDirectory, MockSessionStore, MockWalletDirectory,
    };
    use crate::secret::Secret;
    pub use crate::testing::{CountingRandom, FixedClock, NOW_MICROS, example_partner, token_keys};

    pub fn partner() -> Arc<Partner> {
        Arc::new(example_partner("acme").build().expect("fixture partner"))
    }

    /// Mocks that refuse any call not expected by the test.
    pub struct Mocks {
        pub partners: MockPartnerDirectory,
        pub wallets: Option<MockWalletDirectory>,
        pub sessions: MockSessionStore,
    }

    impl Mocks {
        pub fn new() -> Self {
            Self {
                partners: MockPartnerDirectory::new(),
                wallets: None,
                sessions: MockSessionStore::new(),
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
                },
            )
        }
    }

    /// Captures what a store mock was asked to write.
    pub type Captured<T> = Arc<Mutex<Vec<T>>>;
}

//! Opening the configured store: in memory, or PostgreSQL.

use std::sync::Arc;

use session_core::ports::Store;
use session_core::secret::Secret;
use session_store_mem::MemStore;
use session_store_pg::{PgConfig, PgStore};

use crate::config::StoreConfig;

pub enum OpenStore {
    Mem(Arc<MemStore>),
    Pg(Arc<PgStore>),
}

impl OpenStore {
    pub async fn open(config: &StoreConfig) -> Result<Self, String> {
        match config {
            StoreConfig::Mem { max_sessions } => Ok(Self::Mem(Arc::new(
                MemStore::with_max_sessions(*max_sessions),
            ))),
            StoreConfig::Postgres { url } => Ok(Self::Pg(Arc::new(
                connect_pg(PgConfig::new(url.expose())).await?,
            ))),
        }
    }

    /// The PostgreSQL store, when that is the one open.
    pub fn pg(&self) -> Option<Arc<PgStore>> {
        match self {
            Self::Mem(_) => None,
            Self::Pg(store) => Some(Arc::clone(store)),
        }
    }

    pub fn ports(&self) -> Arc<dyn Store> {
        match self {
            Self::Mem(store) => store.clone(),
            Self::Pg(store) => store.clone(),
        }
    }

    /// A secret every instance on this store shares: the one stored under
    /// `name`, or `candidate` once stored. In memory there is only this
    /// instance, so `candidate` is the secret.
    pub async fn shared_secret(&self, name: &str, candidate: Secret) -> Result<Secret, String> {
        match self {
            Self::Mem(_) => Ok(candidate),
            Self::Pg(store) => store
                .service_secret(name, &candidate)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// Connects, saying where to (never with the password) when it cannot.
pub async fn connect_pg(config: PgConfig) -> Result<PgStore, String> {
    let target = config.target();
    let store = PgStore::connect(config)
        .await
        .map_err(|e| format!("cannot open the PostgreSQL store at {target}: {e}"))?;
    tracing::info!(%target, "PostgreSQL store ready");
    Ok(store)
}

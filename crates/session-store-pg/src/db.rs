//! The connection pool and the one way the adapter talks through it: a call
//! runs on a pooled connection under a client-side deadline, and a connection
//! whose call ran out of time is dropped rather than handed to the next caller.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use session_core::ports::StoreError;

use crate::config::PgConfig;
use crate::error::{Fault, pool_error};

/// A pooled connection.
pub(crate) type Client = Object;

/// The pool plus the deadline every call runs under.
#[derive(Clone, Debug)]
pub(crate) struct Db {
    pool: Pool,
    call_timeout: Duration,
}

impl Db {
    /// A pool of at most `size` connections with `config`'s settings.
    pub(crate) fn new(config: &PgConfig, size: usize) -> Result<Self, StoreError> {
        Self::with_driver(config, config.driver_config()?, size)
    }

    /// The same over connections opened with `driver` (extra session
    /// settings, say).
    pub(crate) fn with_driver(
        config: &PgConfig,
        driver: tokio_postgres::Config,
        size: usize,
    ) -> Result<Self, StoreError> {
        let manager = Manager::from_config(
            driver,
            config.tls_connector()?,
            // `Fast` only checks that the connection is still open: a round trip
            // per checkout would double the cost of the hot path. A connection
            // that died unnoticed fails one call with `Unavailable`.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(config.pool_wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Failed(format!("cannot build the connection pool: {e}")))?;
        Ok(Self {
            pool,
            call_timeout: config.call_timeout(),
        })
    }

    /// Runs `call` on a pooled connection within the call deadline. Getting
    /// the connection has the pool's own deadlines (wait, connect).
    pub(crate) async fn run<T>(
        &self,
        call: impl AsyncFnOnce(&mut Client) -> Result<T, Fault>,
    ) -> Result<T, StoreError> {
        self.run_for(self.call_timeout, call).await
    }

    /// [`Db::run`] with another deadline (migrations, health checks).
    pub(crate) async fn run_for<T>(
        &self,
        deadline: Duration,
        call: impl AsyncFnOnce(&mut Client) -> Result<T, Fault>,
    ) -> Result<T, StoreError> {
        let mut client = self.pool.get().await.map_err(|e| pool_error(&e))?;
        match tokio::time::timeout(deadline, call(&mut client)).await {
            Ok(result) => result.map_err(|fault| fault.0),
            Err(_) => {
                // The server or the network went silent mid-call. The
                // connection may still carry the unanswered request, so it is
                // not returned to the pool: dropping it closes it.
                drop(Object::take(client));
                Err(StoreError::Unavailable(format!(
                    "no answer from PostgreSQL within {} ms",
                    deadline.as_millis()
                )))
            }
        }
    }

    /// Connections open and idle, and open and in use.
    pub(crate) fn connections(&self) -> (usize, usize) {
        let status = self.pool.status();
        let idle = status.available;
        (idle, status.size.saturating_sub(idle))
    }

    /// Stops handing out connections; calls fail with `Unavailable` from now on.
    pub(crate) fn close(&self) {
        self.pool.close();
    }
}

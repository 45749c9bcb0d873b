//! `serve`: wires the adapters to the core, starts both listeners, and drains
//! on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::FutureExt;
use session_core::access::TrustedProxies;
use session_core::admin::AdminToken;
use session_core::init_token::{TokenKey, TokenKeys};
use session_core::ports::{ConfiguredWallets, Store};
use session_core::provider::ProviderKey;
use session_core::random::{Random, hex_secret};
use session_core::secret::Secret;
use session_core::time::Clock;
use session_core::{Ports, SessionService, Settings};
use session_http::{
    Admin, AdminApi, AdminPorts, App, HttpConfig, Lifecycle, ServeOptions, defaults,
};
use session_store_pg::PgStore;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::config::{self, ServeConfig};
use session_webhooks::{AddressPolicy, Dispatcher, WebhookClient};

use crate::store::OpenStore;
use crate::system::{OsRandom, SystemClock};
use crate::{bootstrap, dev, logging, metrics, reaper};

/// The name under which instances sharing a store share the init-token key.
const INIT_TOKEN_SECRET: &str = "init_token_key";

/// Descriptors to ask for: enough for tens of thousands of keep-alive clients.
const WANTED_OPEN_FILES: u64 = 65_536;

/// Where a started service listens.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

/// `serve`, as the binary runs it.
pub async fn serve(args: ServeArgs) -> Result<(), String> {
    serve_until_stopped(args, None).await
}

/// Runs the service in the calling program's process and runtime until
/// SIGTERM or Ctrl-C, as `serve` would; `listening` is told the addresses
/// once both listeners are bound (`--listen 127.0.0.1:0` picks a free port).
pub async fn serve_in_process(
    args: ServeArgs,
    listening: tokio::sync::oneshot::Sender<Listening>,
) -> Result<(), String> {
    serve_until_stopped(args, Some(listening)).await
}

async fn serve_until_stopped(
    args: ServeArgs,
    listening: Option<tokio::sync::oneshot::Sender<Listening>>,
) -> Result<(), String> {
    let config = config::resolve(&args)?;
    logging::init(config.log_format);
    match rlimit::increase_nofile_limit(WANTED_OPEN_FILES) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open file limit"),
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn Random> = Arc::new(OsRandom);

    let opened = OpenStore::open(&config.store).await?;
    let store = opened.ports();
    if let Some(path) = &config.bootstrap {
        let report =
            bootstrap::load_file(path, store.as_ref(), clock.as_ref(), random.as_ref()).await?;
        tracing::info!(
            created = report.created.len(),
            updated = report.updated.len(),
            unchanged = report.unchanged.len(),
            tokens_added = report.tokens_added,
            "bootstrap loaded"
        );
    }
    let demo = if config.dev {
        Some(dev::install(store.as_ref(), clock.as_ref(), random.as_ref()).await?)
    } else {
        None
    };
    let provider_secret = match (&config.provider_secret, config.dev) {
        (Some(secret), _) => Some(secret.clone()),
        // Dev mode verifies events with a secret made up now, shown in the banner.
        (None, true) => Some(Secret::new(hex_secret(random.as_ref()))),
        (None, false) => None,
    };
    if provider_secret.is_none() {
        tracing::warn!(
            "no --provider-secret: every POST /provider/events will be refused as unsigned"
        );
    }
    let token_secret = match config.token_secret.clone() {
        Some(secret) => secret,
        None => {
            // Instances on one database must accept each other's init tokens:
            // the first to start stores its key, the others adopt it.
            opened
                .shared_secret(INIT_TOKEN_SECRET, Secret::new(hex_secret(random.as_ref())))
                .await?
        }
    };

    let ports = Ports {
        partners: store.clone(),
        wallets: Arc::new(ConfiguredWallets),
        sessions: store.clone(),
        idempotency: store.clone(),
        feed: store.clone(),
        clock: clock.clone(),
        random: random.clone(),
    };
    let service = SessionService::new(
        ports,
        token_keys(&token_secret)?,
        provider_secret.as_ref().and_then(ProviderKey::new),
        Settings {
            init_token_ttl_seconds: config.init_token_ttl_seconds,
            trusted_proxies: TrustedProxies::new(config.trusted_proxies.clone()),
            idempotency_ttl_seconds: i64::try_from(config.idempotency_ttl.as_secs())
                .unwrap_or(i64::MAX),
        },
    );
    tokio::spawn(reaper::run(
        store.clone(),
        clock.clone(),
        config.idempotency_ttl,
    ));
    let client = WebhookClient::new(
        AddressPolicy::new(config.webhook_allow.clone()),
        config.webhooks.timeout,
    )?;
    let dispatcher = Dispatcher::new(
        store.clone(),
        store.clone(),
        clock.clone(),
        random.clone(),
        client,
        config.webhooks.clone(),
    );
    // In dev mode both are set: the banner shows the demo token and the secret.
    let banner = demo.as_ref().zip(provider_secret.as_ref());
    let admin_ports = AdminPorts {
        registry: store.clone(),
        outbox: store.clone(),
        clock,
        random: random.clone(),
    };
    let stores = Stores {
        ports: store,
        pg: opened.pg(),
    };
    run_listeners(
        &config,
        Services {
            service,
            stores,
            admin_ports,
            dispatcher,
        },
        random.as_ref(),
        banner,
        listening,
    )
    .await
}

/// The init-token key, identified by a digest of the secret so every instance
/// configured with the same secret mints and accepts the same `kid`.
fn token_keys(secret: &Secret) -> Result<TokenKeys, String> {
    let kid = format!(
        "t{}",
        hex::encode(&Sha256::digest(format!("init-token-kid:{}", secret.expose()))[..4])
    );
    let key =
        TokenKey::new(&kid, secret).ok_or("the init token secret must be at least 32 bytes")?;
    Ok(TokenKeys::new(key, vec![]))
}

/// The store, as its ports and, on PostgreSQL, as itself (for the pool's
/// metrics).
struct Stores {
    ports: Arc<dyn Store>,
    pg: Option<Arc<PgStore>>,
}

/// What the listeners serve.
struct Services {
    service: SessionService,
    stores: Stores,
    admin_ports: AdminPorts,
    dispatcher: Dispatcher,
}

async fn run_listeners(
    config: &ServeConfig,
    services: Services,
    random: &dyn Random,
    banner: Option<(&dev::Demo, &Secret)>,
    listening: Option<tokio::sync::oneshot::Sender<Listening>>,
) -> Result<(), String> {
    let Services {
        service,
        stores,
        admin_ports,
        dispatcher,
    } = services;
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))
    };
    let public = bind(config.listen).await?;
    let admin = bind(config.admin_listen).await?;
    let public_addr = public.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;

    let http = HttpConfig {
        body_limit: config.body_limit,
        body_read_timeout: defaults::BODY_READ_TIMEOUT,
        request_deadline: defaults::REQUEST_DEADLINE,
        widget_origins: config.widget_origins.clone(),
        live: config.live,
        default_rate_limit: config.default_rate_limit,
        record_metrics: config.metrics,
        sandbox: config.sandbox,
    };
    let options = ServeOptions {
        header_read_timeout: config.header_read_timeout,
        drain_timeout: config.drain_timeout,
        max_connections: config.max_connections,
    };
    let mut prefixes = [0u8; 16];
    random.fill(&mut prefixes);
    let (public_prefix, admin_prefix) = prefixes.split_at(8);
    let prefix = |bytes: &[u8]| u64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]));
    let lifecycle = Arc::new(Lifecycle::default());
    let app = Arc::new(App::new(service, http.clone(), prefix(public_prefix)));
    let sockets = app.live_sockets();
    let mut admin_handler = Admin::new(
        stores.ports.clone(),
        lifecycle.clone(),
        prefix(admin_prefix),
    );
    if config.metrics {
        let registry =
            metrics::registry(app.metrics(), dispatcher.metrics(), stores.ports, stores.pg);
        admin_handler = admin_handler.with_metrics(Arc::new(registry));
    }
    match config.admin_token.as_ref().map(AdminToken::new) {
        Some(Some(token)) => {
            admin_handler = admin_handler.with_api(AdminApi::new(token, admin_ports, &http));
            tracing::info!("admin API on under /admin/");
        }
        Some(None) => return Err("the admin token must not be empty".into()),
        None => {}
    }
    let admin_handler = Arc::new(admin_handler);

    let signalled = shutdown_signal()?;
    if let Some((demo, provider_secret)) = banner {
        println!(
            "{}",
            dev::banner(demo, provider_secret, public_addr, admin_addr)
        );
    }
    tracing::info!(public = %public_addr, admin = %admin_addr, "listening");
    if config.sandbox && !config.dev {
        tracing::warn!(
            "sandbox mode: POST /sandbox/transactions/{{id}}/simulate completes a session \
             opened with a ct_test_ token without payment, for whoever holds its init \
             token; do not run it on a store with real transactions"
        );
    }
    if let Some(listening) = listening {
        // A caller that stopped waiting has nothing to be told.
        let _ = listening.send(Listening {
            public: public_addr,
            admin: admin_addr,
        });
    }

    let draining = lifecycle.clone();
    let closing = Arc::clone(&sockets);
    let shutdown = async move {
        signalled.await;
        tracing::info!("shutdown requested: draining");
        draining.start_draining();
        // WebSockets close with 1001 at once: they never end on their own.
        closing.close_all();
    }
    .shared();
    // The admin listener outlives the public one: while the public listener
    // finishes its in-flight requests, /readyz answers 503 (draining) so a load
    // balancer takes the instance out instead of seeing it vanish.
    let (public_drained, admin_stop) = tokio::sync::oneshot::channel::<()>();
    let webhooks = run_on_own_thread(dispatcher, shutdown.clone())?;
    let public = async move {
        session_http::serve(public, app, options, shutdown).await;
        sockets.all_closed(options.drain_timeout).await;
        let _ = public_drained.send(());
    };
    let admin = session_http::serve(admin, admin_handler, options, async move {
        let _ = admin_stop.await;
    });
    // The dispatcher stops claiming when the drain starts, lets its attempts
    // in flight finish (bounded by the drain timeout) and releases the rest.
    tokio::join!(public, admin, webhooks);
    tracing::info!("stopped");
    Ok(())
}

/// Runs the dispatcher on a runtime of its own (as many worker threads as the
/// request runtime) until `shutdown` completes and it has drained; the
/// returned future completes then.
///
/// A bulkhead: request tasks and delivery tasks do not share a scheduler, so a
/// flood of provider events cannot starve the deliveries they cause (measured
/// with `cargo xtask load --webhooks`: on the shared runtime the dispatcher got
/// about one delivery for every seven events applied), and the operating
/// system shares the cores between the two equally.
fn run_on_own_thread(
    dispatcher: Dispatcher,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<impl std::future::Future<Output = ()>, String> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("webhooks")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the webhook dispatcher's runtime: {e}"))?;
    let (stopped, done) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("webhooks-main".into())
        .spawn(move || {
            runtime.block_on(dispatcher.run(shutdown));
            let _ = stopped.send(());
        })
        .map_err(|e| format!("cannot start the webhook dispatcher's thread: {e}"))?;
    Ok(async move {
        // An error means the thread ended without saying so (a panic, which
        // the log shows); either way there is nothing left to wait for.
        let _ = done.await;
    })
}

/// Installs the SIGTERM and Ctrl-C handlers now, and returns a future that
/// completes on either. Installing before the server says it is listening
/// matters: a signal that arrives in between would otherwise kill the process
/// with the default action instead of draining it.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
}

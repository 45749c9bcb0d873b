//! A real server on a loopback port, a bootstrapped store behind it, and a
//! small HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use session_core::access::TrustedProxies;
use session_core::client_token::{self, TokenDigest, TokenEnv};
use session_core::idempotency::{IdNamespace, IdempotencyKey, KeyLookup, KeyedAnswer};
use session_core::partner::{Partner, PartnerId, PartnerSpec, RateLimit};
use session_core::ports::{
    ConfiguredWallets, EventApplied, IdempotencyStore, KeyedInsert, PartnerRegistry, Redemption,
    SessionStore, StoreError, UpstreamError, WalletDirectory,
};
use session_core::provider::ProviderKey;
use session_core::random::Random;
use session_core::secret::Secret;
use session_core::session::{EventPlan, KycState, Session, StatusChanged, StoredSession};
use session_core::testing::{CountingRandom, example_partner};
use session_core::time::{Clock, Timestamp};
use session_core::value::{Address, Code, IpRange, Origin, PartnerUserId};
use session_core::{Ports, SessionService, Settings};
use session_http::{
    Admin, AdminApi, AdminPorts, App, HttpConfig, Lifecycle, LiveConfig, ServeOptions,
    WidgetOrigins, defaults, serve,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use uuid::Uuid;

pub use session_core::example::{SEED_BODY, TRON_WALLET, WIDGET_ID};
/// Everything a store under test must provide.
pub use session_core::ports::Store as TestStore;
pub use session_core::testing::FixedClock as TestClock;

pub const PROVIDER_SECRET: &str = "provider-shared-secret";
pub const WIDGET_ORIGIN: &str = "https://widget.example";
/// The admin API's token in tests that turn it on.
pub const ADMIN_TOKEN: &str = "admin-test-token-0123456789";

/// Where the next server's deterministic randomness starts: servers that share
/// a database must not mint the same ids or tokens.
static NEXT_RANDOM_START: AtomicU64 = AtomicU64::new(0);

/// Wallet lookups that fail on purpose for the partner `upstream`, by network.
struct ScriptedWallets;

#[async_trait]
impl WalletDirectory for ScriptedWallets {
    async fn resolve(
        &self,
        partner: &Partner,
        currency: &Code,
        network: &Code,
    ) -> Result<Option<Address>, UpstreamError> {
        match (partner.id.as_str(), network.as_str()) {
            ("upstream", "ERC20") => Err(UpstreamError::Rejected("custody answered 500".into())),
            ("upstream", "BEP20") => Err(UpstreamError::Unreachable("custody timed out".into())),
            ("upstream", "POLYGON") => {
                Err(UpstreamError::InvalidResponse("custody sent html".into()))
            }
            _ => ConfiguredWallets.resolve(partner, currency, network).await,
        }
    }
}

/// A store that fails on purpose for end users named `fail-unavailable` and
/// `fail-db`, and otherwise delegates.
struct FaultyStore<S>(Arc<S>);

#[async_trait]
impl<S: TestStore> SessionStore for FaultyStore<S> {
    async fn insert_session(&self, session: &Arc<Session>) -> Result<(), StoreError> {
        match session.user.partner_user_id.as_str() {
            "fail-unavailable" => Err(StoreError::Unavailable("connection refused (test)".into())),
            "fail-db" => Err(StoreError::Failed("syntax error at or near (test)".into())),
            _ => self.0.insert_session(session).await,
        }
    }
    async fn session(&self, id: Uuid) -> Result<Option<StoredSession>, StoreError> {
        self.0.session(id).await
    }
    async fn redeem(&self, id: Uuid, jti: &str, at: Timestamp) -> Result<Redemption, StoreError> {
        self.0.redeem(id, jti, at).await
    }
    async fn kyc(
        &self,
        partner: &PartnerId,
        user: &PartnerUserId,
    ) -> Result<Option<KycState>, StoreError> {
        self.0.kyc(partner, user).await
    }
    async fn apply_provider_event(&self, plan: &EventPlan) -> Result<EventApplied, StoreError> {
        self.0.apply_provider_event(plan).await
    }
    async fn status_events(&self, id: Uuid) -> Result<Vec<StatusChanged>, StoreError> {
        self.0.status_events(id).await
    }
}

/// Keyed creations fail the same way as plain ones.
#[async_trait]
impl<S: TestStore> IdempotencyStore for FaultyStore<S> {
    fn id_namespace(&self) -> IdNamespace {
        self.0.id_namespace()
    }
    async fn idempotent_answer(
        &self,
        partner: &PartnerId,
        key: &IdempotencyKey,
        created_since: Timestamp,
    ) -> Result<KeyLookup, StoreError> {
        self.0.idempotent_answer(partner, key, created_since).await
    }
    async fn insert_keyed_session(
        &self,
        session: &Arc<Session>,
        keyed: &KeyedAnswer,
    ) -> Result<KeyedInsert, StoreError> {
        match session.user.partner_user_id.as_str() {
            "fail-unavailable" => Err(StoreError::Unavailable("connection refused (test)".into())),
            "fail-db" => Err(StoreError::Failed("syntax error at or near (test)".into())),
            _ => self.0.insert_keyed_session(session, keyed).await,
        }
    }
    async fn reap_idempotency_keys(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError> {
        self.0.reap_idempotency_keys(created_before, limit).await
    }
}

/// Issued client tokens, by name.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub acme: String,
    pub acme_rotated: String,
    pub acme_revoked: String,
    pub other: String,
    pub gated: String,
    pub upstream: String,
    pub offramp: String,
    /// A partner with a budget of its own: [`LIMITED_PER_SECOND`] and [`LIMITED_BURST`].
    pub limited: String,
    /// A partner whose own budget is unlimited.
    pub unlimited: String,
}

/// The budget of the partner `limited`.
pub const LIMITED_PER_SECOND: u32 = 5;
pub const LIMITED_BURST: u32 = 10;

/// The example partner under `id`, with the networks the upstream-fault
/// cases need.
pub fn partner_spec(id: &str) -> PartnerSpec {
    let mut spec = example_partner(id);
    spec.widget.networks = ["TRC20", "ERC20", "BEP20", "POLYGON"]
        .map(String::from)
        .to_vec();
    spec
}

/// Knobs a test may turn before the server starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub body_limit: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub init_token_ttl_seconds: i64,
    pub trusted_proxies: Vec<&'static str>,
    pub max_connections: usize,
    pub live: LiveConfig,
    /// The admin API's token; `None`: the API is off.
    pub admin_token: Option<&'static str>,
    /// The budget of partners without one of their own.
    pub default_rate_limit: RateLimit,
    /// The sandbox's routes (SPEC.md §7).
    pub sandbox: bool,
}

impl Options {
    pub fn standard() -> Self {
        Self {
            body_limit: defaults::BODY_LIMIT,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            body_read_timeout: defaults::BODY_READ_TIMEOUT,
            init_token_ttl_seconds: 3_600,
            trusted_proxies: vec![],
            max_connections: defaults::MAX_CONNECTIONS,
            live: LiveConfig::default(),
            admin_token: None,
            default_rate_limit: RateLimit::with_default_burst(defaults::RATE_LIMIT_PER_SECOND)
                .expect("the default budget is valid"),
            sandbox: false,
        }
    }

    /// [`Options::standard`] with the admin API on, under [`ADMIN_TOKEN`].
    pub fn with_admin() -> Self {
        Self {
            admin_token: Some(ADMIN_TOKEN),
            ..Self::standard()
        }
    }
}

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub tokens: Tokens,
    pub clock: Arc<TestClock>,
    pub lifecycle: Arc<Lifecycle>,
    pub provider: ProviderKey,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

async fn issue(
    store: &dyn PartnerRegistry,
    random: &dyn Random,
    partner: &str,
    now: Timestamp,
) -> (String, TokenDigest) {
    let partner = PartnerId::parse(partner).expect("partner id");
    let issued = client_token::issue(TokenEnv::Test, partner, "test", now, random);
    store.add_token(&issued.record).await.expect("add token");
    (issued.token, issued.record.digest)
}

impl TestServer {
    pub async fn start<S: TestStore>(store: Arc<S>, options: Options) -> Self {
        let clock = Arc::new(TestClock::default());
        let random: Arc<dyn Random> = Arc::new(CountingRandom::starting_at(
            NEXT_RANDOM_START.fetch_add(1 << 40, Ordering::Relaxed),
        ));
        let now = clock.now();
        let mut gated = partner_spec("gated");
        gated.allowed_ips = vec!["10.0.0.0/8".into()];
        let mut offramp = partner_spec("offramp");
        offramp.offramp_enabled = true;
        let mut limited = partner_spec("limited");
        limited.rate_limit =
            Some(RateLimit::new(LIMITED_PER_SECOND, LIMITED_BURST).expect("valid"));
        let mut unlimited = partner_spec("unlimited");
        unlimited.rate_limit = Some(RateLimit::UNLIMITED);
        for spec in [
            partner_spec("acme"),
            partner_spec("other"),
            gated,
            partner_spec("upstream"),
            offramp,
            limited,
            unlimited,
        ] {
            store.put_partner(&spec).await.expect("put partner");
        }
        let acme_id = PartnerId::parse("acme").expect("id");
        let (acme, _) = issue(store.as_ref(), random.as_ref(), "acme", now).await;
        let (acme_rotated, rotated) = issue(store.as_ref(), random.as_ref(), "acme", now).await;
        store
            .expire_token(&acme_id, &rotated, now.plus_seconds(60))
            .await
            .expect("rotate");
        let (acme_revoked, revoked) = issue(store.as_ref(), random.as_ref(), "acme", now).await;
        store
            .revoke_token(&acme_id, &revoked, now)
            .await
            .expect("revoke");
        let tokens = Tokens {
            acme,
            acme_rotated,
            acme_revoked,
            other: issue(store.as_ref(), random.as_ref(), "other", now).await.0,
            gated: issue(store.as_ref(), random.as_ref(), "gated", now).await.0,
            upstream: issue(store.as_ref(), random.as_ref(), "upstream", now)
                .await
                .0,
            offramp: issue(store.as_ref(), random.as_ref(), "offramp", now)
                .await
                .0,
            limited: issue(store.as_ref(), random.as_ref(), "limited", now)
                .await
                .0,
            unlimited: issue(store.as_ref(), random.as_ref(), "unlimited", now)
                .await
                .0,
        };

        let token_keys = session_core::testing::token_keys();
        let provider = ProviderKey::new(&Secret::new(PROVIDER_SECRET)).expect("provider key");
        let admin_ports = AdminPorts {
            registry: store.clone(),
            outbox: store.clone(),
            clock: clock.clone(),
            random: random.clone(),
        };
        let ports = Ports {
            partners: store.clone(),
            wallets: Arc::new(ScriptedWallets),
            sessions: Arc::new(FaultyStore(store.clone())),
            idempotency: Arc::new(FaultyStore(store.clone())),
            feed: store.clone(),
            clock: clock.clone(),
            random,
        };
        let service = SessionService::new(
            ports,
            token_keys,
            Some(provider.clone()),
            Settings {
                init_token_ttl_seconds: options.init_token_ttl_seconds,
                trusted_proxies: TrustedProxies::new(
                    options
                        .trusted_proxies
                        .iter()
                        .map(|p| IpRange::parse(p).expect("trusted proxy range"))
                        .collect(),
                ),
                idempotency_ttl_seconds: session_core::service::DEFAULT_IDEMPOTENCY_TTL_SECONDS,
            },
        );
        let config = HttpConfig {
            record_metrics: true,
            sandbox: options.sandbox,
            body_limit: options.body_limit,
            body_read_timeout: options.body_read_timeout,
            request_deadline: defaults::REQUEST_DEADLINE,
            widget_origins: WidgetOrigins::List(vec![
                Origin::parse(WIDGET_ORIGIN).expect("origin"),
            ]),
            live: options.live,
            default_rate_limit: options.default_rate_limit,
        };
        let serve_options = ServeOptions {
            header_read_timeout: options.header_read_timeout,
            drain_timeout: Duration::from_secs(5),
            max_connections: options.max_connections,
        };
        let lifecycle = Arc::new(Lifecycle::default());
        let mut admin = Admin::new(store.clone(), lifecycle.clone(), 2);
        if let Some(token) = options.admin_token {
            let token = session_core::admin::AdminToken::new(&Secret::new(token)).expect("token");
            admin = admin.with_api(AdminApi::new(token, admin_ports, &config));
        }
        let app = Arc::new(App::new(service, config, 1));
        let sockets = app.live_sockets();
        let mut registry = session_metrics::prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(session_http::HttpCollector(app.metrics())));
        registry.register_collector(Box::new(session_metrics::ProcessCollector));
        let admin = Arc::new(admin.with_metrics(Arc::new(registry)));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let addr = listener.local_addr().expect("addr");
        let admin_addr = admin_listener.local_addr().expect("admin addr");
        let (shutdown, stop) = oneshot::channel::<()>();
        let drain = lifecycle.clone();
        let served = tokio::spawn(async move {
            let stop = async move {
                let _ = stop.await;
                drain.start_draining();
                sockets.close_all();
            };
            let stop = futures_util::FutureExt::shared(Box::pin(stop));
            tokio::join!(
                serve(listener, app, serve_options, stop.clone()),
                serve(admin_listener, admin, serve_options, stop),
            );
        });
        Self {
            addr,
            admin_addr,
            tokens,
            clock,
            lifecycle,
            provider,
            shutdown: Some(shutdown),
            served: Some(served),
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder::new(self.addr, method, path)
    }

    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder::new(self.admin_addr, method, path)
    }

    /// `POST /widget/session` as `token` with a JSON body.
    pub async fn create_session(&self, token: &str, body: &str) -> TestResponse {
        self.request(Method::POST, "/widget/session")
            .bearer(token)
            .json(body)
            .send()
            .await
    }

    /// Stops accepting, drains, and waits for the server tasks to end.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.expect("server task");
        }
    }
}

pub struct RequestBuilder {
    addr: SocketAddr,
    method: Method,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl RequestBuilder {
    fn new(addr: SocketAddr, method: Method, path: &str) -> Self {
        Self {
            addr,
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(self, name: &str, value: &str) -> Self {
        self.header_bytes(name, value.as_bytes())
    }

    /// A header whose value need not be text (obs-text bytes included).
    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn json(self, body: &str) -> Self {
        self.header("content-type", "application/json")
            .body(body.as_bytes())
    }

    pub fn body(mut self, body: &[u8]) -> Self {
        self.body = body.to_vec();
        self
    }

    pub async fn send(self) -> TestResponse {
        let stream = TcpStream::connect(self.addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(self.method)
            .uri(&self.path)
            .header("host", "localhost");
        for (name, value) in &self.headers {
            let value = http::HeaderValue::from_bytes(value).expect("header value bytes");
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(self.body)))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body: bytes,
        }
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error response: status, `error`, `code`, exactly three fields.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str, code: &str) {
        let body = self.json();
        assert_eq!(
            (
                self.status.as_u16(),
                body["error"].as_str(),
                body["code"].as_str()
            ),
            (status, Some(error), Some(code)),
            "body: {body}"
        );
        let fields: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(
            fields,
            ["error", "code", "message"],
            "error bodies have exactly these three fields, in this order"
        );
        assert!(
            self.header("x-request-id").is_some(),
            "every response carries X-Request-Id"
        );
    }
}

/// Edits the seed body: `Some(json)` sets a field, `None` removes it.
pub fn seed_with(edits: &[(&str, Option<&str>)]) -> String {
    let mut body: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(SEED_BODY).expect("seed");
    for (key, value) in edits {
        match value {
            Some(raw) => body.insert(
                (*key).to_owned(),
                serde_json::from_str(raw).expect("JSON value"),
            ),
            None => body.remove(*key),
        };
    }
    serde_json::Value::Object(body).to_string()
}

/// The `POST /widget/init` body a widget would send for `session` (a created
/// session's JSON): exactly the fields the core's init schema requires.
pub fn init_body(session: &serde_json::Value) -> serde_json::Value {
    let fields = session_core::request::INIT_SCHEMA.required.iter();
    serde_json::Value::Object(
        fields
            .map(|field| ((*field).to_owned(), session[*field].clone()))
            .collect(),
    )
}

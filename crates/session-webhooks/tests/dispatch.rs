//! The dispatcher end to end, on both stores: a real receiver on a loopback
//! port, events committed through the store, signatures checked by an
//! independent Standard Webhooks computation.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use session_core::partner::Partner;
use session_core::ports::{DeliveryFilter, DeliveryState, DeliveryView, SessionStore, Store};
use session_core::random::Random;
use session_core::secret::Secret;
use session_core::session::{EventPlan, ProviderEvent};
use session_core::status::TxStatus;
use session_core::testing::CountingRandom;
use session_core::time::{Clock, Timestamp};
use session_core::value::IpRange;
use session_core::webhook::RetryPolicy;
use session_store_contract::{partner_spec, sample_session};
use session_store_mem::MemStore;
use session_store_pg::PgStore;
use session_store_pg::testing::TestDatabase;
use session_webhooks::{AddressPolicy, Dispatcher, DispatcherConfig, WebhookClient};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Base64 of "receiver-test-secret-32-bytes!!!".
const SECRET: &str = "whsec_cmVjZWl2ZXItdGVzdC1zZWNyZXQtMzItYnl0ZXMhISE=";

/// The wall clock: retries here really wait (tens of milliseconds).
struct Wall;

impl Clock for Wall {
    #[expect(
        clippy::disallowed_methods,
        reason = "the dispatcher's tests run against real time"
    )]
    fn now(&self) -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_unix_micros(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Answers 200 only after this long (longer than the client's deadline).
    Slow(Duration),
    /// A redirect, which must not be followed.
    Redirect,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    path: String,
    body: Bytes,
    at: Timestamp,
}

struct Receiver {
    addr: SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    _stop: oneshot::Sender<()>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (sent, received) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let replies = Arc::clone(&script);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = &mut stopped => return,
                };
                let Ok((stream, _)) = accepted else { continue };
                let (sent, replies) = (sent.clone(), Arc::clone(&replies));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (sent, replies) = (sent.clone(), Arc::clone(&replies));
                        async move {
                            let header = |name: &str| {
                                request
                                    .headers()
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_owned()
                            };
                            let (id, timestamp, signature) = (
                                header("webhook-id"),
                                header("webhook-timestamp"),
                                header("webhook-signature"),
                            );
                            let path = request.uri().path().to_owned();
                            let body = request
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let _ = sent.send(Received {
                                id,
                                timestamp,
                                signature,
                                path,
                                body,
                                at: Wall.now(),
                            });
                            let reply = replies
                                .lock()
                                .expect("script")
                                .pop_front()
                                .unwrap_or(Reply::Status(200));
                            let response = match reply {
                                Reply::Status(code) => Response::builder().status(code),
                                Reply::Slow(wait) => {
                                    tokio::time::sleep(wait).await;
                                    Response::builder().status(200)
                                }
                                Reply::Redirect => Response::builder()
                                    .status(302)
                                    .header("location", "/elsewhere"),
                            };
                            Ok::<_, Infallible>(
                                response.body(Full::new(Bytes::new())).expect("response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            received,
            script,
            _stop: stop,
        }
    }

    fn script(&self, replies: &[Reply]) {
        self.script
            .lock()
            .expect("script")
            .extend(replies.iter().copied());
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("a webhook arrives within 10 s")
            .expect("receiver running")
    }

    async fn nothing_for(&mut self, wait: Duration) {
        if let Ok(Some(extra)) = tokio::time::timeout(wait, self.received.recv()).await {
            panic!("unexpected webhook {extra:?}");
        }
    }
}

/// Standard Webhooks verification, written from the definition.
fn verifies(received: &Received, secret: &str) -> bool {
    let key = B64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.", received.id, received.timestamp).as_bytes());
    mac.update(&received.body);
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    received.signature.split(' ').any(|s| s == expected)
}

struct World<S> {
    store: Arc<S>,
    partner: Partner,
    receiver: Receiver,
    stop: Option<oneshot::Sender<()>>,
    dispatched: Option<tokio::task::JoinHandle<()>>,
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        base_micros: 50_000,
        cap_micros: 400_000,
        horizon_micros: 1_500_000,
    }
}

/// A dispatcher over `store`, with the quick test policy, that may reach
/// loopback when `allow_loopback`; its randomness starts at `random_start`.
/// Sending on the returned channel stops it.
fn spawn_dispatcher<S: Store>(
    store: Arc<S>,
    allow_loopback: bool,
    random_start: u64,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let allowed = if allow_loopback {
        vec![IpRange::parse("127.0.0.0/8").expect("range")]
    } else {
        vec![]
    };
    let client = WebhookClient::new(AddressPolicy::new(allowed), Duration::from_millis(300))
        .expect("client");
    let random: Arc<dyn Random> = Arc::new(CountingRandom::starting_at(random_start));
    let dispatcher = Dispatcher::new(
        store.clone(),
        store,
        Arc::new(Wall),
        random,
        client,
        DispatcherConfig {
            policy: policy(),
            max_in_flight: 16,
            max_per_partner: 4,
            poll_interval: Duration::from_millis(200),
            timeout: Duration::from_millis(300),
            drain: Duration::from_secs(1),
        },
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let dispatched = tokio::spawn(dispatcher.run(async {
        let _ = stopped.await;
    }));
    (stop, dispatched)
}

impl<S: Store> World<S> {
    /// A partner whose webhook points at a fresh receiver, and a dispatcher
    /// that may reach loopback when `allow_loopback`.
    async fn start(store: S, allow_loopback: bool) -> Self {
        let receiver = Receiver::start().await;
        let mut spec = partner_spec("acme");
        spec.webhook_url = Some(format!("http://{}/hook", receiver.addr));
        spec.webhook_secret = Some(Secret::new(SECRET));
        store.put_partner(&spec).await.expect("put partner");
        let partner = spec.build().expect("partner builds");
        let store = Arc::new(store);
        let (stop, dispatched) = spawn_dispatcher(Arc::clone(&store), allow_loopback, 0);
        Self {
            store,
            partner,
            receiver,
            stop: Some(stop),
            dispatched: Some(dispatched),
        }
    }

    /// A session moved through `statuses`, each committed now.
    async fn transaction(&self, statuses: &[TxStatus]) -> Uuid {
        let session = sample_session(&self.partner, "u1", "u1@example.com", 1);
        let id = session.merchant_transaction_id;
        self.store.insert_session(&session).await.expect("insert");
        for status in statuses {
            self.change(id, *status).await;
        }
        id
    }

    async fn change(&self, id: Uuid, status: TxStatus) {
        let plan = change_now(id, status);
        self.store.apply_provider_event(&plan).await.expect("apply");
    }

    /// The deliveries of `transaction`, oldest first.
    async fn deliveries_of(&self, transaction: Uuid) -> Vec<DeliveryView> {
        let filter = DeliveryFilter {
            transaction: Some(transaction),
            limit: 100,
            ..DeliveryFilter::default()
        };
        let mut listed = self.store.deliveries(&filter).await.expect("list");
        listed.reverse();
        listed
    }

    async fn state_of(&self, transaction: Uuid) -> Vec<(DeliveryState, u32)> {
        let listed = self.deliveries_of(transaction).await;
        listed.iter().map(|d| (d.state, d.attempts)).collect()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(dispatched) = self.dispatched.take() {
            dispatched.await.expect("dispatcher task");
        }
    }
}

/// The provider event that moves transaction `id` to `status`, now.
fn change_now(id: Uuid, status: TxStatus) -> EventPlan {
    let now = Wall.now();
    EventPlan {
        event: ProviderEvent {
            event_id: format!("{id}-{}", status.as_str()),
            merchant_transaction_id: id,
            status,
            crypto_amount: None,
            fiat_amount: None,
            fiat_currency: None,
            payment_method: None,
            occurred_at: now,
            kyc_status: None,
        },
        now,
    }
}

fn status_of(received: &Received) -> String {
    let body: serde_json::Value = serde_json::from_slice(&received.body).expect("json body");
    body["status"].as_str().expect("status").to_owned()
}

async fn delivers_in_order_within_a_second<S: Store>(store: S) {
    let mut world = World::start(store, true).await;
    let committed = Wall.now();
    let id = world
        .transaction(&[TxStatus::Processing, TxStatus::Completed])
        .await;
    let first = world.receiver.next().await;
    let second = world.receiver.next().await;
    for (received, status) in [(&first, "processing"), (&second, "completed")] {
        assert_eq!(status_of(received), status, "in commit order");
        assert!(
            verifies(received, SECRET),
            "signature verifies: {received:?}"
        );
        assert_eq!(received.path, "/hook");
        let lag = received.at.unix_micros() - committed.unix_micros();
        assert!(
            lag < 1_000_000,
            "first attempt within a second of the commit: {lag} µs"
        );
    }
    assert_ne!(first.id, second.id, "one webhook-id per event");
    world.receiver.nothing_for(Duration::from_millis(300)).await;
    assert_eq!(
        world.state_of(id).await,
        [(DeliveryState::Delivered, 1), (DeliveryState::Delivered, 1)]
    );
    world.stop().await;
}

async fn retries_until_a_2xx_and_holds_back_later_events<S: Store>(store: S) {
    let mut world = World::start(store, true).await;
    world.receiver.script(&[
        Reply::Status(500),
        Reply::Slow(Duration::from_millis(800)),
        Reply::Redirect,
        Reply::Status(200),
    ]);
    let id = world
        .transaction(&[TxStatus::Processing, TxStatus::Completed])
        .await;
    let tries: Vec<Received> = vec![
        world.receiver.next().await,
        world.receiver.next().await,
        world.receiver.next().await,
        world.receiver.next().await,
    ];
    for received in &tries {
        assert_eq!(status_of(received), "processing", "the later event waits");
        assert_eq!(
            received.id, tries[0].id,
            "the same webhook-id on every attempt"
        );
        assert_eq!(
            received.body, tries[0].body,
            "the same body on every attempt"
        );
        assert!(verifies(received, SECRET));
        assert_eq!(received.path, "/hook", "the redirect was not followed");
    }
    let completed = world.receiver.next().await;
    assert_eq!(status_of(&completed), "completed");
    let listed = world.deliveries_of(id).await;
    let processing = listed.first().expect("two deliveries");
    assert_eq!(
        (processing.state, processing.attempts),
        (DeliveryState::Delivered, 4),
        "500, timeout and 302 were failures"
    );
    world.stop().await;
}

async fn abandons_after_the_horizon_then_an_operator_requeues<S: Store>(store: S) {
    let mut world = World::start(store, true).await;
    world.receiver.script(&[Reply::Status(503); 64]);
    let id = world.transaction(&[TxStatus::Processing]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = world.state_of(id).await;
        if state
            .first()
            .is_some_and(|(s, _)| *s == DeliveryState::Failed)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "abandoned in time: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tried = world.state_of(id).await[0].1;
    assert!(tried >= 2, "retried before giving up ({tried} attempts)");
    while world.receiver.received.try_recv().is_ok() {}
    world.receiver.script.lock().expect("script").clear();
    let delivery = world.deliveries_of(id).await[0].id;
    assert!(
        world
            .store
            .requeue(delivery, Wall.now())
            .await
            .expect("requeue")
    );
    let again = world.receiver.next().await;
    assert_eq!(status_of(&again), "processing");
    world.stop().await;
}

async fn loopback_is_refused_without_an_allowance<S: Store>(store: S) {
    let mut world = World::start(store, false).await;
    let id = world.transaction(&[TxStatus::Processing]).await;
    world.receiver.nothing_for(Duration::from_millis(500)).await;
    let listed = world.deliveries_of(id).await;
    let result = listed[0].last_result.clone().unwrap_or_default();
    assert!(result.starts_with("refused:"), "{result}");
    assert!(listed[0].attempts >= 1);
    world.stop().await;
}

macro_rules! on_both_stores {
    ($($case:ident),* $(,)?) => {
        mod on_mem {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::MemStore::new()).await;
                }
            )*
        }
        mod on_pg {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(store) = super::pg_store().await else { return };
                    super::$case(store).await;
                }
            )*
        }
    };
}

async fn pg_store() -> Option<PgStore> {
    let database = TestDatabase::create().await?;
    let store = PgStore::connect(database.config())
        .await
        .expect("PgStore connects")
        .keep_alive(database);
    Some(store)
}

on_both_stores!(
    delivers_in_order_within_a_second,
    retries_until_a_2xx_and_holds_back_later_events,
    abandons_after_the_horizon_then_an_operator_requeues,
    loopback_is_refused_without_an_allowance,
);

/// Two instances (two stores and two dispatchers on one database): 20
/// transactions with two events each all arrive, none twice, each
/// transaction's in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_deliver_every_event_once() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let connect = || async {
        PgStore::connect(database.config())
            .await
            .expect("PgStore connects")
    };
    let mut world = World::start(connect().await, true).await;
    let second = Arc::new(connect().await);
    let (stop_other, other_dispatched) = spawn_dispatcher(Arc::clone(&second), true, 1 << 40);
    let mut expected = std::collections::HashMap::new();
    for n in 0..20 {
        let session = sample_session(&world.partner, &format!("u{n}"), "u@example.com", n);
        let id = session.merchant_transaction_id;
        world.store.insert_session(&session).await.expect("insert");
        expected.insert(id.hyphenated().to_string(), n);
    }
    // The changes commit through both instances, interleaved.
    for status in [TxStatus::Processing, TxStatus::Completed] {
        for (i, id) in expected.keys().enumerate() {
            let id: Uuid = id.parse().expect("uuid");
            if i % 2 == 0 {
                world.change(id, status).await;
            } else {
                let plan = change_now(id, status);
                second.apply_provider_event(&plan).await.expect("apply");
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut per_transaction: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    for _ in 0..40 {
        let received = world.receiver.next().await;
        assert!(
            seen.insert(received.id.clone()),
            "{} arrived twice",
            received.id
        );
        assert!(verifies(&received, SECRET));
        let body: serde_json::Value = serde_json::from_slice(&received.body).expect("json");
        let id = body["merchant_transaction_id"]
            .as_str()
            .expect("id")
            .to_owned();
        per_transaction
            .entry(id)
            .or_default()
            .push(status_of(&received));
    }
    world.receiver.nothing_for(Duration::from_millis(500)).await;
    assert_eq!(per_transaction.len(), 20);
    for (id, statuses) in &per_transaction {
        assert!(expected.contains_key(id));
        assert_eq!(statuses, &["processing", "completed"], "{id} in order");
    }
    let _ = stop_other.send(());
    other_dispatched.await.expect("second dispatcher");
    world.stop().await;
}

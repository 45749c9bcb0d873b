//! The binary on PostgreSQL: several instances behaving as one, no
//! acknowledged write lost to a SIGKILL, and recovery from a database outage
//! without a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use session_core::client_token::TokenDigest;
use session_core::ports::SessionStore;
use session_store_pg::PgStore;
use session_store_pg::testing::{Mode, Proxy, TestDatabase, through, upstream};
use tokio::sync::Mutex;

use crate::support::{Bootstrap, LOOPBACK, Server, create_seed_session, request, start};

const TOKEN: &str = "ct_test_e2e-postgres-token-0123456789abcdefghijklmnop";

/// A server on `database_url` with the partner of `bootstrap`, unlimited:
/// these tests load it as hard as they can to see what three instances, a
/// crash or an outage do (request budgets have tests of their own).
async fn start_on(database_url: &str, bootstrap: &Bootstrap) -> Server {
    let path = bootstrap.path();
    let args: Vec<&str> = [
        "serve",
        "--database-url",
        database_url,
        "--bootstrap",
        &path,
        "--default-rate-limit",
        "0",
    ]
    .into_iter()
    .chain(LOOPBACK)
    .collect();
    start(&args).await
}

async fn status_of(addr: SocketAddr, token: &str, id: &str) -> u16 {
    let auth = format!("Bearer {token}");
    match request(
        addr,
        "GET",
        &format!("/widget/transactions/{id}"),
        &[("authorization", &auth)],
        "",
    )
    .await
    {
        Ok(response) => response.status,
        Err(_) => 0,
    }
}

/// Polls until `check` holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_behave_as_one() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let bootstrap = Bootstrap::write(TOKEN);
    // Started together: migrations and bootstrap race on a fresh database.
    let (a, b, c) = tokio::join!(
        start_on(database.url(), &bootstrap),
        start_on(database.url(), &bootstrap),
        start_on(database.url(), &bootstrap)
    );
    let instances = [a.public, b.public, c.public];

    let mut ids = Vec::new();
    for addr in instances {
        let created = create_seed_session(addr, TOKEN).await.expect("create");
        assert_eq!(created.status, 200, "{}", created.body);
        ids.push(
            created.json()["merchant_transaction_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    for id in &ids {
        for addr in instances {
            assert_eq!(
                status_of(addr, TOKEN, id).await,
                200,
                "session {id} visible through {addr}"
            );
        }
    }

    // Rotate through the CLI, in another process, with no grace period.
    let old_id = TokenDigest::of(TOKEN).short_id();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_session-server"))
        .args([
            "partners",
            "--database-url",
            database.url(),
            "--json",
            "token",
            "rotate",
            "acme",
            &old_id,
            "--grace",
            "0",
            "--env",
            "test",
        ])
        .output()
        .await
        .expect("run the CLI");
    assert!(
        output.status.success(),
        "rotate failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rotated: serde_json::Value = serde_json::from_slice(&output.stdout).expect("CLI JSON");
    let new_token = rotated["token"]
        .as_str()
        .expect("the new token is printed once")
        .to_owned();

    for addr in instances {
        let new_works = eventually(Duration::from_secs(2), || async {
            status_of(addr, &new_token, &ids[0]).await == 200
        })
        .await;
        assert!(new_works, "the new token works on {addr} without a restart");
        let old_refused = eventually(Duration::from_secs(2), || async {
            status_of(addr, TOKEN, &ids[0]).await == 401
        })
        .await;
        assert!(
            old_refused,
            "the rotated-out token is refused on {addr} without a restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_session() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let bootstrap = Bootstrap::write(TOKEN);
    let mut server = start_on(database.url(), &bootstrap).await;
    let addr = server.public;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let acknowledged = Arc::clone(&acknowledged);
            tokio::spawn(async move {
                // Until the server dies: a refused or cut connection ends the loop.
                while let Ok(response) = create_seed_session(addr, TOKEN).await {
                    if response.status == 200
                        && let Some(id) = serde_json::from_str::<serde_json::Value>(&response.body)
                            .ok()
                            .and_then(|body| {
                                body["merchant_transaction_id"].as_str().map(str::to_owned)
                            })
                    {
                        acknowledged.lock().await.push(id);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.child.start_kill().expect("SIGKILL");
    let _ = server.child.wait().await;
    for client in clients {
        let _ = client.await;
    }

    let ids = acknowledged.lock().await.clone();
    eprintln!("{} sessions were acknowledged before SIGKILL", ids.len());
    assert!(
        ids.len() > 50,
        "the stream was running when the process died ({} sessions)",
        ids.len()
    );
    let store = PgStore::connect(database.config())
        .await
        .expect("reader connects");
    let mut missing = Vec::new();
    for id in &ids {
        let id = uuid::Uuid::parse_str(id).expect("uuid");
        if store.session(id).await.expect("read").is_none() {
            missing.push(id);
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged sessions are missing: {missing:?}",
        missing.len(),
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_the_service_recovers_by_itself() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let Some(server_addr) = upstream(database.url()) else {
        return;
    };
    let proxy = Proxy::start(server_addr).await;
    let proxied = through(database.url(), proxy.addr).expect("TCP connection string");
    let bootstrap = Bootstrap::write(TOKEN);
    let server = start_on(&proxied, &bootstrap).await;
    let (addr, admin) = (server.public, server.admin);

    let running = Arc::new(AtomicBool::new(true));
    // (phase, status, code) -> count
    let seen = Arc::new(Mutex::new(
        BTreeMap::<(&'static str, u16, String), usize>::new(),
    ));
    let phase = Arc::new(std::sync::Mutex::new("before"));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (running, seen, phase) =
                (Arc::clone(&running), Arc::clone(&seen), Arc::clone(&phase));
            tokio::spawn(async move {
                while running.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let response = create_seed_session(addr, TOKEN)
                        .await
                        .expect("the service itself stays up");
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "a request hung for {:?}",
                        started.elapsed()
                    );
                    let code = serde_json::from_str::<serde_json::Value>(&response.body)
                        .ok()
                        .and_then(|body| body["code"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    let now = *phase
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    *seen
                        .lock()
                        .await
                        .entry((now, response.status, code))
                        .or_default() += 1;
                }
            })
        })
        .collect();
    let set_phase = |name| {
        *phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = name
    };

    tokio::time::sleep(Duration::from_millis(700)).await;
    set_phase("down");
    proxy.set(Mode::Cut);
    let red = eventually(Duration::from_secs(5), || async {
        request(admin, "GET", "/readyz", &[], "")
            .await
            .is_ok_and(|r| r.status == 503)
    })
    .await;
    assert!(red, "/readyz goes red while the database is unreachable");
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_phase("recovering");
    proxy.set(Mode::Open);
    let green = eventually(Duration::from_secs(15), || async {
        request(admin, "GET", "/readyz", &[], "")
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(green, "/readyz turns green again without a restart");
    set_phase("after");
    tokio::time::sleep(Duration::from_millis(700)).await;
    running.store(false, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client");
    }

    let seen = seen.lock().await.clone();
    eprintln!("answers by phase: {seen:?}");
    for ((phase, status, code), count) in &seen {
        let documented = *status == 200 || (*status == 503 && code == "store_unavailable");
        assert!(
            documented,
            "undocumented answer while {phase}: {status} {code} ({count}x); all: {seen:?}"
        );
    }
    let count = |wanted_phase: &str, wanted_status: u16| {
        seen.iter()
            .filter(|((p, s, _), _)| *p == wanted_phase && *s == wanted_status)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    assert!(count("before", 200) > 0, "{seen:?}");
    assert!(count("down", 503) > 0, "the outage was observed: {seen:?}");
    assert!(
        count("after", 200) > 0,
        "success resumed without a restart: {seen:?}"
    );
    assert_eq!(
        count("after", 503),
        0,
        "no failures once recovered: {seen:?}"
    );
}

/// With `RUST_LOG` at debug or trace, the PostgreSQL driver would log statement
/// parameters: signing secrets, the init-token key, end users' emails. The
/// server caps such dependencies whatever `RUST_LOG` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_at_debug_or_trace() {
    const SIGNING_SECRET: &str = "signing-secret-that-must-never-be-logged";
    /// Base64 of "webhook-secret-that-must-never-be-logged".
    const WEBHOOK_SECRET: &str = "whsec_d2ViaG9vay1zZWNyZXQtdGhhdC1tdXN0LW5ldmVyLWJlLWxvZ2dlZA==";
    const EMAIL: &str = "never-logged-user@example.com";
    const PROVIDER_SECRET: &str = "provider-secret-that-must-never-be-logged";
    for filter in ["debug", "trace"] {
        let Some(database) = TestDatabase::create().await else {
            return;
        };
        let bootstrap = Bootstrap::write_with(
            TOKEN,
            &format!(
                "signing_secret = \"{SIGNING_SECRET}\"\n\
                 webhook_url = \"https://hooks.acme.example/proof\"\n\
                 webhook_secret = \"{WEBHOOK_SECRET}\""
            ),
        );
        let path = bootstrap.path();
        let args: Vec<&str> = [
            "serve",
            "--database-url",
            database.url(),
            "--bootstrap",
            &path,
            "--provider-secret",
            PROVIDER_SECRET,
        ]
        .into_iter()
        .chain(LOOPBACK)
        .collect();
        let mut server = crate::support::start_logging(&args, filter).await;
        let auth = format!("Bearer {TOKEN}");
        let body = format!(
            r#"{{"partner_user_id":"user-123","user_email":"{EMAIL}","network":"TRC20","currency":"USDT","amount":"100","client_ip":"203.0.113.42"}}"#
        );
        let created = request(
            server.public,
            "POST",
            "/widget/session",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            &body,
        )
        .await
        .expect("create");
        assert_eq!(created.status, 200, "{}", created.body);
        let session = created.json();
        let init_token = session["init_token"]
            .as_str()
            .expect("init token")
            .to_owned();
        let fields = session_core::request::INIT_SCHEMA.required.iter();
        let init: serde_json::Map<String, serde_json::Value> = fields
            .map(|field| ((*field).to_owned(), session[*field].clone()))
            .collect();
        let redeemed = request(
            server.public,
            "POST",
            "/widget/init",
            &[("content-type", "application/json")],
            &serde_json::Value::Object(init).to_string(),
        )
        .await
        .expect("init");
        assert_eq!(redeemed.status, 200, "{}", redeemed.body);
        // A status change: its webhook is signed with the webhook secret and
        // attempted (the endpoint cannot be reached from here).
        let id = session["merchant_transaction_id"].as_str().expect("id");
        let event = format!(
            r#"{{"event_id":"ev-log","merchant_transaction_id":"{id}","status":"processing"}}"#
        );
        let signature = session_core::provider::ProviderKey::new(
            &session_core::secret::Secret::new(PROVIDER_SECRET),
        )
        .expect("provider key")
        .sign_hex(event.as_bytes());
        let applied = request(
            server.public,
            "POST",
            "/provider/events",
            &[
                ("content-type", "application/json"),
                ("x-signature", &signature),
            ],
            &event,
        )
        .await
        .expect("provider event");
        assert_eq!(applied.status, 200, "{}", applied.body);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.logs().contains("webhook attempt") {
            assert!(Instant::now() < deadline, "a webhook attempt is logged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        crate::support::terminate(&server.child);
        let _ = tokio::time::timeout(Duration::from_secs(10), server.child.wait()).await;
        // Let the reader take the last lines off the pipe.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let store = PgStore::connect(database.config())
            .await
            .expect("reader connects");
        let init_token_key = store
            .service_secret(
                "init_token_key",
                &session_core::secret::Secret::new("unused-candidate-unused-candidate"),
            )
            .await
            .expect("stored key");
        let logs = server.logs();
        assert!(
            logs.contains("\"DEBUG\""),
            "RUST_LOG={filter} is honoured for the service's own lines"
        );
        for (what, secret) in [
            ("signing secret", SIGNING_SECRET),
            ("webhook secret", WEBHOOK_SECRET),
            ("webhook key", WEBHOOK_SECRET.trim_start_matches("whsec_")),
            ("provider secret", PROVIDER_SECRET),
            ("client token", TOKEN),
            ("init-token key", init_token_key.expose()),
            ("init token", init_token.as_str()),
            ("email", EMAIL),
        ] {
            assert!(
                !logs.contains(secret),
                "RUST_LOG={filter}: the {what} appears in the logs"
            );
        }
    }
}

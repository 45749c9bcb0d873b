//! The binary in its in-memory modes: dev banner, bootstrap, draining.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Bootstrap, LOOPBACK, Server, create_seed_session, request, start, terminate};

/// The demo client token the dev banner printed.
fn demo_token(server: &Server) -> &str {
    server
        .stdout
        .split_whitespace()
        .find(|word| word.starts_with("ct_test_"))
        .map(|word| word.trim_matches('\''))
        .expect("the banner prints the demo token")
}

#[tokio::test]
async fn dev_mode_prints_a_token_and_a_curl_line_that_works() {
    let args: Vec<&str> = ["serve", "--dev"].into_iter().chain(LOOPBACK).collect();
    let server = start(&args).await;
    assert!(
        server.stdout.contains("curl -s -X POST http://"),
        "banner shows a curl line: {}",
        server.stdout
    );
    let token = demo_token(&server);
    let response = create_seed_session(server.public, token)
        .await
        .expect("request");
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json().as_object().map(|o| o.len()), Some(22));
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("x-request-id: "),
        "{}",
        response.head
    );
    let ready = request(server.admin, "GET", "/readyz", &[], "")
        .await
        .expect("readyz");
    assert_eq!(ready.status, 200);
}

/// A newcomer recomputes the signature of docs/signing.md from what the
/// banner printed.
#[tokio::test]
async fn dev_mode_prints_the_signing_secret_that_signs_sessions() {
    let args: Vec<&str> = ["serve", "--dev"].into_iter().chain(LOOPBACK).collect();
    let server = start(&args).await;
    let secret = server
        .stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("signing secret"))
        .and_then(|rest| rest.split_whitespace().last())
        .unwrap_or_else(|| panic!("the banner prints the signing secret: {}", server.stdout))
        .to_owned();
    let session = create_seed_session(server.public, demo_token(&server))
        .await
        .expect("create")
        .json();
    let text = |field: &str| session[field].as_str().unwrap_or_default().to_owned();
    let (id, address, widget_id) = (
        text("merchant_transaction_id"),
        text("address"),
        text("widget_id"),
    );
    let fields = session_core::signing::SignedFields {
        merchant_transaction_id: &id,
        address: &address,
        client_ip: "203.0.113.42",
        currency: "USDT",
        network: "TRC20",
        amount: "100",
        tx_type: "buy",
        widget_id: &widget_id,
    };
    let key = session_core::signing::SigningKey::new(
        "k1",
        session_core::secret::Secret::new(secret.as_str()),
        None,
    )
    .expect("a non-empty secret");
    let recomputed = key.sign(session_core::signing::SignatureScheme::HmacSha512, &fields);
    assert_eq!(recomputed.as_str(), text("signature"));
}

/// A deployment that lost its configuration must not come up as a demo
/// partner with a printed token on a public address.
#[tokio::test]
async fn nothing_configured_on_a_public_address_refuses_to_start() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_session-server"))
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env_remove("SESSION_DATABASE_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "refused: {stdout}");
    assert!(stderr.contains("--dev"), "{stderr}");
    assert!(!stdout.contains("ct_test_"), "no demo token: {stdout}");

    // Said explicitly, dev mode runs anywhere.
    let server = start(&[
        "serve",
        "--dev",
        "--listen",
        "0.0.0.0:0",
        "--admin-listen",
        "127.0.0.1:0",
    ])
    .await;
    assert!(server.stdout.contains("ct_test_"), "{}", server.stdout);
}

#[tokio::test]
async fn bootstrap_partners_authenticate() {
    let token = "ct_test_bootstrapbootstrapbootstrapbootstrap01234567";
    let bootstrap = Bootstrap::write(token);
    let path = bootstrap.path();
    let args: Vec<&str> = ["serve", "--store", "mem", "--bootstrap", &path]
        .into_iter()
        .chain(LOOPBACK)
        .collect();
    let server = start(&args).await;
    assert!(
        !server.stdout.contains("ct_test_"),
        "no dev banner outside dev mode"
    );
    let response = create_seed_session(server.public, token)
        .await
        .expect("request");
    assert_eq!(response.status, 200, "{}", response.body);
}

/// A bootstrap `rate_limit` and `--default-rate-limit` reach the running
/// server: a budget of one a second with a burst of 2 admits two quick
/// requests and refuses the next with 429 and `Retry-After`. (The behaviour
/// itself is tested through the HTTP layer in `session-http`.)
#[tokio::test]
async fn the_bootstrap_rate_limit_reaches_the_server() {
    let token = "ct_test_ratelimitratelimitratelimitratelimit01234567";
    let bootstrap = Bootstrap::write_with(token, "rate_limit = { per_second = 1, burst = 2 }");
    let path = bootstrap.path();
    let args: Vec<&str> = [
        "serve",
        "--store",
        "mem",
        "--bootstrap",
        &path,
        "--default-rate-limit",
        "0",
    ]
    .into_iter()
    .chain(LOOPBACK)
    .collect();
    let server = start(&args).await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..3 {
        let response = create_seed_session(server.public, token)
            .await
            .expect("request");
        statuses.push(response.status);
        if response.status == 429 {
            refused = Some(response);
        }
    }
    // A machine stalled for a whole second would have refilled one request.
    if started.elapsed() < Duration::from_secs(1) {
        assert_eq!(statuses, [200, 200, 429]);
        let head = refused.expect("refused").head.to_ascii_lowercase();
        for line in ["retry-after: 1", "ratelimit-policy: \"default\";q=2;w=2"] {
            assert!(head.lines().any(|l| l == line), "{line} in {head}");
        }
    }
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let args: Vec<&str> = ["serve", "--dev"].into_iter().chain(LOOPBACK).collect();
    let mut server = start(&args).await;
    terminate(&server.child);
    let status = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .expect("exits in time")
        .expect("status");
    assert!(status.success(), "exit status {status:?}");
}

/// A live subscriber is told the instance is going (close 1001), and the
/// process still exits cleanly.
#[tokio::test]
async fn sigterm_closes_websockets_with_1001() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let args: Vec<&str> = ["serve", "--dev"].into_iter().chain(LOOPBACK).collect();
    let mut server = start(&args).await;
    let token = demo_token(&server).to_owned();
    let created = create_seed_session(server.public, &token)
        .await
        .expect("request");
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.json()["merchant_transaction_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut request = format!("ws://{}/ws?tx_id={id}", server.public)
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let stream = TcpStream::connect(server.public).await.expect("connect");
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgrade");
    let first = tokio::time::timeout(Duration::from_secs(1), socket.next())
        .await
        .expect("the current state at once");
    assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");

    terminate(&server.child);
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(closed, Some(CloseCode::Away));
    drop(socket);
    let status = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .expect("exits in time")
        .expect("status");
    assert!(status.success(), "exit status {status:?}");
}

/// A load balancer must see the instance leave: while the public listener
/// finishes a slow request after SIGTERM, the admin /readyz answers 503.
#[tokio::test]
async fn readyz_answers_503_draining_while_the_public_listener_drains() {
    let args: Vec<&str> = ["serve", "--dev"].into_iter().chain(LOOPBACK).collect();
    let mut server = start(&args).await;
    let token = demo_token(&server).to_owned();
    let body = r#"{"partner_user_id":"user-123","user_email":"user@example.com","network":"TRC20","currency":"USDT","amount":"100"}"#;
    // A request whose body is still arriving when the signal comes.
    let mut slow = TcpStream::connect(server.public).await.expect("connect");
    let head = format!(
        "POST /widget/session HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.expect("head");
    slow.write_all(&body.as_bytes()[..10])
        .await
        .expect("some of the body");
    tokio::time::sleep(Duration::from_millis(100)).await;
    terminate(&server.child);

    let mut draining = None;
    for _ in 0..100 {
        match request(server.admin, "GET", "/readyz", &[], "").await {
            Ok(answer) if answer.status == 503 => {
                draining = Some(answer);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(error) => panic!("the admin listener went away while draining: {error}"),
        }
    }
    let draining = draining.expect("/readyz turns 503 after SIGTERM");
    assert!(draining.body.contains("draining"), "{}", draining.body);
    assert_eq!(draining.json()["code"], "shutting_down");

    slow.write_all(&body.as_bytes()[10..])
        .await
        .expect("rest of the body");
    let mut answer = String::new();
    slow.read_to_string(&mut answer).await.expect("answer");
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the in-flight request completes: {answer}"
    );
    let status = tokio::time::timeout(Duration::from_secs(10), server.child.wait())
        .await
        .expect("exits after draining")
        .expect("status");
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn a_broken_configuration_fails_fast_with_a_message() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_session-server"))
        .args(["serve", "--store", "postgres"])
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--database-url"));
}

#[tokio::test]
async fn an_init_token_used_after_its_lifetime_is_gone() {
    let args: Vec<&str> = ["serve", "--dev", "--init-token-ttl", "1"]
        .into_iter()
        .chain(LOOPBACK)
        .collect();
    let server = start(&args).await;
    let token = demo_token(&server);
    let session = create_seed_session(server.public, token)
        .await
        .expect("create")
        .json();
    let fields = session_core::request::INIT_SCHEMA.required.iter();
    let init: serde_json::Map<String, serde_json::Value> = fields
        .map(|field| ((*field).to_owned(), session[*field].clone()))
        .collect();
    let body = serde_json::Value::Object(init).to_string();
    // `exp` is in whole seconds: wait past the next second boundary after expiry.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let late = request(
        server.public,
        "POST",
        "/widget/init",
        &[("content-type", "application/json")],
        &body,
    )
    .await
    .expect("init");
    assert_eq!(
        (late.status, late.json()["code"].as_str()),
        (410, Some("session_expired")),
        "{}",
        late.body
    );
}

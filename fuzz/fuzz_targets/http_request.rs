//! The public HTTP service end to end: `session_http::App` (through
//! `Handler::handle`, behind the same hyper HTTP/1.1 connection settings as
//! `session_http::serve`) on a fresh `MemStore` with four partners, reached
//! over an in-memory pipe on a paused-time runtime (see `session_fuzz::world`).
//!
//! Input is either raw bytes written to the connection (first byte odd), or up to five
//! structured requests on one keep-alive connection: method, path (the real
//! routes, `GET /ws` with or without the upgrade headers, ids of sessions
//! created earlier in the same input, or anything),
//! peer address, `Authorization` (each issued token, revoked/expired ones, or
//! raw bytes), `Content-Type`, `Origin`, `X-Forwarded-For`, `X-Request-Id`,
//! `X-Signature`, `Idempotency-Key` (a few shared keys, one of them also
//! quoted, or raw bytes), extra headers, and a body (the seed session request or an
//! init/event body for an earlier session, with field edits, or raw bytes).
//!
//! Structured inputs start with one known-good session (the seed request as
//! acme), so init bodies, events and transaction reads have a real target.
//!
//! Beyond "no panic": every answer is a valid HTTP response carrying
//! `X-Request-Id` (echoing a well-formed one); every error is a row of the
//! error matrix with a JSON body of exactly `error`, `code`, `message`, and is
//! never the 500 of a caught panic; 405 carries `Allow`; CORS headers appear
//! only on `/widget/init` answers to the widget origin. Security properties:
//! a partner route answers 200 only to an active token; a transaction is read
//! (or followed over a WebSocket, 101) only by the partner that created it; `/widget/init` answers 200 only when
//! the body presents exactly the created session's fields and signature, at
//! most once per session; a provider event is applied only with a valid
//! signature. A session answer marked `Idempotent-Replayed` repeats, byte for
//! byte, the earlier answer its partner got under that key; a key creates
//! at most one session per partner, and `idempotency_key_reused` names only
//! keys that hold an answer. Afterwards each session the input created still redeems (once)
//! with its exact fields, and a fresh connection still gets answers.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use session_core::idempotency::IdempotencyKey;
use session_fuzz::world::{Answer, ITERATION_BUDGET, World, check_error_body, runtime};
use uuid::Uuid;

const PEERS: [&str; 5] = [
    "203.0.113.9:40000",
    "10.1.2.3:40000",
    "127.0.0.1:40000",
    "[::1]:40000",
    "[::ffff:10.0.0.5]:40000",
];

const SESSION_FIELDS: [&str; 10] = [
    "partner_user_id",
    "user_email",
    "network",
    "currency",
    "amount",
    "type",
    "redirect_url",
    "client_ip",
    "address",
    "nickname",
];

const INIT_FIELDS: [&str; 9] = [
    "widget_id",
    "merchant_transaction_id",
    "init_token",
    "signature",
    "address",
    "currency",
    "network",
    "amount",
    "type",
];

const EVENT_FIELDS: [&str; 7] = [
    "crypto_amount",
    "fiat_amount",
    "fiat_currency",
    "payment_method",
    "occurred_at",
    "kyc_status",
    "event_id",
];

/// Plausible values, so edits often pass validation and reach deeper checks.
const VALUES: [&str; 16] = [
    "sell",
    "buy",
    "ERC20",
    "BTC",
    "0.000001",
    "1.1234567",
    "https://app.example.com/x",
    "http://localhost:1/",
    "::ffff:1.2.3.4",
    "2001:DB8::1",
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "TXYZabcdefghijkmnopqrstuvwxyz99999",
    "completed",
    "verified",
    "2026-11-24T10:00:00+01:00",
    "fail-db",
];

const SEED: &str = r#"{"partner_user_id":"user-123","user_email":"user@example.com","network":"TRC20","currency":"USDT","amount":"100","type":"buy","client_ip":"203.0.113.42"}"#;

#[derive(Arbitrary, Debug)]
struct Req {
    peer: u8,
    method: Method,
    path: Path,
    auth: Auth,
    content_type: ContentType,
    origin: Option<OriginChoice>,
    xff: Option<String>,
    request_id: Option<Vec<u8>>,
    signature: Option<Signature>,
    idempotency_key: Option<KeyChoice>,
    extra: Option<(String, Vec<u8>)>,
    body: Body,
}

/// Shared keys, so requests of one input meet each other's answers.
const KEYS: [&[u8]; 3] = [b"k1", b"k2", b"\"k1\""];

#[derive(Arbitrary, Debug)]
enum KeyChoice {
    Pool(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Method {
    Get,
    Post,
    Options,
    Delete,
    Head,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Path {
    Session,
    Init,
    Events,
    Transaction(Id),
    Kyc(String),
    Raw(String),
    /// `GET /ws?tx_id=<id>`, with the WebSocket upgrade headers when `true`.
    Live(Id, bool),
}

#[derive(Arbitrary, Debug)]
enum Id {
    Created(u8),
    Nil,
    Text(String),
}

#[derive(Arbitrary, Debug)]
enum Auth {
    None,
    /// acme, gated, offramp, concat, revoked, expired.
    Token(u8),
    /// A valid token under another scheme spelling or with padding.
    Spelled(u8, u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum ContentType {
    Json,
    JsonUtf8,
    None,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum OriginChoice {
    Widget,
    /// The registered origin of the token's partner.
    Partner(u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Signature {
    /// The provider's HMAC of the body actually sent.
    Valid,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Str(String),
    Pool(u8),
    Null,
    Number(i32),
    Remove,
}

#[derive(Arbitrary, Debug)]
struct Edit {
    field: u8,
    value: Value,
}

#[derive(Arbitrary, Debug)]
enum Body {
    Empty,
    Seed(Vec<Edit>),
    /// An init body for the n-th session created so far.
    Init(u8, Vec<Edit>),
    /// A provider event for the n-th session created so far.
    Event(Id, u8, Vec<Edit>),
    Raw(Vec<u8>),
}

/// A session the input created, with what a redeem must present.
struct Created {
    id: Uuid,
    partner: usize,
    response: serde_json::Value,
    redeemed: bool,
}

const PARTNERS: [&str; 4] = ["acme", "gated", "offramp", "concat"];

fn apply(object: &mut serde_json::Map<String, serde_json::Value>, fields: &[&str], edits: &[Edit]) {
    for edit in edits.iter().take(6) {
        let name = fields[usize::from(edit.field) % fields.len()];
        let value = match &edit.value {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Pool(i) => {
                serde_json::Value::String(VALUES[usize::from(*i) % VALUES.len()].to_owned())
            }
            Value::Null => serde_json::Value::Null,
            Value::Number(n) => serde_json::Value::from(*n),
            Value::Remove => {
                object.remove(name);
                continue;
            }
        };
        object.insert(name.to_owned(), value);
    }
}

/// Percent-escapes what a request target cannot carry, keeping `%` so broken
/// escapes still reach the router.
fn escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/%!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Iteration<'a> {
    world: &'a World,
    created: Vec<Created>,
    /// The answer each (partner, idempotency key) got, byte for byte.
    keyed: HashMap<(usize, String), Bytes>,
}

impl Iteration<'_> {
    fn token(&self, i: u8) -> (Option<usize>, String) {
        let t = &self.world.tokens;
        match i % 6 {
            0 => (Some(0), t.acme.clone()),
            1 => (Some(1), t.gated.clone()),
            2 => (Some(2), t.offramp.clone()),
            3 => (Some(3), t.concat.clone()),
            4 => (None, t.revoked.clone()),
            _ => (None, t.expired.clone()),
        }
    }

    fn id(&self, id: &Id) -> String {
        match id {
            Id::Created(i) if !self.created.is_empty() => self.created
                [usize::from(*i) % self.created.len()]
            .id
            .to_string(),
            Id::Created(_) | Id::Nil => Uuid::nil().to_string(),
            Id::Text(s) => escape(s),
        }
    }

    /// Builds the request, and what the checks need to know about it.
    fn build(&self, req: &Req) -> Option<(Request<Full<Bytes>>, Sent)> {
        let method = match &req.method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Options => http::Method::OPTIONS,
            Method::Delete => http::Method::DELETE,
            Method::Head => http::Method::HEAD,
            Method::Other(s) => match http::Method::from_bytes(s.as_bytes()) {
                Ok(m) if m != http::Method::CONNECT => m,
                _ => http::Method::GET,
            },
        };
        let path = match &req.path {
            Path::Session => "/widget/session".to_owned(),
            Path::Init => "/widget/init".to_owned(),
            Path::Events => "/provider/events".to_owned(),
            Path::Transaction(id) => format!("/widget/transactions/{}", self.id(id)),
            Path::Kyc(user) => format!("/widget/users/{}/kyc-status", escape(user)),
            Path::Raw(s) => format!("/{}", escape(s)),
            Path::Live(id, _) => format!("/ws?tx_id={}", self.id(id)),
        };
        let mut sent = Sent {
            partner: None,
            init_for: None,
            body: Vec::new(),
            presented_request_id: None,
            widget_origin: false,
            signed: false,
            path: path.clone(),
            query: None,
            method: method.clone(),
            idempotency_key: None,
        };
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut header = |name: &str, value: &[u8]| {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                headers.push((n, v));
            }
        };
        header("host", b"localhost");
        if let Path::Live(_, true) = &req.path {
            header("connection", b"Upgrade");
            header("upgrade", b"websocket");
            header("sec-websocket-version", b"13");
            header("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==");
        }
        match &req.auth {
            Auth::None => {}
            Auth::Token(i) => {
                let (partner, token) = self.token(*i);
                sent.partner = partner;
                header("authorization", format!("Bearer {token}").as_bytes());
            }
            Auth::Spelled(i, how) => {
                let (partner, token) = self.token(*i);
                let scheme = ["bearer", "BEARER", "Basic", "Bearer:"][usize::from(how % 4)];
                let pad = " ".repeat(usize::from(how >> 6));
                sent.partner = partner.filter(|_| how % 4 < 2);
                header(
                    "authorization",
                    format!("{scheme} {pad}{token}{pad}").as_bytes(),
                );
            }
            Auth::Raw(bytes) => header("authorization", bytes),
        }
        match &req.content_type {
            ContentType::Json => header("content-type", b"application/json"),
            ContentType::JsonUtf8 => header("content-type", b"application/json; charset=UTF-8"),
            ContentType::None => {}
            ContentType::Raw(bytes) => header("content-type", bytes),
        }
        match &req.origin {
            None => {}
            Some(OriginChoice::Widget) => {
                sent.widget_origin = true;
                header("origin", session_fuzz::WIDGET_ORIGIN.as_bytes());
            }
            Some(OriginChoice::Partner(i)) => {
                header(
                    "origin",
                    format!("https://app.{}.example", PARTNERS[usize::from(*i) % 4]).as_bytes(),
                );
            }
            Some(OriginChoice::Raw(bytes)) => header("origin", bytes),
        }
        if let Some(xff) = &req.xff {
            header("x-forwarded-for", xff.as_bytes());
        }
        if let Some(id) = &req.request_id {
            header("x-request-id", id);
            sent.presented_request_id = Some(id.clone());
        }
        if let Some(choice) = &req.idempotency_key {
            let value = match choice {
                KeyChoice::Pool(i) => KEYS[usize::from(*i) % KEYS.len()].to_vec(),
                KeyChoice::Raw(bytes) => bytes.clone(),
            };
            header("idempotency-key", &value);
            sent.idempotency_key = Some(value);
        }
        if let Some((name, value)) = &req.extra {
            let lower = name.to_ascii_lowercase();
            let framing = [
                "content-length",
                "transfer-encoding",
                "upgrade",
                "expect",
                "te",
                "host",
                // Sent (and tracked) as its own field.
                "idempotency-key",
            ];
            if !framing.contains(&lower.as_str()) {
                header(name, value);
            }
        }
        let body: Vec<u8> = match &req.body {
            Body::Empty => Vec::new(),
            Body::Raw(bytes) => bytes.clone(),
            Body::Seed(edits) => {
                let mut object: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(SEED).expect("seed");
                apply(&mut object, &SESSION_FIELDS, edits);
                serde_json::to_vec(&object).expect("json")
            }
            Body::Init(i, edits) => {
                if self.created.is_empty() {
                    Vec::new()
                } else {
                    let index = usize::from(*i) % self.created.len();
                    let mut object = init_body(&self.created[index].response);
                    apply(&mut object, &INIT_FIELDS, edits);
                    sent.init_for = Some(index);
                    serde_json::to_vec(&object).expect("json")
                }
            }
            Body::Event(id, status, edits) => {
                let mut object = serde_json::Map::new();
                object.insert("event_id".into(), format!("evt-{status}").into());
                object.insert("merchant_transaction_id".into(), self.id(id).into());
                let statuses = ["pending", "processing", "completed", "failed", "cancelled"];
                object.insert("status".into(), statuses[usize::from(*status) % 5].into());
                apply(&mut object, &EVENT_FIELDS, edits);
                serde_json::to_vec(&object).expect("json")
            }
        };
        match &req.signature {
            None => {}
            Some(Signature::Valid) => {
                sent.signed = true;
                header(
                    "x-signature",
                    self.world.provider.sign_hex(&body).as_bytes(),
                );
            }
            Some(Signature::Raw(bytes)) => header("x-signature", bytes),
        }
        let mut request = Request::builder().method(method).uri(path.as_str());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        sent.body = body.clone();
        let request = request.body(Full::new(Bytes::from(body))).ok()?;
        request.uri().path().clone_into(&mut sent.path);
        sent.query = request.uri().query().map(str::to_owned);
        Some((request, sent))
    }
}

/// What a structured request carried, for the checks on its answer.
struct Sent {
    /// The partner whose active token was presented (well-formed header).
    partner: Option<usize>,
    init_for: Option<usize>,
    body: Vec<u8>,
    presented_request_id: Option<Vec<u8>>,
    widget_origin: bool,
    signed: bool,
    /// The URI's path, as the server routes it.
    path: String,
    query: Option<String>,
    method: http::Method,
    /// The `Idempotency-Key` header's value, when one was sent.
    idempotency_key: Option<Vec<u8>>,
}

fn init_body(created: &serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    INIT_FIELDS
        .iter()
        .map(|name| ((*name).to_owned(), created[*name].clone()))
        .collect()
}

/// Checks every answer must pass, whatever was asked.
fn check_common(answer: &Answer, presented_request_id: Option<&[u8]>) {
    let request_id = answer
        .header("x-request-id")
        .expect("every answer carries X-Request-Id");
    let valid = |id: &[u8]| {
        (1..=128).contains(&id.len())
            && id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(b))
    };
    match presented_request_id {
        Some(id) if valid(id) => assert_eq!(
            request_id.as_bytes(),
            id,
            "well-formed request id not echoed"
        ),
        _ => assert!(
            valid(request_id.as_bytes()),
            "minted request id {request_id:?}"
        ),
    }
    if answer.status >= 400 {
        check_error_body(answer.status, answer.header("content-type"), &answer.body);
    } else {
        assert!(
            matches!(answer.status, 101 | 200 | 204),
            "unexpected status {}",
            answer.status
        );
    }
    if answer.status == 405 {
        assert!(answer.header("allow").is_some(), "405 without Allow");
    }
}

fn check_structured(it: &mut Iteration<'_>, sent: &Sent, answer: &Answer) {
    if session_fuzz::trace() {
        eprintln!(
            "> {} {} {}\n< {} {}",
            sent.method,
            sent.path,
            String::from_utf8_lossy(&sent.body),
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
    if sent.method == http::Method::HEAD {
        // No body comes back for HEAD: only the head can be checked.
        assert!(answer.header("x-request-id").is_some());
        assert!(answer.status == 200 || answer.status >= 400);
        return;
    }
    check_common(answer, sent.presented_request_id.as_deref());
    let cors = answer.header("access-control-allow-origin");
    if sent.path != "/widget/init" {
        assert_eq!(cors, None, "CORS header on {}", sent.path);
    } else if let Some(origin) = cors {
        assert!(
            sent.widget_origin && origin == session_fuzz::WIDGET_ORIGIN,
            "CORS for {origin}"
        );
    }
    if answer.status == 101 {
        // A WebSocket only for the partner that owns the transaction, with an
        // active token.
        let partner = sent
            .partner
            .expect("a WebSocket opened without an active token");
        let id = sent
            .query
            .as_deref()
            .and_then(|query| query.strip_prefix("tx_id="))
            .and_then(|id| Uuid::try_parse(id).ok());
        let owner = it
            .created
            .iter()
            .find(|c| Some(c.id) == id)
            .map(|c| c.partner);
        assert_eq!(
            (sent.method.as_str(), sent.path.as_str(), owner),
            ("GET", "/ws", Some(partner)),
            "partner {} followed {}?{:?} over a WebSocket",
            PARTNERS[partner],
            sent.path,
            sent.query
        );
        return;
    }
    // The partner and key an answer may be kept under.
    let slot = sent.partner.zip(
        sent.idempotency_key
            .as_deref()
            .and_then(|raw| IdempotencyKey::parse(raw).ok())
            .map(|key| key.as_str().to_owned()),
    );
    if answer.status == 409 && answer.json()["code"] == "idempotency_key_reused" {
        let slot = slot
            .as_ref()
            .expect("idempotency_key_reused without a valid key and token");
        assert!(
            it.keyed.contains_key(slot),
            "idempotency_key_reused for a key that holds no answer"
        );
    }
    if answer.status != 200 {
        return;
    }
    let replayed = answer.header("idempotent-replayed") == Some("true");
    if replayed {
        // Other routes ignore the header.
        assert_eq!(
            (sent.method.as_str(), sent.path.as_str()),
            ("POST", "/widget/session"),
            "only session creation replays"
        );
    }
    if replayed {
        let slot = slot.expect("a replay without a valid key and token");
        let earlier = it
            .keyed
            .get(&slot)
            .expect("a replay of an answer never given");
        assert_eq!(
            &answer.body, earlier,
            "a replay differs from the answer it repeats"
        );
        return;
    }
    let json = answer.json();
    match (sent.method.as_str(), sent.path.as_str()) {
        ("POST", "/widget/session") => {
            let partner = sent
                .partner
                .expect("a session was created without an active token");
            if let Some(slot) = slot {
                let first = it.keyed.insert(slot, answer.body.clone());
                assert!(first.is_none(), "a key created a second session");
            }
            let id = json["merchant_transaction_id"]
                .as_str()
                .and_then(|s| Uuid::try_parse(s).ok());
            let id = id.expect("created session has an id");
            assert_eq!(
                json.as_object().map(serde_json::Map::len),
                Some(22),
                "seed page has 22 fields"
            );
            it.created.push(Created {
                id,
                partner,
                response: json,
                redeemed: false,
            });
        }
        ("POST", "/widget/init") => {
            let index = sent
                .init_for
                .expect("init redeemed without a created session's body");
            let created = &mut it.created[index];
            assert!(!created.redeemed, "init token redeemed twice");
            let presented: serde_json::Value = serde_json::from_slice(&sent.body).expect("body");
            for name in INIT_FIELDS {
                let (p, c) = (&presented[name], &created.response[name]);
                let same = if name.ends_with("_id") {
                    p.as_str().and_then(|s| Uuid::try_parse(s).ok())
                        == c.as_str().and_then(|s| Uuid::try_parse(s).ok())
                } else {
                    p == c
                };
                assert!(same, "init accepted with {name} = {p} (session has {c})");
            }
            created.redeemed = true;
        }
        ("POST", "/provider/events") => {
            assert!(
                sent.signed,
                "provider event applied without a valid signature"
            );
        }
        ("GET", path) if path.starts_with("/widget/transactions/") => {
            let partner = sent
                .partner
                .expect("transaction read without an active token");
            let id = json["merchant_transaction_id"]
                .as_str()
                .and_then(|s| Uuid::try_parse(s).ok());
            let owner = it
                .created
                .iter()
                .find(|c| Some(c.id) == id)
                .map(|c| c.partner);
            assert_eq!(
                owner,
                Some(partner),
                "partner {} read another partner's transaction",
                PARTNERS[partner]
            );
        }
        ("GET", _) => {
            assert!(
                sent.partner.is_some(),
                "KYC status read without an active token"
            );
        }
        _ => {}
    }
}

/// Parses what the server wrote for raw input: zero or more whole HTTP/1.1
/// responses, each checked like a structured one. Responses hyper makes
/// itself (bad request line and the like) carry no request id and no body.
fn check_raw(mut out: &[u8]) {
    if session_fuzz::trace() {
        eprintln!("< {}", String::from_utf8_lossy(out));
    }
    while !out.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head = match response.parse(out) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "server wrote a broken response head ({other:?}): {:?}",
                String::from_utf8_lossy(out)
            ),
        };
        let status = response.code.expect("status");
        let mut map = http::HeaderMap::new();
        for h in response.headers.iter() {
            map.append(
                HeaderName::from_bytes(h.name.as_bytes()).expect("name"),
                HeaderValue::from_bytes(h.value).expect("value"),
            );
        }
        let length: usize = map
            .get("content-length")
            .map(|v| v.to_str().expect("ascii").parse().expect("number"))
            .unwrap_or(0);
        assert!(
            map.get("transfer-encoding").is_none(),
            "chunked answers are not expected"
        );
        // A HEAD answer has a Content-Length but no body; the next response
        // (if any) starts right away.
        let rest = &out[head..];
        let body_len =
            if rest.len() < length || rest[..length.min(rest.len())].starts_with(b"HTTP/1.1 ") {
                0
            } else {
                length
            };
        let answer = Answer {
            status,
            headers: map,
            body: Bytes::copy_from_slice(&rest[..body_len]),
        };
        if answer.header("x-request-id").is_some() {
            if body_len == length {
                check_common(&answer, None);
            }
        } else {
            // hyper's own answers: 100 Continue, or a bare 4xx/5xx for a
            // request it could not parse.
            assert!(
                (status == 100 || status >= 400) && body_len == 0,
                "hyper answered {status} with a body"
            );
        }
        out = &rest[body_len..];
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte odd: the rest is written to the connection as it is. Even:
    // the rest is decoded (by `arbitrary`) into structured requests.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    runtime().block_on(async {
        let outcome = tokio::time::timeout(ITERATION_BUDGET, async {
            let world = World::new().await;
            let mut it = Iteration {
                world: &world,
                created: Vec::new(),
                keyed: HashMap::new(),
            };
            if mode & 1 == 1 {
                let peer: SocketAddr = PEERS[0].parse().expect("peer");
                let out = world.raw(peer, rest).await;
                check_raw(&out);
            } else {
                let requests =
                    Vec::<Req>::arbitrary_take_rest(Unstructured::new(rest)).unwrap_or_default();
                // One known-good session first, so the fuzzed requests can
                // name a real session (init bodies, events, transaction ids)
                // without having to create one themselves.
                let opening = Request::post("/widget/session")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {}", world.tokens.acme))
                    .body(Full::new(Bytes::from_static(SEED.as_bytes())))
                    .expect("request");
                let peer: SocketAddr = PEERS[0].parse().expect("peer");
                let answers = world.exchange(peer, vec![opening]).await;
                let answer = answers.first().expect("opening answered");
                assert_eq!(answer.status, 200, "the seed request must create a session");
                let sent = Sent {
                    partner: Some(0),
                    init_for: None,
                    body: SEED.as_bytes().to_vec(),
                    presented_request_id: None,
                    widget_origin: false,
                    signed: false,
                    path: "/widget/session".into(),
                    query: None,
                    method: http::Method::POST,
                    idempotency_key: None,
                };
                check_structured(&mut it, &sent, answer);
                // One connection per request, so each can come from its own
                // peer; raw input covers keep-alive and pipelining.
                for req in requests.iter().take(5) {
                    let Some((request, sent)) = it.build(req) else {
                        continue;
                    };
                    let peer: SocketAddr = PEERS[usize::from(req.peer) % PEERS.len()]
                        .parse()
                        .expect("peer");
                    let answers = world.exchange(peer, vec![request]).await;
                    if let Some(answer) = answers.first() {
                        check_structured(&mut it, &sent, answer);
                    }
                }
            }
            // Each created session redeems exactly once with its exact fields.
            let mut seen = HashSet::new();
            for created in &it.created {
                assert!(seen.insert(created.id), "duplicate session id");
                let body = serde_json::to_vec(&init_body(&created.response)).expect("json");
                let request = Request::post("/widget/init")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let peer: SocketAddr = PEERS[0].parse().expect("peer");
                let answers = world.exchange(peer, vec![request]).await;
                let answer = answers.first().expect("redeem answered");
                check_common(answer, None);
                let expected = if created.redeemed { 409 } else { 200 };
                assert_eq!(
                    answer.status, expected,
                    "redeem of a created session: {:?}",
                    answer.body
                );
            }
            // The service still answers on a fresh connection.
            let probe = Request::get(format!("/widget/transactions/{}", Uuid::nil()))
                .header("host", "localhost")
                .header("authorization", format!("Bearer {}", world.tokens.acme))
                .body(Full::new(Bytes::new()))
                .expect("probe");
            let peer: SocketAddr = PEERS[0].parse().expect("peer");
            let answers = world.exchange(peer, vec![probe]).await;
            let answer = answers.first().expect("probe answered");
            check_common(answer, None);
            assert_eq!(answer.status, 404, "probe");
        })
        .await;
        assert!(
            outcome.is_ok(),
            "iteration did not finish in {ITERATION_BUDGET:?} of virtual time: a hang"
        );
    });
});

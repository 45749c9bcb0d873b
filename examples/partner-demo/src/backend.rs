//! The partner's backend: its page, its order API, and its webhook endpoint.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use standardwebhooks::Webhook;
use tokio::net::TcpListener;

use crate::orders::Orders;
use crate::service::{self, Connection};
use crate::webhooks::{self, Refused};

/// The page, with `{{SERVICE_URL}}` where the widget's script is loaded from.
const PAGE: &str = include_str!("page.html");
/// Webhook bodies are small; anything larger is not the service's.
const MAX_WEBHOOK_BYTES: usize = 64 * 1024;

/// The demo's one signed-in user.
const USER_ID: &str = "demo-user-1";
const USER_EMAIL: &str = "buyer@example.com";

type Answer = Response<Full<Bytes>>;

pub struct Backend {
    connection: Connection,
    webhook_key: Webhook,
    http: reqwest::Client,
    orders: Orders,
    page: String,
}

impl Backend {
    pub fn new(connection: Connection) -> Result<Arc<Self>, String> {
        let webhook_key = Webhook::new(&connection.webhook_secret)
            .map_err(|e| format!("the webhook secret is not a whsec_ secret: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Arc::new(Self {
            page: PAGE.replace("{{SERVICE_URL}}", &connection.url),
            connection,
            webhook_key,
            http,
            orders: Orders::default(),
        }))
    }

    pub fn service_url(&self) -> &str {
        &self.connection.url
    }

    /// Serves connections until the listener fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<(), String> {
        loop {
            let (stream, peer) = listener
                .accept()
                .await
                .map_err(|e| format!("cannot accept connections: {e}"))?;
            let backend = Arc::clone(&self);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let backend = Arc::clone(&backend);
                    async move { Ok::<_, Infallible>(backend.handle(request, peer).await) }
                });
                // A browser that goes away mid-request is not our error.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Answer {
        let path = request.uri().path().to_owned();
        match (request.method(), path.as_str()) {
            (&Method::GET, "/") => html(&self.page),
            // The demo has one signed-in user and no login. A real backend
            // opens orders for the user of the request's session, checks the
            // request came from its own page (an Origin check or a CSRF
            // token), and shows an order only to the user who owns it.
            (&Method::POST, "/api/orders") => self.open_order(peer).await,
            (&Method::GET, _) if path.starts_with("/api/orders/") => {
                let id = &path["/api/orders/".len()..];
                match self.orders.view(id) {
                    Some(view) => json(StatusCode::OK, view.to_string()),
                    None => json(StatusCode::NOT_FOUND, r#"{"error":"unknown order"}"#.into()),
                }
            }
            (&Method::POST, "/webhooks") => self.webhook(request).await,
            _ => text(StatusCode::NOT_FOUND, "not found"),
        }
    }

    /// `POST /api/orders`: opens a widget session for the signed-in user and
    /// answers the page with the service's answer, unmodified.
    async fn open_order(&self, peer: SocketAddr) -> Answer {
        // The browser's address. Behind a proxy of your own, take it from
        // the header that proxy sets instead.
        let client_ip = peer.ip();
        match service::open_session(&self.http, &self.connection, USER_ID, USER_EMAIL, client_ip)
            .await
        {
            Ok(answer) if answer.status == 200 => {
                let opened: serde_json::Value =
                    serde_json::from_slice(&answer.body).unwrap_or_default();
                if let Some(id) = opened["merchant_transaction_id"].as_str() {
                    self.orders.opened(id);
                }
                json(StatusCode::OK, String::from_utf8_lossy(&answer.body).into())
            }
            // The service's error envelope goes to the page as it came.
            Ok(answer) => json(
                StatusCode::BAD_GATEWAY,
                String::from_utf8_lossy(&answer.body).into(),
            ),
            Err(why) => {
                eprintln!("partner-demo: {why}");
                json(
                    StatusCode::BAD_GATEWAY,
                    serde_json::json!({ "error": why }).to_string(),
                )
            }
        }
    }

    /// `POST /webhooks`: 2xx once the event is verified and recorded; the
    /// service retries anything else.
    async fn webhook(&self, request: Request<Incoming>) -> Answer {
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_WEBHOOK_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "too large"),
        };
        match webhooks::verify(&self.webhook_key, &parts.headers, &body) {
            Ok(change) => {
                println!(
                    "partner-demo: webhook {} says {} is {}",
                    change.webhook_id, change.merchant_transaction_id, change.status
                );
                self.orders.reported(
                    &change.webhook_id,
                    &change.merchant_transaction_id,
                    &change.status,
                );
                text(StatusCode::NO_CONTENT, "")
            }
            Err(Refused::Signature(why)) => {
                eprintln!("partner-demo: webhook refused: {why}");
                text(StatusCode::UNAUTHORIZED, "bad signature")
            }
            Err(Refused::Body(why)) => {
                eprintln!("partner-demo: webhook not understood: {why}");
                text(StatusCode::BAD_REQUEST, "bad body")
            }
        }
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    response
}

fn html(page: &str) -> Answer {
    respond(StatusCode::OK, "text/html; charset=utf-8", page.to_owned())
}

fn json(status: StatusCode, body: String) -> Answer {
    respond(status, "application/json", body)
}

fn text(status: StatusCode, body: &str) -> Answer {
    respond(status, "text/plain; charset=utf-8", body.to_owned())
}

//! The admin listener: liveness and readiness for orchestrators, Prometheus
//! metrics, and the operator API under `/admin/` (`admin_api.rs`) when it is
//! configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus_client::registry::Registry;
use serde::Serialize;
use session_core::ports::Health;
use session_core::{ErrorKind, Rejection};
use session_metrics::exposition;

use crate::admin_api::AdminApi;
use crate::app::{X_REQUEST_ID, answer};
use crate::request_id::RequestIds;
use crate::response::{HttpResponse, json, method_not_allowed};
use crate::server::{Handler, Lifecycle};

/// How long a readiness probe waits for the store.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Admin {
    health: Arc<dyn Health>,
    lifecycle: Arc<Lifecycle>,
    request_ids: RequestIds,
    /// `None`: the admin API is off and `/admin/` answers 404.
    api: Option<AdminApi>,
    /// What `GET /metrics` encodes; `None` answers 404.
    metrics: Option<Arc<Registry>>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("lifecycle", &self.lifecycle)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
}

impl Admin {
    pub fn new(health: Arc<dyn Health>, lifecycle: Arc<Lifecycle>, request_id_prefix: u64) -> Self {
        Self {
            health,
            lifecycle,
            request_ids: RequestIds::new(request_id_prefix),
            api: None,
            metrics: None,
        }
    }

    /// Serves `GET /metrics` from `registry`.
    pub fn with_metrics(mut self, registry: Arc<Registry>) -> Self {
        self.metrics = Some(registry);
        self
    }

    /// The registry encoded in the format the scraper accepts.
    fn scrape(&self, accept: Option<&[u8]>) -> Result<HttpResponse, Rejection> {
        let Some(registry) = &self.metrics else {
            return Err(Rejection::of(ErrorKind::NotFound));
        };
        let (body, content_type) =
            exposition::encode(registry, exposition::wants_openmetrics(accept)).map_err(|_| {
                Rejection::of(ErrorKind::Internal).with_detail("metrics encoding failed")
            })?;
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Ok(response)
    }

    /// Serves the operator API under `/admin/` too.
    pub fn with_api(mut self, api: AdminApi) -> Self {
        self.api = Some(api);
        self
    }

    async fn dispatch(
        &self,
        method: &Method,
        path: &str,
        accept: Option<&[u8]>,
    ) -> Result<HttpResponse, Rejection> {
        match (path, method) {
            ("/metrics", &Method::GET) => self.scrape(accept),
            ("/healthz", &Method::GET) => Ok(json(StatusCode::OK, &Status { status: "ok" })),
            ("/readyz", &Method::GET) => {
                if self.lifecycle.is_draining() {
                    return Err(Rejection::new(
                        ErrorKind::ShuttingDown,
                        "draining: the service is shutting down",
                    ));
                }
                match tokio::time::timeout(READINESS_TIMEOUT, self.health.check()).await {
                    Ok(Ok(())) => Ok(json(StatusCode::OK, &Status { status: "ready" })),
                    Ok(Err(fault)) => {
                        Err(Rejection::of(ErrorKind::StoreUnavailable)
                            .with_detail(fault.to_string()))
                    }
                    Err(_) => Err(Rejection::of(ErrorKind::StoreUnavailable)
                        .with_detail("health check timed out")),
                }
            }
            ("/healthz" | "/readyz", _) => Ok(method_not_allowed("GET")),
            ("/metrics", _) if self.metrics.is_some() => Ok(method_not_allowed("GET")),
            _ => Err(Rejection::of(ErrorKind::NotFound)),
        }
    }
}

impl Handler for Admin {
    async fn handle(&self, request: Request<Incoming>, _peer: SocketAddr) -> HttpResponse {
        let request_id = self
            .request_ids
            .for_request(request.headers().get(&X_REQUEST_ID));
        let outcome = match &self.api {
            Some(api) if request.uri().path().starts_with("/admin/") => {
                api.handle(request, &request_id).await
            }
            _ => {
                let accept = request.headers().get(ACCEPT).map(HeaderValue::as_bytes);
                self.dispatch(request.method(), request.uri().path(), accept)
                    .await
            }
        };
        answer(request_id, outcome, |_| {})
    }
}

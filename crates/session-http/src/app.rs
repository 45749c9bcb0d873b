//! The public API's request handling: the check order of SPEC.md §1 for
//! each route, then the use case, then the response.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue, ORIGIN};
use http::request::Parts;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use session_core::access::{self, GateHeaders};
use session_core::partner::Partner;
use session_core::{ErrorKind, EventReport, Rejection, SessionAnswer, SessionService};

use crate::body;
use crate::config::HttpConfig;
use crate::cors;
use crate::limits::{RateLimits, Verdict};
use crate::live::{self, LiveSockets};
use crate::metrics::HttpMetrics;
use crate::request_id::RequestIds;
use crate::response::{HttpResponse, error, json, json_bytes, method_not_allowed};
use crate::router::{self, Route, Routed};
use crate::sandbox;
use crate::server::Handler;
use crate::wire;

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_SIGNATURE: HeaderName = HeaderName::from_static("x-signature");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The public listener's handler.
#[derive(Debug)]
pub struct App {
    service: SessionService,
    config: HttpConfig,
    request_ids: RequestIds,
    live: Arc<LiveSockets>,
    limits: Arc<RateLimits>,
    metrics: Arc<HttpMetrics>,
}

/// What a route decided before it could fail, for the headers of whatever
/// the answer turns out to be.
#[derive(Debug, Default)]
struct Decorations {
    /// CORS: `Some(origin)` on a route whose every answer carries CORS headers
    /// (`None` inside when the origin is not an allowed one).
    expose_to: Option<Option<HeaderValue>>,
    /// The partner's rate limit verdict: every answer after the check carries
    /// its headers, the `429` and the errors of later checks included.
    budget: Option<Verdict>,
}

impl App {
    /// Starts the rate limiters' sweep on the current tokio runtime, if any.
    pub fn new(service: SessionService, config: HttpConfig, request_id_prefix: u64) -> Self {
        let limits = Arc::new(RateLimits::new(config.default_rate_limit));
        RateLimits::sweep_in_background(&limits);
        let live = Arc::new(LiveSockets::new(config.live));
        Self {
            metrics: Arc::new(HttpMetrics::new(Arc::clone(&live), config.record_metrics)),
            live,
            service,
            config,
            request_ids: RequestIds::new(request_id_prefix),
            limits,
        }
    }

    /// What this listener records, for the admin listener's `GET /metrics`.
    pub fn metrics(&self) -> Arc<HttpMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The partners' request budgets on this instance.
    pub fn rate_limits(&self) -> Arc<RateLimits> {
        Arc::clone(&self.limits)
    }

    /// The open WebSockets, which shutdown closes (`LiveSockets::close_all`).
    pub fn live_sockets(&self) -> Arc<LiveSockets> {
        Arc::clone(&self.live)
    }

    /// Answers one request. What decides headers of every answer of the route
    /// (errors included) is put in `decorations` before it can fail.
    async fn dispatch(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        request_id: &HeaderValue,
        decorations: &mut Decorations,
    ) -> Result<HttpResponse, Rejection> {
        let (mut parts, body) = request.into_parts();
        let route = match router::route(&parts.method, parts.uri.path(), self.config.sandbox) {
            Routed::Found(route) => route,
            Routed::NotFound => return Err(Rejection::of(ErrorKind::NotFound)),
            Routed::MethodNotAllowed(allow) => return Ok(method_not_allowed(allow)),
        };
        match route {
            Route::CreateSession => {
                let partner = self.partner_gate(&parts, peer, decorations).await?;
                // The gate admitted the token: its prefix says whether the
                // session is a test one (which the sandbox may pay).
                let mode =
                    access::token_env(parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes));
                let bytes = self.json_body(&parts, body).await?;
                let keys: Vec<&[u8]> = parts
                    .headers
                    .get_all(&IDEMPOTENCY_KEY)
                    .iter()
                    .map(HeaderValue::as_bytes)
                    .collect();
                let answer = self
                    .service
                    .open_session(&partner, mode, &bytes, &keys, &wire::created_session)
                    .await?;
                Ok(match answer {
                    SessionAnswer::Created(body) => {
                        self.metrics.session_created(partner.id.as_str());
                        json_bytes(StatusCode::OK, body)
                    }
                    SessionAnswer::Replayed(body) => {
                        let mut response = json_bytes(StatusCode::OK, body.to_vec());
                        response.headers_mut().insert(
                            IDEMPOTENT_REPLAYED.clone(),
                            HeaderValue::from_static("true"),
                        );
                        response
                    }
                })
            }
            Route::Transaction(id) => {
                let partner = self.partner_gate(&parts, peer, decorations).await?;
                let stored = self.service.transaction(&partner, id).await?;
                Ok(json(StatusCode::OK, &wire::transaction(&stored)))
            }
            Route::KycStatus(raw_user) => {
                let partner = self.partner_gate(&parts, peer, decorations).await?;
                let user = router::decode_segment(raw_user)
                    .ok_or_else(|| Rejection::of(ErrorKind::NotFound))?;
                let (user, status) = self.service.kyc_status(&partner, &user).await?;
                Ok(json(StatusCode::OK, &wire::kyc(&user, status)))
            }
            Route::WidgetInit => {
                // The widget must be able to read errors too, so CORS headers go
                // on every answer to an allowed origin.
                let origin = cors::allowed_origin(&parts.headers, &self.config.widget_origins);
                decorations.expose_to = Some(origin.as_ref().ok().cloned().flatten());
                origin?;
                let bytes = self.json_body(&parts, body).await?;
                let redeemed = self.service.redeem_init_token(&bytes).await;
                self.metrics
                    .redemption(redeemed.as_ref().err().map(Rejection::kind));
                Ok(json_bytes(StatusCode::OK, wire::redeemed(&redeemed?)))
            }
            Route::WidgetInitPreflight => {
                let origin = cors::allowed_origin(&parts.headers, &self.config.widget_origins)?;
                Ok(cors::preflight(origin, cors::INIT_HEADERS))
            }
            Route::ProviderEvents => {
                let received = self.provider_event(&parts, body).await;
                self.metrics.provider_event(received.as_ref().ok());
                Ok(json(StatusCode::OK, &wire::event_report(&received?)))
            }
            Route::SandboxSdk => Ok(sandbox::sdk()),
            Route::SandboxSimulate(raw_id) => {
                // The stand-in widget runs in the partner's page: CORS as for
                // `POST /widget/init`.
                // The token (401) comes before the Origin (403), as on the
                // partner routes.
                let origin = cors::allowed_origin(&parts.headers, &self.config.widget_origins);
                decorations.expose_to = Some(origin.as_ref().ok().cloned().flatten());
                let authorization = parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes);
                let grant = self.service.authorize_simulation(authorization, raw_id)?;
                origin?;
                let bytes = self.json_body(&parts, body).await?;
                let simulated = self.service.simulate(&grant, &bytes).await?;
                Ok(json(StatusCode::OK, &wire::simulated(&simulated)))
            }
            Route::SandboxSimulatePreflight => {
                let origin = cors::allowed_origin(&parts.headers, &self.config.widget_origins)?;
                Ok(cors::preflight(origin, cors::SIMULATE_HEADERS))
            }
            Route::Live => {
                let partner = self.partner_gate(&parts, peer, decorations).await?;
                let accept = live::accept_key(&parts.headers)?;
                let tx_id = live::tx_id(parts.uri.query())?;
                let following = self.service.follow(&partner, tx_id.as_deref()).await?;
                let slot = self.live.reserve()?;
                let upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
                    Rejection::invalid("Upgrade", "the connection cannot be upgraded")
                })?;
                let request_id = request_id.to_str().unwrap_or("").to_owned();
                live::spawn(upgrade, following, slot, request_id);
                Ok(live::switching_protocols(accept))
            }
        }
    }

    /// The partner gate: authentication (401), then origin and IP (403), then
    /// the partner's request budget (429). The headers go to the core as
    /// bytes; what they mean is decided there.
    async fn partner_gate(
        &self,
        parts: &Parts,
        peer: SocketAddr,
        decorations: &mut Decorations,
    ) -> Result<Arc<Partner>, Rejection> {
        let headers = &parts.headers;
        let forwarded_for: Vec<&[u8]> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let gate = GateHeaders {
            authorization: headers.get(AUTHORIZATION).map(HeaderValue::as_bytes),
            origin: headers.get(ORIGIN).map(HeaderValue::as_bytes),
            forwarded_for: &forwarded_for,
            peer: peer.ip(),
        };
        let partner = self.service.admit_partner(&gate).await?;
        if let Some(verdict) = self.limits.check(&partner) {
            let admitted = verdict.admitted();
            decorations.budget = Some(verdict);
            if !admitted {
                tracing::debug!(partner = %partner.id, "request budget exceeded");
                self.metrics.rate_limited(partner.id.as_str());
                return Err(Rejection::of(ErrorKind::RateLimitExceeded));
            }
        }
        Ok(partner)
    }

    /// `POST /provider/events`: 401 comes before 415/413 in the check order;
    /// the MAC itself can only be checked once the body is read.
    async fn provider_event(
        &self,
        parts: &Parts,
        body: Incoming,
    ) -> Result<EventReport, Rejection> {
        let Some(signature) = parts.headers.get(&X_SIGNATURE) else {
            return Err(Rejection::of(ErrorKind::InvalidProviderSignature));
        };
        let bytes = self.json_body(parts, body).await?;
        self.service
            .provider_event(signature.as_bytes(), &bytes)
            .await
    }

    /// Media type (415), then size (413) and read timeout (408).
    async fn json_body(&self, parts: &Parts, body: Incoming) -> Result<bytes::Bytes, Rejection> {
        body::require_json(&parts.headers)?;
        body::read(
            &parts.headers,
            body,
            self.config.body_limit,
            self.config.body_read_timeout,
        )
        .await
    }
}

/// The response to send: `outcome`, or its rejection logged and turned into an
/// error answer; then `decorate` (headers every answer of the route needs), then
/// the request id.
pub(crate) fn answer(
    request_id: HeaderValue,
    outcome: Result<HttpResponse, Rejection>,
    decorate: impl FnOnce(&mut HttpResponse),
) -> HttpResponse {
    let mut response = outcome.unwrap_or_else(|rejection| {
        log_rejection(&request_id, &rejection);
        error(&rejection)
    });
    decorate(&mut response);
    response
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), request_id);
    response
}

/// Logs a refused request: faults of ours at `error` with their cause, client
/// mistakes at `debug`. Never logs bodies, tokens or signatures.
fn log_rejection(request_id: &HeaderValue, rejection: &Rejection) {
    let request_id = request_id.to_str().unwrap_or("");
    let code = rejection.kind().code();
    if rejection.kind().status() >= 500 {
        tracing::error!(
            request_id,
            code,
            detail = rejection.detail().unwrap_or(""),
            "request failed"
        );
    } else {
        tracing::debug!(
            request_id,
            code,
            message = rejection.message(),
            "request refused"
        );
    }
}

impl Handler for App {
    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        let started = Instant::now();
        let template = router::template(request.uri().path());
        let method = request.method().clone();
        let request_id = self
            .request_ids
            .for_request(request.headers().get(&X_REQUEST_ID));
        let mut decorations = Decorations::default();
        let dispatched = AssertUnwindSafe(tokio::time::timeout(
            self.config.request_deadline,
            self.dispatch(request, peer, &request_id, &mut decorations),
        ))
        .catch_unwind()
        .await;
        let outcome = match dispatched {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_elapsed)) => {
                Err(Rejection::of(ErrorKind::StoreUnavailable)
                    .with_detail("request deadline exceeded"))
            }
            Err(_panic) => Err(Rejection::of(ErrorKind::Internal).with_detail("handler panicked")),
        };
        let response = answer(request_id, outcome, |response| {
            if let Some(origin) = decorations.expose_to {
                cors::expose(response, origin);
            }
            if let Some(verdict) = &decorations.budget {
                verdict.write_headers(response.headers_mut());
            }
        });
        self.metrics.request(
            template,
            &method,
            response.status().as_u16(),
            started.elapsed(),
        );
        response
    }
}

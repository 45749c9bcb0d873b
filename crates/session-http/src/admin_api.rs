//! The operator API under `/admin/` on the admin listener: what the
//! `partners` and `webhooks` commands do, over HTTP, on whichever store the
//! server runs (SPEC.md §6). It is on only when the server is given an admin
//! token (`SESSION_ADMIN_TOKEN`); without one its routes answer `404`.
//!
//! Checks run in the order of SPEC.md §1: route and method, the admin token
//! (401), media type and size, then the body (`session_core::admin::decode`).
//! The operations are the core's (`session_core::service::admin`), the same
//! the CLI calls. Every change is logged with what changed; no answer and no
//! log line carries a secret, except the answer that issues a client token.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use session_core::admin::{AdminToken, Change, DeliveryRow, PartnerView, TokenRef, decode};
use session_core::partner::PartnerId;
use session_core::ports::{
    DeliveryFilter, DeliveryState, PartnerRegistry, WEBHOOK_ID_PREFIX, WebhookOutbox, webhook_id,
};
use session_core::random::Random;
use session_core::service::admin::{PartnerAdmin, WebhookAdmin};
use session_core::time::{Clock, Timestamp};
use session_core::{ErrorKind, Rejection};

use crate::body;
use crate::config::HttpConfig;
use crate::response::{HttpResponse, json, method_not_allowed};
use crate::router::decode_segment;

/// What the admin API works on: the store's ports, the clock and the random
/// source, as the server's use cases have them.
#[derive(Clone)]
pub struct AdminPorts {
    pub registry: Arc<dyn PartnerRegistry>,
    pub outbox: Arc<dyn WebhookOutbox>,
    pub clock: Arc<dyn Clock>,
    pub random: Arc<dyn Random>,
}

impl std::fmt::Debug for AdminPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminPorts")
    }
}

/// The `/admin/` routes, behind one token.
#[derive(Debug)]
pub struct AdminApi {
    token: AdminToken,
    ports: AdminPorts,
    body_limit: usize,
    body_read_timeout: Duration,
    deadline: Duration,
}

/// The most deliveries one list answers.
const MAX_LIMIT: usize = 1_000;

impl AdminApi {
    /// Bodies are read with the public API's limits (`http`).
    pub fn new(token: AdminToken, ports: AdminPorts, http: &HttpConfig) -> Self {
        Self {
            token,
            ports,
            body_limit: http.body_limit,
            body_read_timeout: http.body_read_timeout,
            deadline: http.request_deadline,
        }
    }

    /// Answers a request whose path starts with `/admin/`. A panic or a
    /// request past the deadline is an answer too.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        request_id: &HeaderValue,
    ) -> Result<HttpResponse, Rejection> {
        let request_id = request_id.to_str().unwrap_or("");
        let handled = AssertUnwindSafe(tokio::time::timeout(
            self.deadline,
            self.dispatch(request, request_id),
        ))
        .catch_unwind()
        .await;
        match handled {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_elapsed)) => Err(Rejection::of(ErrorKind::StoreUnavailable)
                .with_detail("admin request deadline exceeded")),
            Err(_panic) => {
                Err(Rejection::of(ErrorKind::Internal).with_detail("admin handler panicked"))
            }
        }
    }

    async fn dispatch(
        &self,
        request: Request<Incoming>,
        request_id: &str,
    ) -> Result<HttpResponse, Rejection> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let route = match route(&parts.method, &path) {
            Routed::Found(route) => route,
            Routed::NotFound => return Err(Rejection::of(ErrorKind::NotFound)),
            Routed::MethodNotAllowed(allow) => return Ok(method_not_allowed(allow)),
        };
        self.token
            .admit(parts.headers.get(AUTHORIZATION).map(HeaderValue::as_bytes))?;
        let partners = PartnerAdmin {
            registry: self.ports.registry.as_ref(),
            clock: self.ports.clock.as_ref(),
            random: self.ports.random.as_ref(),
        };
        let log = Log { request_id };
        match route {
            Route::Partners => Ok(json(
                StatusCode::OK,
                &PartnerList {
                    partners: partners.list().await?,
                },
            )),
            Route::CreatePartner => {
                let bytes = self.body(&parts, body).await?;
                let spec = decode::new_partner(&bytes)?;
                let id = partner_id(&spec.id)?;
                let created = partners.create(spec).await?;
                log.change("partner.create", &id, &created.change);
                Ok(json(StatusCode::OK, &partners.show(&id).await?))
            }
            Route::Partner(raw) => {
                let id = partner_id(raw)?;
                Ok(json(StatusCode::OK, &partners.show(&id).await?))
            }
            Route::PatchPartner(raw) => {
                let id = partner_id(raw)?;
                let bytes = self.body(&parts, body).await?;
                let patch = decode::patch(&bytes)?;
                let edited = partners.patch(&id, &patch).await?;
                log.change("partner.patch", &id, &edited.change);
                Ok(changed(&id, &edited.change))
            }
            Route::AddOrigin(raw) => {
                let id = partner_id(raw)?;
                let origin = decode::one_string(&self.body(&parts, body).await?, "origin")?;
                let change = partners.add_origin(&id, &origin).await?;
                log.change("origin.add", &id, &change);
                Ok(changed(&id, &change))
            }
            Route::RemoveOrigin(raw) => {
                let id = partner_id(raw)?;
                let origin = Query::parse(parts.uri.query(), &["origin"])?.required("origin")?;
                let change = partners.remove_origin(&id, &origin).await?;
                log.change("origin.remove", &id, &change);
                Ok(changed(&id, &change))
            }
            Route::AddIp(raw) => {
                let id = partner_id(raw)?;
                let range = decode::one_string(&self.body(&parts, body).await?, "range")?;
                let change = partners.add_ip(&id, &range).await?;
                log.change("ip.add", &id, &change);
                Ok(changed(&id, &change))
            }
            Route::RemoveIp(raw) => {
                let id = partner_id(raw)?;
                let range = Query::parse(parts.uri.query(), &["range"])?.required("range")?;
                let change = partners.remove_ip(&id, &range).await?;
                log.change("ip.remove", &id, &change);
                Ok(changed(&id, &change))
            }
            Route::AddWallet(raw) => {
                let id = partner_id(raw)?;
                let wallet = decode::wallet(&self.body(&parts, body).await?)?;
                let change = partners.add_wallet(&id, &wallet).await?;
                log.change("wallet.add", &id, &change);
                Ok(changed(&id, &change))
            }
            Route::SetWalletState(raw) => {
                let id = partner_id(raw)?;
                let (selector, active) = decode::wallet_state(&self.body(&parts, body).await?)?;
                let change = partners.set_wallet_active(&id, &selector, active).await?;
                log.change("wallet.state", &id, &change);
                Ok(changed(&id, &change))
            }
            Route::RemoveWallet(raw) => {
                let id = partner_id(raw)?;
                let query = Query::parse(parts.uri.query(), &["currency", "network", "address"])?;
                let selector = session_core::admin::WalletSelector {
                    currency: query.required("currency")?,
                    network: query.required("network")?,
                    address: query.get("address"),
                };
                let change = partners.remove_wallet(&id, &selector).await?;
                log.change("wallet.remove", &id, &change);
                Ok(changed(&id, &change))
            }
            Route::IssueToken(raw) => {
                let id = partner_id(raw)?;
                let (env, label) = decode::token_issue(&self.body(&parts, body).await?)?;
                let issued = partners
                    .issue_token(&id, env, label.as_deref().unwrap_or("admin"))
                    .await?;
                tracing::info!(
                    request_id,
                    operation = "token.issue",
                    partner = %id,
                    token_id = %issued.token_id,
                    label = %issued.label,
                    "admin change"
                );
                Ok(json(
                    StatusCode::OK,
                    &IssuedAnswer {
                        partner_id: id.as_str(),
                        token_id: &issued.token_id,
                        client_token: &issued.token,
                        label: &issued.label,
                        replaces: None,
                    },
                ))
            }
            Route::RotateToken(raw, raw_token) => {
                let id = partner_id(raw)?;
                let old = token_ref(raw_token)?;
                let (grace, env, label) = decode::token_rotate(&self.body(&parts, body).await?)?;
                let rotated = partners
                    .rotate_token(&id, &old, grace, env, label.as_deref())
                    .await?;
                let issued = &rotated.issued;
                if let Some(problem) = &rotated.expiry_failed {
                    // The old token still works with no end; the new one is
                    // withdrawn so that no token nobody knows stays valid.
                    let withdrawn = partners
                        .revoke_token(&id, &token_ref(&issued.token_id)?)
                        .await
                        .is_ok();
                    return Err(Rejection::of(ErrorKind::StoreUnavailable).with_detail(format!(
                        "token rotation of {id}: setting the expiry of {} failed ({problem}); new token {} withdrawn: {withdrawn}",
                        rotated.replaced, issued.token_id
                    )));
                }
                tracing::info!(
                    request_id,
                    operation = "token.rotate",
                    partner = %id,
                    token_id = %issued.token_id,
                    replaces = %rotated.replaced,
                    grace_seconds = grace.seconds(),
                    "admin change"
                );
                Ok(json(
                    StatusCode::OK,
                    &IssuedAnswer {
                        partner_id: id.as_str(),
                        token_id: &issued.token_id,
                        client_token: &issued.token,
                        label: &issued.label,
                        replaces: Some(Replaced {
                            token_id: &rotated.replaced,
                            expires_at: rotated.expires_at.to_rfc3339(),
                        }),
                    },
                ))
            }
            Route::RevokeToken(raw, raw_token) => {
                let id = partner_id(raw)?;
                let token = token_ref(raw_token)?;
                let revoked = partners.revoke_token(&id, &token).await?;
                if revoked.changed {
                    tracing::info!(
                        request_id,
                        operation = "token.revoke",
                        partner = %id,
                        token_id = %revoked.token_id,
                        "admin change"
                    );
                }
                Ok(json(
                    StatusCode::OK,
                    &RevokedAnswer {
                        partner_id: id.as_str(),
                        token_id: &revoked.token_id,
                        changed: revoked.changed,
                        revoked_at: revoked.revoked_at.to_rfc3339(),
                    },
                ))
            }
            Route::RotateSigningKey(raw) => {
                let id = partner_id(raw)?;
                let (grace, secret) = decode::secret_rotation(&self.body(&parts, body).await?)?;
                let rotation = partners
                    .rotate_signing_key(&id, grace, secret.as_ref().map(|s| s.expose()))
                    .await?;
                tracing::info!(
                    request_id,
                    operation = "signing_key.rotate",
                    partner = %id,
                    kid = %rotation.kid,
                    previous = %rotation.previous_kid,
                    grace_seconds = grace.seconds(),
                    "admin change"
                );
                Ok(json(
                    StatusCode::OK,
                    &KeyRotatedAnswer {
                        partner_id: id.as_str(),
                        kid: &rotation.kid,
                        previous: PreviousKey {
                            kid: &rotation.previous_kid,
                            not_after: rotation.previous_until.map(Timestamp::to_rfc3339),
                        },
                        dropped: &rotation.dropped,
                    },
                ))
            }
            Route::RotateWebhookSecret(raw) => {
                let id = partner_id(raw)?;
                let (grace, secret) = decode::secret_rotation(&self.body(&parts, body).await?)?;
                let rotation = partners
                    .rotate_webhook_secret(&id, grace, secret.as_ref().map(|s| s.expose()))
                    .await?;
                tracing::info!(
                    request_id,
                    operation = "webhook_secret.rotate",
                    partner = %id,
                    grace_seconds = grace.seconds(),
                    "admin change"
                );
                Ok(json(
                    StatusCode::OK,
                    &WebhookSecretAnswer {
                        partner_id: id.as_str(),
                        previous_not_after: rotation.previous_until.map(Timestamp::to_rfc3339),
                        dropped: rotation.dropped,
                    },
                ))
            }
            Route::Deliveries => {
                let filter = delivery_filter(parts.uri.query())?;
                let listed = self.webhooks().deliveries(&filter).await?;
                Ok(json(
                    StatusCode::OK,
                    &DeliveryList {
                        deliveries: listed.iter().map(DeliveryRow::from).collect(),
                    },
                ))
            }
            Route::RetryDelivery(raw) => {
                let number = delivery_number(raw)?;
                self.webhooks().retry(number).await?;
                let id = webhook_id(number);
                tracing::info!(request_id, operation = "delivery.retry", delivery = %id, "admin change");
                Ok(json(
                    StatusCode::OK,
                    &Requeued {
                        id,
                        state: DeliveryState::Pending.as_str(),
                    },
                ))
            }
            Route::Replay => {
                let (partner, since) = decode::replay(&self.body(&parts, body).await?)?;
                let queued = self.webhooks().replay(&partner, since).await?;
                tracing::info!(
                    request_id,
                    operation = "delivery.replay",
                    partner = %partner,
                    since = %since,
                    queued,
                    "admin change"
                );
                Ok(json(
                    StatusCode::OK,
                    &Replayed {
                        partner: partner.as_str(),
                        queued,
                    },
                ))
            }
        }
    }

    fn webhooks(&self) -> WebhookAdmin<'_> {
        WebhookAdmin {
            outbox: self.ports.outbox.as_ref(),
            clock: self.ports.clock.as_ref(),
        }
    }

    /// Media type (415), then size (413) and read timeout (408), as on the
    /// public listener.
    async fn body(&self, parts: &Parts, body: Incoming) -> Result<Bytes, Rejection> {
        body::require_json(&parts.headers)?;
        body::read(
            &parts.headers,
            body,
            self.body_limit,
            self.body_read_timeout,
        )
        .await
    }
}

/// Logs changes: the operation, the partner and what changed, never a value
/// that is a secret (summaries name fields, origins, ranges and wallets).
struct Log<'a> {
    request_id: &'a str,
}

impl Log<'_> {
    fn change(&self, operation: &'static str, partner: &PartnerId, change: &Change) {
        if change.changed() {
            tracing::info!(
                request_id = self.request_id,
                operation,
                partner = %partner,
                change = change.summary(),
                "admin change"
            );
        }
    }
}

/// An admin route, with its path parameters still percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Partners,
    CreatePartner,
    Partner(&'a str),
    PatchPartner(&'a str),
    AddOrigin(&'a str),
    RemoveOrigin(&'a str),
    AddIp(&'a str),
    RemoveIp(&'a str),
    AddWallet(&'a str),
    SetWalletState(&'a str),
    RemoveWallet(&'a str),
    IssueToken(&'a str),
    RotateToken(&'a str, &'a str),
    RevokeToken(&'a str, &'a str),
    RotateSigningKey(&'a str),
    RotateWebhookSecret(&'a str),
    Deliveries,
    RetryDelivery(&'a str),
    Replay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routed<'a> {
    Found(Route<'a>),
    NotFound,
    MethodNotAllowed(&'static str),
}

/// Matches an admin request line; paths match exactly, a parameter is one
/// non-empty segment.
fn route<'a>(method: &Method, path: &'a str) -> Routed<'a> {
    let Some(rest) = path.strip_prefix("/admin/") else {
        return Routed::NotFound;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Routed::NotFound;
    }
    let m = method.clone();
    let (allow, found): (&'static str, Option<Route<'a>>) = match segments.as_slice() {
        ["partners"] => (
            "GET, POST",
            match m {
                Method::GET => Some(Route::Partners),
                Method::POST => Some(Route::CreatePartner),
                _ => None,
            },
        ),
        ["partners", id] => (
            "GET, PATCH",
            match m {
                Method::GET => Some(Route::Partner(id)),
                Method::PATCH => Some(Route::PatchPartner(id)),
                _ => None,
            },
        ),
        ["partners", id, "origins"] => (
            "POST, DELETE",
            match m {
                Method::POST => Some(Route::AddOrigin(id)),
                Method::DELETE => Some(Route::RemoveOrigin(id)),
                _ => None,
            },
        ),
        ["partners", id, "ips"] => (
            "POST, DELETE",
            match m {
                Method::POST => Some(Route::AddIp(id)),
                Method::DELETE => Some(Route::RemoveIp(id)),
                _ => None,
            },
        ),
        ["partners", id, "wallets"] => (
            "POST, PATCH, DELETE",
            match m {
                Method::POST => Some(Route::AddWallet(id)),
                Method::PATCH => Some(Route::SetWalletState(id)),
                Method::DELETE => Some(Route::RemoveWallet(id)),
                _ => None,
            },
        ),
        ["partners", id, "tokens"] => {
            ("POST", (m == Method::POST).then_some(Route::IssueToken(id)))
        }
        ["partners", id, "tokens", token] => (
            "DELETE",
            (m == Method::DELETE).then_some(Route::RevokeToken(id, token)),
        ),
        ["partners", id, "tokens", token, "rotate"] => (
            "POST",
            (m == Method::POST).then_some(Route::RotateToken(id, token)),
        ),
        ["partners", id, "signing-key", "rotate"] => (
            "POST",
            (m == Method::POST).then_some(Route::RotateSigningKey(id)),
        ),
        ["partners", id, "webhook-secret", "rotate"] => (
            "POST",
            (m == Method::POST).then_some(Route::RotateWebhookSecret(id)),
        ),
        ["webhooks", "deliveries"] => ("GET", (m == Method::GET).then_some(Route::Deliveries)),
        ["webhooks", "deliveries", id, "retry"] => (
            "POST",
            (m == Method::POST).then_some(Route::RetryDelivery(id)),
        ),
        ["webhooks", "replay"] => ("POST", (m == Method::POST).then_some(Route::Replay)),
        _ => return Routed::NotFound,
    };
    match found {
        Some(route) => Routed::Found(route),
        None => Routed::MethodNotAllowed(allow),
    }
}

/// A partner id from the path: one that cannot be a partner's is unknown.
fn partner_id(raw: &str) -> Result<PartnerId, Rejection> {
    decode_segment(raw)
        .and_then(|text| PartnerId::parse(&text).ok())
        .ok_or_else(|| Rejection::new(ErrorKind::NotFound, "partner not found"))
}

/// A token id from the path: one that cannot name a token is unknown.
fn token_ref(raw: &str) -> Result<TokenRef, Rejection> {
    TokenRef::parse(raw).map_err(|_| Rejection::new(ErrorKind::NotFound, "token not found"))
}

/// `evt_42` or `42`.
fn delivery_number(raw: &str) -> Result<i64, Rejection> {
    raw.strip_prefix(WEBHOOK_ID_PREFIX)
        .unwrap_or(raw)
        .parse()
        .map_err(|_| Rejection::new(ErrorKind::NotFound, "delivery not found"))
}

/// `?partner=&transaction=&state=&limit=` of the delivery list.
fn delivery_filter(query: Option<&str>) -> Result<DeliveryFilter, Rejection> {
    let query = Query::parse(query, &["partner", "transaction", "state", "limit"])?;
    let partner = query
        .get("partner")
        .map(|text| PartnerId::parse(&text).map_err(|why| Rejection::invalid("partner", why)))
        .transpose()?;
    let transaction = query
        .get("transaction")
        .map(|text| {
            uuid::Uuid::try_parse(&text)
                .map_err(|_| Rejection::invalid("transaction", "must be a UUID"))
        })
        .transpose()?;
    let state = query
        .get("state")
        .map(|text| {
            DeliveryState::parse(&text)
                .ok_or_else(|| Rejection::invalid("state", "must be pending, delivered or failed"))
        })
        .transpose()?;
    let limit = match query.get("limit") {
        None => 100,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| Rejection::invalid("limit", "must be a whole number from 1 to 1000"))?,
    };
    Ok(DeliveryFilter {
        partner,
        transaction,
        state,
        limit,
    })
}

/// A query string's parameters, each known and given at most once.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>, known: &[&str]) -> Result<Self, Rejection> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for item in query.unwrap_or("").split('&').filter(|i| !i.is_empty()) {
            let (name, value) = item.split_once('=').unwrap_or((item, ""));
            let decode = |text: &str| decode_segment(&text.replace('+', " "));
            let (Some(name), Some(value)) = (decode(name), decode(value)) else {
                return Err(Rejection::new(
                    ErrorKind::ValidationError,
                    "the query string is not valid UTF-8",
                ));
            };
            let Some(known) = known.iter().find(|k| **k == name) else {
                let shown: String = name.chars().take(64).flat_map(char::escape_debug).collect();
                return Err(Rejection::new(
                    ErrorKind::ValidationError,
                    format!("unknown query parameter \"{shown}\""),
                ));
            };
            if pairs.iter().any(|(seen, _)| seen == known) {
                return Err(Rejection::invalid(known, "is given twice"));
            }
            pairs.push(((*known).to_owned(), value));
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    fn required(&self, name: &str) -> Result<String, Rejection> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Rejection::missing(name))
    }
}

fn changed(id: &PartnerId, change: &Change) -> HttpResponse {
    json(
        StatusCode::OK,
        &ChangeAnswer {
            partner_id: id.as_str(),
            changed: change.changed(),
            summary: change.summary(),
        },
    )
}

#[derive(Serialize)]
struct PartnerList {
    partners: Vec<PartnerView>,
}

#[derive(Serialize)]
struct ChangeAnswer<'a> {
    partner_id: &'a str,
    changed: bool,
    summary: &'a str,
}

#[derive(Serialize)]
struct IssuedAnswer<'a> {
    partner_id: &'a str,
    token_id: &'a str,
    /// The plaintext, in this answer only.
    client_token: &'a str,
    label: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaces: Option<Replaced<'a>>,
}

#[derive(Serialize)]
struct Replaced<'a> {
    token_id: &'a str,
    expires_at: String,
}

#[derive(Serialize)]
struct RevokedAnswer<'a> {
    partner_id: &'a str,
    token_id: &'a str,
    changed: bool,
    revoked_at: String,
}

#[derive(Serialize)]
struct KeyRotatedAnswer<'a> {
    partner_id: &'a str,
    kid: &'a str,
    previous: PreviousKey<'a>,
    dropped: &'a [String],
}

#[derive(Serialize)]
struct PreviousKey<'a> {
    kid: &'a str,
    not_after: Option<String>,
}

#[derive(Serialize)]
struct WebhookSecretAnswer<'a> {
    partner_id: &'a str,
    previous_not_after: Option<String>,
    dropped: usize,
}

#[derive(Serialize)]
struct DeliveryList {
    deliveries: Vec<DeliveryRow>,
}

#[derive(Serialize)]
struct Requeued {
    id: String,
    state: &'static str,
}

#[derive(Serialize)]
struct Replayed<'a> {
    partner: &'a str,
    queued: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_methods_and_misses() {
        let cases = [
            (
                Method::GET,
                "/admin/partners",
                Routed::Found(Route::Partners),
            ),
            (
                Method::POST,
                "/admin/partners",
                Routed::Found(Route::CreatePartner),
            ),
            (
                Method::DELETE,
                "/admin/partners",
                Routed::MethodNotAllowed("GET, POST"),
            ),
            (Method::GET, "/admin/partners/", Routed::NotFound),
            (
                Method::PATCH,
                "/admin/partners/acme",
                Routed::Found(Route::PatchPartner("acme")),
            ),
            (
                Method::POST,
                "/admin/partners/acme/tokens/abcdef01/rotate",
                Routed::Found(Route::RotateToken("acme", "abcdef01")),
            ),
            (
                Method::GET,
                "/admin/partners/acme/tokens/abcdef01",
                Routed::MethodNotAllowed("DELETE"),
            ),
            (
                Method::GET,
                "/admin/partners/acme//tokens",
                Routed::NotFound,
            ),
            (
                Method::POST,
                "/admin/webhooks/deliveries/evt_4/retry",
                Routed::Found(Route::RetryDelivery("evt_4")),
            ),
            (Method::GET, "/admin", Routed::NotFound),
            (Method::GET, "/admin/nope", Routed::NotFound),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn queries_are_known_single_and_decoded() {
        let query = Query::parse(Some("origin=https%3A%2F%2Fa.example&"), &["origin"]).expect("ok");
        assert_eq!(query.get("origin").as_deref(), Some("https://a.example"));
        for bad in ["x=1", "origin=a&origin=b", "origin=%FF"] {
            let refused = Query::parse(Some(bad), &["origin"])
                .map(|_| ())
                .map_err(|r| r.kind());
            assert_eq!(refused, Err(ErrorKind::ValidationError), "{bad}");
        }
        let filter = delivery_filter(Some("state=failed&limit=5")).expect("filter");
        assert_eq!(
            (filter.state, filter.limit),
            (Some(DeliveryState::Failed), 5)
        );
        assert!(delivery_filter(Some("limit=0")).is_err());
    }
}

//! The webhook HTTP client: HTTPS with certificate verification (plain HTTP
//! only to explicitly allowed ranges), no redirects followed, a deadline per
//! attempt, and a connector that refuses non-public addresses after name
//! resolution, so a partner URL cannot reach the service's own network
//! (server-side request forgery), DNS rebinding included.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use session_core::value::IpRange;
use tokio::net::TcpStream;

/// Which addresses webhooks may connect to.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// `--webhook-allow-ip`: ranges allowed although not public, and the only
    /// ones plain `http://` may reach.
    allowed: Vec<IpRange>,
}

/// The most of a partner endpoint's answer body read before the connection
/// is dropped.
const MAX_ANSWER_BODY: usize = 64 * 1024;

/// Ranges that are not the public internet, with what they are.
const NOT_PUBLIC: [(&str, &str); 17] = [
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "CGNAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local NAT64"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
];

impl AddressPolicy {
    pub fn new(allowed: Vec<IpRange>) -> Self {
        Self { allowed }
    }

    fn allowed_explicitly(&self, addr: IpAddr) -> bool {
        self.allowed.iter().any(|range| range.contains(addr))
    }

    /// Why `addr` may not be connected to over `scheme`, if it may not.
    pub fn refusal(&self, addr: IpAddr, scheme: &str) -> Option<String> {
        let addr = addr.to_canonical();
        if self.allowed_explicitly(addr) {
            return None;
        }
        if scheme != "https" {
            return Some(format!(
                "{addr}: plain http is only allowed to --webhook-allow-ip ranges"
            ));
        }
        NOT_PUBLIC.iter().find_map(|(range, what)| {
            IpRange::parse(range)
                .ok()
                .filter(|range| range.contains(addr))
                .map(|_| format!("{addr} is {what}, not a public address"))
        })
    }
}

/// Why an attempt got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The partner has no webhook configured (any more).
    NoWebhook,
    /// The address policy refused the destination.
    Refused(String),
    /// No answer within the deadline.
    Timeout,
    /// Name resolution, connection, TLS or protocol failure.
    Unreachable(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoWebhook => f.write_str("no webhook is configured for the partner"),
            Self::Refused(why) => write!(f, "refused: {why}"),
            Self::Timeout => f.write_str("timeout"),
            Self::Unreachable(why) => write!(f, "unreachable: {why}"),
        }
    }
}

/// What a partner endpoint answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    /// `Retry-After` in seconds, when the answer carried one.
    pub retry_after_seconds: Option<u64>,
}

/// The client every delivery goes through.
#[derive(Clone)]
pub struct WebhookClient {
    http: Client<HttpsConnector<GuardedConnector>, Full<Bytes>>,
    timeout: Duration,
    user_agent: http::HeaderValue,
}

impl fmt::Debug for WebhookClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookClient {
    /// A client with `timeout` per attempt (connect, TLS, answer), trusting
    /// the Mozilla root certificates.
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, String> {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::with_roots(policy, timeout, roots)
    }

    /// [`WebhookClient::new`] trusting `roots` (tests with their own CA).
    pub fn with_roots(
        policy: AddressPolicy,
        timeout: Duration,
        roots: rustls::RootCertStore,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("webhook TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(GuardedConnector {
                policy: Arc::new(policy),
            });
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            // As many as the attempts a dispatcher runs at once by default:
            // fewer would close and reopen connections on every burst to a
            // busy endpoint (a handshake and an address check each time).
            .pool_max_idle_per_host(64)
            .build(connector);
        let user_agent =
            http::HeaderValue::from_str(&format!("session-server/{}", env!("CARGO_PKG_VERSION")))
                .map_err(|e| format!("user agent: {e}"))?;
        Ok(Self {
            http,
            timeout,
            user_agent,
        })
    }

    /// POSTs `body` to `url` with `headers`; a redirect is an answer like any
    /// other (never followed).
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, SendError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| SendError::Refused(format!("{url:?} is not a URL")))?;
        let mut request = Request::post(uri)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, self.user_agent.clone());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| SendError::Refused(format!("request: {e}")))?;
        let exchange = async {
            let response = self.http.request(request).await.map_err(classify)?;
            let status = response.status();
            let retry_after_seconds = response
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            // Read (and drop) the answer so the connection can be reused, but
            // no more than a bound of it: a partner endpoint's body is not
            // ours to hold. Past it the connection is dropped, not reused.
            let _ = Limited::new(response.into_body(), MAX_ANSWER_BODY)
                .collect()
                .await;
            Ok(Answer {
                status,
                retry_after_seconds,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_elapsed| SendError::Timeout)?
    }
}

/// Maps a client error to a reason, finding a policy refusal in its sources.
fn classify(error: hyper_util::client::legacy::Error) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::PermissionDenied
        {
            return SendError::Refused(io.to_string());
        }
        source = cause.source();
    }
    let mut why = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(inner) = cause {
        why.push_str(": ");
        why.push_str(&inner.to_string());
        cause = inner.source();
    }
    SendError::Unreachable(why)
}

/// Resolves the host, drops every address the policy refuses, and connects to
/// the first one left. The check runs on the resolved addresses, so a name
/// that resolves to a private address is refused whatever it is called.
#[derive(Clone, Debug)]
pub struct GuardedConnector {
    policy: Arc<AddressPolicy>,
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let scheme = uri.scheme_str().unwrap_or("").to_owned();
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri
                .port_u16()
                .unwrap_or(if scheme == "https" { 443 } else { 80 });
            let candidates: Vec<SocketAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => tokio::net::lookup_host((host.as_str(), port))
                    .await?
                    .collect(),
            };
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = candidates
                .into_iter()
                .filter(|addr| match policy.refusal(addr.ip(), &scheme) {
                    Some(why) => {
                        refusal.get_or_insert(why);
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let why = refusal.unwrap_or_else(|| format!("{host} has no address"));
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, why));
            }
            let stream = TcpStream::connect(allowed.as_slice()).await?;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(stream))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn only_public_addresses_over_https_unless_allowed() {
        let policy = AddressPolicy::default();
        assert_eq!(policy.refusal(ip("203.0.113.7"), "https"), None);
        assert_eq!(policy.refusal(ip("2606:4700::1111"), "https"), None);
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(
                policy.refusal(ip(internal), "https").is_some(),
                "{internal}"
            );
        }
        assert!(
            policy.refusal(ip("203.0.113.7"), "http").is_some(),
            "plain http to the internet"
        );
        let allowing = AddressPolicy::new(vec![IpRange::parse("127.0.0.0/8").expect("range")]);
        assert_eq!(allowing.refusal(ip("127.0.0.1"), "http"), None);
        assert_eq!(allowing.refusal(ip("127.0.0.1"), "https"), None);
        assert!(allowing.refusal(ip("10.0.0.1"), "https").is_some());
    }
}

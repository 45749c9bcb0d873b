//! Settings of the HTTP layer, resolved once by the binary.

use std::time::Duration;

use session_core::partner::RateLimit;
use session_core::value::Origin;

/// Defaults the binary offers when nothing is configured.
pub mod defaults {
    use std::time::Duration;

    /// SPEC.md §1: bodies over 64 KiB answer 413.
    pub const BODY_LIMIT: usize = 64 * 1024;
    /// From accept (or the end of the previous response) to a complete request head.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// From a complete head to a complete body.
    pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// A last-resort bound on one request's handling (store calls have their own).
    pub const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
    /// How long SIGTERM waits for in-flight requests.
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);
    /// SPEC.md §1: connections served at once per listener; more wait in the
    /// accept backlog.
    pub const MAX_CONNECTIONS: usize = 25_000;
    /// SPEC.md §1: a request head (request line and headers) over this many
    /// bytes answers 431. A connection's read buffer is bounded to match.
    pub const MAX_HEAD_BYTES: usize = 16 * 1024;
    /// SPEC.md §1: a request with more headers answers 431.
    pub const MAX_HEADERS: usize = 100;
    /// SPEC.md §2: partner API requests per second of a partner without a
    /// budget of its own, on each instance; the burst is twice as many.
    pub const RATE_LIMIT_PER_SECOND: u32 = 100;
}

/// Which browser origins may call the widget API.
#[derive(Debug, Clone)]
pub enum WidgetOrigins {
    /// Any origin (development only).
    Any,
    /// Exactly these.
    List(Vec<Origin>),
}

impl WidgetOrigins {
    pub fn allows(&self, origin: &Origin) -> bool {
        match self {
            Self::Any => true,
            Self::List(list) => list.contains(origin),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub body_limit: usize,
    pub body_read_timeout: Duration,
    pub request_deadline: Duration,
    pub widget_origins: WidgetOrigins,
    pub live: crate::live::LiveConfig,
    /// The request budget of partners without one of their own;
    /// [`RateLimit::UNLIMITED`] leaves them unlimited.
    pub default_rate_limit: RateLimit,
    /// Whether requests are recorded for `GET /metrics` (off only to
    /// measure what recording costs).
    pub record_metrics: bool,
    /// Whether the sandbox's routes exist (SPEC.md §7): the stand-in widget
    /// and the payment simulator. Never on in production.
    pub sandbox: bool,
}

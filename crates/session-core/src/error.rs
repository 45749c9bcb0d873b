//! The error matrix: every rejection the service can answer, and the one table
//! that gives each its HTTP status, `error` slug and `code`.

use std::borrow::Cow;
use std::fmt;

/// Declares [`ErrorKind`] from one table: each row is written once, and the
/// enum, its (status, error, code) triple, its default message and
/// [`ErrorKind::ALL`] all come from it.
macro_rules! error_matrix {
    ($($(#[$doc:meta])* $kind:ident => ($status:literal, $error:literal, $code:literal, $message:literal),)*) => {
        /// One row of the error matrix (SPEC.md §1).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[$doc])* $kind,)*
        }

        impl ErrorKind {
            /// Every row, for tests and documentation checks.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind,)*];

            /// The HTTP status, `error` slug and `code` of this row.
            pub const fn triple(self) -> (u16, &'static str, &'static str) {
                match self {
                    $(ErrorKind::$kind => ($status, $error, $code),)*
                }
            }

            /// The message a client sees when the rejection carries no more
            /// specific one. Server-side faults never say more than this: their
            /// details go to the logs.
            pub const fn default_message(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $message,)*
                }
            }
        }
    };
}

error_matrix! {
    DecodeError => (400, "invalid_request", "decode_error", "request body is not a valid JSON object"),
    MissingParam => (400, "invalid_request", "missing_param", "a required field is missing"),
    ValidationError => (400, "invalid_request", "validation_error", "a field is invalid"),
    CurrencyNotAllowed => (400, "invalid_request", "currency_not_allowed", "currency is not enabled for this partner"),
    NetworkNotAllowed => (400, "invalid_request", "network_not_allowed", "network is not enabled for this partner"),
    WalletNotSupported => (400, "wallet_not_supported", "WALLET_NOT_SUPPORTED", "no active wallet for this currency and network"),
    InvalidSignature => (400, "invalid_request", "invalid_signature", "presented parameters do not match the session"),
    MissingToken => (401, "unauthorised", "missing_token", "missing bearer token in the Authorization header"),
    InvalidToken => (401, "unauthorised", "invalid_token", "client token is unknown, revoked or expired"),
    InvalidInitToken => (401, "unauthorised", "invalid_init_token", "init_token is malformed or not valid for this session"),
    InvalidProviderSignature => (401, "unauthorised", "invalid_signature", "X-Signature is missing or does not match the body"),
    ForbiddenOrigin => (403, "forbidden", "forbidden_origin", "origin or caller address is not allowed for this partner"),
    OfframpDisabled => (403, "forbidden", "offramp_disabled", "off-ramp (type sell) is not enabled for this partner"),
    NotFound => (404, "not_found", "not_found", "not found"),
    MethodNotAllowed => (405, "invalid_request", "method_not_allowed", "method not allowed for this route"),
    /// The body did not arrive within the read timeout. Not in the spec's
    /// matrix; 408 is what HTTP says for it.
    RequestTimeout => (408, "invalid_request", "request_timeout", "the request was not received in time"),
    SessionAlreadyUsed => (409, "conflict", "session_already_used", "init_token has already been redeemed"),
    IdempotencyKeyReused => (409, "conflict", "idempotency_key_reused", "Idempotency-Key was used with a different body"),
    /// Sent with `Retry-After: 1`.
    IdempotencyKeyInUse => (409, "conflict", "idempotency_key_in_use", "a request with this Idempotency-Key is still running; retry in a second"),
    /// Admin API: the change contradicts what is stored (a partner id taken, a
    /// token already rotated or revoked). Not in the spec's matrix, which has
    /// no row for it.
    Conflict => (409, "conflict", "conflict", "the change conflicts with the current state"),
    SessionExpired => (410, "gone", "session_expired", "init_token has expired"),
    PayloadTooLarge => (413, "invalid_request", "payload_too_large", "request body is too large"),
    UnsupportedMediaType => (415, "invalid_request", "unsupported_media_type", "Content-Type must be application/json"),
    RateLimitExceeded => (429, "rate_limited", "rate_limit_exceeded", "request budget exceeded"),
    DbError => (500, "internal_error", "db_error", "internal store error"),
    TokenError => (500, "internal_error", "token_error", "internal token error"),
    /// A defect in the service itself (a caught panic). Not in the spec's
    /// matrix, which has no row for it; kept distinct so it is never mistaken
    /// for a store fault.
    Internal => (500, "internal_error", "internal_error", "internal error"),
    ProviderError => (502, "upstream_error", "provider_error", "an upstream provider answered with an error"),
    UpstreamUnavailable => (502, "upstream_unavailable", "upstream_unavailable", "an upstream provider is unreachable"),
    UpstreamInvalidResponse => (502, "upstream_unavailable", "upstream_invalid_response", "an upstream provider answered with an invalid response"),
    ShuttingDown => (503, "unavailable", "shutting_down", "the service is shutting down"),
    StoreUnavailable => (503, "unavailable", "store_unavailable", "the store is unavailable"),
    WsCapacity => (503, "unavailable", "ws_capacity", "this instance holds its maximum of WebSockets; retry later"),
}

impl ErrorKind {
    pub const fn status(self) -> u16 {
        self.triple().0
    }

    pub const fn error(self) -> &'static str {
        self.triple().1
    }

    pub const fn code(self) -> &'static str {
        self.triple().2
    }
}

/// A request the service refuses, with the message the client will read.
///
/// The message is built by the core from field names and fixed text only; it
/// never contains a secret, a token or an expected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    kind: ErrorKind,
    message: Cow<'static, str>,
    /// What went wrong underneath (a store or upstream fault), for logs only.
    detail: Option<String>,
}

impl Rejection {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            detail: None,
        }
    }

    /// A rejection with the row's generic message.
    pub const fn of(kind: ErrorKind) -> Self {
        Self {
            kind,
            message: Cow::Borrowed(kind.default_message()),
            detail: None,
        }
    }

    /// Attaches a cause for the logs; clients never see it.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    pub fn missing(field: &str) -> Self {
        Self::new(ErrorKind::MissingParam, format!("{field} is required"))
    }

    /// `validation_error` for an unknown member `name` (at most 64 chars of
    /// it shown, escaped) under `at` (`""` at the top, `"widget."` inside).
    pub fn unknown_field(at: &str, name: &str) -> Self {
        let shown: String = name.chars().take(64).flat_map(char::escape_debug).collect();
        Self::new(
            ErrorKind::ValidationError,
            format!("unknown field \"{at}{shown}\""),
        )
    }

    pub fn invalid(field: &str, why: &str) -> Self {
        Self::new(ErrorKind::ValidationError, format!("{field}: {why}"))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<ErrorKind> for Rejection {
    fn from(kind: ErrorKind) -> Self {
        Self::of(kind)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (status, error, code) = self.kind.triple();
        write!(f, "{status} {error}/{code}: {}", self.message)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_row_is_distinct_and_statuses_are_http_errors() {
        let mut seen = HashSet::new();
        for kind in ErrorKind::ALL {
            let (status, error, code) = kind.triple();
            assert!((400..600).contains(&status), "{kind:?} has status {status}");
            assert!(seen.insert((status, error, code)), "{kind:?} repeats a row");
            assert!(
                !kind.default_message().ends_with('.'),
                "{kind:?} message ends with a period"
            );
        }
    }

    #[test]
    fn spec_rows_that_share_a_code_differ_by_status() {
        // `invalid_signature` means two things: a widget mismatch (400) and a bad
        // provider signature (401). Both must keep the spec's code.
        assert_eq!(
            ErrorKind::InvalidSignature.triple(),
            (400, "invalid_request", "invalid_signature")
        );
        assert_eq!(
            ErrorKind::InvalidProviderSignature.triple(),
            (401, "unauthorised", "invalid_signature")
        );
    }
}

//! CORS for the widget API: only the configured widget origins may call it
//! from a browser. Partner routes send no CORS headers at all.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, HeaderValue, VARY,
};
use http::{HeaderMap, StatusCode};
use session_core::value::Origin;
use session_core::{ErrorKind, Rejection};

use crate::config::WidgetOrigins;
use crate::response::{HttpResponse, empty};

/// The request's `Origin` when it is allowed; `Ok(None)` when there is none
/// (a non-browser caller); `forbidden_origin` when it is not allowed.
pub fn allowed_origin(
    headers: &HeaderMap,
    origins: &WidgetOrigins,
) -> Result<Option<HeaderValue>, Rejection> {
    let Some(value) = headers.get(http::header::ORIGIN) else {
        return Ok(None);
    };
    let allowed =
        Origin::parse_header(value.as_bytes()).is_ok_and(|origin| origins.allows(&origin));
    if allowed {
        Ok(Some(value.clone()))
    } else {
        Err(Rejection::new(
            ErrorKind::ForbiddenOrigin,
            "Origin is not an allowed widget origin",
        ))
    }
}

/// Adds the headers that let the allowed `origin` read `response`.
pub fn expose(response: &mut HttpResponse, origin: Option<HeaderValue>) {
    let headers = response.headers_mut();
    headers.insert(VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
}

/// Request headers the widget sends to `POST /widget/init`.
pub const INIT_HEADERS: &str = "Content-Type, X-Request-Id";
/// Request headers the sandbox's stand-in widget sends to the simulator: its
/// init token is the credential.
pub const SIMULATE_HEADERS: &str = "Authorization, Content-Type, X-Request-Id";

/// The answer to a preflight from an allowed origin, allowing
/// `allowed_headers`.
pub fn preflight(origin: Option<HeaderValue>, allowed_headers: &'static str) -> HttpResponse {
    let mut response = empty(StatusCode::NO_CONTENT);
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(allowed_headers),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    expose(&mut response, origin);
    response
}

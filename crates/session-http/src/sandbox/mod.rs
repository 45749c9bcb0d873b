//! The sandbox's stand-in widget (SPEC.md §7): `GET /widget/sdk.js`, a plain
//! script embedded in the binary. It defines `proofWidget.run(options)`, which
//! redeems the init token, shows the locked values and offers *Pay*, *Fail*
//! and *Cancel*, each a call to the payment simulator. The script is short and
//! dependency-free on purpose: a partner reads it to see what the real widget
//! needs from them.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::response::HttpResponse;

/// The script, as served.
pub const SDK_JS: &str = include_str!("sdk.js");

/// `GET /widget/sdk.js`.
pub fn sdk() -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(SDK_JS.as_bytes())));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    // A sandbox is where a partner edits and reloads: never a stale script.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

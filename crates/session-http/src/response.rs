//! Building responses: JSON bodies, and the one place where a domain
//! rejection becomes an HTTP error.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use session_core::{ErrorKind, Rejection};

pub type Body = Full<Bytes>;
pub type HttpResponse = Response<Body>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response with `status` and an already-encoded body.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

/// A response with `status` and no body (and so no content type).
pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::default());
    *response.status_mut() = status;
    response
}

/// `405 method_not_allowed`, with the `Allow` header listing `allow`.
pub fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = error(&Rejection::of(ErrorKind::MethodNotAllowed));
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A JSON response with `status` and `body` serialised.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => json_bytes(status, bytes),
        // Our DTOs hold only strings, numbers and booleans: encoding cannot fail.
        Err(_) => error(&Rejection::of(ErrorKind::Internal)),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
    message: &'a str,
}

/// The error response for `rejection`: its row's status and exactly the three
/// fields of SPEC.md §1. The rejection's log-only detail is not included.
pub fn error(rejection: &Rejection) -> HttpResponse {
    let kind = rejection.kind();
    let (status, error, code) = kind.triple();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrorBody {
        error,
        code,
        message: rejection.message(),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| {
        br#"{"error":"internal_error","code":"internal_error","message":"internal error"}"#.to_vec()
    });
    let mut response = json_bytes(status, bytes);
    if kind == ErrorKind::IdempotencyKeyInUse {
        // The first request with the key is about to commit or fail.
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn error_bodies_have_exactly_three_fields() {
        for &kind in ErrorKind::ALL {
            let response = error(&Rejection::of(kind).with_detail("secret internals"));
            assert_eq!(response.status().as_u16(), kind.status());
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            let expected = serde_json::json!({
                "error": kind.error(),
                "code": kind.code(),
                "message": kind.default_message(),
            });
            assert_eq!(body, expected, "{kind:?}");
        }
    }
}

//! Reading request bodies: media type, size limit and read timeout, checked in
//! the spec's order (415, then 413).

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use session_core::{ErrorKind, Rejection};

/// `Content-Type` must be `application/json`, parameters allowed (a `charset`,
/// if given, must be UTF-8).
pub fn require_json(headers: &HeaderMap) -> Result<(), Rejection> {
    let refused = || Rejection::of(ErrorKind::UnsupportedMediaType);
    let value = headers
        .get(CONTENT_TYPE)
        .ok_or_else(refused)?
        .to_str()
        .map_err(|_| refused())?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(refused());
    }
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = value.trim().trim_matches('"');
            if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                return Err(refused());
            }
        }
    }
    Ok(())
}

/// Reads the whole body, refusing more than `limit` bytes (up front when
/// `Content-Length` says so) and a body slower than `timeout`.
pub async fn read(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Rejection> {
    let too_large = || Rejection::of(ErrorKind::PayloadTooLarge);
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(Rejection::of(ErrorKind::RequestTimeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        // The client went away or sent a broken chunked encoding.
        Ok(Err(error)) => Err(Rejection::new(
            ErrorKind::DecodeError,
            "request body could not be read",
        )
        .with_detail(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn media_type_rules() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(require_json(&with_type(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/jsonx",
            "application/json; charset=latin1",
            "application/x-www-form-urlencoded",
            "",
        ] {
            assert_eq!(
                require_json(&with_type(bad)).map_err(|r| r.kind()),
                Err(ErrorKind::UnsupportedMediaType),
                "{bad}"
            );
        }
        assert_eq!(
            require_json(&HeaderMap::new()).map_err(|r| r.kind()),
            Err(ErrorKind::UnsupportedMediaType)
        );
    }
}

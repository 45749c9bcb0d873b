//! A web origin as a browser sends it in an `Origin` header.

use super::Invalid;

/// A web origin: (scheme, host, port), with the scheme's default port filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: Box<str>,
    host: Box<str>,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` as a browser sends it in an `Origin`
    /// header: the text must be the origin's own serialisation (ASCII case
    /// aside, an explicit default port allowed). URL spellings that normalise
    /// to an origin (`/.`, `%61pp`, tabs, a missing `//`, `:0443`) are refused,
    /// as are paths, credentials and the opaque origin `null`. A configured
    /// origin may end with one `/`.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        const REFUSED: Invalid = "is not an http(s) origin scheme://host[:port]";
        let text = text.strip_suffix('/').unwrap_or(text);
        let url = url::Url::parse(text).map_err(|_| REFUSED)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(REFUSED);
        }
        let origin = url.origin().ascii_serialization();
        let port = url.port_or_known_default().ok_or(REFUSED)?;
        let with_port = format!("{origin}:{port}");
        if !(text.eq_ignore_ascii_case(&origin) || text.eq_ignore_ascii_case(&with_port)) {
            return Err(REFUSED);
        }
        Ok(Self {
            scheme: url.scheme().into(),
            host: url.host_str().ok_or(REFUSED)?.to_ascii_lowercase().into(),
            port,
        })
    }

    /// Parses the raw bytes of an `Origin` header; bytes that are not text
    /// cannot be an origin.
    pub fn parse_header(value: &[u8]) -> Result<Self, Invalid> {
        std::str::from_utf8(value)
            .map_err(|_| "is not text")
            .and_then(Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_effective_port() {
        let registered = Origin::parse("https://app.acme.example").expect("origin");
        for same in [
            "https://app.acme.example",
            "https://APP.acme.example:443",
            "https://app.acme.example/",
        ] {
            assert_eq!(Origin::parse(same).as_ref(), Ok(&registered), "{same}");
        }
        for other in [
            "http://app.acme.example",
            "https://app.acme.example:8443",
            "https://acme.example",
        ] {
            assert_ne!(Origin::parse(other).as_ref(), Ok(&registered), "{other}");
        }
        for malformed in [
            "null",
            "",
            "app.acme.example",
            "https://app.acme.example/path",
            "https://u:p@app.acme.example",
            "ftp://x.example",
            // Spellings that URL parsing would normalise (found by fuzzing).
            "https://app.acme.example/.",
            "https://app.acme.example/%2e",
            "https://app.acme.\texample",
            "https://%61pp.acme.example",
            "https:app.acme.example",
            "https:\\\\app.acme.example",
            "https://app\u{3002}acme.example",
            "https://app.acme.example:0443",
            "https://app.acme.example//",
        ] {
            assert!(Origin::parse(malformed).is_err(), "{malformed}");
        }
    }

    #[test]
    fn header_bytes_that_are_not_text_are_no_origin() {
        assert!(Origin::parse_header(b"https://app.acme.example").is_ok());
        assert!(Origin::parse_header(b"https://app.\xffacme.example").is_err());
    }
}

//! Where the widget sends the user when the transaction is done.

use std::net::IpAddr;
use std::sync::Arc;

use url::{Host, Url};

use super::Invalid;

/// An absolute `https` URL (plain `http` only for localhost or a loopback
/// address), at most 2048 characters, without credentials.
///
/// Its text is the parsed URL's own (WHATWG) serialisation, not what was sent:
/// the host check runs on the parsed URL, and a client must read the same host
/// from what is stored and returned. Sent as
/// `https://app.example\@evil.example/`, it is kept as
/// `https://app.example/@evil.example/`.
///
/// Shared (`Arc`): most sessions use the partner's default URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUrl {
    text: Arc<str>,
}

impl RedirectUrl {
    pub const MAX_LEN: usize = 2048;

    /// Parses `text` and, when `allowed_hosts` is non-empty, requires its host to
    /// be one of them (compared case-insensitively, as hosts are).
    pub fn parse(text: &str, allowed_hosts: &[String]) -> Result<Self, Invalid> {
        if text.len() > Self::MAX_LEN {
            return Err("must be at most 2048 characters");
        }
        // `Url::parse` trims and drops tabs and newlines; refuse those rather
        // than guess what the partner meant.
        if text.trim() != text || text.chars().any(char::is_control) {
            return Err("must be an absolute URL");
        }
        let url = Url::parse(text).map_err(|_| "must be an absolute URL")?;
        let host = url.host().ok_or("must be an absolute URL with a host")?;
        let loopback = match &host {
            Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
            Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
            Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err("must use https (http is allowed only for localhost)"),
            _ => return Err("must be an https URL"),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain credentials");
        }
        let host = host.to_string();
        if !allowed_hosts.is_empty() && !allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(&host))
        {
            return Err("host is not one of the partner's redirect hosts");
        }
        Ok(Self {
            text: url.as_str().into(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http() {
        for ok in [
            "https://app.example.com/done",
            "https://app.example.com:8443/done?x=1#y",
            "http://localhost:3000/done",
            "http://127.0.0.1/done",
            "http://[::1]:8080/",
        ] {
            assert_eq!(
                RedirectUrl::parse(ok, &[]).map(|u| u.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn refuses_unsafe_or_relative_urls() {
        let long = format!("https://example.com/{}", "a".repeat(2048));
        for bad in [
            "",
            "/done",
            "app.example.com/done",
            "http://app.example.com/done",
            "javascript:alert(1)",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            " https://example.com/",
            "https://example.com/\n",
            &long,
        ] {
            assert!(
                RedirectUrl::parse(bad, &[]).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    /// What a client reads from a stored URL must be what the host check saw:
    /// the stored text is the parsed URL's own serialisation, so no parser can
    /// find another host in it (backslashes, percent-encoded hosts, userinfo).
    #[test]
    fn stores_the_normalised_url_that_was_checked() {
        let hosts = vec!["app.acme.example".to_owned()];
        let accepted = [
            (
                r"https://app.acme.example\@evil.example/",
                "https://app.acme.example/@evil.example/",
            ),
            (
                r"https://app.acme.example\evil.example/x",
                "https://app.acme.example/evil.example/x",
            ),
            (
                "https://app%2Eacme.example/done",
                "https://app.acme.example/done",
            ),
            ("HTTPS://APP.acme.example", "https://app.acme.example/"),
            (
                "https://app.acme.example/a/../b?q=%zz#f",
                "https://app.acme.example/b?q=%zz#f",
            ),
        ];
        for (text, normalised) in accepted {
            let url = RedirectUrl::parse(text, &hosts).map(|u| u.as_str().to_owned());
            assert_eq!(url.as_deref(), Ok(normalised), "{text:?}");
            assert_eq!(
                RedirectUrl::parse(normalised, &hosts).map(|u| u.as_str().to_owned()),
                Ok(normalised.to_owned()),
                "normalisation is stable for {text:?}"
            );
        }
        for refused in [
            r"https://evil.example\@app.acme.example/",
            "https://app.acme.example@evil.example/",
            "https://app.acme.example%40evil.example/",
            "https://app.acme.example\t@evil.example/",
            "https://u@app.acme.example/",
            "https://app.acme.example:pw@evil.example/",
            "https://evil.example#@app.acme.example/",
            "https://evil.example?@app.acme.example/",
            "https://app.acme.example.evil.example/",
        ] {
            assert!(
                RedirectUrl::parse(refused, &hosts).is_err(),
                "{refused:?} should be refused"
            );
        }
    }

    #[test]
    fn enforces_the_partner_host_list() {
        let hosts = vec!["app.example.com".to_owned()];
        assert!(RedirectUrl::parse("https://APP.example.com/x", &hosts).is_ok());
        assert!(RedirectUrl::parse("https://evil.example.com/x", &hosts).is_err());
        assert!(RedirectUrl::parse("https://app.example.com.evil.io/x", &hosts).is_err());
    }
}

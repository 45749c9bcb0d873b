//! TLS to PostgreSQL through rustls, as the connection URL asks for it with
//! libpq's `sslmode` and `sslrootcert`.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require` and refuses
//! `sslrootcert`, so both are taken out of the URL here and turned into the
//! driver's mode plus a rustls verifier:
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | absent, `disable` | no | — |
//! | `allow`, `prefer` | when the server offers it | not checked |
//! | `require` | yes | not checked; with `sslrootcert`, as `verify-ca` (as libpq does) |
//! | `verify-ca` | yes | chain to `sslrootcert` |
//! | `verify-full` | yes | chain to `sslrootcert` and the host name |
//!
//! Unlike libpq, an absent `sslmode` means no TLS (SPEC.md §6: TLS when the
//! URL asks for it), and `verify-ca`/`verify-full` need `sslrootcert` (there is
//! no default `~/.postgresql/root.crt`).

use std::path::PathBuf;
use std::sync::Arc;

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use session_core::ports::StoreError;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asks for, once `sslmode` and `sslrootcert` are taken out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsRequest {
    pub(crate) mode: Mode,
    pub(crate) root_cert: Option<PathBuf>,
}

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            // libpq's `allow` tries plain first; a TLS-capable server gets TLS
            // here, which is never less safe.
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

/// Splits the TLS parameters off `url` (a `postgres://` URL or a libpq
/// `key=value` string): the URL tokio-postgres can read, and the request.
/// Errors never quote the URL, which may hold a password.
pub(crate) fn split_url(url: &str) -> Result<(String, TlsRequest), StoreError> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: &str| -> Result<bool, StoreError> {
        match key {
            "sslmode" => {
                mode = Some(Mode::parse(value).ok_or_else(|| {
                    invalid(
                        "sslmode must be disable, allow, prefer, require, verify-ca or verify-full",
                    )
                })?);
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if let Some((base, query)) = url
        .split_once('?')
        .filter(|_| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| invalid("a URL parameter is not UTF-8"))?;
            if !take(key, &decoded)? {
                kept.push(pair);
            }
        }
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.to_owned()
    } else {
        let mut kept = Vec::new();
        for (key, value) in key_values(url)? {
            if !take(&key, &value)? {
                kept.push(format!("{key}={}", quote(&value)));
            }
        }
        kept.join(" ")
    };
    let mode = mode.unwrap_or(Mode::Disable);
    if matches!(mode, Mode::VerifyCa | Mode::VerifyFull) && root_cert.is_none() {
        return Err(invalid(
            "sslmode=verify-ca and verify-full need sslrootcert=FILE (the CA certificates, PEM)",
        ));
    }
    Ok((rest, TlsRequest { mode, root_cert }))
}

impl TlsRequest {
    /// The driver's mode for this request.
    pub(crate) fn ssl_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// The connector for this request: rustls on ring with the verifier the
    /// mode calls for. Reads `sslrootcert` now, so a missing or empty file
    /// fails at start rather than at the first connection.
    pub(crate) fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.root_cert {
            Some(path) => Some(Arc::new(load_roots(path)?)),
            None => None,
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (self.mode, roots) {
            (Mode::VerifyFull, Some(roots)) => webpki(roots, &provider)?,
            (Mode::VerifyCa | Mode::Require, Some(roots)) => Arc::new(ChainOnly {
                inner: webpki(roots, &provider)?,
            }),
            (Mode::VerifyCa | Mode::VerifyFull, None) => {
                return Err(invalid(
                    "sslmode=verify-ca and verify-full need sslrootcert",
                ));
            }
            (Mode::Disable | Mode::Prefer | Mode::Require, _) => Arc::new(Unverified {
                provider: Arc::clone(&provider),
            }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(&format!("TLS setup: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

fn invalid(why: &str) -> StoreError {
    StoreError::Failed(format!("invalid database url: {why}"))
}

fn load_roots(path: &std::path::Path) -> Result<RootCertStore, StoreError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        StoreError::Failed(format!("sslrootcert {}: {e}", path.display()))
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
        roots
            .add(cert.map_err(|e| unreadable(&e))?)
            .map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"no certificate in the file"));
    }
    Ok(roots)
}

fn webpki(
    roots: Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, StoreError> {
    WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(provider))
        .build()
        .map_err(|e| StoreError::Failed(format!("sslrootcert: {e}")))
}

/// `verify-ca`: the chain must lead to a configured root; the name in the
/// certificate is not compared with the host.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // WebPKI checks the chain before the name: a name error means the
            // chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a root certificate: encrypted, but any
/// certificate is taken, as libpq does. The handshake's signatures are still
/// checked, so the session is bound to the certificate that was presented.
#[derive(Debug)]
struct Unverified {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Characters a `key=value` value must not hold unquoted.
const NEEDS_QUOTES: &AsciiSet = &CONTROLS.add(b' ').add(b'\'').add(b'\\').add(b'=');

/// A libpq `key=value` value, quoted when it has to be.
fn quote(value: &str) -> String {
    if !value.is_empty() && utf8_percent_encode(value, NEEDS_QUOTES).to_string() == value {
        return value.to_owned();
    }
    let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
    format!("'{escaped}'")
}

/// The pairs of a libpq `key = value` string (values optionally in single
/// quotes, with `\\` escapes).
fn key_values(text: &str) -> Result<Vec<(String, String)>, StoreError> {
    let malformed = || invalid("not a PostgreSQL connection string");
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') || key.is_empty() {
            return Err(malformed());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next().ok_or_else(malformed)? {
                    '\'' => break,
                    '\\' => value.push(chars.next().ok_or_else(malformed)?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(chars.next().ok_or_else(malformed)?);
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, Mode, Option<&'static str>) {
        let (rest, request) = split_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let root = request.root_cert.map(|p| match p.to_str() {
            Some("/etc/ca.pem") => "/etc/ca.pem",
            Some("/tmp/my ca.pem") => "/tmp/my ca.pem",
            other => panic!("unexpected root {other:?}"),
        });
        (rest, request.mode, root)
    }

    #[test]
    fn takes_sslmode_and_sslrootcert_out_of_urls() {
        assert_eq!(
            split(
                "postgres://u:pw@db:5432/s?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x"
            ),
            (
                "postgres://u:pw@db:5432/s?application_name=x".into(),
                Mode::VerifyFull,
                Some("/etc/ca.pem")
            )
        );
        assert_eq!(
            split("postgresql://db/s?sslmode=require"),
            ("postgresql://db/s".into(), Mode::Require, None)
        );
        assert_eq!(
            split("postgres://db/s"),
            ("postgres://db/s".into(), Mode::Disable, None),
            "no sslmode: no TLS"
        );
        assert_eq!(
            split(
                "host=db user=u password='a b\\'c' sslmode = verify-ca sslrootcert='/tmp/my ca.pem'"
            ),
            (
                "host=db user=u password='a b\\'c'".into(),
                Mode::VerifyCa,
                Some("/tmp/my ca.pem")
            )
        );
        assert_eq!(split("host=db sslmode=prefer").1, Mode::Prefer);
    }

    #[test]
    fn refuses_unknown_modes_and_verification_without_roots() {
        for url in [
            "postgres://u:hunter2@db/s?sslmode=maybe",
            "postgres://u:hunter2@db/s?sslmode=verify-full",
            "host=db password=hunter2 sslmode=verify-ca",
            "host=db password='hunter2",
        ] {
            let error = split_url(url).expect_err(url).to_string();
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn a_missing_root_certificate_fails_at_start() {
        let (_, request) =
            split_url("postgres://db/s?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .expect("parses");
        assert!(request.connector().is_err());
        let (_, plain) = split_url("postgres://db/s?sslmode=require").expect("parses");
        assert!(plain.connector().is_ok());
    }
}

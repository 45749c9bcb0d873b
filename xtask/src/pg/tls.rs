//! Certificates for the TLS cluster: a throwaway CA, a server certificate it
//! signs for 127.0.0.1 and localhost, and an unrelated CA that must not be
//! trusted. Made here with rcgen, so the TLS test needs no openssl CLI.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::error::{Error, Result};
use crate::pg::user::RunAs;

/// Where the server's certificate and key go, relative to the data directory
/// (PostgreSQL resolves `ssl_cert_file` and `ssl_key_file` against it).
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";

/// The files a TLS test needs.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA that signed the server's certificate (PEM).
    pub root_cert: PathBuf,
    /// A CA that signed nothing the server presents (PEM).
    pub other_root_cert: PathBuf,
}

/// Writes the server's certificate and key into `data` (owned by whoever runs
/// the server, key readable by it alone) and both CAs into `dir`.
pub fn write(dir: &Path, data: &Path, run_as: &RunAs) -> Result<TlsFiles> {
    let failed = |what: &str, e: &dyn std::fmt::Display| Error::failed(format!("{what}: {e}"));
    let (ca_params, ca_key) = ca("session test CA").map_err(|e| failed("CA certificate", &e))?;
    let ca_pem = ca_params
        .self_signed(&ca_key)
        .map_err(|e| failed("CA certificate", &e))?
        .pem();
    let (other_params, other_key) =
        ca("unrelated test CA").map_err(|e| failed("unrelated CA", &e))?;
    let other_pem = other_params
        .self_signed(&other_key)
        .map_err(|e| failed("unrelated CA", &e))?
        .pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().map_err(|e| failed("server key", &e))?;
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .map_err(|e| failed("server certificate", &e))?;
    server
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let server_pem = server
        .signed_by(&server_key, &issuer)
        .map_err(|e| failed("server certificate", &e))?
        .pem();

    let write = |path: &Path, text: &str| {
        fs::write(path, text)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))
    };
    let cert = data.join(SERVER_CERT);
    let key = data.join(SERVER_KEY);
    write(&cert, &server_pem)?;
    write(&key, &server_key.serialize_pem())?;
    // PostgreSQL refuses a key that others can read.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::failed(format!("cannot restrict {}: {e}", key.display())))?;
    for path in [&cert, &key] {
        run_as.hand_over(path).map_err(Error::failed)?;
    }
    let files = TlsFiles {
        root_cert: dir.join("root.crt"),
        other_root_cert: dir.join("other-root.crt"),
    };
    write(&files.root_cert, &ca_pem)?;
    write(&files.other_root_cert, &other_pem)?;
    Ok(files)
}

fn ca(name: &str) -> std::result::Result<(CertificateParams, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok((params, key))
}

//! PostgreSQL for the pg tests: where it comes from (the environment, the local server
//! or a throwaway cluster), and keeping a throwaway one alive until the tests end.

mod binaries;
mod cluster;
pub(crate) mod conninfo;
mod local;
mod probe;
mod tls;
mod user;

use std::fmt;

use crate::cargo;
use crate::env;
use crate::error::{Error, Result};
use cluster::Cluster;

pub(crate) use binaries::{DEBIAN_ROOT, search_dirs};
pub(crate) use user::is_root;

/// The variable the pg tests read their admin connection URL from.
pub const URL_VAR: &str = "SESSION_TEST_DATABASE_URL";

/// The variables the TLS test reads: a throwaway cluster with `ssl = on`, the
/// CA that signed its certificate and a CA that did not.
pub const TLS_URL_VAR: &str = "SESSION_TEST_TLS_DATABASE_URL";
pub const TLS_ROOT_CERT_VAR: &str = "SESSION_TEST_TLS_ROOT_CERT";
pub const TLS_OTHER_ROOT_CERT_VAR: &str = "SESSION_TEST_TLS_OTHER_ROOT_CERT";

/// A throwaway cluster serving TLS; stopped and removed when dropped.
#[derive(Debug)]
pub struct TlsDatabase {
    url: String,
    files: tls::TlsFiles,
    _cluster: Cluster,
}

impl TlsDatabase {
    /// The variables that tell the TLS test where this cluster is.
    pub fn vars(&self) -> [(&'static str, String); 3] {
        [
            (TLS_URL_VAR, self.url.clone()),
            (
                TLS_ROOT_CERT_VAR,
                self.files.root_cert.display().to_string(),
            ),
            (
                TLS_OTHER_ROOT_CERT_VAR,
                self.files.other_root_cert.display().to_string(),
            ),
        ]
    }
}

/// Starts a throwaway cluster with `ssl = on` for the TLS test (whatever the
/// main database is: the local server's certificate is not ours to know).
pub fn provide_tls() -> Result<TlsDatabase> {
    cargo::header("postgres", "starting a throwaway cluster with ssl = on");
    let (cluster, files) = Cluster::start_tls()?;
    let url = cluster.url().to_owned();
    probe::check(&url)
        .map_err(|reason| Error::failed(format!("the TLS cluster does not answer: {reason}")))?;
    println!("==> postgres: TLS cluster at {}", conninfo::display(&url));
    Ok(TlsDatabase {
        url,
        files,
        _cluster: cluster,
    })
}

/// Where to get PostgreSQL from.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Mode {
    /// SESSION_TEST_DATABASE_URL if set, else the local server, else a throwaway cluster.
    Auto,
    /// Only SESSION_TEST_DATABASE_URL.
    Env,
    /// Only the local server (127.0.0.1:5432 or /var/run/postgresql).
    Local,
    /// Only a throwaway cluster made with initdb and pg_ctl.
    Throwaway,
}

/// A PostgreSQL the tests may use; holds a throwaway cluster until dropped.
#[derive(Debug)]
pub struct Database {
    url: String,
    origin: Origin,
    // Never read: it is here so the cluster lives exactly as long as the database.
    _cluster: Option<Cluster>,
}

#[derive(Clone, Copy, Debug)]
enum Origin {
    Env,
    Local,
    Throwaway,
}

impl Database {
    /// The admin URL, password included: for the tests, never for printing.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without any password, for logs.
    pub fn display_url(&self) -> String {
        conninfo::display(&self.url)
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match self.origin {
            Origin::Env => "from SESSION_TEST_DATABASE_URL",
            Origin::Local => "local server",
            Origin::Throwaway => "throwaway cluster",
        };
        write!(f, "{} ({origin})", self.display_url())
    }
}

/// Finds or starts a PostgreSQL according to `mode` and says which one it is.
pub fn provide(mode: Mode) -> Result<Database> {
    cargo::header(
        "postgres",
        &format!("looking for a server (--pg {})", mode_name(mode)),
    );
    let database = match mode {
        Mode::Auto => auto()?,
        Mode::Env => match env_url()? {
            Some(url) => from_env(url)?,
            None => {
                return Err(Error::failed(format!(
                    "--pg env but {URL_VAR} is not set\n{HOW_TO}"
                )));
            }
        },
        Mode::Local => {
            local().map_err(|reason| Error::failed(format!("no usable local server: {reason}")))?
        }
        Mode::Throwaway => throwaway()?,
    };
    println!("==> postgres: using {database}");
    Ok(database)
}

/// How to give xtask a PostgreSQL when it finds none.
const HOW_TO: &str = "\
to run the pg tests, either
  - set SESSION_TEST_DATABASE_URL=postgres://user@host:port/db, a role allowed to CREATE DATABASE, or
  - run PostgreSQL locally on 127.0.0.1:5432 or /var/run/postgresql with trust auth, or
  - install the PostgreSQL server binaries (initdb, pg_ctl; on Debian: apt-get install postgresql)";

/// The documented order: the environment wins outright, then the local server, then a
/// throwaway cluster.
fn auto() -> Result<Database> {
    if let Some(url) = env_url()? {
        return from_env(url);
    }
    println!("    {URL_VAR} is not set; trying the local server");
    let local_reason = match local() {
        Ok(database) => return Ok(database),
        Err(reason) => reason,
    };
    println!("    no usable local server; starting a throwaway cluster");
    let cluster_reason = match throwaway() {
        Ok(database) => return Ok(database),
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(Error::Failed(reason)) => reason,
    };
    Err(Error::failed(format!(
        "found no PostgreSQL for the pg tests\n  \
         local server: {local_reason}\n  \
         throwaway cluster: {cluster_reason}\n{HOW_TO}"
    )))
}

fn env_url() -> Result<Option<String>> {
    env::text(URL_VAR)
}

/// A URL the user gave is used as is or not at all: falling back silently would run
/// the tests against a database they did not ask for.
fn from_env(url: String) -> Result<Database> {
    let shown = conninfo::display(&url);
    println!("    {URL_VAR} is set: {shown}");
    probe::check(&url).map_err(|reason| {
        Error::failed(format!(
            "{URL_VAR} ({shown}) is not usable: {reason}\n\
             fix it, or unset it to let xtask use the local server or a throwaway cluster"
        ))
    })?;
    Ok(Database {
        url,
        origin: Origin::Env,
        _cluster: None,
    })
}

fn local() -> Result<Database, String> {
    let url = local::find()?;
    Ok(Database {
        url,
        origin: Origin::Local,
        _cluster: None,
    })
}

fn throwaway() -> Result<Database> {
    let cluster = Cluster::start()?;
    let url = cluster.url().to_owned();
    // A fresh cluster that fails the probe is a bug here, not in the user's setup.
    probe::check(&url).map_err(|reason| {
        Error::failed(format!("the throwaway cluster does not answer: {reason}"))
    })?;
    Ok(Database {
        url,
        origin: Origin::Throwaway,
        _cluster: Some(cluster),
    })
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Auto => "auto",
        Mode::Env => "env",
        Mode::Local => "local",
        Mode::Throwaway => "throwaway",
    }
}

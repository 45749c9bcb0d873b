//! TLS to PostgreSQL: `sslmode` and `sslrootcert` honoured by the pool and the
//! LISTEN connection, against a cluster with `ssl = on` whose certificate a
//! throwaway CA signed. `cargo xtask test` starts that cluster and names it in
//! the variables below; where they are missing the test fails under CI or
//! `SESSION_REQUIRE_PG`, and is skipped elsewhere.

use std::str::FromStr;
use std::time::Duration;

use session_core::ports::Health;
use session_store_pg::PgStore;

use crate::{eventually, quick, raw};

const URL_VAR: &str = "SESSION_TEST_TLS_DATABASE_URL";
const ROOT_VAR: &str = "SESSION_TEST_TLS_ROOT_CERT";
const OTHER_ROOT_VAR: &str = "SESSION_TEST_TLS_OTHER_ROOT_CERT";

struct TlsServer {
    /// `postgres://user@127.0.0.1:port/db`, no parameters.
    url: String,
    root: String,
    other_root: String,
}

/// A non-empty environment variable.
#[expect(
    clippy::disallowed_methods,
    reason = "the test reads where its TLS cluster is from the environment xtask sets"
)]
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn tls_server() -> Option<TlsServer> {
    if let (Some(url), Some(root), Some(other_root)) =
        (var(URL_VAR), var(ROOT_VAR), var(OTHER_ROOT_VAR))
    {
        return Some(TlsServer {
            url,
            root,
            other_root,
        });
    }
    let why = format!(
        "the TLS test needs a PostgreSQL with ssl = on named by {URL_VAR}, {ROOT_VAR} and \
         {OTHER_ROOT_VAR}; `cargo xtask test` starts one (it needs initdb and pg_ctl)"
    );
    assert!(
        var("CI").is_none() && var("SESSION_REQUIRE_PG").is_none(),
        "{why}"
    );
    eprintln!("skipping: {why}");
    None
}

/// Each connection with `application_name = app`: whether it is encrypted,
/// and whether it is the listener (its last statement was `LISTEN`).
async fn encrypted(admin: &tokio_postgres::Client, app: &str) -> Vec<(bool, bool)> {
    admin
        .query(
            "SELECT s.ssl, a.query LIKE 'LISTEN %' FROM pg_stat_ssl s \
             JOIN pg_stat_activity a ON a.pid = s.pid WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .expect("pg_stat_ssl")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured_by_the_pool_and_the_listener() {
    let Some(server) = tls_server() else {
        return;
    };
    let admin = raw(&server.url).await;
    let root = &server.root;
    let cases = [
        (String::new(), false),
        ("sslmode=disable".to_owned(), false),
        ("sslmode=require".to_owned(), true),
        (format!("sslmode=verify-ca&sslrootcert={root}"), true),
        (format!("sslmode=verify-full&sslrootcert={root}"), true),
    ];
    for (n, (params, tls)) in cases.iter().enumerate() {
        let app = format!("tls_case_{n}_{}", std::process::id());
        let url = format!("{}?application_name={app}&{params}", server.url);
        let store = PgStore::connect(quick(&url))
            .await
            .unwrap_or_else(|e| panic!("{params:?} connects: {e}"));
        store.check().await.expect("healthy");
        // The pool's connection and the LISTEN connection, which starts in
        // the background.
        let both = eventually(Duration::from_secs(5), || async {
            let seen = encrypted(&admin, &app).await;
            seen.iter().any(|(_, listener)| *listener) && seen.iter().any(|(_, l)| !*l)
        })
        .await;
        assert!(
            both.is_some(),
            "{params:?}: the pool and the listener are connected"
        );
        let seen = encrypted(&admin, &app).await;
        assert!(
            seen.iter().all(|(ssl, _)| ssl == tls),
            "{params:?}: pg_stat_ssl says (ssl, listener) {seen:?}, wanted all {tls}"
        );
        store.shutdown();
    }

    // A root that did not sign the server's certificate is refused.
    for mode in ["verify-ca", "verify-full"] {
        let url = format!(
            "{}?sslmode={mode}&sslrootcert={}",
            server.url, server.other_root
        );
        assert!(
            PgStore::connect(quick(&url)).await.is_err(),
            "{mode} with a root that signed nothing of the server's"
        );
    }

    // The right root but another host name (the key=value form, connecting to
    // the cluster's address under a name its certificate does not carry):
    // verify-ca takes it, verify-full does not.
    let parsed = tokio_postgres::Config::from_str(&server.url).expect("TLS cluster URL");
    let port = parsed.get_ports().first().copied().unwrap_or(5432);
    let user = parsed.get_user().unwrap_or("postgres");
    let dbname = parsed.get_dbname().unwrap_or("postgres");
    let renamed = |mode: &str| {
        format!(
            "host=db.invalid hostaddr=127.0.0.1 port={port} user={user} dbname={dbname} \
             sslmode={mode} sslrootcert='{root}'"
        )
    };
    let chain_only = PgStore::connect(quick(&renamed("verify-ca")))
        .await
        .expect("verify-ca does not compare the host name");
    chain_only.shutdown();
    assert!(
        PgStore::connect(quick(&renamed("verify-full")))
            .await
            .is_err(),
        "verify-full refuses a certificate for another host"
    );
}

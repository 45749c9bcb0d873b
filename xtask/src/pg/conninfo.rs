//! Connection strings: writing the URLs we try, and showing any URL without its password.

use postgres::Config;
use postgres::config::Host;

/// `postgres://user@host:port/dbname`; a `host` starting with `/` is a socket directory.
pub fn url(user: &str, host: &str, port: u16, dbname: &str) -> String {
    let host = if host.starts_with('/') {
        // A socket directory goes in the host slot percent-encoded, which both
        // libpq and rust-postgres read as a Unix socket.
        host.replace('/', "%2F")
    } else {
        host.to_owned()
    };
    format!("postgres://{user}@{host}:{port}/{dbname}")
}

/// Where `conninfo` points, rebuilt from its parsed parts so a password can never
/// slip into a log; either a URL or `key=value` form.
pub fn display(conninfo: &str) -> String {
    let Ok(config) = conninfo.parse::<Config>() else {
        return "(an unparsable connection string, not shown)".to_owned();
    };
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(dir) => dir.to_string_lossy().replace('/', "%2F"),
            };
            // One port applies to every host; otherwise they pair up.
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let user = config
        .get_user()
        .map(|user| format!("{user}@"))
        .unwrap_or_default();
    let dbname = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{}/{dbname}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encodes_socket_directories() {
        assert_eq!(
            url("postgres", "127.0.0.1", 5432, "postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            url("root", "/var/run/postgresql", 5432, "postgres"),
            "postgres://root@%2Fvar%2Frun%2Fpostgresql:5432/postgres"
        );
    }

    #[test]
    fn display_never_shows_the_password() {
        let cases = [
            (
                "postgres://app:s3cret@db.example:6543/session",
                "postgres://app@db.example:6543/session",
            ),
            (
                "postgresql://app:s3cret@db.example/session?password=other",
                "postgres://app@db.example:5432/session",
            ),
            (
                "host=db.example port=5433 user=app password='s 3cret' dbname=session",
                "postgres://app@db.example:5433/session",
            ),
            (
                "postgres://postgres@%2Fvar%2Frun%2Fpostgresql/postgres",
                "postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5432/postgres",
            ),
            (
                "not a connection string",
                "(an unparsable connection string, not shown)",
            ),
        ];
        for (conninfo, expected) in cases {
            let shown = display(conninfo);
            assert_eq!(shown, expected, "displaying {conninfo:?}");
            assert!(
                !shown.contains("s3cret"),
                "password leaked for {conninfo:?}"
            );
        }
    }

    #[test]
    fn displayed_urls_have_no_password() {
        assert_eq!(
            display("postgres://load:secret@127.0.0.1:5433/db"),
            "postgres://load@127.0.0.1:5433/db"
        );
        assert_eq!(
            display("host=/var/run/postgresql user=me password=secret dbname=db"),
            "postgres://me@%2Fvar%2Frun%2Fpostgresql/db"
        );
    }
}

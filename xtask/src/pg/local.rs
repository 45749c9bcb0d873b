//! The local server: the standard Debian TCP port and socket directory, tried as the
//! roles a trust-auth setup usually has.

use crate::pg::{conninfo, probe, user};

const TCP_HOST: &str = "127.0.0.1";
const SOCKET_DIR: &str = "/var/run/postgresql";
const PORT: u16 = 5432;
const DBNAME: &str = "postgres";

/// The first candidate URL that passes the probe, or why none did.
pub fn find() -> Result<String, String> {
    let candidates = candidates(&users());
    for url in &candidates {
        match probe::check(url) {
            Ok(()) => {
                println!("    {url}: ok");
                return Ok(url.clone());
            }
            Err(reason) => println!("    {url}: {reason}"),
        }
    }
    Err(format!(
        "none of the {} local candidates worked (see above)",
        candidates.len()
    ))
}

/// `postgres` first (the Debian superuser), then whoever we are, then `root`.
fn users() -> Vec<String> {
    let me = user::current_name();
    let mut users: Vec<String> = Vec::new();
    for user in ["postgres".to_owned()]
        .into_iter()
        .chain(me)
        .chain(["root".to_owned()])
    {
        if !users.contains(&user) {
            users.push(user);
        }
    }
    users
}

/// TCP before the socket for each user: tests derive per-test URLs more easily from
/// a plain host and port.
fn candidates(users: &[String]) -> Vec<String> {
    users
        .iter()
        .flat_map(|user| [TCP_HOST, SOCKET_DIR].map(|host| conninfo::url(user, host, PORT, DBNAME)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_try_tcp_then_socket_for_each_user_in_order() {
        let users = ["postgres".to_owned(), "root".to_owned()];
        assert_eq!(
            candidates(&users),
            [
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5432/postgres",
                "postgres://root@127.0.0.1:5432/postgres",
                "postgres://root@%2Fvar%2Frun%2Fpostgresql:5432/postgres",
            ]
        );
    }
}

//! Asking a PostgreSQL whether it can host the pg tests: it answers, and our role may
//! create the per-test databases.

use std::error::Error;
use std::time::Duration;

use postgres::{Config, NoTls};

/// Long enough for a busy local server, short enough that a dead host costs little.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// `Ok` when `conninfo` connects and its role may `CREATE DATABASE`; otherwise why not.
pub fn check(conninfo: &str) -> Result<(), String> {
    let mut config: Config = conninfo
        .parse()
        .map_err(|e| format!("not a valid connection string: {e}"))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let mut client = config.connect(NoTls).map_err(|e| reason(&e))?;
    let row = client
        .query_one(
            "SELECT current_user::text, rolcreatedb OR rolsuper \
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .map_err(|e| reason(&e))?;
    let role: String = row.try_get(0).map_err(|e| reason(&e))?;
    let can_create: bool = row.try_get(1).map_err(|e| reason(&e))?;
    if can_create {
        Ok(())
    } else {
        Err(format!(
            "role {role} may not CREATE DATABASE (the pg tests create one per test)"
        ))
    }
}

/// The error with its causes: postgres' own message is only "db error" or
/// "error connecting to server", and the cause says what actually happened.
fn reason(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors already print their cause; do not say it twice.
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1
                .as_deref()
                .map(|cause| cause as &(dyn Error + 'static))
        }
    }

    #[test]
    fn reason_names_every_cause_once() {
        let refused = Layer("Connection refused", None);
        let error = Layer("error connecting to server", Some(Box::new(refused)));
        assert_eq!(
            reason(&error),
            "error connecting to server: Connection refused"
        );
        assert_eq!(reason(&Layer("db error", None)), "db error");
    }
}

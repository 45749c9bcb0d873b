//! Driver and pool errors, translated into the core's [`StoreError`] by SQLSTATE
//! class (a statement that expects one particular SQLSTATE checks for it
//! itself). Detail text names the condition, constraint and table, never a
//! row's values (a failing row can hold a partner's secrets).

use std::error::Error as _;

use deadpool_postgres::{PoolError, TimeoutType};
use session_core::ports::StoreError;

/// An error inside the adapter, already translated. `?` converts driver errors
/// into it, so query code reads like plain driver code.
#[derive(Debug)]
pub(crate) struct Fault(pub(crate) StoreError);

impl From<tokio_postgres::Error> for Fault {
    fn from(error: tokio_postgres::Error) -> Self {
        Self(translate(&error))
    }
}

impl From<StoreError> for Fault {
    fn from(error: StoreError) -> Self {
        Self(error)
    }
}

impl Fault {
    /// Whether this is a unique violation of `constraint` (an index name for
    /// a unique index). Read from the translated detail, which names the
    /// constraint (see [`translate`]).
    pub(crate) fn is_unique_violation_of(&self, constraint: &str) -> bool {
        matches!(&self.0, StoreError::Conflict(detail)
            if detail.starts_with("23505:")
                && detail.ends_with(&format!("(constraint {constraint})")))
    }
}

/// A fault for stored data that does not parse back into a domain value.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> Fault {
    Fault(StoreError::Failed(format!(
        "stored data is invalid: {what}"
    )))
}

/// How a failure should be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Unavailable,
    Conflict,
    Failed,
}

/// The class of a SQLSTATE: connection exceptions (class 08), the server
/// shutting down or cancelling (57P01-57P03, 57014: statement timeout) and too
/// many connections (53300) may pass if retried; a unique violation is a
/// conflict; anything else is a failure.
fn classify(sqlstate: &str) -> Class {
    match sqlstate {
        "23505" => Class::Conflict,
        "57P01" | "57P02" | "57P03" | "57014" | "53300" => Class::Unavailable,
        code if code.starts_with("08") => Class::Unavailable,
        _ => Class::Failed,
    }
}

fn store_error(class: Class, detail: String) -> StoreError {
    match class {
        Class::Unavailable => StoreError::Unavailable(detail),
        Class::Conflict => StoreError::Conflict(detail),
        Class::Failed => StoreError::Failed(detail),
    }
}

/// Translates a driver error.
pub(crate) fn translate(error: &tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        let mut detail = format!("{code}: {}", db.message());
        if let Some(constraint) = db.constraint() {
            detail.push_str(&format!(" (constraint {constraint})"));
        } else if let Some(table) = db.table() {
            detail.push_str(&format!(" (table {table})"));
        }
        return store_error(classify(code), detail);
    }
    // Without a server error: the connection failed, closed or timed out, or a
    // value did not convert. The driver's own text has no cause; add it (an io
    // error such as "Connection refused"), since that is what an operator needs.
    let mut detail = error.to_string();
    if let Some(cause) = error.source() {
        detail.push_str(&format!(": {cause}"));
    }
    let lost = error.is_closed()
        || error
            .source()
            .is_some_and(|cause| cause.is::<std::io::Error>())
        || [
            "error connecting to server",
            "error communicating with the server",
            "timeout waiting for server",
            "connection closed",
        ]
        .iter()
        .any(|prefix| detail.starts_with(prefix));
    if lost {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Failed(detail)
    }
}

/// Translates a pool error: waiting too long for a connection, or failing to
/// open one, means the database is unavailable.
pub(crate) fn pool_error(error: &PoolError) -> StoreError {
    match error {
        PoolError::Timeout(TimeoutType::Wait) => {
            StoreError::Unavailable("timed out waiting for a pooled connection".into())
        }
        PoolError::Timeout(TimeoutType::Create) => {
            StoreError::Unavailable("timed out connecting to PostgreSQL".into())
        }
        PoolError::Timeout(TimeoutType::Recycle) => {
            StoreError::Unavailable("timed out checking a pooled connection".into())
        }
        PoolError::Backend(error) => match translate(error) {
            // Any failure to open a connection (refused, authentication, missing
            // database) leaves the store unreachable for this request.
            StoreError::Failed(detail) | StoreError::Conflict(detail) => {
                StoreError::Unavailable(detail)
            }
            unavailable => unavailable,
        },
        PoolError::Closed => StoreError::Unavailable("the store has been shut down".into()),
        PoolError::NoRuntimeSpecified | PoolError::PostCreateHook(_) => {
            StoreError::Failed(format!("connection pool: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_the_port_error_classes() {
        let table = [
            ("08000", Class::Unavailable, "connection exception"),
            ("08006", Class::Unavailable, "connection failure"),
            ("08P01", Class::Unavailable, "protocol violation"),
            ("57P01", Class::Unavailable, "admin shutdown"),
            ("57P02", Class::Unavailable, "crash shutdown"),
            ("57P03", Class::Unavailable, "cannot connect now"),
            (
                "57014",
                Class::Unavailable,
                "query canceled (statement timeout)",
            ),
            ("53300", Class::Unavailable, "too many connections"),
            ("23505", Class::Conflict, "unique violation"),
            ("23503", Class::Failed, "foreign key violation"),
            ("23514", Class::Failed, "check violation"),
            ("42P01", Class::Failed, "undefined table"),
            ("40P01", Class::Failed, "deadlock"),
            ("53100", Class::Failed, "disk full"),
        ];
        for (code, expected, what) in table {
            assert_eq!(classify(code), expected, "{code} {what}");
        }
    }

    #[test]
    fn pool_timeouts_and_closure_are_unavailable() {
        for error in [
            PoolError::Timeout(TimeoutType::Wait),
            PoolError::Timeout(TimeoutType::Create),
            PoolError::Closed,
        ] {
            assert!(
                matches!(pool_error(&error), StoreError::Unavailable(_)),
                "{error}"
            );
        }
    }
}

//! The one error type of xtask: a message for a person, printed once by `main`.

use std::fmt;

/// Why a task stopped.
#[derive(Debug)]
pub enum Error {
    /// Something went wrong; the message says what and, where possible, how to fix it.
    Failed(String),
    /// The user pressed Ctrl-C (or we got SIGTERM); cleanup still ran.
    Interrupted,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(message) => f.write_str(message),
            Self::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for Error {}

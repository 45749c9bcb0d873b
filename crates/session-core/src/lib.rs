//! The domain core of the widget session service.
//!
//! Everything that decides anything lives here: request validation, partner
//! configuration, both signature schemes, the init token, client-token
//! hashing, the access gate, the status state machine and the use cases. The
//! core performs no I/O and depends on no runtime, HTTP or SQL crate: the world
//! reaches it through the ports in [`ports`], and time and randomness are
//! inputs ([`time::Clock`], [`random::Random`]).

pub mod access;
pub mod admin;
pub mod client_token;
pub mod error;
pub mod example;
pub mod idempotency;
pub mod init_token;
pub mod json;
pub mod live;
pub mod partner;
pub mod ports;
pub mod provider;
pub mod random;
pub mod request;
pub mod secret;
pub mod service;
pub mod session;
pub mod signing;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod time;
pub mod value;
pub mod webhook;

pub use error::{ErrorKind, Rejection};
pub use service::{
    CreatedSession, EventReport, Following, Outcome, Ports, SessionAnswer, SessionService,
    Settings, Simulated,
};

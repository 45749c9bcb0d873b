//! The one place xtask reads its own environment variables.
//!
//! The workspace's clippy.toml bans `std::env::var*` so the service resolves its
//! configuration once; a build tool has no such layer: its environment is its input.

use std::ffi::OsString;

use crate::error::{Error, Result};

/// The raw value of `name`, if set.
#[expect(
    clippy::disallowed_methods,
    reason = "xtask is a developer tool whose input is its environment"
)]
pub fn var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// The value of `name` as text; unset and empty both mean "not given".
pub fn text(name: &str) -> Result<Option<String>> {
    match var_os(name) {
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|_| Error::failed(format!("{name} is not valid UTF-8"))),
    }
}

//! `cargo xtask load`: a load test against a local server (not written yet).

use std::process::ExitCode;

/// Exit status for "this task does not exist yet", distinct from a failed run.
const NOT_IMPLEMENTED: u8 = 2;

pub fn run() -> ExitCode {
    eprintln!("cargo xtask load: not implemented yet");
    ExitCode::from(NOT_IMPLEMENTED)
}

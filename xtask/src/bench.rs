//! `cargo xtask bench`: the criterion benches in the `benches` member.

use crate::cargo::{self, Cargo};
use crate::error::Result;

/// Runs `cargo bench -p benches`, handing `criterion_args` to criterion.
pub fn run(criterion_args: &[String]) -> Result<()> {
    let mut command = Cargo::from_env().command(&["bench", "-p", "benches"]);
    if !criterion_args.is_empty() {
        command.arg("--").args(criterion_args);
    }
    cargo::step("bench", command)
}

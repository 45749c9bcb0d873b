//! Project tasks: `cargo xtask test | ci | bench | load`.
fn main() {}

//! `cargo xtask test` and `ci`: lints, then the whole test suite against a real
//! PostgreSQL that this module asks `pg` for and keeps alive until the tests end;
//! for `ci`, then schemathesis against a dev-mode server.

use crate::browser;
use crate::cargo::{self, Cargo};
use crate::error::{Error, Result};
use crate::pg::{self, Mode};
use crate::schemathesis;

/// What a run of the suite includes.
#[derive(Debug)]
pub struct Plan {
    pub pg: Mode,
    /// `cargo fmt --check` and `cargo clippy -D warnings`.
    pub lint: bool,
    /// `cargo doc` with rustdoc warnings as errors.
    pub docs: bool,
    /// `cargo xtask schemathesis`, when python3 is available.
    pub schemathesis: bool,
    /// Extra arguments for `cargo test`.
    pub cargo_test_args: Vec<String>,
}

/// Tells the pg tests to fail rather than skip when they find no database: under
/// xtask a database is always provided, so a skip would hide a broken setup.
const REQUIRE_PG_VAR: &str = "SESSION_REQUIRE_PG";

pub fn run(plan: &Plan) -> Result<()> {
    let cargo = Cargo::from_env();
    // Cheap checks first, so a formatting slip fails in seconds.
    if plan.lint {
        cargo::step("fmt", cargo.command(&["fmt", "--all", "--", "--check"]))?;
        cargo::step(
            "clippy",
            cargo.command(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        )?;
        // Without the test targets, cargo does not switch on the features that
        // only dev-dependencies ask for (the stores' `testing` rigs): this is
        // the build the server ships, and it must be warning-free too.
        cargo::step(
            "clippy (as shipped)",
            cargo.command(&["clippy", "--workspace", "--", "-D", "warnings"]),
        )?;
    }
    if plan.docs {
        let mut doc = cargo.command(&["doc", "--workspace", "--no-deps"]);
        doc.env("RUSTDOCFLAGS", "-D warnings");
        cargo::step("doc (RUSTDOCFLAGS=-D warnings)", doc)?;
    }

    // Provided after the lints so a lint failure never pays for a cluster; dropped at
    // the end of this function, which stops a throwaway cluster even when tests fail.
    let database = pg::provide(plan.pg)?;
    println!(
        "    the tests get {}={} and {REQUIRE_PG_VAR}=1",
        pg::URL_VAR,
        database.display_url()
    );

    // Without it the TLS test fails (it is required under xtask), so a
    // missing cluster shows as that test's failure with this reason above it.
    let tls = match pg::provide_tls() {
        Ok(tls) => Some(tls),
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(Error::Failed(reason)) => {
            println!("    no TLS cluster, the TLS test will fail: {reason}");
            None
        }
    };

    // The partner demo's browser test: required once the browser is here.
    let browser = browser::provide()?;

    let mut test = cargo.command(&["test"]);
    if !cargo::selects_packages(&plan.cargo_test_args) {
        test.arg("--workspace");
    }
    test.args(&plan.cargo_test_args)
        .env(pg::URL_VAR, database.url())
        .env(REQUIRE_PG_VAR, "1");
    if browser {
        test.env(browser::REQUIRE_VAR, "1");
    }
    for (name, value) in tls.iter().flat_map(pg::TlsDatabase::vars) {
        test.env(name, value);
    }
    cargo::step("test", test)?;
    drop(database);
    drop(tls);

    if plan.schemathesis {
        match schemathesis::find_python() {
            Some(python) => {
                schemathesis::run_with(&python, &schemathesis::SchemathesisArgs::for_ci())?;
            }
            None => println!(
                "\n==> schemathesis: SKIPPED: python3 is not on PATH, so docs/openapi.yaml was \
                 not checked against a running server"
            ),
        }
    }
    Ok(())
}

//! Chromium and chromedriver for the partner demo's real-browser test
//! (`examples/partner-demo/tests/browser.rs`): found on the machine, or
//! installed from Debian's packages when absent.

use std::process::Command;

use crate::env;
use crate::error::{Error, Result};
use crate::process;

/// Tells the browser test that a missing browser is a failure, not a skip.
pub const REQUIRE_VAR: &str = "SESSION_REQUIRE_BROWSER";

const PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

fn installed() -> bool {
    ["chromium", "chromedriver"]
        .iter()
        .all(|program| process::find_program(program, &["/usr/bin"]).is_some())
}

/// Makes sure Chromium and chromedriver are installed, installing Debian's
/// packages when they are not. `Ok(true)` when the browser test can run.
/// Under CI a browser that cannot be installed is an error; elsewhere the
/// test is skipped, and this says so.
pub fn provide() -> Result<bool> {
    if installed() {
        return Ok(true);
    }
    println!(
        "\n==> browser: Chromium or chromedriver is missing; installing Debian's {}",
        PACKAGES.join(" and ")
    );
    let outcome = install();
    match outcome {
        Ok(()) if installed() => Ok(true),
        Ok(()) => not_available(
            "the packages installed, but chromium or chromedriver is still not on PATH".into(),
        ),
        Err(Error::Interrupted) => Err(Error::Interrupted),
        Err(Error::Failed(why)) => not_available(why),
    }
}

fn not_available(why: String) -> Result<bool> {
    if env::var_os("CI").is_some() {
        return Err(Error::failed(format!(
            "the browser test needs Chromium under CI and it could not be installed: {why}"
        )));
    }
    println!("    no browser, so the browser test will be skipped: {why}");
    Ok(false)
}

/// `apt-get update`, then `apt-get install`, as root or through `sudo -n`.
fn install() -> Result<()> {
    let apt = process::find_program("apt-get", &["/usr/bin"]).ok_or_else(|| {
        Error::failed("apt-get is not available: install chromium and chromedriver by hand")
    })?;
    let as_root = process::capture(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    let command = |args: &[&str]| {
        let mut command = if as_root {
            Command::new(&apt)
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("-n").arg(&apt);
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    process::run(&mut command(&["update", "-qq"]), "apt-get update")?;
    let mut install = command(&["install", "-y", "-qq", "--no-install-recommends"]);
    install.args(PACKAGES);
    process::run(&mut install, "apt-get install chromium chromium-driver")
}

//! Tidy checks: the architecture invariants of docs/ARCHITECTURE.md, checked
//! mechanically so they cannot drift.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .expect("xtask lives in the workspace root")
}

/// Normal (non-dev) dependencies of `package`, one crate name per entry.
fn normal_dependencies(package: &str) -> Vec<String> {
    // The cargo that built this test, so the check uses the same toolchain.
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "tree",
            "--offline",
            "-p",
            package,
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_core_depends_on_no_runtime_http_or_sql_crate() {
    let forbidden = [
        "tokio",
        "hyper",
        "http",
        "tokio-postgres",
        "postgres",
        "deadpool-postgres",
        "sqlx",
        "mio",
        "reqwest",
    ];
    let dependencies = normal_dependencies("session-core");
    let found: Vec<&String> = dependencies
        .iter()
        .filter(|name| forbidden.contains(&name.as_str()))
        .collect();
    assert!(
        found.is_empty(),
        "session-core must do no I/O, but depends on {found:?}"
    );
}

#[test]
fn stores_and_core_do_not_know_http() {
    for package in ["session-store-mem", "session-store-pg"] {
        let dependencies = normal_dependencies(package);
        let found: Vec<&String> = dependencies
            .iter()
            .filter(|name| ["hyper", "http"].contains(&name.as_str()))
            .collect();
        assert!(
            found.is_empty(),
            "{package} must not depend on HTTP crates, found {found:?}"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_module_says_what_it_owns() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["crates", "xtask/src", "benches/src", "benches/benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|path| !path.components().any(|c| c.as_os_str() == "target"))
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| {
            path.strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "these files do not start with a //! line saying what they own: {missing:#?}"
    );
}

#[test]
fn every_crate_uses_the_workspace_lints_and_is_unpublished() {
    let root = workspace_root();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root manifest");
    let members: Vec<&str> = manifest
        .split("members = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .map(|list| {
            list.split(',')
                .map(|m| m.trim().trim_matches('"'))
                .filter(|m| !m.is_empty() && !m.starts_with('#'))
                .collect()
        })
        .expect("workspace members list");
    assert!(members.len() >= 7, "members: {members:?}");
    for member in members {
        let text =
            std::fs::read_to_string(root.join(member).join("Cargo.toml")).expect("member manifest");
        assert!(
            text.contains("[lints]\nworkspace = true"),
            "{member} must inherit the workspace lints"
        );
        assert!(
            text.contains("publish = false"),
            "{member} must not be publishable"
        );
        assert!(
            text.contains("version = \"0.0.0\""),
            "{member} is internal: version 0.0.0"
        );
    }
}

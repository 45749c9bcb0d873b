//! Tidy checks: the architecture invariants of docs/ARCHITECTURE.md, checked
//! mechanically so they cannot drift.

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "tidy/shard_keys.rs"]
mod shard_keys;

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
    for package in ["session-store-mem", "session-store-pg", "session-feed"] {
        let dependencies = normal_dependencies(package);
        let found: Vec<&String> = dependencies
            .iter()
            .filter(|name| ["hyper", "http", "tokio-tungstenite"].contains(&name.as_str()))
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
    for dir in [
        "crates",
        "examples",
        "xtask/src",
        "benches/src",
        "benches/benches",
    ] {
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

/// The `session-core` modules that `source` (one module's code) names through
/// `crate::` paths, test modules and comments left out.
fn crate_modules_named(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut named = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let items: Vec<&str> = match rest.strip_prefix('{') {
                // `crate::{a::X, b}`: every item of the group.
                Some(group) => group.split('}').next().unwrap_or("").split(',').collect(),
                None => vec![rest],
            };
            for item in items {
                let module: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !module.is_empty() {
                    named.push(module);
                }
            }
        }
    }
    named
}

/// A cycle in `edges` (module → modules it imports), as the path that closes
/// it, if there is one.
fn find_cycle(edges: &std::collections::BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        edges: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in edges.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges
        .keys()
        .find_map(|module| visit(module, edges, &mut Vec::new(), &mut done))
}

#[test]
fn core_modules_import_no_module_that_imports_them_back() {
    let src = workspace_root().join("crates/session-core/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        // A top-level module is a file (`access.rs`) or a folder (`service/`).
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|name| name.trim_end_matches(".rs").to_owned())
            .expect("a module path");
        if module == "lib" {
            continue;
        }
        let source = std::fs::read_to_string(&file).expect("read source");
        let imports = edges.entry(module.clone()).or_default();
        for named in crate_modules_named(&source) {
            if named != module && !imports.contains(&named) {
                imports.push(named);
            }
        }
    }
    assert!(
        edges.contains_key("service") && edges.contains_key("value"),
        "the walk found the core's modules: {:?}",
        edges.keys()
    );
    if let Some(cycle) = find_cycle(&edges) {
        panic!(
            "session-core modules import each other in a cycle: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_import_reader_sees_paths_groups_and_cycles() {
    let source = "use crate::a::X;\nuse crate::{b::Y, c};\n// crate::d in a comment\nfn f() { crate::e::g() }\n#[cfg(test)]\nmod tests { use crate::f; }\n";
    assert_eq!(crate_modules_named(source), ["a", "b", "c", "e"]);
    let edges = |pairs: &[(&str, &str)]| {
        let mut map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (from, to) in pairs {
            map.entry((*from).into()).or_default().push((*to).into());
        }
        map
    };
    assert_eq!(find_cycle(&edges(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        find_cycle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// The workspace's crates under `crates/`, as Rust names them (`session_core`).
fn service_crates() -> Vec<String> {
    let root = workspace_root();
    let mut names: Vec<String> = std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("Cargo.toml")).ok())
        .filter_map(|manifest| {
            manifest
                .lines()
                .find_map(|line| line.strip_prefix("name = "))
                .map(|name| name.trim_matches('"').replace('-', "_"))
        })
        .collect();
    names.sort();
    names
}

/// The first service crate `source` names in a path (`session_core::...`),
/// comments included: a partner reading them would follow them too.
fn names_a_service_crate<'a>(source: &str, crates: &'a [String]) -> Option<&'a str> {
    crates.iter().map(String::as_str).find(|name| {
        source.match_indices(name).any(|(at, _)| {
            let before = source[..at].chars().next_back();
            let after = &source[at + name.len()..];
            let starts_a_word = !before.is_some_and(|c| c.is_alphanumeric() || c == '_');
            starts_a_word && (after.starts_with("::") || after.starts_with(";"))
        })
    })
}

/// The partner demo is the code a partner copies: it must reach the service
/// over HTTP only, as a partner's backend would. Only `src/sandbox.rs`, which
/// starts a sandbox service in the demo's process, may use the service's
/// crates.
#[test]
fn the_partner_demo_talks_to_the_service_over_http_only() {
    let crates = service_crates();
    assert!(
        crates.iter().any(|c| c == "session_core") && crates.iter().any(|c| c == "session_server"),
        "service crates: {crates:?}"
    );
    // The reader itself.
    assert_eq!(
        names_a_service_crate("use session_core::partner;", &crates),
        Some("session_core")
    );
    assert_eq!(
        names_a_service_crate("let x = session_server::serve_in_process(a, b);", &crates),
        Some("session_server")
    );
    assert_eq!(
        names_a_service_crate("// the session-server binary; my_session_core::x", &crates),
        None
    );

    let demo = workspace_root().join("examples/partner-demo/src");
    let mut files = Vec::new();
    rust_files(&demo, &mut files);
    let sandbox = demo.join("sandbox.rs");
    assert!(
        files.contains(&sandbox) && files.len() >= 4,
        "the demo's modules: {files:?}"
    );
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| **path != sandbox)
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            names_a_service_crate(&text, &crates).map(|name| {
                format!(
                    "{} uses {name}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                )
            })
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "the partner demo's own code must reach the service over HTTP only (only \
         src/sandbox.rs may start it in-process): {offenders:#?}"
    );
    let sandbox_text = std::fs::read_to_string(&sandbox).expect("sandbox.rs");
    assert!(
        names_a_service_crate(&sandbox_text, &crates).is_some(),
        "sandbox.rs starts the service in-process"
    );
}

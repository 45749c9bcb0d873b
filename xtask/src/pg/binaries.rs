//! Finding the PostgreSQL programs (initdb and pg_ctl for a throwaway cluster, pgbench
//! for the load test): first on `$PATH`, then in Debian's versioned directories,
//! newest first.

use std::path::{Path, PathBuf};

use crate::env;
use crate::process;

/// Debian installs each major version's programs here, off `$PATH` for some of them.
pub const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// A matching `initdb` and `pg_ctl`, taken from one directory so their versions agree.
#[derive(Debug)]
pub struct Binaries {
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
}

pub fn find() -> Result<Binaries, String> {
    search_dirs()
        .into_iter()
        .find_map(|dir| in_dir(&dir))
        .ok_or_else(|| format!("no initdb and pg_ctl on PATH or in {DEBIAN_ROOT}/*/bin"))
}

/// Where PostgreSQL programs are looked for, in order: the directories of `$PATH`,
/// then `/usr/lib/postgresql/<version>/bin`, highest version first.
pub fn search_dirs() -> Vec<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).chain(debian_dirs()).collect()
}

fn in_dir(dir: &Path) -> Option<Binaries> {
    let initdb = dir.join("initdb");
    let pg_ctl = dir.join("pg_ctl");
    (process::is_executable(&initdb) && process::is_executable(&pg_ctl))
        .then_some(Binaries { initdb, pg_ctl })
}

/// `/usr/lib/postgresql/<version>/bin`, highest version first.
fn debian_dirs() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(DEBIAN_ROOT) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let version = version(&entry.file_name().to_string_lossy())?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    versions.into_iter().map(|(_, dir)| dir).collect()
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; anything else is not a version directory.
fn version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        let mut names: Vec<Vec<u32>> = ["9.6", "15", "10", "16"]
            .iter()
            .filter_map(|name| version(name))
            .collect();
        names.sort_by(|a, b| b.cmp(a));
        assert_eq!(names, [vec![16], vec![15], vec![10], vec![9, 6]]);
    }

    #[test]
    fn non_version_directories_are_skipped() {
        for name in ["common", "", "15beta1", "lib"] {
            assert_eq!(version(name), None, "{name:?} is not a version");
        }
    }
}

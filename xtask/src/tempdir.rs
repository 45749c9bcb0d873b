//! Temporary directories: a fresh one under the system temp dir, named after this
//! process, removed with everything in it when its guard drops.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A fresh directory under the system temp dir, removed on drop while armed.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    armed: bool,
}

impl TempDir {
    /// Creates `<prefix>-<pid>-<n>` with the first free `n`.
    pub fn create(prefix: &str) -> Result<Self> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        // `create_dir` fails on an existing path, so a leftover from a crashed run with
        // a recycled pid is skipped rather than reused.
        for attempt in 0..100 {
            let path = base.join(format!("{prefix}-{pid}-{attempt}"));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path, armed: true }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(Error::failed(format!(
                        "cannot create {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Err(Error::failed(format!(
            "cannot create a temporary directory in {}: all names taken",
            base.display()
        )))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory now, so the caller can report how that went.
    pub fn remove(&mut self) -> io::Result<()> {
        self.armed = false;
        fs::remove_dir_all(&self.path)
    }

    /// Leaves the directory in place.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!(
                "xtask: warning: could not remove {}: {e}",
                self.path.display()
            );
        }
    }
}

//! Who runs the throwaway cluster. PostgreSQL refuses to run as root, so as root we run
//! initdb and pg_ctl as the `postgres` system user, through runuser or su.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process;

/// The system user Debian's packages create for the server.
const SERVER_USER: &str = "postgres";

/// Where runuser and su live when `$PATH` lacks the sbin directories.
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

#[derive(Debug)]
pub enum RunAs {
    /// We are not root: run the programs directly.
    Me,
    /// We are root: run them as this user.
    User(Account),
}

#[derive(Debug)]
pub struct Account {
    name: String,
    uid: u32,
    gid: u32,
    switch: Switch,
}

/// How to switch user: runuser takes an argument list as is; su needs a shell line.
#[derive(Debug)]
enum Switch {
    Runuser(PathBuf),
    Su(PathBuf),
}

impl RunAs {
    pub fn decide() -> Result<Self, String> {
        if !is_root()? {
            return Ok(Self::Me);
        }
        let not_root = || {
            format!(
                "PostgreSQL will not run as root, and there is no `{SERVER_USER}` user to run \
                 it as; create one (`useradd --system {SERVER_USER}`) or run xtask as a \
                 normal user"
            )
        };
        let uid = id(&["-u", SERVER_USER]).map_err(|_| not_root())?;
        let gid = id(&["-g", SERVER_USER]).map_err(|_| not_root())?;
        let switch = if let Some(runuser) = process::find_program("runuser", SBIN_DIRS) {
            Switch::Runuser(runuser)
        } else if let Some(su) = process::find_program("su", SBIN_DIRS) {
            Switch::Su(su)
        } else {
            return Err(format!(
                "running as root and found neither runuser nor su to become `{SERVER_USER}`"
            ));
        };
        Ok(Self::User(Account {
            name: SERVER_USER.to_owned(),
            uid: parse_id(&uid)?,
            gid: parse_id(&gid)?,
            switch,
        }))
    }

    /// A command that runs `program` as this user; add its arguments after.
    pub fn command(&self, program: &Path) -> Command {
        match self {
            Self::Me => Command::new(program),
            Self::User(account) => match &account.switch {
                Switch::Runuser(runuser) => {
                    let mut command = Command::new(runuser);
                    command.args(["-u", &account.name, "--"]).arg(program);
                    command
                }
                Switch::Su(su) => {
                    // su hands the words after the user name to the shell as $0 and
                    // "$@", which keeps the arguments unquoted and intact; the `--`
                    // stops su from reading the program's own options as its own.
                    let mut command = Command::new(su);
                    command
                        .args(["-s", "/bin/sh", "-c", r#"exec "$0" "$@""#, "--"])
                        .arg(&account.name)
                        .arg(program);
                    command
                }
            },
        }
    }

    /// Makes `dir` writable by whoever runs the cluster.
    pub fn hand_over(&self, dir: &Path) -> Result<(), String> {
        match self {
            Self::Me => Ok(()),
            Self::User(account) => {
                std::os::unix::fs::chown(dir, Some(account.uid), Some(account.gid))
                    .map_err(|e| format!("cannot give {} to {}: {e}", dir.display(), account.name))
            }
        }
    }

    /// For the log: who the cluster runs as.
    pub fn describe(&self) -> String {
        match self {
            Self::Me => "the current user".to_owned(),
            Self::User(account) => {
                let via = match &account.switch {
                    Switch::Runuser(_) => "runuser",
                    Switch::Su(_) => "su",
                };
                format!("user {} via {via}, since we are root", account.name)
            }
        }
    }
}

/// Whether we run as root (effective user id 0), as `id -u` says.
pub fn is_root() -> Result<bool, String> {
    let euid = id(&["-u"]).map_err(|e| format!("cannot tell who we are: {e}"))?;
    Ok(parse_id(&euid)? == 0)
}

/// Our user name, if `id` can tell.
pub fn current_name() -> Option<String> {
    id(&["-un"]).ok().filter(|name| !name.is_empty())
}

fn id(args: &[&str]) -> Result<String, String> {
    process::capture(Command::new("id").args(args))
        .map(|out| out.trim().to_owned())
        .map_err(|e| e.to_string())
}

fn parse_id(text: &str) -> Result<u32, String> {
    text.parse()
        .map_err(|_| format!("`id` printed {text:?}, not a numeric id"))
}

//! Running external programs: printable command lines, and errors that carry the
//! program's own output so a failure explains itself.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::env;
use crate::error::{Error, Result};
use crate::interrupt;

/// Runs `command` with the terminal attached; fails on a non-zero exit. Errors name
/// the command as `shown`, the form the user saw in the step header.
pub fn run(command: &mut Command, shown: &str) -> Result<()> {
    let status = command
        .status()
        .map_err(|e| Error::failed(format!("cannot run `{shown}`: {e}")))?;
    if status.success() {
        return Ok(());
    }
    Err(failure(format!("`{shown}` failed ({status})")))
}

/// Runs `command` quietly and returns its stdout; on failure the error shows what it
/// printed, since that is where initdb and pg_ctl say what went wrong.
pub fn capture(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .map_err(|e| Error::failed(format!("cannot run `{}`: {e}", display(command))))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(failure(format!(
        "`{}` failed ({}){}",
        display(command),
        output.status,
        printed(&output)
    )))
}

/// `command` as a person would type it (arguments quoted where the shell needs it).
pub fn display(command: &Command) -> String {
    let program = quote(command.get_program());
    let args = display_args(command);
    if args.is_empty() {
        program
    } else {
        format!("{program} {args}")
    }
}

/// The arguments of `command`, quoted where the shell needs it.
pub fn display_args(command: &Command) -> String {
    command.get_args().map(quote).collect::<Vec<_>>().join(" ")
}

/// Quotes `word` for a POSIX shell when it needs quoting.
pub fn quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The first executable file called `name` in `$PATH`, then in `fallback_dirs`.
pub fn find_program(name: &str, fallback_dirs: &[&str]) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(fallback_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a file someone may execute.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;

    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A failed child because of Ctrl-C is an interruption, not a failure to explain.
fn failure(message: String) -> Error {
    if interrupt::requested() {
        Error::Interrupted
    } else {
        Error::failed(message)
    }
}

fn printed(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = text.trim_end();
    if text.is_empty() {
        String::new()
    } else {
        format!(":\n{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_leaves_plain_words_and_quotes_the_rest() {
        let cases = [
            ("cargo", "cargo"),
            ("--all-targets", "--all-targets"),
            ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/15/bin"),
            ("", "''"),
            ("-c fsync=off", "'-c fsync=off'"),
            ("it's", r"'it'\''s'"),
        ];
        for (word, expected) in cases {
            assert_eq!(quote(OsStr::new(word)), expected, "quoting {word:?}");
        }
    }

    #[test]
    fn display_shows_program_and_arguments() {
        let mut command = Command::new("pg_ctl");
        command.args(["-D", "/tmp/a b", "start"]);
        assert_eq!(display(&command), "pg_ctl -D '/tmp/a b' start");
    }
}

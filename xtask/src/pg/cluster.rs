//! A throwaway PostgreSQL cluster in a temporary directory: made by initdb, started on
//! a free port, and stopped and removed when its guard drops, whatever the tests did.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::interrupt;
use crate::pg::binaries;
use crate::pg::conninfo;
use crate::pg::tls::{self, TlsFiles};
use crate::pg::user::RunAs;
use crate::process;
use crate::tempdir::TempDir;

/// The superuser initdb creates; trust auth lets the tests connect as it without a password.
const SUPERUSER: &str = "postgres";
const HOST: &str = "127.0.0.1";
/// How long pg_ctl waits for the server to accept connections.
const START_TIMEOUT_SECS: &str = "60";
/// How much of the server log a start failure shows.
const LOG_TAIL_LINES: usize = 20;

/// A running throwaway cluster; dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct Cluster {
    pg_ctl: PathBuf,
    run_as: RunAs,
    data: PathBuf,
    url: String,
    /// Serves TLS with the certificates of [`tls::write`].
    ssl: bool,
    // Last, so it is removed only after `drop` has stopped the server.
    dir: TempDir,
}

impl Cluster {
    pub fn start() -> Result<Self> {
        Self::start_with(false).map(|(cluster, _)| cluster)
    }

    /// A cluster with `ssl = on`, its server certificate signed by a CA made
    /// for it; the files say where that CA (and an unrelated one) are.
    pub fn start_tls() -> Result<(Self, TlsFiles)> {
        match Self::start_with(true)? {
            (cluster, Some(files)) => Ok((cluster, files)),
            (_, None) => Err(Error::failed("the TLS cluster has no certificates")),
        }
    }

    fn start_with(ssl: bool) -> Result<(Self, Option<TlsFiles>)> {
        let binaries = binaries::find().map_err(Error::failed)?;
        let run_as = RunAs::decide().map_err(Error::failed)?;
        let dir = TempDir::create("xtask-pg")?;
        run_as.hand_over(dir.path()).map_err(Error::failed)?;
        println!(
            "    initdb in {} as {} ({})",
            dir.path().display(),
            run_as.describe(),
            binaries.initdb.display()
        );

        let data = dir.path().join("data");
        let mut initdb = run_as.command(&binaries.initdb);
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"])
            // The C locale exists everywhere, whatever LANG the caller has.
            .arg("--locale=C")
            .current_dir(dir.path());
        process::capture(&mut initdb)?;
        interrupt::check()?;
        let files = if ssl {
            Some(tls::write(dir.path(), &data, &run_as)?)
        } else {
            None
        };

        let port =
            free_port().map_err(|e| Error::failed(format!("cannot find a free port: {e}")))?;
        let cluster = Self {
            pg_ctl: binaries.pg_ctl,
            run_as,
            data,
            url: conninfo::url(SUPERUSER, HOST, port, "postgres"),
            ssl,
            dir,
        };
        // From here a failure drops `cluster`, which stops a half-started server too.
        cluster.start_server(port)?;
        Ok((cluster, files))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn start_server(&self, port: u16) -> Result<()> {
        // pg_ctl runs the server through a shell, so the socket directory is quoted.
        // The durability settings are off because nothing here outlives the run.
        let mut options = format!(
            "-c listen_addresses={HOST} -p {port} -k {} -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            process::quote(self.dir.path().as_os_str())
        );
        if self.ssl {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                tls::SERVER_CERT,
                tls::SERVER_KEY
            ));
        }
        let log = self.log_path();
        let mut start = self.pg_ctl();
        start
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", START_TIMEOUT_SECS, "-o", &options, "start"]);
        process::capture(&mut start).map_err(|e| match e {
            Error::Failed(message) => Error::failed(format!(
                "{message}\nlast lines of the server log:\n{}",
                tail(&log, LOG_TAIL_LINES)
            )),
            interrupted => interrupted,
        })?;
        Ok(())
    }

    fn pg_ctl(&self) -> std::process::Command {
        let mut command = self.run_as.command(&self.pg_ctl);
        command
            .arg("-D")
            .arg(&self.data)
            .current_dir(self.dir.path());
        command
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // The server keeps postmaster.pid while it runs; without one there is nothing to stop.
        if self.data.join("postmaster.pid").exists() {
            let mut stop = self.pg_ctl();
            stop.args(["-m", "fast", "-w", "stop"]);
            if let Err(e) = process::capture(&mut stop) {
                // Deleting the files under a live server would orphan it; leave them so
                // the user can stop it by hand.
                eprintln!(
                    "xtask: warning: could not stop the throwaway cluster: {e}\n\
                     xtask: stop it with `pg_ctl -D {} stop` and remove {}",
                    self.data.display(),
                    self.dir.path().display()
                );
                self.dir.disarm();
                return;
            }
        }
        match self.dir.remove() {
            Ok(()) => println!(
                "==> postgres: stopped the throwaway cluster and removed {}",
                self.dir.path().display()
            ),
            Err(e) => eprintln!(
                "xtask: warning: stopped the throwaway cluster but could not remove {}: {e}",
                self.dir.path().display()
            ),
        }
    }
}

/// A TCP port nobody listens on: the kernel picks one for port 0. Another process
/// could take it before the server binds it, which is unlikely enough for a test run.
fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The last `lines` lines of the file at `path`, or why it cannot be read.
fn tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

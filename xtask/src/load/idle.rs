//! The idle-connection test's tools: many keep-alive connections held open by this
//! process, each served one request first, and the server's memory read from
//! `/proc/<pid>/status`.
//!
//! Connections are opened one after another with plain blocking sockets: on loopback
//! that takes about a second for ten thousand, never overflows the server's accept
//! queue, and needs no runtime.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::interrupt;
use crate::load::{http, procfs};

/// How long one idle connection's request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times a refused or reset connect is retried before the test fails.
const CONNECT_ATTEMPTS: u32 = 50;
/// Descriptors this process needs beyond the idle connections (wrk is a child with
/// its own, but inherits our limit).
const SPARE_FILES: u64 = 512;
/// How many of the idle connections `check_alive` asks again.
const CHECKED: usize = 100;

/// A process's resident memory now and at its peak, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it has been resident since it started.
    pub hwm_kib: u64,
}

/// The memory of process `pid`.
pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::failed(format!("cannot read {path}: {e}")))?;
    parse_status(&text).ok_or_else(|| Error::failed(format!("{path} has no VmRSS or VmHWM")))
}

/// Raises this process's open-file limit so it can hold `connections` sockets.
pub fn raise_open_file_limit(connections: u64) -> Result<()> {
    let wanted = connections + SPARE_FILES;
    let limit = rlimit::increase_nofile_limit(wanted)
        .map_err(|e| Error::failed(format!("cannot raise the open-file limit: {e}")))?;
    if limit < wanted {
        return Err(Error::failed(format!(
            "the open-file limit is {limit}, too low for {connections} idle connections; \
             raise the hard limit (`ulimit -Hn`, /etc/security/limits.conf) or pass \
             --idle-connections N or --no-idle"
        )));
    }
    Ok(())
}

/// Idle keep-alive connections to one server.
#[derive(Debug, Default)]
pub struct Connections {
    streams: Vec<TcpStream>,
    status: Option<u16>,
}

impl Connections {
    /// Opens connections to `addr` until `count` are open, each served `request`.
    pub fn open_until(&mut self, addr: SocketAddr, count: u32, request: &[u8]) -> Result<()> {
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        self.streams
            .reserve(count.saturating_sub(self.streams.len()));
        while self.streams.len() < count {
            if self.streams.len() % 1000 == 0 {
                interrupt::check()?;
            }
            let mut stream = connect(addr).map_err(|e| {
                Error::failed(format!(
                    "cannot open idle connection {} to {addr}: {e}",
                    self.streams.len() + 1
                ))
            })?;
            let status = serve_once(&mut stream, request).map_err(|e| {
                Error::failed(format!(
                    "idle connection {} to {addr} was not served: {e}",
                    self.streams.len() + 1
                ))
            })?;
            self.status = Some(status);
            self.streams.push(stream);
        }
        Ok(())
    }

    /// Sends `request` again on an even sample of the connections, proving the server
    /// still holds them; returns how many were asked.
    pub fn check_alive(&mut self, request: &[u8]) -> Result<usize> {
        let step = (self.streams.len() / CHECKED).max(1);
        let mut checked = 0;
        for (i, stream) in self.streams.iter_mut().enumerate().step_by(step) {
            serve_once(stream, request).map_err(|e| {
                Error::failed(format!(
                    "idle connection {} was dropped while idle: {e}",
                    i + 1
                ))
            })?;
            checked += 1;
        }
        Ok(checked)
    }

    /// The status the server gave the idle connections' request.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Closes every connection.
    pub fn close(&mut self) {
        self.streams.clear();
    }
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut attempt = 1;
    loop {
        match TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            // A full accept queue refuses or resets; give the server a moment.
            Err(_) if attempt < CONNECT_ATTEMPTS => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One request on `stream`; a 5xx means the server is in trouble, not idle.
fn serve_once(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<u16> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let response = http::exchange(stream, request)?;
    if response.status >= 500 {
        return Err(std::io::Error::other(format!(
            "answered {}",
            response.status
        )));
    }
    Ok(response.status)
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text.
fn parse_status(text: &str) -> Option<Memory> {
    Some(Memory {
        rss_kib: procfs::kib(text, "VmRSS")?,
        hwm_kib: procfs::kib(text, "VmHWM")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_peak_from_proc_status() {
        let text = "Name:\tsession-server\nVmPeak:\t  900000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t   11000 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 11_000,
                hwm_kib: 12_345
            })
        );
        assert_eq!(parse_status("Name:\tx\nVmRSS:\t1 kB\n"), None, "no VmHWM");
        assert_eq!(parse_status("VmRSS:\tlots kB\nVmHWM:\t1 kB\n"), None);
    }

    #[test]
    fn reads_our_own_memory() {
        let mine = memory(std::process::id()).expect("our own /proc status");
        assert!(mine.rss_kib > 0 && mine.hwm_kib >= mine.rss_kib);
    }
}

//! A TCP proxy on 127.0.0.1:0 in front of PostgreSQL that a test can cut
//! (close every connection, refuse new ones) or pause (keep connections open
//! but forward nothing: a silent network), then restore.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes flow both ways.
    Open,
    /// Connections stay open but nothing is forwarded: a silent network.
    Paused,
    /// Every connection is closed and new ones are refused: the server is gone.
    Cut,
}

/// A proxy in front of a TCP server, for tests of what happens when it goes away.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding to `upstream`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound (test support only).
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(error) => panic!("cannot bind the test proxy: {error}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(error) => panic!("test proxy has no address: {error}"),
        };
        let (mode, watcher) = watch::channel(Mode::Open);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watcher.borrow() == Mode::Cut {
                    drop(client); // Refused: closed at once.
                    continue;
                }
                tokio::spawn(relay(client, upstream, watcher.clone()));
            }
        });
        Proxy { addr, mode, accept }
    }

    /// Opens, pauses or cuts the link; takes effect on live connections too.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.set(Mode::Cut);
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Either direction ending (EOF or cut) ends both: dropping the halves
    // closes the sockets.
    tokio::select! {
        () = pipe(client_read, server_write, mode.clone()) => {}
        () = pipe(server_read, client_write, mode) => {}
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // While paused, read nothing: bytes wait in the kernel, nothing is lost.
        let current = match mode.wait_for(|m| *m != Mode::Paused).await {
            Ok(m) => *m,
            Err(_) => return,
        };
        if current == Mode::Cut {
            return;
        }
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
            // A mode change interrupts the read (cancel-safe) and is re-checked.
            _ = mode.changed() => {}
        }
    }
}

//! Runs the real `session-server` binary and talks to it over loopback.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Options that make a server listen on ephemeral loopback ports.
pub const LOOPBACK: [&str; 4] = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];

/// A running server process and the addresses it reported.
pub struct Server {
    pub child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// Everything it printed on standard output before it started listening.
    pub stdout: String,
    /// Everything it has logged so far (standard error), line by line.
    pub logs: Arc<Mutex<String>>,
}

impl Server {
    /// What the server has logged so far.
    pub fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Starts the binary with `args` and waits for its "listening" log line.
pub async fn start(args: &[&str]) -> Server {
    start_logging(args, "info").await
}

/// [`start`] with `RUST_LOG` set to `filter`.
pub async fn start_logging(args: &[&str], filter: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_session-server"))
        .args(args)
        .args(["--log-format", "json"])
        .env("RUST_LOG", filter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn session-server");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let logs = Arc::new(Mutex::new(String::new()));
    let keep = |logs: &Arc<Mutex<String>>, line: &str| {
        let mut logs = logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        logs.push_str(line);
        logs.push('\n');
    };
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await.expect("read stderr") {
            keep(&logs, &line);
            let parsed: serde_json::Value = match serde_json::from_str(&line) {
                Ok(value) => value,
                Err(_) => continue,
            };
            if parsed["message"] == "listening" {
                return Some(parsed);
            }
        }
        None
    })
    .await
    .expect("server started within 30 s")
    .expect("server printed its listening line");
    // Keep draining stderr so the child never blocks on a full pipe.
    let kept = Arc::clone(&logs);
    tokio::spawn(async move {
        while let Ok(Some(line)) = stderr.next_line().await {
            keep(&kept, &line);
        }
    });
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let mut buffer = vec![0u8; 64 * 1024];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), out.read(&mut buffer)).await
        {
            stdout = String::from_utf8_lossy(&buffer[..n]).into_owned();
        }
    }
    let addr = |field: &str| {
        listening[field]
            .as_str()
            .and_then(|a| a.parse().ok())
            .expect("address in the listening line")
    };
    Server {
        public: addr("public"),
        admin: addr("admin"),
        stdout,
        logs,
        child,
    }
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr).await?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// `POST /widget/session` with `token` and the seed page's example body.
pub async fn create_seed_session(addr: SocketAddr, token: &str) -> std::io::Result<Response> {
    let auth = format!("Bearer {token}");
    request(
        addr,
        "POST",
        "/widget/session",
        &[("authorization", &auth), ("content-type", "application/json")],
        r#"{"partner_user_id":"user-123","user_email":"user@example.com","network":"TRC20","currency":"USDT","amount":"100","type":"buy","client_ip":"203.0.113.42"}"#,
    )
    .await
}

/// Sends SIGTERM to the process.
pub fn terminate(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
}

/// A bootstrap file with partner `acme` holding one client token, removed on drop.
pub struct Bootstrap(std::path::PathBuf);

impl Bootstrap {
    pub fn write(token: &str) -> Self {
        Self::write_with(token, "")
    }

    /// [`Bootstrap::write`] with `extra` lines in the `[[partner]]` table.
    pub fn write_with(token: &str, extra: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "session-e2e-{}.toml",
            uuid::Uuid::new_v4().simple()
        ));
        let toml = format!(
            r#"
[[partner]]
id = "acme"
name = "Acme Wallet"
client_tokens = ["{token}"]
{extra}
[partner.widget]
widget_id = "fb359d09-fff6-4b1f-906c-b9062b135065"
currencies = ["USDT"]
networks = ["TRC20"]
fiat_currency = "EUR"
fiat_currencies = ["EUR"]
[[partner.wallet]]
currency = "USDT"
network = "TRC20"
address = "TXYZabcdefghijkmnopqrstuvwxyz12345"
"#
        );
        std::fs::write(&path, toml).expect("write bootstrap file");
        Self(path)
    }

    pub fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for Bootstrap {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

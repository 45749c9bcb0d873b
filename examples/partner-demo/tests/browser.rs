//! The sandbox journey in a real headless Chromium, driven over WebDriver: the
//! partner demo's page opens a session through its backend, launches the
//! stand-in widget, the user pays (or fails, or cancels), and the page shows
//! what the backend heard from the signed webhooks. On the in-memory store and
//! on PostgreSQL.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`cargo xtask test`
//! installs them). Without them the tests say so and pass, unless
//! `SESSION_REQUIRE_BROWSER` or `CI` is set. Screenshots of every step are
//! kept under the target directory's `tmp/browser/`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use session_store_pg::testing::TestDatabase;

/// One Chromium at a time: the machine running the suite may have two cores.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

const STEP_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn journeys_on_the_in_memory_store() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    runtime().block_on(journeys(&driver, "mem", None));
}

#[test]
fn journeys_on_postgresql() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = runtime();
    let Some(database) = runtime.block_on(TestDatabase::create()) else {
        return;
    };
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    runtime.block_on(journeys(&driver, "pg", Some(database.url())));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Pay, Fail and Cancel, each from a fresh page of one demo.
async fn journeys(driver: &Chromedriver, store: &str, database_url: Option<&str>) {
    let demo = Demo::start(database_url);
    let browser = driver.session().await;
    let shots = Screenshots::new(store);
    let outcome = async {
        journey(&browser, &demo.url, &shots, Choice::Pay).await;
        journey(&browser, &demo.url, &shots, Choice::Fail).await;
        journey(&browser, &demo.url, &shots, Choice::Cancel).await;
    };
    // The browser session ends whatever happened, before any panic unwinds.
    let finished = tokio::time::timeout(Duration::from_secs(180), outcome).await;
    let _ = browser.close().await;
    finished.expect("the journeys took more than three minutes");
    println!("screenshots in {}", shots.dir.display());
}

#[derive(Debug, Clone, Copy)]
enum Choice {
    Pay,
    Fail,
    Cancel,
}

impl Choice {
    fn name(self) -> &'static str {
        match self {
            Self::Pay => "pay",
            Self::Fail => "fail",
            Self::Cancel => "cancel",
        }
    }

    /// The button's `data-proof-outcome`, which is also the final status.
    fn outcome(self) -> &'static str {
        match self {
            Self::Pay => "completed",
            Self::Fail => "failed",
            Self::Cancel => "cancelled",
        }
    }

    /// What the widget says afterwards.
    fn widget_text(self) -> &'static str {
        match self {
            Self::Pay => "Payment completed",
            Self::Fail => "Payment failed",
            Self::Cancel => "Payment cancelled",
        }
    }

    /// Every status the partner's backend is told, in order.
    fn history(self) -> &'static str {
        match self {
            Self::Pay => "pending → processing → completed",
            Self::Fail => "pending → processing → failed",
            Self::Cancel => "pending → cancelled",
        }
    }
}

async fn journey(browser: &Client, page: &str, shots: &Screenshots, choice: Choice) {
    let step = |n: u8, what: &str| format!("{}-{n}-{what}", choice.name());
    browser.goto(page).await.expect("open the partner page");
    wait_text(browser, "#status", "none yet").await;
    shots.take(browser, &step(1, "page")).await;

    browser
        .find(Locator::Css("#buy"))
        .await
        .expect("Buy button")
        .click()
        .await
        .expect("click Buy");
    // The widget redeemed its init token and shows the locked values.
    wait_text(browser, "#proof-widget [data-proof='amount']", "100").await;
    wait_text(browser, "#proof-widget [data-proof='currency']", "USDT").await;
    wait_text(browser, "#proof-widget [data-proof='network']", "TRC20").await;
    wait_text(
        browser,
        "#proof-widget [data-proof='address']",
        session_core::example::TRON_WALLET,
    )
    .await;
    wait_text(browser, "#status", "pending").await;
    shots.take(browser, &step(2, "widget")).await;

    let button = format!(
        "#proof-widget button[data-proof-outcome='{}']",
        choice.outcome()
    );
    browser
        .find(Locator::Css(&button))
        .await
        .expect("outcome button")
        .click()
        .await
        .expect("click the outcome");
    wait_text(
        browser,
        "#proof-widget [data-proof='state']",
        choice.widget_text(),
    )
    .await;
    // The page learns the outcome from its backend, which learnt it from
    // the signed webhooks.
    wait_text(browser, "#status", choice.outcome()).await;
    wait_text(browser, "#history", choice.history()).await;
    shots.take(browser, &step(3, "outcome")).await;

    browser
        .find(Locator::Css("#proof-widget [data-proof='close']"))
        .await
        .expect("Close button")
        .click()
        .await
        .expect("close the widget");
    wait_gone(browser, "#proof-widget").await;
    shots.take(browser, &step(4, "after")).await;
}

/// Waits until the element matching `css` shows exactly `expected`.
async fn wait_text(browser: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if text.trim() == expected {
                return;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} did not show {expected:?} within {STEP_TIMEOUT:?}; it showed {last:?}");
}

async fn wait_gone(browser: &Client, css: &str) {
    let deadline = Instant::now() + STEP_TIMEOUT;
    while Instant::now() < deadline {
        if browser.find(Locator::Css(css)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} was still there after {STEP_TIMEOUT:?}");
}

/// Screenshots of one store's journeys, as test artifacts.
struct Screenshots {
    dir: PathBuf,
}

impl Screenshots {
    fn new(store: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("browser")
            .join(store);
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        Self { dir }
    }

    async fn take(&self, browser: &Client, name: &str) {
        let png = browser.screenshot().await.expect("screenshot");
        std::fs::write(self.dir.join(format!("{name}.png")), png).expect("save the screenshot");
    }
}

/// The programs a test needs, found on `PATH`.
#[expect(
    clippy::disallowed_methods,
    reason = "a test finds the browser where the system installed it"
)]
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[expect(
    clippy::disallowed_methods,
    reason = "the test tooling says whether a missing browser is a failure"
)]
fn browser_required() -> bool {
    std::env::var_os("SESSION_REQUIRE_BROWSER").is_some() || std::env::var_os("CI").is_some()
}

/// A chromedriver of our own on a free loopback port, stopped when dropped.
struct Chromedriver {
    child: Child,
    url: String,
    chromium: Option<PathBuf>,
}

impl Chromedriver {
    /// `None` (after saying why) when chromedriver is not installed and the
    /// browser is not required.
    fn start() -> Option<Self> {
        let Some(program) = find_program("chromedriver") else {
            assert!(
                !browser_required(),
                "chromedriver is not on PATH: install Debian's chromium and chromium-driver \
                 (cargo xtask test does)"
            );
            eprintln!(
                "SKIPPED: chromedriver is not on PATH (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = free_port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium: find_program("chromium"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(driver)
    }

    async fn session(&self) -> Client {
        let mut options = serde_json::json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1000,720",
            ],
        });
        if let Some(chromium) = &self.chromium {
            options["binary"] = chromium.display().to_string().into();
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session from chromedriver")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// `cargo run -p partner-demo`, as a user runs it, on a free port; its
/// output is kept and shown if the test fails.
struct Demo {
    child: Child,
    url: String,
    output: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    fn start(database_url: Option<&str>) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_partner-demo"));
        command
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = database_url {
            command.args(["--sandbox-database-url", url]);
        }
        let mut child = command.spawn().expect("start partner-demo");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (url_tx, url_rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line
                    .strip_prefix("partner-demo: open ")
                    .and_then(|rest| rest.strip_suffix(" in a browser"))
                {
                    let _ = url_tx.send(url.to_owned());
                }
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let lines = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut demo = Self {
            child,
            url: String::new(),
            output,
        };
        demo.url = url_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("partner-demo printed the URL to open");
        let printed: SocketAddr = demo
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("the printed URL is http://ADDRESS/");
        assert!(printed.ip().is_loopback());
        demo
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let output = self.output.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("partner-demo's output:\n{}", output.join("\n"));
        }
    }
}

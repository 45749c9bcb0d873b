//! The `partners` commands end to end: parsed from a command line, run on
//! `MemStore` with a clock and random source the tests control.

use async_trait::async_trait;
use clap::Parser;
use serde_json::Value;
use session_core::client_token::TokenDigest;
use session_core::partner::{PartnerId, PartnerSpec, RateLimit};
use session_core::ports::{
    ClientTokenRecord, PartnerDirectory, PartnerRegistry, StoreError, TokenGrant,
};
use session_core::testing::{CountingRandom, FixedClock};
use session_core::time::{Clock, Timestamp};
use session_store_mem::MemStore;

use super::args::{GracePeriod, PartnersCommand, TokenCommand, TokenRef};
use crate::cli::{Cli, Command};

const START: i64 = 1_800_000_000;
const WIDGET: &str = "fb359d09-fff6-4b1f-906c-b9062b135065";
const HOUR: i64 = 3_600;

struct Env {
    store: MemStore,
    clock: FixedClock,
    random: CountingRandom,
}

impl Env {
    fn new() -> Self {
        Self {
            store: MemStore::new(),
            clock: FixedClock::at_micros(START * 1_000_000),
            random: CountingRandom::default(),
        }
    }

    /// Runs `session-server partners <args>`: the output, or the error message.
    async fn run(&self, args: &[&str]) -> Result<String, String> {
        let (out, result) = self.run_on(&self.store, args).await;
        result.map(|()| out)
    }

    /// Runs `session-server partners <args>` on `registry`: what it printed,
    /// and how it ended.
    async fn run_on(
        &self,
        registry: &dyn PartnerRegistry,
        args: &[&str],
    ) -> (String, Result<(), String>) {
        self.run_with_stdin(registry, args, "").await
    }

    /// [`Env::run_on`] with `stdin` as standard input (for `--*-secret-file -`).
    async fn run_with_stdin(
        &self,
        registry: &dyn PartnerRegistry,
        args: &[&str],
        stdin: &str,
    ) -> (String, Result<(), String>) {
        let line = ["session-server", "partners"].iter().chain(args);
        let cli = match Cli::try_parse_from(line) {
            Ok(cli) => cli,
            Err(e) => return (String::new(), Err(format!("clap: {e}"))),
        };
        let Some(Command::Partners(partners)) = cli.command else {
            panic!("not a partners command: {args:?}");
        };
        let mut command = partners.command;
        if let Err(e) = super::read_secret_files(&mut command, &mut stdin.as_bytes()) {
            return (String::new(), Err(e));
        }
        let mut out = Vec::new();
        let result = super::run(
            &command,
            partners.operator.json,
            registry,
            &self.clock,
            &self.random,
            &mut out,
        )
        .await;
        (String::from_utf8(out).expect("UTF-8 output"), result)
    }

    async fn ok(&self, args: &[&str]) -> String {
        match self.run(args).await {
            Ok(out) => out,
            Err(e) => panic!("{args:?} failed: {e}"),
        }
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut line = vec!["--json"];
        line.extend_from_slice(args);
        let out = self.ok(&line).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    async fn err(&self, args: &[&str]) -> String {
        match self.run(args).await {
            Ok(out) => panic!("{args:?} should fail, printed: {out}"),
            Err(e) => e,
        }
    }

    async fn spec(&self, id: &str) -> PartnerSpec {
        self.store
            .partner(&PartnerId::parse(id).expect("id"))
            .await
            .expect("read")
            .expect("stored")
    }

    /// What the store answers when a client presents the token with `digest`.
    async fn grant(&self, digest: &TokenDigest) -> Option<TokenGrant> {
        self.store.find_by_token(digest).await.expect("lookup")
    }

    async fn tokens(&self, id: &str) -> Vec<ClientTokenRecord> {
        self.store
            .tokens(&PartnerId::parse(id).expect("id"))
            .await
            .expect("tokens")
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Creates partner `acme` with explicit secrets.
    async fn acme(&self) {
        self.ok(&create_line("acme")).await;
    }
}

/// A complete `create` command line with explicit secrets.
fn create_line(id: &str) -> Vec<&str> {
    vec![
        "create",
        id,
        "--name",
        "Acme Wallet",
        "--widget-id",
        WIDGET,
        "--currencies",
        "USDT",
        "--networks",
        "TRC20,ERC20",
        "--fiat-currency",
        "EUR",
        "--fiat-currencies",
        "EUR,USD",
        "--redirect-url",
        "https://app.acme.example/done",
        "--decimals",
        "USDT=6",
        "--signing-secret",
        "acme-signing-secret-value",
        "--webhook-url",
        "https://hooks.acme.example/proof",
        "--webhook-secret",
        "whsec_YWNtZS13ZWJob29rLXNlY3JldA==",
        "--origin",
        "https://app.acme.example",
        "--ip",
        "127.0.0.0/8",
        "--ip",
        "::1",
    ]
}

fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

/// `wallet <action> acme --currency USDT --network TRC20 <more>`.
fn wallet_line<'a>(action: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let line = with(
        &["wallet", action, "acme"],
        &["--currency", "USDT", "--network", "TRC20"],
    );
    with(&line, more)
}

/// `create_line(id)` with options set: a value replaces the line's own value
/// for that option, or is appended.
fn create_with<'a>(id: &'a str, options: &[&'a str]) -> Vec<&'a str> {
    let mut line = create_line(id);
    for pair in options.chunks(2) {
        let [flag, value] = pair else {
            panic!("options come in pairs: {options:?}");
        };
        let repeatable = ["--origin", "--ip", "--redirect-host"].contains(flag);
        match line.iter().position(|a| a == flag) {
            Some(at) if !repeatable => line[at + 1] = value,
            _ => line.extend([*flag, *value]),
        }
    }
    line
}

/// The token printed on its own line by `token issue` / `token rotate`.
fn printed_token(text: &str) -> String {
    text.lines()
        .find(|line| line.starts_with("ct_"))
        .unwrap_or_else(|| panic!("no token in {text}"))
        .to_owned()
}

#[tokio::test]
async fn create_then_show_and_list_as_text_and_json() {
    let env = Env::new();
    let out = env.ok(&create_line("acme")).await;
    assert_eq!(out, "acme: partner created (Acme Wallet)\n");

    let spec = env.spec("acme").await;
    spec.build().expect("what create writes builds");
    assert_eq!(spec.allowed_ips, vec!["127.0.0.0/8", "::1"]);
    assert_eq!(spec.widget.decimals, vec![("USDT".to_owned(), 6)]);
    assert_eq!(spec.signing_keys[0].kid, "k1");

    let show = env.ok(&["show", "acme"]).await;
    for line in [
        "id                acme",
        "name              Acme Wallet",
        "offramp           disabled",
        "signing keys      k1 current",
        "webhook url       https://hooks.acme.example/proof",
        "webhook secret    set",
        "origins           https://app.acme.example",
        "ips               127.0.0.0/8",
        "                  ::1",
        "redirect hosts    any",
        "currencies        USDT",
        "networks          TRC20, ERC20",
        "decimals          USDT=6 (others 8)",
        "wallets           none",
        "tokens            0 active, 0 rotating, 0 expired, 0 revoked",
    ] {
        assert!(show.lines().any(|l| l == line), "{line:?} in\n{show}");
    }

    let json = env.json(&["show", "acme"]).await;
    assert_eq!(json["id"], "acme");
    assert_eq!(json["name"], "Acme Wallet");
    assert_eq!(json["widget"]["widget_id"], WIDGET);
    assert_eq!(json["widget"]["type"], "buy");
    assert_eq!(
        json["widget"]["networks"],
        serde_json::json!(["TRC20", "ERC20"])
    );
    assert_eq!(
        json["widget"]["decimals"],
        serde_json::json!([{"currency": "USDT", "decimals": 6}])
    );
    assert_eq!(
        json["signing_keys"],
        serde_json::json!([{"kid": "k1", "current": true, "not_after": null}])
    );
    assert_eq!(json["webhook_secret_set"], true);
    assert_eq!(json["tokens"], serde_json::json!([]));
    assert_eq!(json["token_counts"]["active"], 0);

    env.ok(&with(
        &create_line("beta"),
        &["--type", "sell", "--offramp"],
    ))
    .await;
    let list = env.ok(&["list"]).await;
    assert!(list.starts_with("acme  Acme Wallet\n"), "{list}");
    assert!(list.contains("\nbeta  Acme Wallet\n"), "{list}");
    assert!(
        list.contains("  widget        fb359d09-fff6-4b1f-906c-b9062b135065 sell: USDT on TRC20, ERC20; fiat EUR of EUR, USD\n"),
        "{list}"
    );
    let json = env.json(&["list"]).await;
    let partners = json["partners"].as_array().expect("an array");
    assert_eq!(partners.len(), 2);
    assert_eq!(partners[1]["id"], "beta");
    assert_eq!(partners[1]["offramp_enabled"], true);
    assert!(
        partners[0].get("tokens").is_none(),
        "list counts tokens, show lists them"
    );
}

/// `--rate-limit R --burst B` sets a budget, a bare rate gets twice its burst,
/// 0 is unlimited and `default` goes back to the server's default; `show` and
/// `list` say which applies.
#[tokio::test]
async fn rate_limits_are_set_shown_and_cleared() {
    let env = Env::new();
    env.acme().await;
    assert_eq!(env.spec("acme").await.rate_limit, None);
    let show = env.ok(&["show", "acme"]).await;
    assert!(
        show.lines()
            .any(|l| l == "rate limit        server default (--default-rate-limit)"),
        "{show}"
    );
    assert_eq!(env.json(&["show", "acme"]).await["rate_limit"], Value::Null);

    let out = env
        .ok(&["set", "acme", "--rate-limit", "5", "--burst", "10"])
        .await;
    assert_eq!(out, "acme: rate_limit updated\n");
    assert_eq!(
        env.spec("acme").await.rate_limit,
        RateLimit::new(5, 10).ok()
    );
    let show = env.ok(&["show", "acme"]).await;
    assert!(
        show.lines().any(|l| l == "rate limit        5/s, burst 10"),
        "{show}"
    );
    let list = env.ok(&["list"]).await;
    assert!(list.contains("\n  rate limit    5/s, burst 10\n"), "{list}");
    assert_eq!(
        env.json(&["show", "acme"]).await["rate_limit"],
        serde_json::json!({"per_second": 5, "burst": 10})
    );
    let out = env
        .ok(&["set", "acme", "--rate-limit", "5", "--burst", "10"])
        .await;
    assert!(out.contains("already set"), "{out}");

    env.ok(&["set", "acme", "--rate-limit", "50"]).await;
    assert_eq!(
        env.spec("acme").await.rate_limit,
        RateLimit::new(50, 100).ok(),
        "the burst defaults to twice the rate"
    );
    env.ok(&["set", "acme", "--rate-limit", "0"]).await;
    assert_eq!(
        env.spec("acme").await.rate_limit,
        Some(RateLimit::UNLIMITED)
    );
    assert!(
        env.ok(&["show", "acme"])
            .await
            .lines()
            .any(|l| l == "rate limit        unlimited")
    );
    env.ok(&["set", "acme", "--rate-limit", "default"]).await;
    assert_eq!(env.spec("acme").await.rate_limit, None);

    for (line, why) in [
        (
            vec!["set", "acme", "--rate-limit", "5", "--burst", "0"],
            "burst",
        ),
        (
            vec!["set", "acme", "--rate-limit", "default", "--burst", "3"],
            "--burst",
        ),
        (vec!["set", "acme", "--burst", "3"], "clap"),
        (vec!["set", "acme", "--rate-limit", "fast"], "clap"),
        (vec!["set", "acme", "--rate-limit", "-1"], "clap"),
        (
            vec!["set", "acme", "--rate-limit", "2000000"],
            "at most 1000000",
        ),
    ] {
        let e = env.err(&line).await;
        assert!(e.contains(why), "{line:?}: {e}");
    }
    assert_eq!(env.spec("acme").await.rate_limit, None, "nothing written");

    env.ok(&create_with("beta", &["--rate-limit", "7"])).await;
    assert_eq!(
        env.spec("beta").await.rate_limit,
        RateLimit::new(7, 14).ok()
    );
}

/// Secrets on the command line show in `ps`: files and standard input do not.
#[tokio::test]
async fn secrets_are_read_from_files_and_standard_input() {
    let env = Env::new();
    let dir = std::env::temp_dir().join(format!("partners-secrets-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write secret file");
        path.to_string_lossy().into_owned()
    };
    let signing = file("signing", "signing-secret-from-a-file\n");
    let webhook = file("webhook", "whsec_ZnJvbS1hLWZpbGU=\r\n");
    let empty = file("empty", "\n");
    let without_secrets: Vec<&str> = create_line("acme")
        .into_iter()
        .filter(|a| {
            ![
                "--signing-secret",
                "acme-signing-secret-value",
                "--webhook-secret",
                "whsec_YWNtZS13ZWJob29rLXNlY3JldA==",
            ]
            .contains(a)
        })
        .collect();
    let line = with(
        &without_secrets,
        &[
            "--signing-secret-file",
            &signing,
            "--webhook-secret-file",
            &webhook,
        ],
    );
    let out = env.ok(&line).await;
    assert!(
        !out.contains("from-a-file"),
        "nothing generated, nothing printed: {out}"
    );
    let spec = env.spec("acme").await;
    assert_eq!(
        spec.signing_keys[0].secret.expose(),
        "signing-secret-from-a-file"
    );
    assert_eq!(
        spec.webhook_secret.as_ref().map(|s| s.expose().to_owned()),
        Some("whsec_ZnJvbS1hLWZpbGU=".to_owned()),
        "the trailing CRLF is not part of the secret"
    );

    let (_, rotated) = env
        .run_with_stdin(
            &env.store,
            &["signing-key", "rotate", "acme", "--secret-file", "-"],
            "rotated-from-stdin\n",
        )
        .await;
    rotated.expect("rotate from standard input");
    assert_eq!(
        env.spec("acme").await.signing_keys[0].secret.expose(),
        "rotated-from-stdin"
    );
    let (_, set) = env
        .run_with_stdin(
            &env.store,
            &["set", "acme", "--webhook-secret-file", "-"],
            "whsec_ZnJvbS1zdGRpbg==\n",
        )
        .await;
    set.expect("set from standard input");
    assert_eq!(
        env.spec("acme")
            .await
            .webhook_secret
            .map(|s| s.expose().to_owned()),
        Some("whsec_ZnJvbS1zdGRpbg==".to_owned())
    );

    let refused: [(&[&str], &str); 4] = [
        (
            &["signing-key", "rotate", "acme", "--secret-file", &empty],
            "--secret-file",
        ),
        (
            &[
                "signing-key",
                "rotate",
                "acme",
                "--secret-file",
                "/nonexistent/secret",
            ],
            "--secret-file",
        ),
        (
            &[
                "signing-key",
                "rotate",
                "acme",
                "--secret",
                "x",
                "--secret-file",
                &signing,
            ],
            "--secret",
        ),
        (
            &["set", "acme", "--webhook-secret-file", &empty],
            "--webhook-secret-file",
        ),
    ];
    for (args, flag) in refused {
        let e = env.err(args).await;
        assert!(e.contains(flag), "{args:?}: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn list_of_nothing() {
    let env = Env::new();
    assert_eq!(env.ok(&["list"]).await, "no partners\n");
    assert_eq!(
        env.json(&["list"]).await,
        serde_json::json!({"partners": []})
    );
    let e = env.err(&["show", "nobody"]).await;
    assert!(e.contains("partner nobody not found"), "{e}");
}

#[tokio::test]
async fn create_generates_missing_secrets_and_prints_them_once() {
    let env = Env::new();
    let line: Vec<&str> = create_line("acme")
        .into_iter()
        .filter(|a| {
            ![
                "--signing-secret",
                "acme-signing-secret-value",
                "--webhook-secret",
                "whsec_YWNtZS13ZWJob29rLXNlY3JldA==",
            ]
            .contains(a)
        })
        .collect();
    let json = env.json(&line).await;
    let spec = env.spec("acme").await;
    let signing = spec.signing_keys[0].secret.expose();
    let webhook = spec.webhook_secret.as_ref().expect("generated").expose();
    assert_eq!(signing.len(), 64);
    assert!(signing.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(webhook.starts_with("whsec_"));
    assert_eq!(json["signing_secret"], signing);
    assert_eq!(json["webhook_secret"], webhook);
    assert_eq!(json["changed"], true);
}

#[tokio::test]
async fn create_refuses_an_existing_id() {
    let env = Env::new();
    env.acme().await;
    let before = env.spec("acme").await;
    let e = env.err(&create_with("acme", &["--name", "Other"])).await;
    assert!(e.contains("partner acme exists already"), "{e}");
    assert_eq!(env.spec("acme").await, before);
}

#[tokio::test]
async fn create_refuses_invalid_values_and_writes_nothing() {
    let cases: &[(&[&str], &str)] = &[
        (&["--origin", "app.acme.example"], "allowed_origins"),
        (&["--ip", "10.0.0.0/33"], "allowed_ips"),
        (&["--lang", "en US"], "widget.lang"),
        (&["--decimals", "USDT=19"], "widget.decimals"),
        (&["--signing-secret", ""], "signing_secret"),
        (
            &["--redirect-url", "http://app.acme.example/done"],
            "widget.redirect_url",
        ),
        (&["--redirect-host", "other.example"], "widget.redirect_url"),
        (
            &["--webhook-url", "http://hooks.acme.example"],
            "webhook_url",
        ),
        (&["--name", " "], "name"),
    ];
    for (extra, field) in cases {
        let env = Env::new();
        let e = env.err(&create_with("acme", extra)).await;
        assert!(e.contains(field), "{extra:?}: {e}");
        assert_eq!(
            env.store.partners().await.expect("list"),
            vec![],
            "{extra:?}"
        );
    }
    let env = Env::new();
    let line = create_line("acme")
        .into_iter()
        .map(|a| if a == "TRC20,ERC20" { "TRC 20" } else { a })
        .collect::<Vec<_>>();
    let e = env.err(&line).await;
    assert!(e.contains("widget.networks"), "{e}");
    for (bad, why) in [
        (create_line("Acme!"), "partner id"),
        (create_with("acme", &["--widget-id", "nope"]), "--widget-id"),
        (create_with("acme", &["--type", "hold"]), "--type"),
        (
            create_with("acme", &["--decimals", "USDT"]),
            "CURRENCY=DIGITS",
        ),
    ] {
        let e = env.err(&bad).await;
        assert!(e.starts_with("clap: ") && e.contains(why), "{bad:?}: {e}");
    }
    assert_eq!(env.store.partners().await.expect("list"), vec![]);
}

#[tokio::test]
async fn origins_are_added_and_removed_as_the_gate_compares_them() {
    let env = Env::new();
    env.acme().await;
    let out = env
        .ok(&["origin", "add", "acme", "https://shop.acme.example"])
        .await;
    assert_eq!(out, "acme: origin https://shop.acme.example added\n");
    let out = env
        .ok(&["origin", "add", "acme", "https://SHOP.acme.example:443"])
        .await;
    assert!(out.starts_with("acme: unchanged"), "{out}");
    assert_eq!(
        env.spec("acme").await.allowed_origins,
        vec!["https://app.acme.example", "https://shop.acme.example"]
    );

    let e = env
        .err(&["origin", "add", "acme", "https://x.example/path"])
        .await;
    assert!(e.contains("allowed_origins"), "{e}");
    assert_eq!(env.spec("acme").await.allowed_origins.len(), 2);

    let json = env
        .json(&["origin", "remove", "acme", "https://app.acme.example/"])
        .await;
    assert_eq!(
        json,
        serde_json::json!({"partner_id": "acme", "changed": true, "summary": "origin https://app.acme.example/ removed"})
    );
    assert_eq!(
        env.spec("acme").await.allowed_origins,
        vec!["https://shop.acme.example"]
    );
    let e = env
        .err(&["origin", "remove", "acme", "https://app.acme.example"])
        .await;
    assert!(e.contains("has no origin"), "{e}");
    let e = env
        .err(&["origin", "add", "ghost", "https://app.acme.example"])
        .await;
    assert!(e.contains("partner ghost not found"), "{e}");
}

#[tokio::test]
async fn ip_ranges_are_normalised_and_compared_as_ranges() {
    let env = Env::new();
    env.acme().await;
    env.ok(&["ip", "add", "acme", "10.1.2.3"]).await;
    let out = env.ok(&["ip", "add", "acme", "10.1.2.3/32"]).await;
    assert_eq!(out, "acme: unchanged (10.1.2.3/32 is already allowed)\n");
    env.ok(&["ip", "add", "acme", "192.168.7.9/16"]).await;
    assert_eq!(
        env.spec("acme").await.allowed_ips,
        vec!["127.0.0.0/8", "::1", "10.1.2.3/32", "192.168.0.0/16"]
    );
    env.ok(&["ip", "remove", "acme", "::1/128"]).await;
    env.ok(&["ip", "remove", "acme", "10.1.2.3"]).await;
    assert_eq!(
        env.spec("acme").await.allowed_ips,
        vec!["127.0.0.0/8", "192.168.0.0/16"]
    );
    let e = env.err(&["ip", "add", "acme", "10.0.0.0/33"]).await;
    assert!(e.contains("not an IP or CIDR range"), "{e}");
    let e = env.err(&["ip", "remove", "acme", "10.9.9.9"]).await;
    assert!(e.contains("has no ip range 10.9.9.9/32"), "{e}");
    env.ok(&["ip", "remove", "acme", "127.0.0.0/8"]).await;
    let out = env.ok(&["ip", "remove", "acme", "192.168.0.0/16"]).await;
    assert!(out.contains("any caller IP is allowed"), "{out}");
    assert_eq!(env.spec("acme").await.allowed_ips, Vec::<String>::new());
}

#[tokio::test]
async fn wallets_are_added_selected_toggled_and_removed() {
    let env = Env::new();
    env.acme().await;
    let trc = "TXYZabcdefghijkmnopqrstuvwxyz12345";
    let trc2 = "TQn9Y2khEsLJW1ChVWFMSMeRDow5KcbLSE";
    env.ok(&wallet_line("add", &["--address", trc])).await;
    let out = env
        .ok(&wallet_line("add", &["--address", trc2, "--inactive"]))
        .await;
    assert_eq!(
        out,
        format!("acme: wallet USDT/TRC20 {trc2} added (inactive)\n")
    );
    let out = env.ok(&wallet_line("add", &["--address", trc])).await;
    assert!(out.starts_with("acme: unchanged"), "{out}");

    let e = env.err(&wallet_line("remove", &[])).await;
    assert!(
        e.contains("2 wallets for USDT/TRC20") && e.contains("--address"),
        "{e}"
    );
    let e = env
        .err(&wallet_line("add", &["--address", trc, "--inactive"]))
        .await;
    assert!(e.contains("wallet activate"), "{e}");

    env.ok(&wallet_line("deactivate", &["--address", trc]))
        .await;
    env.ok(&wallet_line("activate", &["--address", trc2])).await;
    let spec = env.spec("acme").await;
    assert_eq!(
        spec.wallets.iter().map(|w| w.active).collect::<Vec<_>>(),
        vec![false, true]
    );
    let show = env.ok(&["show", "acme"]).await;
    assert!(
        show.contains(&format!("wallets           USDT/TRC20  {trc}  inactive\n                  USDT/TRC20  {trc2}  active\n")),
        "{show}"
    );

    env.ok(&wallet_line("remove", &["--address", trc])).await;
    let out = env.ok(&wallet_line("remove", &[])).await;
    assert_eq!(out, format!("acme: wallet USDT/TRC20 {trc2} removed\n"));
    let e = env.err(&wallet_line("activate", &[])).await;
    assert!(e.contains("has no wallet for USDT/TRC20"), "{e}");

    let e = env
        .err(&[
            "wallet",
            "add",
            "acme",
            "--currency",
            "USDT",
            "--network",
            "ERC20",
            "--address",
            "0x00",
        ])
        .await;
    assert!(e.contains("wallet"), "{e}");
    assert!(env.spec("acme").await.wallets.is_empty(), "nothing written");
}

#[tokio::test]
async fn widget_set_replaces_what_is_given_and_validates() {
    let env = Env::new();
    env.acme().await;
    let out = env
        .ok(&[
            "widget",
            "set",
            "acme",
            "--currencies",
            "USDT,USDC",
            "--networks",
            "ERC20",
            "--type",
            "sell",
            "--no-redirect-url",
            "--decimals",
            "USDT=6,USDC=6",
            "--theme",
            "dark",
        ])
        .await;
    assert_eq!(
        out,
        "acme: widget currencies, networks, type, theme, redirect_url, decimals updated\n"
    );
    let widget = env.spec("acme").await.widget;
    assert_eq!(widget.currencies, vec!["USDT", "USDC"]);
    assert_eq!(widget.networks, vec!["ERC20"]);
    assert_eq!(widget.default_type, "sell");
    assert_eq!(widget.theme, "dark");
    assert_eq!(widget.redirect_url, None);
    assert_eq!(widget.fiat_currencies, vec!["EUR", "USD"], "untouched");

    let out = env.ok(&["widget", "set", "acme", "--theme", "dark"]).await;
    assert_eq!(out, "acme: unchanged (every value given is already set)\n");
    let e = env.err(&["widget", "set", "acme"]).await;
    assert!(e.contains("nothing to change"), "{e}");

    let before = env.spec("acme").await;
    for (args, field) in [
        (vec!["--fiat-currency", "E U R"], "widget.fiat_currency"),
        (vec!["--currencies", ""], "widget.currencies"),
        (
            vec!["--redirect-url", "ftp://x.example"],
            "widget.redirect_url",
        ),
    ] {
        let e = env.err(&with(&["widget", "set", "acme"], &args)).await;
        assert!(e.contains(field), "{args:?}: {e}");
        assert_eq!(env.spec("acme").await, before, "{args:?}: nothing written");
    }
    let e = env
        .err(&[
            "widget",
            "set",
            "acme",
            "--no-redirect-url",
            "--redirect-url",
            "https://a.example",
        ])
        .await;
    assert!(e.starts_with("clap: "), "{e}");
}

#[tokio::test]
async fn set_changes_flags_webhook_and_redirect_hosts() {
    let env = Env::new();
    env.acme().await;
    let out = env
        .ok(&[
            "set",
            "acme",
            "--name",
            "Acme",
            "--offramp",
            "true",
            "--accept-client-address",
            "true",
        ])
        .await;
    assert_eq!(out, "acme: name, offramp, accept_client_address updated\n");
    let spec = env.spec("acme").await;
    assert!(spec.offramp_enabled && spec.accept_client_address);
    assert_eq!(spec.name, "Acme");

    env.ok(&["set", "acme", "--no-webhook"]).await;
    let spec = env.spec("acme").await;
    assert_eq!((spec.webhook_url, spec.webhook_secret), (None, None));

    let json = env
        .json(&[
            "set",
            "acme",
            "--webhook-url",
            "https://hooks.acme.example/v2",
        ])
        .await;
    let stored = env.spec("acme").await.webhook_secret.expect("generated");
    assert_eq!(json["webhook_secret"], stored.expose(), "printed once");
    let out = env
        .ok(&[
            "set",
            "acme",
            "--webhook-url",
            "https://hooks.acme.example/v3",
        ])
        .await;
    assert_eq!(out, "acme: webhook_url updated\n", "the secret is kept");
    assert_eq!(env.spec("acme").await.webhook_secret, Some(stored));

    let e = env
        .err(&["set", "acme", "--redirect-hosts", "other.example"])
        .await;
    assert!(e.contains("widget.redirect_url"), "{e}");
    let e = env
        .err(&[
            "set",
            "acme",
            "--redirect-hosts",
            "https://app.acme.example",
        ])
        .await;
    assert!(e.contains("bare host name"), "{e}");
    env.ok(&[
        "set",
        "acme",
        "--redirect-hosts",
        "app.acme.example,pay.acme.example",
    ])
    .await;
    assert_eq!(
        env.spec("acme").await.redirect_hosts,
        vec!["app.acme.example", "pay.acme.example"]
    );
    env.ok(&[
        "set",
        "acme",
        "--no-redirect-hosts",
        "--signature-scheme",
        "sha512-concat",
    ])
    .await;
    let spec = env.spec("acme").await;
    assert!(spec.redirect_hosts.is_empty());
    assert_eq!(spec.signature_scheme, "sha512-concat");

    let json = env
        .json(&["set", "acme", "--webhook-secret", "whsec_cmVwbGFjZW1lbnQ="])
        .await;
    assert_eq!(json["summary"], "webhook_secret updated");
    assert!(
        json.get("webhook_secret").is_none(),
        "not generated, not printed"
    );
    env.ok(&["set", "acme", "--no-webhook"]).await;
    let e = env.err(&["set", "acme", "--webhook-secret", "s"]).await;
    assert!(e.contains("needs a webhook"), "{e}");
    assert_eq!(
        env.spec("acme").await.webhook_secret,
        None,
        "nothing written"
    );

    let e = env.err(&["set", "acme"]).await;
    assert!(e.contains("nothing to change"), "{e}");
    let e = env.err(&["set", "acme", "--offramp", "yes"]).await;
    assert!(e.starts_with("clap: "), "{e}");
}

#[tokio::test]
async fn an_issued_token_authenticates_and_is_printed_once() {
    let env = Env::new();
    env.acme().await;
    let out = env
        .ok(&[
            "token", "issue", "acme", "--env", "test", "--label", "backend",
        ])
        .await;
    let token = printed_token(&out);
    assert!(token.starts_with("ct_test_"), "{token}");
    let digest = TokenDigest::of(&token);
    assert_eq!(
        out.lines().next(),
        Some(
            format!(
                "acme: issued token {} (label \"backend\")",
                digest.short_id()
            )
            .as_str()
        )
    );
    assert!(out.contains("cannot be displayed again"), "{out}");
    let grant = env.grant(&digest).await.expect("the token works");
    assert_eq!(grant.partner.id.as_str(), "acme");
    assert_eq!(grant.expires_at, None);

    let json = env.json(&["token", "issue", "acme"]).await;
    let token = json["token"].as_str().expect("token");
    assert!(token.starts_with("ct_live_"), "live by default");
    let digest = TokenDigest::of(token);
    assert_eq!(
        json,
        serde_json::json!({
            "partner_id": "acme",
            "token_id": digest.short_id(),
            "token": token,
            "label": "cli",
        })
    );
    assert!(env.grant(&digest).await.is_some());
    let tokens = env.tokens("acme").await;
    assert_eq!(tokens.len(), 2);
    assert_eq!(tokens[0].created_at, env.now());

    let e = env.err(&["token", "issue", "ghost"]).await;
    assert!(e.contains("partner ghost not found"), "{e}");
    let e = env
        .err(&["token", "issue", "acme", "--label", "a\nb"])
        .await;
    assert!(e.contains("control characters"), "{e}");
}

#[tokio::test]
async fn rotation_keeps_the_old_token_until_the_grace_ends() {
    let env = Env::new();
    env.acme().await;
    let old = printed_token(
        &env.ok(&["token", "issue", "acme", "--label", "backend"])
            .await,
    );
    let old_digest = TokenDigest::of(&old);
    let old_id = old_digest.short_id();

    env.clock.advance(HOUR);
    let json = env
        .json(&["token", "rotate", "acme", &old_id, "--grace", "2h"])
        .await;
    let until = env.now().plus_seconds(2 * HOUR);
    let new = json["token"].as_str().expect("new token");
    let new_digest = TokenDigest::of(new);
    assert_eq!(json["token_id"], new_digest.short_id());
    assert_eq!(json["label"], "backend", "the old label by default");
    assert_eq!(json["replaces"]["token_id"], old_id);
    assert_eq!(json["replaces"]["expires_at"], until.to_rfc3339());

    let grant = env
        .grant(&old_digest)
        .await
        .expect("the old token still works");
    assert_eq!(grant.expires_at, Some(until));
    let grant = env.grant(&new_digest).await.expect("the new token works");
    assert_eq!(grant.expires_at, None);

    let show = env.ok(&["show", "acme"]).await;
    assert!(
        show.contains("1 active, 1 rotating, 0 expired, 0 revoked"),
        "{show}"
    );
    assert!(
        show.contains(&format!("{old_id}  rotating  \"backend\"  created "))
            && show.contains(&format!("works until {until}")),
        "{show}"
    );

    let e = env.err(&["token", "rotate", "acme", &old_id]).await;
    assert!(e.contains("already being rotated out"), "{e}");

    env.clock.advance(3 * HOUR);
    let show = env.json(&["show", "acme"]).await;
    assert_eq!(show["token_counts"]["expired"], 1);
    let e = env.err(&["token", "rotate", "acme", &old_id]).await;
    assert!(e.contains("has expired"), "{e}");

    // Grace 0: the old token ends now; text names the new token and the old one's fate.
    let out = env
        .ok(&[
            "token",
            "rotate",
            "acme",
            &new_digest.short_id(),
            "--grace",
            "0",
            "--label",
            "v3",
        ])
        .await;
    assert!(
        out.contains(&format!(
            "token {} stopped working now",
            new_digest.short_id()
        )),
        "{out}"
    );
    let newest = TokenDigest::of(&printed_token(&out));
    assert_eq!(
        env.grant(&new_digest).await.expect("found").expires_at,
        Some(env.now())
    );
    let record = env
        .tokens("acme")
        .await
        .into_iter()
        .find(|t| t.digest == newest)
        .expect("stored");
    assert_eq!(record.label, "v3");
}

#[tokio::test]
async fn revocation_is_immediate() {
    let env = Env::new();
    env.acme().await;
    let token = printed_token(&env.ok(&["token", "issue", "acme"]).await);
    let digest = TokenDigest::of(&token);
    let out = env
        .ok(&["token", "revoke", "acme", &digest.to_hex()[..12]])
        .await;
    assert_eq!(
        out,
        format!(
            "acme: token {} revoked; it stops working at once\n",
            digest.short_id()
        )
    );
    assert!(env.grant(&digest).await.is_none());
    let json = env
        .json(&["token", "revoke", "acme", &digest.short_id()])
        .await;
    assert_eq!(json["changed"], false);
    assert_eq!(json["revoked_at"], env.now().to_rfc3339());
    let e = env
        .err(&["token", "rotate", "acme", &digest.short_id()])
        .await;
    assert!(e.contains("was revoked"), "{e}");
}

#[tokio::test]
async fn token_ids_must_name_exactly_one_token_of_the_partner() {
    let env = Env::new();
    env.acme().await;
    env.ok(&create_line("beta")).await;
    let record = |partner: &str, last: u8| {
        let mut bytes = [0xaa; 32];
        bytes[4] = 0x11;
        bytes[31] = last;
        ClientTokenRecord {
            digest: TokenDigest::from_bytes(bytes),
            partner_id: PartnerId::parse(partner).expect("id"),
            label: "crafted".into(),
            created_at: Timestamp::from_unix_seconds(START),
            expires_at: None,
            revoked_at: None,
        }
    };
    for token in [record("acme", 1), record("acme", 2), record("beta", 3)] {
        assert!(env.store.add_token(&token).await.expect("add"));
    }
    let e = env.err(&["token", "revoke", "acme", "aaaaaaaa"]).await;
    let long = format!("aaaaaaaa11{}", "aa".repeat(26));
    assert!(
        e.contains("token id aaaaaaaa is ambiguous") && e.contains(&format!("{long}01, {long}02")),
        "{e}"
    );
    let e = env.err(&["token", "revoke", "acme", "deadbeef"]).await;
    assert!(e.contains("partner acme has no token deadbeef"), "{e}");
    let beta_only = format!("{long}03");
    let e = env.err(&["token", "revoke", "acme", &beta_only]).await;
    assert!(e.contains("has no token"), "another partner's token: {e}");
    let e = env.err(&["token", "revoke", "acme", "aaaa"]).await;
    assert!(
        e.starts_with("clap: ") && e.contains("not a token id"),
        "{e}"
    );

    // `show` lengthens the ids that would be ambiguous, so each can be typed back.
    let show = env.json(&["show", "acme"]).await;
    let ids: Vec<&str> = show["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["token_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![format!("{long}01"), format!("{long}02")]);
    env.ok(&[
        "token",
        "revoke",
        "acme",
        &format!("{long}02").to_uppercase(),
    ])
    .await;
    let tokens = env.tokens("acme").await;
    assert_eq!(
        tokens
            .iter()
            .map(|t| t.revoked_at.is_some())
            .collect::<Vec<_>>(),
        vec![false, true]
    );
}

#[tokio::test]
async fn signing_key_rotation_keeps_the_previous_key_for_the_grace() {
    let env = Env::new();
    env.acme().await;
    let out = env
        .ok(&[
            "signing-key",
            "rotate",
            "acme",
            "--grace",
            "1h",
            "--secret",
            "second-secret",
        ])
        .await;
    let until = env.now().plus_seconds(HOUR);
    assert_eq!(
        out,
        format!("acme: signing key k2 is now current\nkey k1 keeps verifying until {until}\n")
    );
    let keys = env.spec("acme").await.signing_keys;
    assert_eq!(
        keys.iter()
            .map(|k| (k.kid.as_str(), k.secret.expose(), k.not_after))
            .collect::<Vec<_>>(),
        vec![
            ("k2", "second-secret", None),
            ("k1", "acme-signing-secret-value", Some(until)),
        ]
    );
    let built = env.spec("acme").await.build().expect("builds");
    assert_eq!(built.signing.current().kid(), "k2");

    let e = env
        .err(&["signing-key", "rotate", "acme", "--secret", "second-secret"])
        .await;
    assert!(e.contains("current key k2"), "{e}");

    // Past k1's grace, the next rotation drops it and keeps k2 for 24 h.
    env.clock.advance(2 * HOUR);
    let json = env.json(&["signing-key", "rotate", "acme"]).await;
    let keys = env.spec("acme").await.signing_keys;
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        vec!["k3", "k2"]
    );
    assert_eq!(keys[1].not_after, Some(env.now().plus_seconds(24 * HOUR)));
    assert_eq!(
        json,
        serde_json::json!({
            "partner_id": "acme",
            "kid": "k3",
            "secret": keys[0].secret.expose(),
            "previous": {"kid": "k2", "not_after": env.now().plus_seconds(24 * HOUR).to_rfc3339()},
            "dropped": ["k1"],
        })
    );
    assert_eq!(keys[0].secret.expose().len(), 64);

    let out = env
        .ok(&["signing-key", "rotate", "acme", "--grace", "0"])
        .await;
    assert!(
        out.contains("key k3 was dropped at once (grace 0)"),
        "{out}"
    );
    assert!(out.contains("cannot be displayed again"), "{out}");
    let keys = env.spec("acme").await.signing_keys;
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        vec!["k4", "k2"],
        "k2 is still inside its grace"
    );
}

#[tokio::test]
async fn list_and_show_never_print_a_secret() {
    let env = Env::new();
    env.acme().await;
    let token = printed_token(&env.ok(&["token", "issue", "acme"]).await);
    let rotated = env.json(&["signing-key", "rotate", "acme"]).await;
    let key_secret = rotated["secret"].as_str().expect("generated").to_owned();
    env.ok(&["set", "acme", "--no-webhook"]).await;
    let set = env
        .json(&[
            "set",
            "acme",
            "--webhook-url",
            "https://hooks.acme.example/v2",
        ])
        .await;
    let webhook_secret = set["webhook_secret"]
        .as_str()
        .expect("generated")
        .to_owned();
    let secrets = [
        "acme-signing-secret-value",
        "whsec_YWNtZS13ZWJob29rLXNlY3JldA==",
        &token,
        &token["ct_live_".len()..],
        &key_secret,
        &webhook_secret,
    ];
    for args in [
        vec!["list"],
        vec!["--json", "list"],
        vec!["show", "acme"],
        vec!["--json", "show", "acme"],
    ] {
        let out = env.ok(&args).await;
        for secret in secrets {
            assert!(!out.contains(secret), "{args:?} printed a secret:\n{out}");
        }
        assert!(
            out.contains("k1") && out.contains("k2"),
            "keys by kid: {out}"
        );
    }
    let show = env.ok(&["show", "acme"]).await;
    assert!(show.contains("webhook secret    set\n"), "{show}");
}

#[test]
fn full_command_lines_parse() {
    let parse = |line: &[&str]| {
        let line = ["session-server", "partners"].iter().chain(line);
        match Cli::try_parse_from(line) {
            Ok(Cli {
                command: Some(Command::Partners(args)),
            }) => Ok(args),
            Ok(other) => panic!("not partners: {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    };
    let args = parse(&with(
        &create_line("acme"),
        &[
            "--type",
            "sell",
            "--lang",
            "de",
            "--theme",
            "dark",
            "--offramp",
            "--accept-client-address",
            "--signature-scheme",
            "sha512-concat",
            "--redirect-host",
            "app.acme.example",
            "--redirect-host",
            "pay.acme.example",
            "--origin",
            "https://pay.acme.example",
            "--json",
        ],
    ))
    .expect("create parses");
    assert!(args.operator.json);
    let PartnersCommand::Create(create) = &args.command else {
        panic!("create: {args:?}");
    };
    assert_eq!(create.networks, vec!["TRC20", "ERC20"]);
    assert_eq!(
        create.origins,
        vec!["https://app.acme.example", "https://pay.acme.example"]
    );
    assert_eq!(create.ips, vec!["127.0.0.0/8", "::1"]);
    assert_eq!(create.redirect_hosts.len(), 2);
    assert_eq!(create.signature_scheme.as_str(), "sha512-concat");
    assert!(create.offramp && create.accept_client_address);

    let args = parse(&[
        "token",
        "rotate",
        "acme",
        "1A2B3C4D",
        "--grace",
        "90s",
        "--env",
        "test",
        "--database-url",
        "postgres://ops@db/session",
    ])
    .expect("rotate parses");
    assert_eq!(
        args.operator.database_url.as_deref(),
        Some("postgres://ops@db/session")
    );
    let PartnersCommand::Token(TokenCommand::Rotate(rotate)) = &args.command else {
        panic!("rotate: {args:?}");
    };
    assert_eq!(rotate.token_id.as_str(), "1a2b3c4d");
    assert_eq!(rotate.grace.seconds(), 90);

    for line in [
        &[
            "set",
            "acme",
            "--offramp",
            "false",
            "--redirect-hosts",
            "a.example,b.example",
        ][..],
        &[
            "set",
            "acme",
            "--webhook-url",
            "https://h.example",
            "--webhook-secret",
            "s",
        ],
        &[
            "widget",
            "set",
            "acme",
            "--widget-id",
            WIDGET,
            "--fiat-currency",
            "USD",
            "--no-decimals",
        ],
        &["origin", "remove", "acme", "https://app.acme.example"],
        &["ip", "add", "acme", "10.0.0.0/8"],
        &[
            "wallet",
            "deactivate",
            "acme",
            "--currency",
            "USDT",
            "--network",
            "TRC20",
            "--address",
            "T1",
        ],
        &[
            "token",
            "issue",
            "acme",
            "--env",
            "live",
            "--label",
            "prod backend",
        ],
        &["token", "revoke", "acme", "1a2b3c4d"],
        &[
            "signing-key",
            "rotate",
            "acme",
            "--grace",
            "7d",
            "--secret",
            "s2",
        ],
        &["show", "acme"],
        &["list", "--json"],
    ] {
        parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    }
    for line in [
        &[
            "set",
            "acme",
            "--webhook-url",
            "https://h.example",
            "--no-webhook",
        ][..],
        &[
            "set",
            "acme",
            "--redirect-hosts",
            "a.example",
            "--no-redirect-hosts",
        ],
        &["token", "rotate", "acme", "1a2b3c4d", "--grace", "5w"],
        &["token", "revoke", "acme", "1a2b3c4"],
        &["token", "issue", "acme", "--env", "prod"],
        &["create", "acme", "--name", "A"],
        &["show", "ACME"],
        &[
            "wallet",
            "add",
            "acme",
            "--currency",
            "USDT",
            "--network",
            "TRC20",
        ],
    ] {
        assert!(parse(line).is_err(), "{line:?} should not parse");
    }
}

#[test]
fn grace_periods_parse() {
    for (text, seconds) in [
        ("0", Some(0)),
        ("90s", Some(90)),
        ("15m", Some(900)),
        ("24h", Some(86_400)),
        ("7d", Some(604_800)),
        ("365d", Some(31_536_000)),
        ("366d", None),
        ("99999999999999999999d", None),
        ("24", None),
        ("h", None),
        ("-1h", None),
        ("1.5h", None),
        ("", None),
        ("1w", None),
        (" 1h", None),
        ("1é", None),
    ] {
        assert_eq!(
            GracePeriod::parse(text).ok().map(GracePeriod::seconds),
            seconds,
            "{text:?}"
        );
    }
}

#[test]
fn token_refs_are_hex_prefixes_of_at_least_8_digits() {
    assert_eq!(
        TokenRef::parse("ABCDEF01").map(|r| r.as_str().to_owned()),
        Ok("abcdef01".to_owned())
    );
    assert!(TokenRef::parse(&"a".repeat(64)).is_ok());
    for bad in ["abcdef0", "abcdefgh", &"a".repeat(65), ""] {
        assert!(TokenRef::parse(bad).is_err(), "{bad:?}");
    }
}

/// `MemStore`, except that setting a token's expiry fails as a dropped
/// connection would.
struct ExpiryFails<'a>(&'a MemStore);

#[async_trait]
impl PartnerRegistry for ExpiryFails<'_> {
    async fn partner(&self, id: &PartnerId) -> Result<Option<PartnerSpec>, StoreError> {
        self.0.partner(id).await
    }

    async fn partners(&self) -> Result<Vec<PartnerSpec>, StoreError> {
        self.0.partners().await
    }

    async fn put_partner(&self, spec: &PartnerSpec) -> Result<(), StoreError> {
        self.0.put_partner(spec).await
    }

    async fn tokens(&self, partner: &PartnerId) -> Result<Vec<ClientTokenRecord>, StoreError> {
        self.0.tokens(partner).await
    }

    async fn add_token(&self, token: &ClientTokenRecord) -> Result<bool, StoreError> {
        self.0.add_token(token).await
    }

    async fn expire_token(
        &self,
        _partner: &PartnerId,
        _digest: &TokenDigest,
        _at: Timestamp,
    ) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("connection reset".into()))
    }

    async fn revoke_token(
        &self,
        partner: &PartnerId,
        digest: &TokenDigest,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.0.revoke_token(partner, digest, at).await
    }
}

#[tokio::test]
async fn a_rotation_that_fails_half_way_still_prints_the_stored_token() {
    let env = Env::new();
    env.acme().await;
    let old = TokenDigest::of(&printed_token(&env.ok(&["token", "issue", "acme"]).await));
    let (out, result) = env
        .run_on(
            &ExpiryFails(&env.store),
            &["token", "rotate", "acme", &old.short_id()],
        )
        .await;
    let e = result.expect_err("the expiry fails");
    let new = TokenDigest::of(&printed_token(&out));
    assert!(
        e.contains(&format!("the new token {} is stored", new.short_id()))
            && e.contains("connection reset")
            && e.contains(&format!("partners token revoke acme {}", old.short_id())),
        "{e}"
    );
    for digest in [old, new] {
        let grant = env.grant(&digest).await;
        assert_eq!(grant.expect("works").expires_at, None);
    }
}

#[tokio::test]
async fn webhook_secret_rotation_signs_twice_for_the_grace() {
    let env = Env::new();
    env.acme().await;
    let old = env
        .spec("acme")
        .await
        .webhook_secret
        .expect("a webhook secret");
    let json = env
        .json(&["webhook-secret", "rotate", "acme", "--grace", "1h"])
        .await;
    let until = env.now().plus_seconds(HOUR);
    let generated = json["webhook_secret"]
        .as_str()
        .expect("generated, shown once");
    assert!(generated.starts_with("whsec_"), "{json}");
    assert_eq!(json["previous_not_after"], until.to_rfc3339());
    let spec = env.spec("acme").await;
    assert_eq!(
        spec.webhook_secret.as_ref().map(|s| s.expose()),
        Some(generated)
    );
    assert_eq!(
        spec.webhook_previous_secrets
            .iter()
            .map(|p| (p.secret.expose(), p.not_after))
            .collect::<Vec<_>>(),
        [(old.expose(), until)]
    );
    // During the grace every webhook carries both signatures; after it, one.
    let keys = spec.build().expect("builds").webhook.expect("webhook").keys;
    let during = keys.signature_header("evt_1", 1, b"{}", env.now());
    assert_eq!(during.split(' ').count(), 2, "{during}");
    assert_eq!(
        keys.signature_header("evt_1", 1, b"{}", until)
            .split(' ')
            .count(),
        1
    );

    let out = env
        .ok(&["webhook-secret", "rotate", "acme", "--grace", "0"])
        .await;
    assert!(out.contains("dropped at once"), "{out}");
    let spec = env.spec("acme").await;
    assert_eq!(
        spec.webhook_previous_secrets.len(),
        1,
        "the first rotation's secret is still in its grace; the second's was dropped"
    );
    let listed = env.ok(&["show", "acme"]).await;
    assert!(!listed.contains(generated), "show never prints a secret");

    let mut quiet = spec.clone();
    quiet.id = "quiet".into();
    quiet.webhook_url = None;
    quiet.webhook_secret = None;
    quiet.webhook_previous_secrets.clear();
    env.store.put_partner(&quiet).await.expect("put");
    let refused = env.err(&["webhook-secret", "rotate", "quiet"]).await;
    assert!(refused.contains("no webhook_url"), "{refused}");
}

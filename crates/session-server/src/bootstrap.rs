//! `--bootstrap FILE`: partners declared in TOML, loaded into the store.
//!
//! Loading is idempotent: a partner whose stored configuration already equals
//! the file's is not written, a token already stored is not added, and secrets
//! the file leaves out are generated once and then kept. The whole file is
//! validated before anything is written, so a broken file changes nothing.
//! Tokens missing from the file are not revoked: revocation is an explicit
//! operator action (`session-server partners token revoke`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use session_core::client_token::{self, TokenDigest};
use session_core::partner::{
    PartnerId, PartnerSpec, RateLimit, SigningKeySpec, WalletSpec, WidgetSpec, next_kid,
    webhook_secret,
};
use session_core::ports::{ClientTokenRecord, PartnerRegistry};
use session_core::random::{Random, hex_secret};
use session_core::secret::Secret;
use session_core::time::Clock;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    partner: Vec<PartnerEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerEntry {
    id: String,
    name: String,
    #[serde(default)]
    client_tokens: Vec<String>,
    #[serde(default)]
    client_token_sha256: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    allowed_ips: Vec<String>,
    #[serde(default)]
    offramp_enabled: bool,
    #[serde(default)]
    accept_client_address: bool,
    #[serde(default)]
    redirect_hosts: Vec<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    signing_secret: Option<String>,
    signature_scheme: Option<String>,
    rate_limit: Option<RateLimitEntry>,
    widget: WidgetEntry,
    #[serde(default)]
    wallet: Vec<WalletEntry>,
}

/// `rate_limit = { per_second = R, burst = B }`; the burst defaults to twice
/// the rate, and `per_second = 0` makes the partner unlimited.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitEntry {
    per_second: u32,
    burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WidgetEntry {
    widget_id: String,
    currencies: Vec<String>,
    networks: Vec<String>,
    fiat_currency: String,
    fiat_currencies: Vec<String>,
    #[serde(rename = "type")]
    tx_type: Option<String>,
    lang: Option<String>,
    theme: Option<String>,
    redirect_url: Option<String>,
    /// Fraction digits per currency (an extension; 8 when absent).
    #[serde(default)]
    decimals: BTreeMap<String, u8>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WalletEntry {
    currency: String,
    network: String,
    address: String,
    #[serde(default = "yes")]
    active: bool,
}

/// What a load did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub tokens_added: usize,
}

/// The partners the store holds when the load starts, by id.
type Stored = BTreeMap<PartnerId, PartnerSpec>;

/// A partner ready to be written: its id, configuration and token digests.
struct Planned {
    id: PartnerId,
    spec: PartnerSpec,
    tokens: Vec<TokenDigest>,
}

/// Reads and loads `path` into `registry`.
pub async fn load_file(
    path: &Path,
    registry: &dyn PartnerRegistry,
    clock: &dyn Clock,
    random: &dyn Random,
) -> Result<Report, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    load(&text, registry, clock, random)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Loads bootstrap TOML `text` into `registry`.
pub async fn load(
    text: &str,
    registry: &dyn PartnerRegistry,
    clock: &dyn Clock,
    random: &dyn Random,
) -> Result<Report, String> {
    let file: File = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
    let mut stored = Stored::new();
    for spec in registry.partners().await.map_err(|e| e.to_string())? {
        let id = PartnerId::parse(&spec.id).map_err(str::to_owned)?;
        stored.insert(id, spec);
    }
    let mut seen = std::collections::HashSet::new();
    let mut planned = Vec::with_capacity(file.partner.len());
    for entry in file.partner {
        if !seen.insert(entry.id.clone()) {
            return Err(format!("partner {:?} is declared twice", entry.id));
        }
        let id =
            PartnerId::parse(&entry.id).map_err(|why| format!("partner {:?}: {why}", entry.id))?;
        let existing = stored.get(&id);
        planned.push(plan(id, entry, existing, random)?);
    }
    refuse_shared_tokens(&planned, &stored, registry).await?;
    let now = clock.now();
    let mut report = Report::default();
    // Ids are unique in `planned`, so no write below changes what `stored`
    // says about a partner still to come.
    for Planned { id, spec, tokens } in planned {
        match stored.get(&id) {
            Some(current) if *current == spec => report.unchanged.push(spec.id.clone()),
            current => {
                registry
                    .put_partner(&spec)
                    .await
                    .map_err(|e| e.to_string())?;
                if current.is_some() {
                    &mut report.updated
                } else {
                    &mut report.created
                }
                .push(spec.id.clone());
            }
        }
        for digest in tokens {
            let record = ClientTokenRecord::active(digest, id.clone(), "bootstrap", now);
            if registry
                .add_token(&record)
                .await
                .map_err(|e| e.to_string())?
            {
                report.tokens_added += 1;
            }
        }
    }
    Ok(report)
}

/// Where a file failed to parse and what kind of mistake it is, without the
/// value: toml's own message quotes the offending line and serde's quotes the
/// value, either of which may be a client token or a secret.
fn parse_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message();
    let what = if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        // The name comes from this file's schema, not from the input.
        format!("missing key `{field}`")
    } else if message.starts_with("unknown field") {
        "unknown key".to_owned()
    } else if message.starts_with("duplicate key") {
        "duplicate key".to_owned()
    } else if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("invalid length")
    {
        // `expected ...` describes the schema, never the input.
        match message.rsplit_once(", expected ") {
            Some((_, expected)) => format!("wrong type or value, expected {expected}"),
            None => "wrong type or value".to_owned(),
        }
    } else {
        "not valid TOML".to_owned()
    };
    let Some(span) = error.span() else {
        return format!("bootstrap file: {what}");
    };
    let offset = span.start.min(text.len());
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!(
        "bootstrap file: line {line}, column {column}, key {}: {what}",
        key_path(text, offset)
    )
}

/// The dotted path of the key at byte `offset` of `text`: the table header in
/// force there (array tables numbered) and the key of that line. Read from the
/// text so it works for files that do not parse.
fn key_path(text: &str, offset: usize) -> String {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut table = String::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let key = |line: &str| {
            line.split_once('=')
                .map(|(key, _)| key.trim().trim_matches('"').to_owned())
                .filter(|key| !key.is_empty() && !key.contains(char::is_whitespace))
        };
        if let Some(name) = trimmed
            .strip_prefix("[[")
            .and_then(|rest| rest.split("]]").next())
        {
            let name = name.trim().to_owned();
            // A new element starts its own nested arrays from zero.
            let nested = format!("{name}.");
            counts.retain(|seen, _| !seen.starts_with(&nested));
            *counts.entry(name.clone()).or_default() += 1;
            table = numbered(&name, &counts);
        } else if let Some(name) = trimmed
            .strip_prefix('[')
            .and_then(|rest| rest.split(']').next())
        {
            table = numbered(name.trim(), &counts);
        }
        // A header line names its own table, so this check comes after it.
        if line_start + line.len() > offset || line_start + line.len() == text.len() {
            return match key(trimmed).filter(|_| !trimmed.starts_with('[')) {
                Some(key) if table.is_empty() => key,
                Some(key) => format!("{table}.{key}"),
                None if table.is_empty() => "(top level)".to_owned(),
                None => table,
            };
        }
        line_start += line.len();
    }
    table
}

/// `partner.widget` as `partner[2].widget` when the third `[[partner]]` is the
/// latest element of that array of tables.
fn numbered(name: &str, counts: &HashMap<String, usize>) -> String {
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('.').map(str::trim) {
        for text in [&mut path, &mut prefix] {
            if !text.is_empty() {
                text.push('.');
            }
            text.push_str(part);
        }
        if let Some(count) = counts.get(&prefix) {
            path.push_str(&format!("[{}]", count.saturating_sub(1)));
        }
    }
    path
}

/// A client token identifies exactly one partner: refuses a file that gives one
/// token to two partners, or a token the store already holds for another one.
async fn refuse_shared_tokens(
    planned: &[Planned],
    stored: &Stored,
    registry: &dyn PartnerRegistry,
) -> Result<(), String> {
    let mut owner: HashMap<TokenDigest, &str> = HashMap::new();
    for (id, partner) in stored {
        for token in registry.tokens(id).await.map_err(|e| e.to_string())? {
            owner.insert(token.digest, &partner.id);
        }
    }
    let mut declared: HashMap<TokenDigest, &str> = HashMap::new();
    for Planned { spec, tokens, .. } in planned {
        for digest in tokens {
            if let Some(other) = declared
                .insert(*digest, &spec.id)
                .filter(|other| *other != spec.id)
            {
                return Err(format!(
                    "token {} is declared for both partner {other:?} and partner {:?}",
                    digest.short_id(),
                    spec.id
                ));
            }
            if let Some(other) = owner.get(digest).filter(|other| **other != spec.id) {
                return Err(format!(
                    "partner {:?}: token {} already belongs to partner {other:?}",
                    spec.id,
                    digest.short_id()
                ));
            }
        }
    }
    Ok(())
}

fn plan(
    id: PartnerId,
    entry: PartnerEntry,
    existing: Option<&PartnerSpec>,
    random: &dyn Random,
) -> Result<Planned, String> {
    let fail = |why: String| format!("partner {:?}: {why}", entry.id);
    let current_key = existing.and_then(|spec| spec.signing_keys.first());
    let signing_keys = match (&entry.signing_secret, current_key) {
        // The file names a secret: keep the stored key id when it is the same secret.
        (Some(secret), Some(key)) if key.secret.expose() == secret => vec![key.clone()],
        (Some(secret), Some(key)) => vec![SigningKeySpec {
            kid: next_kid(&key.kid),
            secret: Secret::new(secret.as_str()),
            not_after: None,
        }],
        (Some(secret), None) => vec![SigningKeySpec {
            kid: "k1".into(),
            secret: Secret::new(secret.as_str()),
            not_after: None,
        }],
        // No secret in the file: the one generated on the first load stays.
        (None, Some(_)) => existing
            .map(|spec| spec.signing_keys.clone())
            .unwrap_or_default(),
        (None, None) => vec![SigningKeySpec {
            kid: "k1".into(),
            secret: Secret::new(hex_secret(random)),
            not_after: None,
        }],
    };
    let webhook_secret = match (&entry.webhook_url, &entry.webhook_secret) {
        (None, _) => None,
        (Some(_), Some(secret)) => Some(Secret::new(secret.as_str())),
        (Some(_), None) => Some(
            existing
                .and_then(|spec| spec.webhook_secret.clone())
                .unwrap_or_else(|| Secret::new(webhook_secret(&hex_secret(random)))),
        ),
    };
    let rate_limit = entry
        .rate_limit
        .map(|limit| match limit.burst {
            Some(burst) => RateLimit::new(limit.per_second, burst),
            None => RateLimit::with_default_burst(limit.per_second),
        })
        .transpose()
        .map_err(|why| fail(format!("rate_limit: {why}")))?;
    let widget = entry.widget;
    let spec = PartnerSpec {
        id: entry.id.clone(),
        name: entry.name,
        allowed_origins: entry.allowed_origins,
        allowed_ips: entry.allowed_ips,
        offramp_enabled: entry.offramp_enabled,
        accept_client_address: entry.accept_client_address,
        redirect_hosts: entry.redirect_hosts,
        webhook_url: entry.webhook_url,
        // A rotation's grace survives a reload of the same file, as long as
        // the current secret is the one the file names.
        webhook_previous_secrets: existing
            .filter(|spec| spec.webhook_secret == webhook_secret)
            .map(|spec| spec.webhook_previous_secrets.clone())
            .unwrap_or_default(),
        webhook_secret,
        signature_scheme: entry
            .signature_scheme
            .unwrap_or_else(|| "hmac-sha512".into()),
        signing_keys,
        widget: WidgetSpec {
            widget_id: widget.widget_id,
            currencies: widget.currencies,
            networks: widget.networks,
            fiat_currency: widget.fiat_currency,
            fiat_currencies: widget.fiat_currencies,
            default_type: widget.tx_type.unwrap_or_else(|| "buy".into()),
            lang: widget.lang.unwrap_or_else(|| "en".into()),
            theme: widget.theme.unwrap_or_else(|| "light".into()),
            redirect_url: widget.redirect_url,
            decimals: widget.decimals.into_iter().collect(),
        },
        wallets: entry
            .wallet
            .into_iter()
            .map(|w| WalletSpec {
                currency: w.currency,
                network: w.network,
                address: w.address,
                active: w.active,
            })
            .collect(),
        rate_limit,
    };
    spec.build().map_err(|e| e.to_string())?;
    let mut tokens = Vec::new();
    for token in &entry.client_tokens {
        if !client_token::is_well_formed(token) {
            return Err(fail("client_tokens: each must be ct_live_ or ct_test_ followed by at least 43 base64url characters".into()));
        }
        tokens.push(TokenDigest::of(token));
    }
    for digest in &entry.client_token_sha256 {
        tokens.push(
            TokenDigest::from_hex(digest)
                .ok_or_else(|| fail("client_token_sha256: each must be 64 hex digits".into()))?,
        );
    }
    Ok(Planned { id, spec, tokens })
}

#[cfg(test)]
mod tests {
    use session_core::client_token::TokenDigest;
    use session_core::ports::PartnerDirectory;
    use session_core::testing::{CountingRandom, FixedClock};
    use session_store_mem::MemStore;

    use super::*;

    fn clock() -> FixedClock {
        FixedClock::at_micros(1_800_000_000_000_000)
    }

    const TOKEN: &str = "ct_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    /// The file of SPEC.md §6, made concrete.
    fn spec_example() -> String {
        format!(
            r#"
[[partner]]
id = "acme"
name = "Acme Wallet"
client_tokens = ["{TOKEN}"]
client_token_sha256 = ["{}"]
allowed_origins = ["https://app.acme.example"]
allowed_ips = ["127.0.0.0/8", "::1/128"]
offramp_enabled = false
accept_client_address = false
redirect_hosts = ["app.acme.example"]
webhook_url = "https://hooks.acme.example/proof"
signature_scheme = "hmac-sha512"
rate_limit = {{ per_second = 100, burst = 200 }}

[partner.widget]
widget_id = "fb359d09-fff6-4b1f-906c-b9062b135065"
currencies = ["USDT"]
networks = ["TRC20", "ERC20"]
fiat_currency = "EUR"
fiat_currencies = ["EUR", "USD"]
type = "buy"
lang = "en"
theme = "light"
redirect_url = "https://app.acme.example/done"

[[partner.wallet]]
currency = "USDT"
network = "TRC20"
address = "TXYZabcdefghijkmnopqrstuvwxyz12345"
active = true
"#,
            TokenDigest::of("ct_live_some-other-token").to_hex()
        )
    }

    #[tokio::test]
    async fn loads_the_spec_example_and_generates_missing_secrets() {
        let store = MemStore::new();
        let report = load(
            &spec_example(),
            &store,
            &clock(),
            &CountingRandom::default(),
        )
        .await
        .expect("loads");
        assert_eq!(
            (report.created, report.tokens_added),
            (vec!["acme".to_owned()], 2)
        );
        let id = PartnerId::parse("acme").expect("id");
        let spec = store.partner(&id).await.expect("read").expect("stored");
        assert_eq!(spec.signing_keys.len(), 1);
        assert_eq!(
            spec.signing_keys[0].secret.expose().len(),
            64,
            "generated as 64 hex chars"
        );
        assert!(
            spec.webhook_secret.is_some(),
            "generated because webhook_url is set"
        );
        assert_eq!(spec.rate_limit, RateLimit::new(100, 200).ok());
        let grant = store
            .find_by_token(&TokenDigest::of(TOKEN))
            .await
            .expect("lookup")
            .expect("token works");
        assert_eq!(grant.partner.id, id);
    }

    #[tokio::test]
    async fn loading_twice_changes_nothing() {
        let store = MemStore::new();
        let random = CountingRandom::default();
        load(&spec_example(), &store, &clock(), &random)
            .await
            .expect("first load");
        let before = store.partners().await.expect("list");
        let tokens_before = store
            .tokens(&PartnerId::parse("acme").expect("id"))
            .await
            .expect("tokens");
        let again = load(&spec_example(), &store, &clock(), &random)
            .await
            .expect("second load");
        assert_eq!(
            again,
            Report {
                unchanged: vec!["acme".into()],
                ..Report::default()
            }
        );
        assert_eq!(
            store.partners().await.expect("list"),
            before,
            "generated secrets are kept"
        );
        assert_eq!(
            store
                .tokens(&PartnerId::parse("acme").expect("id"))
                .await
                .expect("tokens"),
            tokens_before
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loading_twice_into_postgres_changes_nothing() {
        let Some(database) = session_store_pg::testing::TestDatabase::create().await else {
            return;
        };
        let store = session_store_pg::PgStore::connect(database.config())
            .await
            .expect("connect");
        let random = CountingRandom::default();
        let first = load(&spec_example(), &store, &clock(), &random)
            .await
            .expect("first load");
        assert_eq!((first.created.len(), first.tokens_added), (1, 2));
        let before = store.partners().await.expect("list");
        let again = load(&spec_example(), &store, &clock(), &random)
            .await
            .expect("second load");
        assert_eq!(
            again,
            Report {
                unchanged: vec!["acme".into()],
                ..Report::default()
            }
        );
        assert_eq!(store.partners().await.expect("list"), before);
        assert_eq!(
            store
                .tokens(&PartnerId::parse("acme").expect("id"))
                .await
                .expect("tokens")
                .len(),
            2
        );
    }

    #[tokio::test]
    async fn a_changed_file_updates_and_a_new_secret_gets_a_new_key_id() {
        let store = MemStore::new();
        load(
            &spec_example(),
            &store,
            &clock(),
            &CountingRandom::default(),
        )
        .await
        .expect("first load");
        let changed = spec_example().replace(
            "offramp_enabled = false",
            "offramp_enabled = true\nsigning_secret = \"explicit\"",
        );
        let report = load(&changed, &store, &clock(), &CountingRandom::default())
            .await
            .expect("second load");
        assert_eq!(report.updated, vec!["acme".to_owned()]);
        let spec = store
            .partner(&PartnerId::parse("acme").expect("id"))
            .await
            .expect("read")
            .expect("stored");
        assert!(spec.offramp_enabled);
        assert_eq!(
            (
                spec.signing_keys[0].kid.as_str(),
                spec.signing_keys[0].secret.expose()
            ),
            ("k2", "explicit")
        );
    }

    #[tokio::test]
    async fn a_broken_file_writes_nothing() {
        let cases = [
            (
                "unknown key",
                spec_example().replace("offramp_enabled = false", "offramp = false"),
            ),
            (
                "bad origin",
                spec_example().replace("https://app.acme.example\"]", "app.acme.example\"]"),
            ),
            ("weak token", spec_example().replace(TOKEN, "ct_test_short")),
            (
                "bad digest",
                spec_example().replace("client_token_sha256 = [\"", "client_token_sha256 = [\"zz"),
            ),
            (
                "duplicate partner",
                format!("{}\n{}", spec_example(), spec_example()),
            ),
            ("not toml", "[[partner]\n".to_owned()),
            (
                "one token for two partners (found by fuzzing)",
                format!(
                    "{}\n{}",
                    spec_example(),
                    spec_example().replace("id = \"acme\"", "id = \"other\"")
                ),
            ),
        ];
        for (why, text) in cases {
            let store = MemStore::new();
            assert!(
                load(&text, &store, &clock(), &CountingRandom::default())
                    .await
                    .is_err(),
                "{why}"
            );
            assert_eq!(
                store.partners().await.expect("list"),
                vec![],
                "{why}: nothing written"
            );
        }
    }

    /// toml's own error quotes the offending line, and serde's quotes the
    /// value: next to a token or a signing secret that is a leak on stderr.
    #[tokio::test]
    async fn a_parse_error_names_line_column_and_key_but_no_secret() {
        const SECRET: &str = "s3cr3t-never-printed";
        let token = format!("ct_test_{SECRET}{}", "A".repeat(30));
        let cases = [
            (
                "wrong type next to a token",
                spec_example().replace(
                    &format!("client_tokens = [\"{TOKEN}\"]"),
                    &format!("client_tokens = \"{token}\""),
                ),
                "line 5, column 17",
                "partner[0].client_tokens",
            ),
            (
                "unterminated signing secret",
                spec_example().replace(
                    "signature_scheme = \"hmac-sha512\"",
                    &format!("signing_secret = \"{SECRET}"),
                ),
                "line 13",
                "partner[0].signing_secret",
            ),
            (
                "bare webhook secret",
                spec_example().replace(
                    "signature_scheme = \"hmac-sha512\"",
                    &format!("webhook_secret = whsec_{SECRET}"),
                ),
                "line 13, column 18",
                "partner[0].webhook_secret",
            ),
            (
                "secret as a flag",
                spec_example().replace(
                    "offramp_enabled = false",
                    &format!("offramp_enabled = \"{SECRET}\""),
                ),
                "line 9, column 19",
                "partner[0].offramp_enabled",
            ),
            (
                "secret as a number of decimals",
                spec_example().replace(
                    "theme = \"light\"",
                    &format!("decimals = {{ USDT = \"{SECRET}\" }}"),
                ),
                "line 24",
                "partner[0].widget.decimals",
            ),
        ];
        let missing = load(
            &spec_example().replace("currencies = [\"USDT\"]\n", ""),
            &MemStore::new(),
            &clock(),
            &CountingRandom::default(),
        )
        .await
        .expect_err("missing key");
        assert!(
            missing.contains("line 16")
                && missing.contains("partner[0].widget: missing key `currencies`"),
            "{missing}"
        );
        for (why, text, position, key) in cases {
            let error = load(
                &text,
                &MemStore::new(),
                &clock(),
                &CountingRandom::default(),
            )
            .await
            .expect_err(why);
            assert!(!error.contains(SECRET), "{why}: {error}");
            assert!(error.contains(position), "{why}: {position} in {error}");
            assert!(error.contains(key), "{why}: {key} in {error}");
        }
    }

    #[tokio::test]
    async fn rate_limits_default_their_burst_and_are_checked() {
        let line = "rate_limit = { per_second = 100, burst = 200 }";
        let cases = [
            (
                "rate_limit = { per_second = 5 }",
                RateLimit::new(5, 10).ok(),
            ),
            (
                "rate_limit = { per_second = 0 }",
                Some(RateLimit::UNLIMITED),
            ),
            ("", None),
        ];
        for (replacement, expected) in cases {
            let store = MemStore::new();
            load(
                &spec_example().replace(line, replacement),
                &store,
                &clock(),
                &CountingRandom::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{replacement}: {e}"));
            let spec = store
                .partner(&PartnerId::parse("acme").expect("id"))
                .await
                .expect("read")
                .expect("stored");
            assert_eq!(spec.rate_limit, expected, "{replacement}");
        }
        for (replacement, named) in [
            ("rate_limit = { per_second = 5, burst = 0 }", "rate_limit"),
            ("rate_limit = { per_second = -1 }", "partner[0].rate_limit"),
            (
                "rate_limit = { per_second = 5, window = 2 }",
                "partner[0].rate_limit",
            ),
        ] {
            let store = MemStore::new();
            let error = load(
                &spec_example().replace(line, replacement),
                &store,
                &clock(),
                &CountingRandom::default(),
            )
            .await
            .expect_err(replacement);
            assert!(error.contains(named), "{replacement}: {error}");
            assert_eq!(store.partners().await.expect("list"), vec![]);
        }
    }

    #[tokio::test]
    async fn a_token_already_held_by_another_partner_is_refused() {
        let store = MemStore::new();
        load(
            &spec_example(),
            &store,
            &clock(),
            &CountingRandom::default(),
        )
        .await
        .expect("acme loads");
        let other = spec_example().replace("id = \"acme\"", "id = \"other\"");
        let error = load(&other, &store, &clock(), &CountingRandom::default())
            .await
            .expect_err("shared token");
        assert!(
            error.contains("already belongs to partner \"acme\""),
            "{error}"
        );
        let ids: Vec<String> = store
            .partners()
            .await
            .expect("list")
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(
            ids,
            vec!["acme".to_owned()],
            "nothing of the refused file was written"
        );
    }
}

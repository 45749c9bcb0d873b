//! The `partners` command line: clap types and the parsers of the values that
//! are checked before anything is read from the store.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
pub use session_core::admin::{GracePeriod, TokenRef};
use session_core::partner::PartnerId;
use uuid::Uuid;

#[derive(Debug, Args)]
pub struct PartnersArgs {
    #[command(flatten)]
    pub operator: crate::cli::OperatorArgs,

    #[command(subcommand)]
    pub command: PartnersCommand,
}

#[derive(Debug, Subcommand)]
pub enum PartnersCommand {
    /// Every partner with its token counts and configuration (never a secret).
    List,
    /// One partner in full, with its client tokens (never a secret).
    Show(ShowArgs),
    /// Onboard a partner. Refuses an id that exists.
    Create(Box<CreateArgs>),
    /// Change a partner's settings.
    Set(SetArgs),
    /// The widget configuration.
    #[command(subcommand)]
    Widget(WidgetCommand),
    /// Browser origins allowed to call the partner API.
    #[command(subcommand)]
    Origin(OriginCommand),
    /// Caller IPs and CIDR ranges allowed to call the partner API (none: any).
    #[command(subcommand)]
    Ip(IpCommand),
    /// Destination wallets per (currency, network).
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Client tokens: issue, rotate with a grace period, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The secret that signs session parameters.
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// The secret that signs webhooks.
    #[command(subcommand)]
    WebhookSecret(WebhookSecretCommand),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Partner id: 1 to 64 chars of [a-z0-9_-].
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,

    /// Display name.
    #[arg(long)]
    pub name: String,

    /// The widget's UUID.
    #[arg(long)]
    pub widget_id: Uuid,

    /// Crypto currencies offered (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub currencies: Vec<String>,

    /// Networks offered (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub networks: Vec<String>,

    /// Preselected fiat currency.
    #[arg(long)]
    pub fiat_currency: String,

    /// Fiat currencies offered (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub fiat_currencies: Vec<String>,

    /// Default transaction type of a session.
    #[arg(long = "type", value_enum, default_value = "buy")]
    pub tx_type: TxTypeArg,

    /// Widget language.
    #[arg(long, default_value = "en")]
    pub lang: String,

    /// Widget theme.
    #[arg(long, default_value = "light")]
    pub theme: String,

    /// Default redirect after the transaction (https).
    #[arg(long, value_name = "URL")]
    pub redirect_url: Option<String>,

    /// Fraction digits per currency, e.g. USDT=6 (comma-separated; others allow 8).
    #[arg(long, value_delimiter = ',', value_parser = CurrencyDecimals::parse)]
    pub decimals: Vec<CurrencyDecimals>,

    /// Allow `type: "sell"` sessions.
    #[arg(long)]
    pub offramp: bool,

    /// Let the partner supply the destination `address`.
    #[arg(long)]
    pub accept_client_address: bool,

    /// Which formula the partner's widget verifies.
    #[arg(long, value_enum, default_value = "hmac-sha512")]
    pub signature_scheme: SchemeArg,

    /// Signing secret [default: 64 random hex digits, printed once]. A value
    /// given here is visible to other users in the process list: prefer
    /// --signing-secret-file.
    #[arg(long, value_name = "SECRET")]
    pub signing_secret: Option<String>,

    /// Read the signing secret from this file (`-`: standard input); one
    /// trailing newline is ignored.
    #[arg(long, value_name = "PATH", conflicts_with = "signing_secret")]
    pub signing_secret_file: Option<PathBuf>,

    /// Where status changes are POSTed (https).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,

    /// Webhook signing secret [default: generated, printed once]. A value
    /// given here is visible in the process list: prefer --webhook-secret-file.
    #[arg(long, value_name = "SECRET", requires = "webhook_url")]
    pub webhook_secret: Option<String>,

    /// Read the webhook secret from this file (`-`: standard input).
    #[arg(
        long,
        value_name = "PATH",
        requires = "webhook_url",
        conflicts_with = "webhook_secret"
    )]
    pub webhook_secret_file: Option<PathBuf>,

    /// Allowed browser origin, scheme://host[:port]. Repeatable.
    #[arg(long = "origin", value_name = "ORIGIN")]
    pub origins: Vec<String>,

    /// Allowed caller IP or CIDR range. Repeatable; none means any caller.
    #[arg(long = "ip", value_name = "IP_OR_CIDR")]
    pub ips: Vec<String>,

    /// Host a session's redirect_url may point to. Repeatable; none means any.
    #[arg(long = "redirect-host", value_name = "HOST")]
    pub redirect_hosts: Vec<String>,

    /// Partner API requests per second on each instance (0: unlimited)
    /// [default: the server's --default-rate-limit].
    #[arg(long, value_name = "R", value_parser = RateArg::parse)]
    pub rate_limit: Option<RateArg>,

    /// Requests the partner may send at once [default: twice --rate-limit].
    #[arg(long, value_name = "B", requires = "rate_limit")]
    pub burst: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SetArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,

    /// Display name.
    #[arg(long)]
    pub name: Option<String>,

    /// Allow `type: "sell"` sessions.
    #[arg(long, value_name = "BOOL")]
    pub offramp: Option<bool>,

    /// Let the partner supply the destination `address`.
    #[arg(long, value_name = "BOOL")]
    pub accept_client_address: Option<bool>,

    /// Where status changes are POSTed (https).
    #[arg(long, value_name = "URL", conflicts_with = "no_webhook")]
    pub webhook_url: Option<String>,

    /// Replace the webhook secret [default when a webhook is first set:
    /// generated]. A value given here is visible in the process list: prefer
    /// --webhook-secret-file.
    #[arg(long, value_name = "SECRET", conflicts_with = "no_webhook")]
    pub webhook_secret: Option<String>,

    /// Read the new webhook secret from this file (`-`: standard input).
    #[arg(
        long,
        value_name = "PATH",
        conflicts_with_all = ["no_webhook", "webhook_secret"]
    )]
    pub webhook_secret_file: Option<PathBuf>,

    /// Stop sending webhooks (forgets the webhook secret).
    #[arg(long)]
    pub no_webhook: bool,

    /// Hosts a session's redirect_url may point to (comma-separated; replaces the list).
    #[arg(
        long,
        value_name = "HOSTS",
        value_delimiter = ',',
        conflicts_with = "no_redirect_hosts"
    )]
    pub redirect_hosts: Option<Vec<String>>,

    /// Allow a redirect_url to any host.
    #[arg(long)]
    pub no_redirect_hosts: bool,

    /// Which formula the partner's widget verifies.
    #[arg(long, value_enum)]
    pub signature_scheme: Option<SchemeArg>,

    /// Partner API requests per second on each instance; 0: unlimited;
    /// `default`: back to the server's --default-rate-limit.
    #[arg(long, value_name = "R|default", value_parser = RateArg::parse)]
    pub rate_limit: Option<RateArg>,

    /// Requests the partner may send at once [default: twice --rate-limit].
    #[arg(long, value_name = "B", requires = "rate_limit")]
    pub burst: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum WidgetCommand {
    /// Change the widget configuration; lists given replace the stored ones.
    Set(WidgetSetArgs),
}

#[derive(Debug, Args)]
pub struct WidgetSetArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,

    /// The widget's UUID.
    #[arg(long)]
    pub widget_id: Option<Uuid>,

    /// Crypto currencies offered (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub currencies: Option<Vec<String>>,

    /// Networks offered (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub networks: Option<Vec<String>>,

    /// Preselected fiat currency.
    #[arg(long)]
    pub fiat_currency: Option<String>,

    /// Fiat currencies offered (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub fiat_currencies: Option<Vec<String>>,

    /// Default transaction type of a session.
    #[arg(long = "type", value_enum)]
    pub tx_type: Option<TxTypeArg>,

    /// Widget language.
    #[arg(long)]
    pub lang: Option<String>,

    /// Widget theme.
    #[arg(long)]
    pub theme: Option<String>,

    /// Default redirect after the transaction (https).
    #[arg(long, value_name = "URL", conflicts_with = "no_redirect_url")]
    pub redirect_url: Option<String>,

    /// Remove the default redirect.
    #[arg(long)]
    pub no_redirect_url: bool,

    /// Fraction digits per currency, e.g. USDT=6,BTC=8 (replaces the list).
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = CurrencyDecimals::parse,
        conflicts_with = "no_decimals"
    )]
    pub decimals: Option<Vec<CurrencyDecimals>>,

    /// Forget every decimals entry (all currencies allow 8).
    #[arg(long)]
    pub no_decimals: bool,
}

#[derive(Debug, Subcommand)]
pub enum OriginCommand {
    /// Allow an origin (scheme://host[:port]).
    Add(OriginArgs),
    /// Stop allowing an origin.
    Remove(OriginArgs),
}

#[derive(Debug, Args)]
pub struct OriginArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
    pub origin: String,
}

#[derive(Debug, Subcommand)]
pub enum IpCommand {
    /// Allow an IP address or CIDR range.
    Add(IpArgs),
    /// Stop allowing an IP address or CIDR range.
    Remove(IpArgs),
}

#[derive(Debug, Args)]
pub struct IpArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
    #[arg(value_name = "IP_OR_CIDR")]
    pub range: String,
}

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Add a destination wallet.
    Add(WalletAddArgs),
    /// Remove a wallet (--address is needed when the pair has several).
    Remove(WalletSelector),
    /// Resolve sessions to this wallet again.
    Activate(WalletSelector),
    /// Keep the wallet but stop resolving sessions to it.
    Deactivate(WalletSelector),
}

#[derive(Debug, Args)]
pub struct WalletAddArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
    #[arg(long)]
    pub currency: String,
    #[arg(long)]
    pub network: String,
    #[arg(long)]
    pub address: String,
    /// Store it inactive.
    #[arg(long)]
    pub inactive: bool,
}

#[derive(Debug, Args)]
pub struct WalletSelector {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
    #[arg(long)]
    pub currency: String,
    #[arg(long)]
    pub network: String,
    #[arg(long)]
    pub address: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a new client token; it is printed once and only its digest is kept.
    Issue(TokenIssueArgs),
    /// Issue a replacement and let the old token work until the grace period ends.
    Rotate(TokenRotateArgs),
    /// Revoke a token at once.
    Revoke(TokenRevokeArgs),
}

#[derive(Debug, Args)]
pub struct TokenIssueArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
    /// Environment prefix of the token (ct_live_ or ct_test_).
    #[arg(long, value_enum, default_value = "live")]
    pub env: TokenEnvArg,
    /// A note for operators, e.g. where the token is deployed [default: cli].
    #[arg(long)]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenRotateArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
    /// The token's short id (8 hex digits) or a longer prefix of its SHA-256.
    #[arg(value_parser = TokenRef::parse)]
    pub token_id: TokenRef,
    /// How long the old token keeps working: 90s, 15m, 24h, 7d; 0 ends it now.
    #[arg(long, value_parser = GracePeriod::parse, default_value = "24h")]
    pub grace: GracePeriod,
    /// Environment prefix of the new token (ct_live_ or ct_test_).
    #[arg(long, value_enum, default_value = "live")]
    pub env: TokenEnvArg,
    /// Label of the new token [default: the old token's label].
    #[arg(long)]
    pub label: Option<String>,
}

#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
    /// The token's short id (8 hex digits) or a longer prefix of its SHA-256.
    #[arg(value_parser = TokenRef::parse)]
    pub token_id: TokenRef,
}

#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Make a new key current; the old one keeps verifying until the grace ends.
    Rotate(SigningKeyRotateArgs),
}

#[derive(Debug, Args)]
pub struct SigningKeyRotateArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
    /// How long the previous key keeps verifying: 90s, 15m, 24h, 7d; 0 drops it now.
    #[arg(long, value_parser = GracePeriod::parse, default_value = "24h")]
    pub grace: GracePeriod,
    /// The new secret [default: 64 random hex digits, printed once]. A value
    /// given here is visible in the process list: prefer --secret-file.
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,

    /// Read the new secret from this file (`-`: standard input).
    #[arg(long, value_name = "PATH", conflicts_with = "secret")]
    pub secret_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum WebhookSecretCommand {
    /// Make a new secret current; the old one keeps signing (a second
    /// signature on every webhook) until the grace ends.
    Rotate(WebhookSecretRotateArgs),
}

#[derive(Debug, Args)]
pub struct WebhookSecretRotateArgs {
    #[arg(value_parser = parse_partner_id)]
    pub id: PartnerId,
    /// How long the previous secret keeps signing: 90s, 15m, 24h, 7d; 0 drops it now.
    #[arg(long, value_parser = GracePeriod::parse, default_value = "24h")]
    pub grace: GracePeriod,
    /// Read the new secret (whsec_ and base64) from this file (`-`: standard
    /// input) [default: a fresh one, printed once].
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// The secret read from `--secret-file`.
    #[arg(skip)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TxTypeArg {
    Buy,
    Sell,
}

impl TxTypeArg {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// HMAC-SHA512 over the length-prefixed fields (docs/signing.md).
    #[value(name = "hmac-sha512")]
    HmacSha512,
    /// sha512_hex(address + secret + client_ip + merchant_transaction_id).
    #[value(name = "sha512-concat")]
    Sha512Concat,
}

impl SchemeArg {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha512 => "hmac-sha512",
            Self::Sha512Concat => "sha512-concat",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenEnvArg {
    Live,
    Test,
}

/// The value of `--rate-limit`: requests per second, or `default` for the
/// server's `--default-rate-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateArg {
    Default,
    PerSecond(u32),
}

impl RateArg {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "default" {
            return Ok(Self::Default);
        }
        text.parse::<u32>().map(Self::PerSecond).map_err(|_| {
            format!("{text:?} is not a number of requests per second (0: unlimited) or `default`")
        })
    }
}

/// `CODE=DIGITS`, as in `USDT=6`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyDecimals {
    pub currency: String,
    pub digits: u8,
}

impl CurrencyDecimals {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (currency, digits) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not CURRENCY=DIGITS, e.g. USDT=6"))?;
        let digits = digits
            .parse::<u8>()
            .map_err(|_| format!("{text:?}: the digits must be a number from 0 to 18"))?;
        Ok(Self {
            currency: currency.to_owned(),
            digits,
        })
    }
}

fn parse_partner_id(text: &str) -> Result<PartnerId, String> {
    PartnerId::parse(text).map_err(|why| format!("{text:?}: {why}"))
}

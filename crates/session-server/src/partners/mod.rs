//! `session-server partners ...`: the operator CLI that manages partners,
//! client tokens, origins, IP ranges, wallets and widget configuration. The
//! operations themselves are the core's (`session_core::service::admin`), the
//! same the admin API calls; this module turns arguments into their inputs and
//! their results into text or JSON.
//!
//! Every configuration change is validated by `PartnerSpec::build` before it
//! is written: an invalid change writes nothing. Secrets (signing secrets,
//! webhook secrets, client tokens) are printed only by the command that
//! generated them, once; `list` and `show` never print one.

mod args;
mod view;

#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::path::Path;

use serde::Serialize;
use session_core::Rejection;
use session_core::admin::{Change, Generated, PartnerPatch, WalletSelector, WidgetPatch};
use session_core::client_token::TokenEnv;
use session_core::partner::{
    PartnerId, PartnerSpec, RateLimit, SigningKeySpec, WalletSpec, WidgetSpec,
};
use session_core::ports::PartnerRegistry;
use session_core::random::Random;
use session_core::secret::Secret;
use session_core::service::admin::PartnerAdmin;
use session_core::time::{Clock, Timestamp};

use self::args::{
    CreateArgs, CurrencyDecimals, IpCommand, OriginCommand, RateArg, SetArgs, SigningKeyCommand,
    TokenCommand, TokenEnvArg, TokenIssueArgs, TokenRevokeArgs, TokenRotateArgs, WalletCommand,
    WebhookSecretCommand, WidgetCommand, WidgetSetArgs,
};
pub use self::args::{PartnersArgs, PartnersCommand};
use self::view::{
    ChangeJson, IssuedJson, KeyRotatedJson, ListJson, PreviousKeyJson, ReplacedJson, RevokedJson,
    Text, WebhookSecretRotatedJson,
};

/// Runs one `partners` command and writes its result to `out`, as text or
/// (with `json`) as one JSON document. An `Err` is the message for stderr.
pub async fn run(
    command: &PartnersCommand,
    json: bool,
    registry: &dyn PartnerRegistry,
    clock: &dyn Clock,
    random: &dyn Random,
    out: &mut dyn Write,
) -> Result<(), String> {
    let ops = Ops {
        admin: PartnerAdmin {
            registry,
            clock,
            random,
        },
    };
    let (output, failure) = match ops.dispatch(command).await {
        Ok(output) => (Some(output), None),
        Err(Failure { message, output }) => (output, Some(message)),
    };
    if let Some(output) = output {
        output.write(json, out)?;
    }
    failure.map_or(Ok(()), Err)
}

/// Replaces every `--*-secret-file` of `command` with the secret it names: a
/// file, or `-` for `stdin`. One trailing newline (LF or CRLF) is dropped, as
/// `echo` and editors add one; an empty secret is refused.
pub fn read_secret_files(
    command: &mut PartnersCommand,
    stdin: &mut dyn Read,
) -> Result<(), String> {
    let mut stdin_used = false;
    let mut read = |flag: &str, path: &Path| -> Result<String, String> {
        if path.as_os_str() != "-" {
            return crate::config::read_secret_file(flag, path);
        }
        if std::mem::replace(&mut stdin_used, true) {
            return Err(format!("{flag} -: standard input can give only one secret"));
        }
        let mut text = String::new();
        stdin
            .read_to_string(&mut text)
            .map_err(|e| format!("{flag} -: cannot read standard input: {e}"))?;
        crate::config::secret_text(flag, "-", &text)
    };
    match command {
        PartnersCommand::Create(args) => {
            if let Some(path) = args.signing_secret_file.take() {
                args.signing_secret = Some(read("--signing-secret-file", &path)?);
            }
            if let Some(path) = args.webhook_secret_file.take() {
                args.webhook_secret = Some(read("--webhook-secret-file", &path)?);
            }
        }
        PartnersCommand::Set(args) => {
            if let Some(path) = args.webhook_secret_file.take() {
                args.webhook_secret = Some(read("--webhook-secret-file", &path)?);
            }
        }
        PartnersCommand::SigningKey(SigningKeyCommand::Rotate(args)) => {
            if let Some(path) = args.secret_file.take() {
                args.secret = Some(read("--secret-file", &path)?);
            }
        }
        PartnersCommand::WebhookSecret(WebhookSecretCommand::Rotate(args)) => {
            if let Some(path) = args.secret_file.take() {
                args.secret = Some(read("--secret-file", &path)?);
            }
        }
        _ => {}
    }
    Ok(())
}

/// What a command prints, in both forms. The JSON is rendered at once so its
/// fields keep the order of the structs that describe it.
struct Output {
    text: String,
    json: String,
}

impl Output {
    fn new(text: String, json: &impl Serialize) -> Result<Self, String> {
        let json =
            serde_json::to_string_pretty(json).map_err(|e| format!("cannot encode JSON: {e}"))?;
        Ok(Self { text, json })
    }

    fn write(&self, json: bool, out: &mut dyn Write) -> Result<(), String> {
        let written = if json {
            out.write_all(self.json.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
        } else {
            out.write_all(self.text.as_bytes())
        };
        written
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write the output: {e}"))
    }
}

/// A command that failed, possibly after something worth printing happened
/// (a rotation whose new token was stored before the old one's expiry failed).
struct Failure {
    message: String,
    output: Option<Output>,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self {
            message,
            output: None,
        }
    }
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Self {
        message(rejection).into()
    }
}

/// What the operator reads of a refusal: its message, and for a store fault
/// its cause (the admin API keeps that for its logs).
fn message(rejection: Rejection) -> String {
    match rejection.detail() {
        Some(detail) => format!("{}: {detail}", rejection.message()),
        None => rejection.message().to_owned(),
    }
}

const SHOWN_ONCE: &str = "Store it now: it is shown this once and cannot be displayed again.";

struct Ops<'a> {
    admin: PartnerAdmin<'a>,
}

impl Ops<'_> {
    async fn dispatch(&self, command: &PartnersCommand) -> Result<Output, Failure> {
        let admin = &self.admin;
        Ok(match command {
            PartnersCommand::List => self.list().await?,
            PartnersCommand::Show(args) => {
                let view = admin.show(&args.id).await?;
                Output::new(Text(&view).show_text(), &view)?
            }
            PartnersCommand::Create(args) => {
                let created = admin.create(new_partner(args)?).await?;
                edited(&args.id, &created.change, &created.generated)?
            }
            PartnersCommand::Set(args) => {
                let done = admin.patch(&args.id, &set_patch(args)?).await?;
                edited(&args.id, &done.change, &done.generated)?
            }
            PartnersCommand::Widget(WidgetCommand::Set(args)) => {
                let done = admin.patch(&args.id, &widget_patch(args)).await?;
                edited(&args.id, &done.change, &done.generated)?
            }
            PartnersCommand::Origin(command) => {
                let (id, change) = match command {
                    OriginCommand::Add(a) => (&a.id, admin.add_origin(&a.id, &a.origin).await?),
                    OriginCommand::Remove(a) => {
                        (&a.id, admin.remove_origin(&a.id, &a.origin).await?)
                    }
                };
                edited(id, &change, &Generated::default())?
            }
            PartnersCommand::Ip(command) => {
                let (id, change) = match command {
                    IpCommand::Add(a) => (&a.id, admin.add_ip(&a.id, &a.range).await?),
                    IpCommand::Remove(a) => (&a.id, admin.remove_ip(&a.id, &a.range).await?),
                };
                edited(id, &change, &Generated::default())?
            }
            PartnersCommand::Wallet(command) => {
                let (id, change) = match command {
                    WalletCommand::Add(a) => {
                        let wallet = WalletSpec {
                            currency: a.currency.clone(),
                            network: a.network.clone(),
                            address: a.address.clone(),
                            active: !a.inactive,
                        };
                        (&a.id, admin.add_wallet(&a.id, &wallet).await?)
                    }
                    WalletCommand::Remove(s) => {
                        (&s.id, admin.remove_wallet(&s.id, &selector(s)).await?)
                    }
                    WalletCommand::Activate(s) => (
                        &s.id,
                        admin.set_wallet_active(&s.id, &selector(s), true).await?,
                    ),
                    WalletCommand::Deactivate(s) => (
                        &s.id,
                        admin.set_wallet_active(&s.id, &selector(s), false).await?,
                    ),
                };
                edited(id, &change, &Generated::default())?
            }
            PartnersCommand::Token(TokenCommand::Issue(args)) => self.issue(args).await?,
            PartnersCommand::Token(TokenCommand::Rotate(args)) => return self.rotate(args).await,
            PartnersCommand::Token(TokenCommand::Revoke(args)) => self.revoke(args).await?,
            PartnersCommand::SigningKey(SigningKeyCommand::Rotate(args)) => {
                self.rotate_signing_key(args).await?
            }
            PartnersCommand::WebhookSecret(WebhookSecretCommand::Rotate(args)) => {
                self.rotate_webhook_secret(args).await?
            }
        })
    }

    async fn list(&self) -> Result<Output, Failure> {
        let views = self.admin.list().await?;
        let text = if views.is_empty() {
            "no partners\n".to_owned()
        } else {
            views
                .iter()
                .map(|view| Text(view).list_text())
                .collect::<Vec<_>>()
                .join("\n")
        };
        Ok(Output::new(text, &ListJson { partners: &views })?)
    }

    async fn issue(&self, args: &TokenIssueArgs) -> Result<Output, Failure> {
        let label = args.label.as_deref().unwrap_or("cli");
        let issued = self
            .admin
            .issue_token(&args.id, env(args.env), label)
            .await?;
        let text = format!(
            "{id}: issued token {token_id} (label {label:?})\n{token}\n{SHOWN_ONCE} Only its SHA-256 is stored.\n",
            id = args.id,
            token_id = issued.token_id,
            label = issued.label,
            token = issued.token,
        );
        Ok(Output::new(
            text,
            &IssuedJson {
                partner_id: args.id.as_str(),
                token_id: &issued.token_id,
                token: &issued.token,
                label: &issued.label,
                replaces: None,
            },
        )?)
    }

    async fn rotate(&self, args: &TokenRotateArgs) -> Result<Output, Failure> {
        let rotated = self
            .admin
            .rotate_token(
                &args.id,
                &args.token_id,
                args.grace,
                env(args.env),
                args.label.as_deref(),
            )
            .await?;
        let issued = &rotated.issued;
        let (token_id, old_id) = (&issued.token_id, &rotated.replaced);
        let old_fate = if args.grace.seconds() == 0 {
            format!("token {old_id} stopped working now")
        } else {
            format!("token {old_id} keeps working until {}", rotated.expires_at)
        };
        let text = format!(
            "{id}: issued token {token_id} (label {label:?}) to replace {old_id}\n{token}\n{SHOWN_ONCE} Only its SHA-256 is stored.\n{old_fate}\n",
            id = args.id,
            label = issued.label,
            token = issued.token,
        );
        let output = Output::new(
            text,
            &IssuedJson {
                partner_id: args.id.as_str(),
                token_id,
                token: &issued.token,
                label: &issued.label,
                replaces: Some(ReplacedJson {
                    token_id: old_id,
                    expires_at: rotated.expires_at.to_rfc3339(),
                }),
            },
        )?;
        match rotated.expiry_failed {
            None => Ok(output),
            Some(problem) => Err(Failure {
                message: format!(
                    "the new token {token_id} is stored (printed above), but setting the expiry of {old_id} failed: {problem}; {old_id} still works with no end: revoke it with `partners token revoke {id} {old_id}` once clients use {token_id}",
                    id = args.id
                ),
                output: Some(output),
            }),
        }
    }

    async fn revoke(&self, args: &TokenRevokeArgs) -> Result<Output, Failure> {
        let revoked = self.admin.revoke_token(&args.id, &args.token_id).await?;
        let token_id = revoked.token_id.as_str();
        let text = if revoked.changed {
            format!(
                "{}: token {token_id} revoked; it stops working at once\n",
                args.id
            )
        } else {
            format!(
                "{}: unchanged (token {token_id} was revoked at {})\n",
                args.id, revoked.revoked_at
            )
        };
        Ok(Output::new(
            text,
            &RevokedJson {
                partner_id: args.id.as_str(),
                token_id,
                changed: revoked.changed,
                revoked_at: revoked.revoked_at.to_rfc3339(),
            },
        )?)
    }

    async fn rotate_webhook_secret(
        &self,
        args: &args::WebhookSecretRotateArgs,
    ) -> Result<Output, Failure> {
        let rotation = self
            .admin
            .rotate_webhook_secret(&args.id, args.grace, args.secret.as_deref())
            .await?;
        let mut text = format!("{}: a new webhook secret is current\n", args.id);
        if let Some(secret) = &rotation.generated_secret {
            text.push_str(&format!("webhook secret: {secret}\n{SHOWN_ONCE}\n"));
        }
        match rotation.previous_until {
            Some(end) => text.push_str(&format!(
                "the previous secret keeps signing (a second signature) until {end}\n"
            )),
            None => text.push_str("the previous secret was dropped at once (grace 0)\n"),
        }
        Ok(Output::new(
            text,
            &WebhookSecretRotatedJson {
                partner_id: args.id.as_str(),
                webhook_secret: rotation.generated_secret.as_deref(),
                previous_not_after: rotation.previous_until.map(Timestamp::to_rfc3339),
                dropped: rotation.dropped,
            },
        )?)
    }

    async fn rotate_signing_key(
        &self,
        args: &args::SigningKeyRotateArgs,
    ) -> Result<Output, Failure> {
        let rotation = self
            .admin
            .rotate_signing_key(&args.id, args.grace, args.secret.as_deref())
            .await?;
        let mut text = format!("{}: signing key {} is now current\n", args.id, rotation.kid);
        if let Some(secret) = &rotation.generated_secret {
            text.push_str(&format!(
                "signing secret ({}): {secret}\n{SHOWN_ONCE}\n",
                rotation.kid
            ));
        }
        match rotation.previous_until {
            Some(end) => text.push_str(&format!(
                "key {} keeps verifying until {end}\n",
                rotation.previous_kid
            )),
            None => text.push_str(&format!(
                "key {} was dropped at once (grace 0)\n",
                rotation.previous_kid
            )),
        }
        if !rotation.dropped.is_empty() {
            text.push_str(&format!(
                "dropped keys past their grace period: {}\n",
                rotation.dropped.join(", ")
            ));
        }
        Ok(Output::new(
            text,
            &KeyRotatedJson {
                partner_id: args.id.as_str(),
                kid: &rotation.kid,
                secret: rotation.generated_secret.as_deref(),
                previous: PreviousKeyJson {
                    kid: &rotation.previous_kid,
                    not_after: rotation.previous_until.map(Timestamp::to_rfc3339),
                },
                dropped: &rotation.dropped,
            },
        )?)
    }
}

/// What a change printed: its summary, and the secrets it generated, once.
fn edited(id: &PartnerId, change: &Change, generated: &Generated) -> Result<Output, Failure> {
    let (changed, summary) = (change.changed(), change.summary());
    let mut text = if changed {
        format!("{id}: {summary}\n")
    } else {
        format!("{id}: unchanged ({summary})\n")
    };
    let mut secrets = Vec::new();
    if let Some(secret) = &generated.signing_secret {
        secrets.push(("signing secret (k1)", secret));
    }
    if let Some(secret) = &generated.webhook_secret {
        secrets.push(("webhook secret", secret));
    }
    for (label, secret) in &secrets {
        text.push_str(&format!("{label}: {secret}\n"));
    }
    if !secrets.is_empty() {
        text.push_str("Store the generated secrets now: they are shown this once and cannot be displayed again.\n");
    }
    Ok(Output::new(
        text,
        &ChangeJson {
            partner_id: id.as_str(),
            changed,
            summary,
            signing_secret: generated.signing_secret.as_deref(),
            webhook_secret: generated.webhook_secret.as_deref(),
        },
    )?)
}

/// The spec `partners create` asks for; the secrets it leaves out are
/// generated by the core.
fn new_partner(args: &CreateArgs) -> Result<PartnerSpec, String> {
    let rate_limit = match args.rate_limit {
        Some(rate) => rate_limit(rate, args.burst)?,
        None => None,
    };
    Ok(PartnerSpec {
        id: args.id.to_string(),
        name: args.name.clone(),
        allowed_origins: args.origins.clone(),
        allowed_ips: args.ips.clone(),
        offramp_enabled: args.offramp,
        accept_client_address: args.accept_client_address,
        redirect_hosts: args.redirect_hosts.clone(),
        webhook_url: args.webhook_url.clone(),
        webhook_secret: args
            .webhook_url
            .as_ref()
            .and(args.webhook_secret.as_deref())
            .map(Secret::new),
        webhook_previous_secrets: vec![],
        signature_scheme: args.signature_scheme.as_str().into(),
        signing_keys: args
            .signing_secret
            .iter()
            .map(|secret| SigningKeySpec {
                kid: "k1".into(),
                secret: Secret::new(secret.as_str()),
                not_after: None,
            })
            .collect(),
        widget: WidgetSpec {
            widget_id: args.widget_id.to_string(),
            currencies: args.currencies.clone(),
            networks: args.networks.clone(),
            fiat_currency: args.fiat_currency.clone(),
            fiat_currencies: args.fiat_currencies.clone(),
            default_type: args.tx_type.as_str().into(),
            lang: args.lang.clone(),
            theme: args.theme.clone(),
            redirect_url: args.redirect_url.clone(),
            decimals: decimals(&args.decimals),
        },
        wallets: vec![],
        rate_limit,
    })
}

/// `partners set` as a patch.
fn set_patch(args: &SetArgs) -> Result<PartnerPatch, String> {
    let rate_limit = args
        .rate_limit
        .map(|rate| rate_limit(rate, args.burst))
        .transpose()?;
    Ok(PartnerPatch {
        name: args.name.clone(),
        offramp_enabled: args.offramp,
        accept_client_address: args.accept_client_address,
        webhook_url: if args.no_webhook {
            Some(None)
        } else {
            args.webhook_url.clone().map(Some)
        },
        webhook_secret: args.webhook_secret.clone(),
        redirect_hosts: if args.no_redirect_hosts {
            Some(vec![])
        } else {
            args.redirect_hosts.clone()
        },
        signature_scheme: args.signature_scheme.map(|s| s.as_str().to_owned()),
        rate_limit,
        ..PartnerPatch::default()
    })
}

/// The budget `--rate-limit R|default` and `--burst B` name: `None` for the
/// server's default; without `--burst`, twice the rate.
fn rate_limit(rate: RateArg, burst: Option<u32>) -> Result<Option<RateLimit>, String> {
    let per_second = match (rate, burst) {
        (RateArg::Default, None) => return Ok(None),
        (RateArg::Default, Some(_)) => {
            return Err("--burst needs a number of requests per second in --rate-limit".into());
        }
        (RateArg::PerSecond(per_second), _) => per_second,
    };
    let limit = match burst {
        Some(burst) => RateLimit::new(per_second, burst),
        None => RateLimit::with_default_burst(per_second),
    };
    limit
        .map(Some)
        .map_err(|why| format!("--rate-limit/--burst: {why}"))
}

/// `partners widget set` as a patch.
fn widget_patch(args: &WidgetSetArgs) -> PartnerPatch {
    PartnerPatch {
        widget: WidgetPatch {
            widget_id: args.widget_id.map(|id| id.to_string()),
            currencies: args.currencies.clone(),
            networks: args.networks.clone(),
            fiat_currency: args.fiat_currency.clone(),
            fiat_currencies: args.fiat_currencies.clone(),
            default_type: args.tx_type.map(|t| t.as_str().to_owned()),
            lang: args.lang.clone(),
            theme: args.theme.clone(),
            redirect_url: if args.no_redirect_url {
                Some(None)
            } else {
                args.redirect_url.clone().map(Some)
            },
            decimals: if args.no_decimals {
                Some(vec![])
            } else {
                args.decimals.as_deref().map(decimals)
            },
        },
        ..PartnerPatch::default()
    }
}

fn selector(args: &args::WalletSelector) -> WalletSelector {
    WalletSelector {
        currency: args.currency.clone(),
        network: args.network.clone(),
        address: args.address.clone(),
    }
}

fn decimals(list: &[CurrencyDecimals]) -> Vec<(String, u8)> {
    list.iter()
        .map(|d| (d.currency.clone(), d.digits))
        .collect()
}

const fn env(arg: TokenEnvArg) -> TokenEnv {
    match arg {
        TokenEnvArg::Live => TokenEnv::Live,
        TokenEnvArg::Test => TokenEnv::Test,
    }
}

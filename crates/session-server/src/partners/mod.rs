//! `session-server partners ...`: the operator CLI that manages partners,
//! client tokens, origins, IP ranges, wallets and widget configuration through
//! the `PartnerRegistry` port, so it runs against whichever store is wired in.
//!
//! Every configuration change is validated by `PartnerSpec::build` before it
//! is written: an invalid change writes nothing. Secrets (signing secrets,
//! webhook secrets, client tokens) are printed only by the command that
//! generated them, once; `list` and `show` never print one.

mod args;
mod edit;
mod tokens;
mod view;

#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::path::Path;

use serde::Serialize;
use session_core::client_token::{self, TokenDigest, TokenEnv};
use session_core::partner::{PartnerId, PartnerSpec};
use session_core::ports::{ClientTokenRecord, PartnerRegistry};
use session_core::random::{Random, hex_secret};
use session_core::time::{Clock, Timestamp};

use self::args::{
    IpCommand, OriginCommand, SigningKeyCommand, TokenCommand, TokenEnvArg, TokenIssueArgs,
    TokenRevokeArgs, TokenRotateArgs, WalletCommand, WebhookSecretCommand, WidgetCommand,
};
pub use self::args::{PartnersArgs, PartnersCommand};
use self::edit::{Change, Generated};
use self::tokens::TokenState;
use self::view::{
    ChangeJson, IssuedJson, KeyRotatedJson, ListJson, PartnerView, PreviousKeyJson, ReplacedJson,
    RevokedJson, WebhookSecretRotatedJson,
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
        registry,
        clock,
        random,
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

const SHOWN_ONCE: &str = "Store it now: it is shown this once and cannot be displayed again.";

struct Ops<'a> {
    registry: &'a dyn PartnerRegistry,
    clock: &'a dyn Clock,
    random: &'a dyn Random,
}

impl Ops<'_> {
    async fn dispatch(&self, command: &PartnersCommand) -> Result<Output, Failure> {
        Ok(match command {
            PartnersCommand::List => self.list().await?,
            PartnersCommand::Show(args) => self.show(&args.id).await?,
            PartnersCommand::Create(args) => self.create(args).await?,
            PartnersCommand::Set(args) => {
                let mut generated = Generated::default();
                let change = self
                    .edit(&args.id, |spec| {
                        let (change, made) = edit::apply_set(spec, args, &mut || self.secret())?;
                        generated = made;
                        Ok(change)
                    })
                    .await?;
                self.edited(&args.id, change, &generated)?
            }
            PartnersCommand::Widget(WidgetCommand::Set(args)) => {
                let change = self
                    .edit(&args.id, |spec| edit::apply_widget_set(spec, args))
                    .await?;
                self.edited(&args.id, change, &Generated::default())?
            }
            PartnersCommand::Origin(command) => {
                let (id, change) = match command {
                    OriginCommand::Add(a) => (
                        &a.id,
                        self.edit(&a.id, |spec| Ok(edit::add_origin(spec, &a.origin)))
                            .await?,
                    ),
                    OriginCommand::Remove(a) => (
                        &a.id,
                        self.edit(&a.id, |spec| edit::remove_origin(spec, &a.origin))
                            .await?,
                    ),
                };
                self.edited(id, change, &Generated::default())?
            }
            PartnersCommand::Ip(command) => {
                let (id, change) = match command {
                    IpCommand::Add(a) => (
                        &a.id,
                        self.edit(&a.id, |spec| edit::add_ip(spec, &a.range))
                            .await?,
                    ),
                    IpCommand::Remove(a) => (
                        &a.id,
                        self.edit(&a.id, |spec| edit::remove_ip(spec, &a.range))
                            .await?,
                    ),
                };
                self.edited(id, change, &Generated::default())?
            }
            PartnersCommand::Wallet(command) => {
                let (id, change) = match command {
                    WalletCommand::Add(a) => (
                        &a.id,
                        self.edit(&a.id, |spec| edit::add_wallet(spec, a)).await?,
                    ),
                    WalletCommand::Remove(s) => (
                        &s.id,
                        self.edit(&s.id, |spec| edit::remove_wallet(spec, s))
                            .await?,
                    ),
                    WalletCommand::Activate(s) => (
                        &s.id,
                        self.edit(&s.id, |spec| edit::set_wallet_active(spec, s, true))
                            .await?,
                    ),
                    WalletCommand::Deactivate(s) => (
                        &s.id,
                        self.edit(&s.id, |spec| edit::set_wallet_active(spec, s, false))
                            .await?,
                    ),
                };
                self.edited(id, change, &Generated::default())?
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

    async fn list(&self) -> Result<Output, String> {
        let now = self.clock.now();
        let specs = self.registry.partners().await.map_err(store)?;
        let mut views = Vec::with_capacity(specs.len());
        for spec in &specs {
            let tokens = self.tokens_of(&spec.id).await?;
            views.push(PartnerView::new(spec, &tokens, now, false));
        }
        let text = if views.is_empty() {
            "no partners\n".to_owned()
        } else {
            views
                .iter()
                .map(PartnerView::list_text)
                .collect::<Vec<_>>()
                .join("\n")
        };
        Output::new(text, &ListJson { partners: &views })
    }

    async fn show(&self, id: &PartnerId) -> Result<Output, String> {
        let spec = self.load(id).await?;
        let tokens = self.tokens_of(&spec.id).await?;
        let view = PartnerView::new(&spec, &tokens, self.clock.now(), true);
        Output::new(view.show_text(), &view)
    }

    async fn create(&self, args: &args::CreateArgs) -> Result<Output, String> {
        if self
            .registry
            .partner(&args.id)
            .await
            .map_err(store)?
            .is_some()
        {
            return Err(format!(
                "partner {} exists already: change it with `partners set` or `partners widget set`",
                args.id
            ));
        }
        let (spec, generated) = edit::new_partner(args, &mut || self.secret())?;
        self.put(&spec).await?;
        let change = Change::Changed(format!("partner created ({})", spec.name));
        self.edited(&args.id, change, &generated)
    }

    /// Loads the partner, applies `apply`, validates and writes the result.
    /// Nothing is written when the edit fails, changes nothing, or does not build.
    async fn edit(
        &self,
        id: &PartnerId,
        apply: impl FnOnce(&mut PartnerSpec) -> Result<Change, String>,
    ) -> Result<Change, String> {
        let before = self.load(id).await?;
        let mut after = before.clone();
        let change = apply(&mut after)?;
        if matches!(change, Change::Changed(_)) && after != before {
            self.put(&after).await?;
            Ok(change)
        } else {
            Ok(match change {
                Change::Changed(what) => Change::Unchanged(what),
                unchanged => unchanged,
            })
        }
    }

    fn edited(
        &self,
        id: &PartnerId,
        change: Change,
        generated: &Generated,
    ) -> Result<Output, String> {
        let (changed, summary) = match &change {
            Change::Changed(what) => (true, what.as_str()),
            Change::Unchanged(what) => (false, what.as_str()),
        };
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
        Output::new(
            text,
            &ChangeJson {
                partner_id: id.as_str(),
                changed,
                summary,
                signing_secret: generated.signing_secret.as_deref(),
                webhook_secret: generated.webhook_secret.as_deref(),
            },
        )
    }

    async fn issue(&self, args: &TokenIssueArgs) -> Result<Output, String> {
        self.load(&args.id).await?;
        let label = label_or(args.label.as_deref(), "cli")?;
        let (token, digest) = self.new_token(&args.id, args.env, &label).await?;
        let token_id = digest.short_id();
        let text = format!(
            "{id}: issued token {token_id} (label {label:?})\n{token}\n{SHOWN_ONCE} Only its SHA-256 is stored.\n",
            id = args.id
        );
        Output::new(
            text,
            &IssuedJson {
                partner_id: args.id.as_str(),
                token_id: &token_id,
                token: &token,
                label: &label,
                replaces: None,
            },
        )
    }

    async fn rotate(&self, args: &TokenRotateArgs) -> Result<Output, Failure> {
        self.load(&args.id).await?;
        let now = self.clock.now();
        let tokens = self.tokens_of(args.id.as_str()).await?;
        let old = tokens::resolve(&tokens, args.id.as_str(), &args.token_id)?;
        let old_id = old.digest.short_id();
        match TokenState::of(old, now) {
            TokenState::Active => {}
            TokenState::Rotating(end) => {
                return Err(format!(
                "token {old_id} is already being rotated out (it works until {end}); revoke it to end it sooner"
            )
                .into());
            }
            TokenState::Expired(end) => {
                return Err(format!("token {old_id} has expired ({end}); issue a new one").into());
            }
            TokenState::Revoked(at) => {
                return Err(format!("token {old_id} was revoked at {at}; issue a new one").into());
            }
        }
        let label = label_or(args.label.as_deref(), &old.label)?;
        let (token, digest) = self.new_token(&args.id, args.env, &label).await?;
        let token_id = digest.short_id();
        let until = now.plus_seconds(args.grace.seconds());
        let old_fate = if args.grace.seconds() == 0 {
            format!("token {old_id} stopped working now")
        } else {
            format!("token {old_id} keeps working until {until}")
        };
        let text = format!(
            "{id}: issued token {token_id} (label {label:?}) to replace {old_id}\n{token}\n{SHOWN_ONCE} Only its SHA-256 is stored.\n{old_fate}\n",
            id = args.id
        );
        let output = Output::new(
            text,
            &IssuedJson {
                partner_id: args.id.as_str(),
                token_id: &token_id,
                token: &token,
                label: &label,
                replaces: Some(ReplacedJson {
                    token_id: &old_id,
                    expires_at: until.to_rfc3339(),
                }),
            },
        )?;
        // The new token is stored: from here on it must be printed whatever
        // happens, or nobody would ever know it.
        let expired = self
            .registry
            .expire_token(&args.id, &old.digest, until)
            .await;
        let problem = match expired {
            Ok(true) => return Ok(output),
            Ok(false) => "the token was not found any more".to_owned(),
            Err(e) => e.to_string(),
        };
        Err(Failure {
            message: format!(
                "the new token {token_id} is stored (printed above), but setting the expiry of {old_id} failed: {problem}; {old_id} still works with no end: revoke it with `partners token revoke {id} {old_id}` once clients use {token_id}",
                id = args.id
            ),
            output: Some(output),
        })
    }

    async fn revoke(&self, args: &TokenRevokeArgs) -> Result<Output, String> {
        self.load(&args.id).await?;
        let now = self.clock.now();
        let tokens = self.tokens_of(args.id.as_str()).await?;
        let token = tokens::resolve(&tokens, args.id.as_str(), &args.token_id)?;
        let token_id = token.digest.short_id();
        let token_id = token_id.as_str();
        let (changed, at) = match token.revoked_at {
            Some(at) => (false, at),
            None => {
                let found = self
                    .registry
                    .revoke_token(&args.id, &token.digest, now)
                    .await
                    .map_err(store)?;
                if !found {
                    return Err(format!(
                        "partner {} has no token {token_id} any more",
                        args.id
                    ));
                }
                (true, now)
            }
        };
        let text = if changed {
            format!(
                "{}: token {token_id} revoked; it stops working at once\n",
                args.id
            )
        } else {
            format!(
                "{}: unchanged (token {token_id} was revoked at {at})\n",
                args.id
            )
        };
        Output::new(
            text,
            &RevokedJson {
                partner_id: args.id.as_str(),
                token_id,
                changed,
                revoked_at: at.to_rfc3339(),
            },
        )
    }

    async fn rotate_webhook_secret(
        &self,
        args: &args::WebhookSecretRotateArgs,
    ) -> Result<Output, String> {
        let now = self.clock.now();
        let mut spec = self.load(&args.id).await?;
        let rotation = edit::rotate_webhook_secret(
            &mut spec,
            now,
            args.grace,
            args.secret.as_deref(),
            &mut || self.secret(),
        )?;
        self.put(&spec).await?;
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
        Output::new(
            text,
            &WebhookSecretRotatedJson {
                partner_id: args.id.as_str(),
                webhook_secret: rotation.generated_secret.as_deref(),
                previous_not_after: rotation.previous_until.map(Timestamp::to_rfc3339),
                dropped: rotation.dropped,
            },
        )
    }

    async fn rotate_signing_key(
        &self,
        args: &args::SigningKeyRotateArgs,
    ) -> Result<Output, String> {
        let now = self.clock.now();
        let mut spec = self.load(&args.id).await?;
        let rotation = edit::rotate_signing_key(
            &mut spec,
            now,
            args.grace,
            args.secret.as_deref(),
            &mut || self.secret(),
        )?;
        self.put(&spec).await?;
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
        Output::new(
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
        )
    }

    async fn load(&self, id: &PartnerId) -> Result<PartnerSpec, String> {
        self.registry
            .partner(id)
            .await
            .map_err(store)?
            .ok_or_else(|| format!("partner {id} not found (see `partners list`)"))
    }

    async fn tokens_of(&self, id: &str) -> Result<Vec<ClientTokenRecord>, String> {
        let id = PartnerId::parse(id).map_err(|why| format!("stored partner {id:?}: {why}"))?;
        self.registry.tokens(&id).await.map_err(store)
    }

    /// Validates `spec` and writes it; an invalid spec writes nothing.
    async fn put(&self, spec: &PartnerSpec) -> Result<(), String> {
        spec.build().map_err(|e| e.to_string())?;
        self.registry.put_partner(spec).await.map_err(store)
    }

    /// Generates a token, stores its digest, and returns both.
    async fn new_token(
        &self,
        id: &PartnerId,
        env: TokenEnvArg,
        label: &str,
    ) -> Result<(String, TokenDigest), String> {
        let env = match env {
            TokenEnvArg::Live => TokenEnv::Live,
            TokenEnvArg::Test => TokenEnv::Test,
        };
        let issued = client_token::issue(env, id.clone(), label, self.clock.now(), self.random);
        if !self
            .registry
            .add_token(&issued.record)
            .await
            .map_err(store)?
        {
            // 256 random bits do not collide; a broken random source might.
            return Err("the generated token exists already: the random source is broken".into());
        }
        Ok((issued.token, issued.record.digest))
    }

    /// 32 random bytes as 64 hex digits.
    fn secret(&self) -> String {
        hex_secret(self.random)
    }
}

fn store(error: session_core::ports::StoreError) -> String {
    error.to_string()
}

/// An operator's label: up to 100 characters, no control characters.
fn label_or(label: Option<&str>, default: &str) -> Result<String, String> {
    let label = label.unwrap_or(default);
    if label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(format!(
            "label {label:?} must be at most 100 characters without control characters"
        ));
    }
    Ok(label.to_owned())
}

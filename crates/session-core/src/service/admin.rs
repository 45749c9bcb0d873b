//! The operator's use cases over the `PartnerRegistry` and `WebhookOutbox`
//! ports: everything the `partners` and `webhooks` commands and the admin API
//! do. Both call these, so they cannot drift; a change goes through the same
//! port writes either way, and so reaches every instance the same way.
//!
//! Every configuration change is validated by `PartnerSpec::build` before it
//! is written: an invalid change writes nothing. Refusals are [`Rejection`]s
//! of the error matrix (`not_found`, `validation_error`, `conflict`, store
//! faults), so the admin API answers them as they are and the CLI prints
//! their message.

use std::fmt;

use super::store_rejection;
use crate::admin::edit::{self, Change, Generated, KeyRotation, WebhookSecretRotation};
use crate::admin::tokens::{self, GracePeriod, TokenRef, TokenState};
use crate::admin::{PartnerPatch, PartnerView, WalletSelector};
use crate::client_token::{self, TokenEnv};
use crate::error::{ErrorKind, Rejection};
use crate::partner::{PartnerId, PartnerSpec, WalletSpec};
use crate::ports::{
    ClientTokenRecord, DeliveryFilter, DeliveryView, PartnerRegistry, WebhookOutbox,
};
use crate::random::{Random, hex_secret};
use crate::time::{Clock, Timestamp};

/// Partner administration over the registry, with the clock and the random
/// source that stamp tokens and generate secrets.
#[derive(Clone, Copy)]
pub struct PartnerAdmin<'a> {
    pub registry: &'a dyn PartnerRegistry,
    pub clock: &'a dyn Clock,
    pub random: &'a dyn Random,
}

impl fmt::Debug for PartnerAdmin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PartnerAdmin")
    }
}

/// A configuration change that was made (or found already made), and the
/// secrets it generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub change: Change,
    pub generated: Generated,
}

/// A client token just issued: the plaintext exists only here.
#[derive(Clone)]
pub struct Issued {
    pub partner_id: PartnerId,
    pub token_id: String,
    pub token: String,
    pub label: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("partner_id", &self.partner_id)
            .field("token_id", &self.token_id)
            .field("token", &"<redacted>")
            .field("label", &self.label)
            .finish()
    }
}

/// A rotation: the new token, and the old one's end.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub issued: Issued,
    pub replaced: String,
    pub expires_at: Timestamp,
    /// Why setting the old token's expiry failed after the new token was
    /// stored; the old token then still works with no end.
    pub expiry_failed: Option<String>,
}

/// A revocation, or the one found already made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub token_id: String,
    pub changed: bool,
    pub revoked_at: Timestamp,
}

impl PartnerAdmin<'_> {
    /// Every partner, without secrets, with token counts.
    pub async fn list(&self) -> Result<Vec<PartnerView>, Rejection> {
        let now = self.clock.now();
        let specs = self.registry.partners().await.map_err(store_rejection)?;
        let mut views = Vec::with_capacity(specs.len());
        for spec in &specs {
            let tokens = self.tokens_of(&spec.id).await?;
            views.push(PartnerView::new(spec, &tokens, now, false));
        }
        Ok(views)
    }

    /// One partner, without secrets, with each of its tokens.
    pub async fn show(&self, id: &PartnerId) -> Result<PartnerView, Rejection> {
        let spec = self.load(id).await?;
        let tokens = self.tokens_of(&spec.id).await?;
        Ok(PartnerView::new(&spec, &tokens, self.clock.now(), true))
    }

    /// Onboards a partner. Secrets `spec` leaves out are generated; an id
    /// that exists is a `conflict`.
    pub async fn create(&self, mut spec: PartnerSpec) -> Result<Edited, Rejection> {
        let id = PartnerId::parse(&spec.id).map_err(|why| Rejection::invalid("id", why))?;
        if self
            .registry
            .partner(&id)
            .await
            .map_err(store_rejection)?
            .is_some()
        {
            return Err(Rejection::new(
                ErrorKind::Conflict,
                format!("partner {id} exists already: change it instead of creating it"),
            ));
        }
        let generated = edit::complete_new_partner(&mut spec, &mut || hex_secret(self.random));
        self.put(&spec).await?;
        Ok(Edited {
            change: Change::Changed(format!("partner created ({})", spec.name)),
            generated,
        })
    }

    /// Changes the settings `patch` names.
    pub async fn patch(&self, id: &PartnerId, patch: &PartnerPatch) -> Result<Edited, Rejection> {
        let mut generated = Generated::default();
        let change = self
            .edit(id, |spec| {
                let (change, made) =
                    edit::apply_patch(spec, patch, &mut || hex_secret(self.random))?;
                generated = made;
                Ok(change)
            })
            .await?;
        Ok(Edited { change, generated })
    }

    pub async fn add_origin(&self, id: &PartnerId, origin: &str) -> Result<Change, Rejection> {
        self.edit(id, |spec| Ok(edit::add_origin(spec, origin)))
            .await
    }

    pub async fn remove_origin(&self, id: &PartnerId, origin: &str) -> Result<Change, Rejection> {
        self.edit(id, |spec| edit::remove_origin(spec, origin))
            .await
    }

    pub async fn add_ip(&self, id: &PartnerId, range: &str) -> Result<Change, Rejection> {
        self.edit(id, |spec| edit::add_ip(spec, range)).await
    }

    pub async fn remove_ip(&self, id: &PartnerId, range: &str) -> Result<Change, Rejection> {
        self.edit(id, |spec| edit::remove_ip(spec, range)).await
    }

    pub async fn add_wallet(
        &self,
        id: &PartnerId,
        wallet: &WalletSpec,
    ) -> Result<Change, Rejection> {
        self.edit(id, |spec| edit::add_wallet(spec, wallet)).await
    }

    pub async fn remove_wallet(
        &self,
        id: &PartnerId,
        selector: &WalletSelector,
    ) -> Result<Change, Rejection> {
        self.edit(id, |spec| edit::remove_wallet(spec, selector))
            .await
    }

    pub async fn set_wallet_active(
        &self,
        id: &PartnerId,
        selector: &WalletSelector,
        active: bool,
    ) -> Result<Change, Rejection> {
        self.edit(id, |spec| edit::set_wallet_active(spec, selector, active))
            .await
    }

    /// Issues a client token; its plaintext is in the answer only.
    pub async fn issue_token(
        &self,
        id: &PartnerId,
        env: TokenEnv,
        label: &str,
    ) -> Result<Issued, Rejection> {
        self.load(id).await?;
        let label = check_label(label)?;
        self.new_token(id, env, label).await
    }

    /// Issues a replacement for token `old` and lets `old` work until
    /// `now + grace` (a grace of 0 ends it now).
    pub async fn rotate_token(
        &self,
        id: &PartnerId,
        old: &TokenRef,
        grace: GracePeriod,
        env: TokenEnv,
        label: Option<&str>,
    ) -> Result<Rotated, Rejection> {
        self.load(id).await?;
        let now = self.clock.now();
        let tokens = self.tokens_of(id.as_str()).await?;
        let old = tokens::resolve(&tokens, id.as_str(), old)?;
        let old_id = old.digest.short_id();
        let conflict = |message: String| Rejection::new(ErrorKind::Conflict, message);
        match TokenState::of(old, now) {
            TokenState::Active => {}
            TokenState::Rotating(end) => {
                return Err(conflict(format!(
                    "token {old_id} is already being rotated out (it works until {end}); revoke it to end it sooner"
                )));
            }
            TokenState::Expired(end) => {
                return Err(conflict(format!(
                    "token {old_id} has expired ({end}); issue a new one"
                )));
            }
            TokenState::Revoked(at) => {
                return Err(conflict(format!(
                    "token {old_id} was revoked at {at}; issue a new one"
                )));
            }
        }
        let label = check_label(label.unwrap_or(&old.label))?;
        let issued = self.new_token(id, env, label).await?;
        let until = now.plus_seconds(grace.seconds());
        // The new token is stored: from here on it must reach the caller
        // whatever happens, or nobody would ever know it.
        let expiry_failed = match self.registry.expire_token(id, &old.digest, until).await {
            Ok(true) => None,
            Ok(false) => Some("the token was not found any more".to_owned()),
            Err(e) => Some(e.to_string()),
        };
        Ok(Rotated {
            issued,
            replaced: old_id,
            expires_at: until,
            expiry_failed,
        })
    }

    /// Revokes a token at once; revoking a revoked token changes nothing.
    pub async fn revoke_token(
        &self,
        id: &PartnerId,
        token: &TokenRef,
    ) -> Result<Revoked, Rejection> {
        self.load(id).await?;
        let now = self.clock.now();
        let tokens = self.tokens_of(id.as_str()).await?;
        let token = tokens::resolve(&tokens, id.as_str(), token)?;
        let token_id = token.digest.short_id();
        if let Some(at) = token.revoked_at {
            return Ok(Revoked {
                token_id,
                changed: false,
                revoked_at: at,
            });
        }
        let found = self
            .registry
            .revoke_token(id, &token.digest, now)
            .await
            .map_err(store_rejection)?;
        if !found {
            return Err(Rejection::new(
                ErrorKind::NotFound,
                format!("partner {id} has no token {token_id} any more"),
            ));
        }
        Ok(Revoked {
            token_id,
            changed: true,
            revoked_at: now,
        })
    }

    /// Makes a new signing key current (`secret`, or a generated one); the
    /// previous one verifies until `now + grace`.
    pub async fn rotate_signing_key(
        &self,
        id: &PartnerId,
        grace: GracePeriod,
        secret: Option<&str>,
    ) -> Result<KeyRotation, Rejection> {
        let now = self.clock.now();
        let mut spec = self.load(id).await?;
        let rotation = edit::rotate_signing_key(&mut spec, now, grace, secret, &mut || {
            hex_secret(self.random)
        })?;
        self.put(&spec).await?;
        Ok(rotation)
    }

    /// Makes a new webhook secret current (`secret`, or a generated one); the
    /// previous one keeps signing until `now + grace`.
    pub async fn rotate_webhook_secret(
        &self,
        id: &PartnerId,
        grace: GracePeriod,
        secret: Option<&str>,
    ) -> Result<WebhookSecretRotation, Rejection> {
        let now = self.clock.now();
        let mut spec = self.load(id).await?;
        let rotation = edit::rotate_webhook_secret(&mut spec, now, grace, secret, &mut || {
            hex_secret(self.random)
        })?;
        self.put(&spec).await?;
        Ok(rotation)
    }

    /// Loads the partner, applies `apply`, validates and writes the result.
    /// Nothing is written when the edit fails, changes nothing, or does not build.
    pub async fn edit(
        &self,
        id: &PartnerId,
        apply: impl FnOnce(&mut PartnerSpec) -> Result<Change, Rejection>,
    ) -> Result<Change, Rejection> {
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

    async fn load(&self, id: &PartnerId) -> Result<PartnerSpec, Rejection> {
        self.registry
            .partner(id)
            .await
            .map_err(store_rejection)?
            .ok_or_else(|| Rejection::new(ErrorKind::NotFound, format!("partner {id} not found")))
    }

    async fn tokens_of(&self, id: &str) -> Result<Vec<ClientTokenRecord>, Rejection> {
        let id = PartnerId::parse(id).map_err(|why| {
            Rejection::of(ErrorKind::DbError).with_detail(format!("stored partner {id:?}: {why}"))
        })?;
        self.registry.tokens(&id).await.map_err(store_rejection)
    }

    /// Validates `spec` and writes it; an invalid spec writes nothing.
    async fn put(&self, spec: &PartnerSpec) -> Result<(), Rejection> {
        spec.build()
            .map_err(|e| Rejection::new(ErrorKind::ValidationError, e.0))?;
        self.registry
            .put_partner(spec)
            .await
            .map_err(store_rejection)
    }

    /// Generates a token, stores its digest, and returns both.
    async fn new_token(
        &self,
        id: &PartnerId,
        env: TokenEnv,
        label: &str,
    ) -> Result<Issued, Rejection> {
        let issued = client_token::issue(env, id.clone(), label, self.clock.now(), self.random);
        if !self
            .registry
            .add_token(&issued.record)
            .await
            .map_err(store_rejection)?
        {
            // 256 random bits do not collide; a broken random source might.
            return Err(Rejection::of(ErrorKind::TokenError)
                .with_detail("the generated token exists already: the random source is broken"));
        }
        Ok(Issued {
            partner_id: id.clone(),
            token_id: issued.record.digest.short_id(),
            token: issued.token,
            label: label.to_owned(),
        })
    }
}

/// An operator's label: up to 100 characters, no control characters.
fn check_label(label: &str) -> Result<&str, Rejection> {
    if label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(Rejection::invalid(
            "label",
            "must be at most 100 characters without control characters",
        ));
    }
    Ok(label)
}

/// Webhook deliveries as operators handle them.
#[derive(Clone, Copy)]
pub struct WebhookAdmin<'a> {
    pub outbox: &'a dyn WebhookOutbox,
    pub clock: &'a dyn Clock,
}

impl fmt::Debug for WebhookAdmin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookAdmin")
    }
}

impl WebhookAdmin<'_> {
    /// Deliveries matching `filter`, newest first.
    pub async fn deliveries(
        &self,
        filter: &DeliveryFilter,
    ) -> Result<Vec<DeliveryView>, Rejection> {
        self.outbox
            .deliveries(filter)
            .await
            .map_err(store_rejection)
    }

    /// Queues delivery `id` again, due now, whatever its state.
    pub async fn retry(&self, id: i64) -> Result<(), Rejection> {
        let found = self
            .outbox
            .requeue(id, self.clock.now())
            .await
            .map_err(store_rejection)?;
        if found {
            Ok(())
        } else {
            Err(Rejection::new(
                ErrorKind::NotFound,
                format!("no delivery {}", crate::ports::webhook_id(id)),
            ))
        }
    }

    /// Queues again every delivery of `partner` committed since `since`.
    pub async fn replay(&self, partner: &PartnerId, since: Timestamp) -> Result<u64, Rejection> {
        self.outbox
            .replay(partner, since, self.clock.now())
            .await
            .map_err(store_rejection)
    }
}

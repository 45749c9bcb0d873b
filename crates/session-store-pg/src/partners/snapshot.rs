//! The in-process partner snapshot: every partner built once into an
//! `Arc<Partner>`, and every client token resolved to the grant it gives, so
//! that authenticating a request is two hash lookups and no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use session_core::client_token::TokenDigest;
use session_core::partner::{Partner, PartnerId, PartnerSpec};
use session_core::ports::{ClientTokenRecord, TokenGrant};

/// One consistent view of the partner tables. Immutable: a reload builds a new
/// one and swaps it in whole.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    partners: HashMap<PartnerId, Arc<Partner>>,
    /// Every known digest. `None`: the token is revoked, or its partner's
    /// configuration does not build; known digests never reach the database.
    tokens: HashMap<TokenDigest, Option<TokenGrant>>,
}

impl Snapshot {
    /// Builds every partner. One that does not build (a row edited by hand, or
    /// validation tightened since it was written) is left out and logged: the
    /// other partners keep working.
    pub(crate) fn build(specs: &[PartnerSpec], tokens: &[ClientTokenRecord]) -> Self {
        let partners: HashMap<PartnerId, Arc<Partner>> = specs
            .iter()
            .filter_map(|spec| match spec.build() {
                Ok(partner) => Some((partner.id.clone(), Arc::new(partner))),
                Err(error) => {
                    tracing::error!(partner = %spec.id, %error, "stored partner does not build; its tokens are refused");
                    None
                }
            })
            .collect();
        let tokens = tokens
            .iter()
            .map(|record| {
                let grant =
                    TokenGrant::of_stored(record.revoked_at.is_some(), record.expires_at, || {
                        partners.get(&record.partner_id).cloned()
                    });
                (record.digest, grant)
            })
            .collect();
        Self { partners, tokens }
    }

    /// `Some(grant)` for a known digest (the grant itself `None` when refused),
    /// `None` for a digest this snapshot has never seen.
    pub(crate) fn token(&self, digest: &TokenDigest) -> Option<Option<TokenGrant>> {
        self.tokens.get(digest).cloned()
    }

    pub(crate) fn partner(&self, id: &PartnerId) -> Option<Arc<Partner>> {
        self.partners.get(id).cloned()
    }
}

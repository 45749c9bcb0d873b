//! Partners and their client tokens, in memory.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use session_core::client_token::TokenDigest;
use session_core::partner::{Partner, PartnerId, PartnerSpec};
use session_core::ports::{
    ClientTokenRecord, PartnerDirectory, PartnerRegistry, StoreError, TokenGrant,
};
use session_core::time::Timestamp;

use crate::MemStore;

#[derive(Debug, Default)]
pub(crate) struct PartnerState {
    /// Configuration as written, and the partner built from it.
    partners: HashMap<PartnerId, (PartnerSpec, Arc<Partner>)>,
    tokens: HashMap<TokenDigest, ClientTokenRecord>,
}

// Partner directory and registry. Reads take a shared lock and clone an `Arc`;
// writes are rare (bootstrap, operator changes).
impl MemStore {
    fn read(&self) -> RwLockReadGuard<'_, PartnerState> {
        // A panic while holding the lock cannot leave `State` half-written: every
        // write below is a single insert or field assignment.
        self.partners.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, PartnerState> {
        self.partners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `partner` has a webhook now: its status changes are then
    /// queued for delivery as they commit.
    pub(crate) fn has_webhook(&self, partner: &PartnerId) -> bool {
        self.read()
            .partners
            .get(partner)
            .is_some_and(|(_, built)| built.webhook.is_some())
    }

    fn update_token(
        &self,
        partner: &PartnerId,
        digest: &TokenDigest,
        edit: impl FnOnce(&mut ClientTokenRecord),
    ) -> bool {
        let mut state = self.write();
        match state.tokens.get_mut(digest) {
            Some(record) if record.partner_id == *partner => {
                edit(record);
                true
            }
            _ => false,
        }
    }
}

#[async_trait]
impl PartnerDirectory for MemStore {
    async fn find_by_token(&self, digest: &TokenDigest) -> Result<Option<TokenGrant>, StoreError> {
        let state = self.read();
        let grant = state.tokens.get(digest).and_then(|record| {
            TokenGrant::of_stored(record.revoked_at.is_some(), record.expires_at, || {
                let (_, partner) = state.partners.get(&record.partner_id)?;
                Some(Arc::clone(partner))
            })
        });
        Ok(grant)
    }

    async fn find_partner(&self, id: &PartnerId) -> Result<Option<Arc<Partner>>, StoreError> {
        Ok(self
            .read()
            .partners
            .get(id)
            .map(|(_, built)| Arc::clone(built)))
    }
}

#[async_trait]
impl PartnerRegistry for MemStore {
    async fn partner(&self, id: &PartnerId) -> Result<Option<PartnerSpec>, StoreError> {
        Ok(self.read().partners.get(id).map(|(spec, _)| spec.clone()))
    }

    async fn partners(&self) -> Result<Vec<PartnerSpec>, StoreError> {
        let mut specs: Vec<PartnerSpec> = self
            .read()
            .partners
            .values()
            .map(|(spec, _)| spec.clone())
            .collect();
        specs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(specs)
    }

    async fn put_partner(&self, spec: &PartnerSpec) -> Result<(), StoreError> {
        let partner = spec
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        self.write()
            .partners
            .insert(partner.id.clone(), (spec.clone(), Arc::new(partner)));
        Ok(())
    }

    async fn tokens(&self, partner: &PartnerId) -> Result<Vec<ClientTokenRecord>, StoreError> {
        let mut tokens: Vec<ClientTokenRecord> = self
            .read()
            .tokens
            .values()
            .filter(|t| t.partner_id == *partner)
            .cloned()
            .collect();
        tokens.sort_by_key(|t| (t.created_at, t.digest));
        Ok(tokens)
    }

    async fn add_token(&self, token: &ClientTokenRecord) -> Result<bool, StoreError> {
        let mut state = self.write();
        if !state.partners.contains_key(&token.partner_id) {
            return Err(StoreError::Failed(format!(
                "unknown partner {}",
                token.partner_id
            )));
        }
        if state.tokens.contains_key(&token.digest) {
            return Ok(false);
        }
        state.tokens.insert(token.digest, token.clone());
        Ok(true)
    }

    async fn expire_token(
        &self,
        partner: &PartnerId,
        digest: &TokenDigest,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.update_token(partner, digest, |record| record.expires_at = Some(at)))
    }

    async fn revoke_token(
        &self,
        partner: &PartnerId,
        digest: &TokenDigest,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        Ok(self.update_token(partner, digest, |record| record.revoked_at = Some(at)))
    }
}

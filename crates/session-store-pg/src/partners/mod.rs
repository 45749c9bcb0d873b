//! Partners and client tokens: the `PartnerDirectory` served from an
//! in-process snapshot, and the `PartnerRegistry` whose writes reach every
//! instance through `NOTIFY`.

pub(crate) mod directory;
pub(crate) mod listener;
mod snapshot;
mod sql;

use std::sync::Arc;

use async_trait::async_trait;
use session_core::client_token::TokenDigest;
use session_core::partner::{Partner, PartnerId, PartnerSpec};
use session_core::ports::{
    ClientTokenRecord, PartnerDirectory, PartnerRegistry, StoreError, TokenGrant,
};
use session_core::time::Timestamp;

use crate::PgStore;
use sql::TokenChange;

#[async_trait]
impl PartnerDirectory for PgStore {
    async fn find_by_token(&self, digest: &TokenDigest) -> Result<Option<TokenGrant>, StoreError> {
        self.directory.find(digest).await
    }

    async fn find_partner(&self, id: &PartnerId) -> Result<Option<Arc<Partner>>, StoreError> {
        Ok(self.directory.partner(id))
    }
}

#[async_trait]
impl PartnerRegistry for PgStore {
    async fn partner(&self, id: &PartnerId) -> Result<Option<PartnerSpec>, StoreError> {
        let specs = self
            .db
            .run(async |client| directory::load_specs(client, Some(id.as_str())).await)
            .await?;
        Ok(specs.into_iter().next())
    }

    async fn partners(&self) -> Result<Vec<PartnerSpec>, StoreError> {
        self.db
            .run(async |client| directory::load_specs(client, None).await)
            .await
    }

    async fn put_partner(&self, spec: &PartnerSpec) -> Result<(), StoreError> {
        // Refuse what would not build: the snapshot could not serve it.
        spec.build()
            .map_err(|error| StoreError::Failed(error.to_string()))?;
        let payload = self.directory.payload(&spec.id);
        self.db
            .run(async |client| {
                let tx = client.transaction().await?;
                sql::write_spec(&tx, spec, &payload).await?;
                tx.commit().await?;
                Ok(())
            })
            .await?;
        self.directory.reload_after_write().await;
        Ok(())
    }

    async fn tokens(&self, partner: &PartnerId) -> Result<Vec<ClientTokenRecord>, StoreError> {
        self.db
            .run(async |client| sql::load_tokens(&*client, Some(partner.as_str())).await)
            .await
    }

    async fn add_token(&self, token: &ClientTokenRecord) -> Result<bool, StoreError> {
        let payload = self.directory.payload(token.partner_id.as_str());
        let added = self
            .db
            .run(async |client| sql::insert_token(client, token, &payload).await)
            .await?;
        if added {
            self.directory.reload_after_write().await;
        }
        Ok(added)
    }

    async fn expire_token(
        &self,
        partner: &PartnerId,
        digest: &TokenDigest,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.change_token(partner, digest, TokenChange::Expire, at)
            .await
    }

    async fn revoke_token(
        &self,
        partner: &PartnerId,
        digest: &TokenDigest,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.change_token(partner, digest, TokenChange::Revoke, at)
            .await
    }
}

impl PgStore {
    async fn change_token(
        &self,
        partner: &PartnerId,
        digest: &TokenDigest,
        change: TokenChange,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let payload = self.directory.payload(partner.as_str());
        let changed = self
            .db
            .run(async |client| {
                sql::update_token(client, partner, digest, change, at, &payload).await
            })
            .await?;
        if changed {
            self.directory.reload_after_write().await;
        }
        Ok(changed)
    }
}

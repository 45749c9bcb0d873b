//! `SessionStore` on PostgreSQL: inserts go through group commit, reads and
//! the redemption are single statements, provider events one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use session_core::partner::PartnerId;
use session_core::ports::{EventApplied, Redemption, SessionStore, StoreError};
use session_core::session::{EventPlan, KycState, Session, StatusChanged, StoredSession};
use session_core::time::Timestamp;
use session_core::value::PartnerUserId;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::PgStore;
use crate::db::Db;
use crate::outbox::OutboxEvent;
use crate::rows::{self, PgTime, session_columns};

#[async_trait]
impl SessionStore for PgStore {
    async fn insert_session(&self, session: &Arc<Session>) -> Result<(), StoreError> {
        self.group_commit.insert(session).await
    }

    async fn session(&self, id: Uuid) -> Result<Option<StoredSession>, StoreError> {
        self.db
            .run(async |client| {
                let statement = client
                    .prepare_cached(concat!(
                        "SELECT ",
                        session_columns!(),
                        " FROM transactions WHERE merchant_transaction_id = $1"
                    ))
                    .await?;
                client
                    .query_opt(&statement, &[&id])
                    .await?
                    .map(|row| rows::stored_session(&row))
                    .transpose()
            })
            .await
    }

    async fn redeem(&self, id: Uuid, jti: &str, at: Timestamp) -> Result<Redemption, StoreError> {
        // One statement, one round trip. The UPDATE is the atomic step: of
        // concurrent redemptions the row lock lets one through, and the others
        // re-check `redeemed_at IS NULL` after it commits and match nothing.
        // `known` (from the statement's snapshot) then tells a used token from
        // a wrong id or jti.
        self.db
            .run(async |client| {
                let statement = client
                    .prepare_cached(
                        "WITH known AS ( \
                             SELECT 1 FROM transactions \
                             WHERE merchant_transaction_id = $1 AND init_token_jti = $2), \
                         redeemed AS ( \
                             UPDATE transactions SET redeemed_at = $3 \
                             WHERE merchant_transaction_id = $1 AND init_token_jti = $2 \
                               AND redeemed_at IS NULL \
                             RETURNING 1) \
                         SELECT EXISTS (SELECT 1 FROM redeemed) AS redeemed, \
                                EXISTS (SELECT 1 FROM known) AS known",
                    )
                    .await?;
                let row = client
                    .query_one(&statement, &[&id, &jti, &PgTime(at)])
                    .await?;
                let redeemed: bool = row.try_get("redeemed")?;
                let known: bool = row.try_get("known")?;
                Ok(match (redeemed, known) {
                    (true, _) => Redemption::Redeemed,
                    (false, true) => Redemption::AlreadyUsed,
                    (false, false) => Redemption::Unknown,
                })
            })
            .await
    }

    async fn kyc(
        &self,
        partner: &PartnerId,
        user: &PartnerUserId,
    ) -> Result<Option<KycState>, StoreError> {
        self.db
            .run(async |client| {
                let statement = client
                    .prepare_cached(
                        "SELECT kyc_status, kyc_updated_at FROM end_users \
                         WHERE partner_id = $1 AND partner_user_id = $2",
                    )
                    .await?;
                client
                    .query_opt(&statement, &[&partner.as_str(), &user.as_str()])
                    .await?
                    .map(|row| rows::kyc_state(&row))
                    .transpose()
            })
            .await
    }

    async fn apply_provider_event(&self, plan: &EventPlan) -> Result<EventApplied, StoreError> {
        let written = self
            .db
            .run(async |client| crate::events::apply(client, plan).await)
            .await?;
        if written.delivery_pending {
            self.outbox_signal.committed();
        }
        if let Some(update) = written.update {
            self.feed.committed(update);
        }
        Ok(written.applied)
    }

    async fn status_events(&self, id: Uuid) -> Result<Vec<StatusChanged>, StoreError> {
        status_events(&self.db, id).await
    }
}

/// The outbox events of transaction `id`, oldest first: its changes.
pub(crate) async fn status_events(db: &Db, id: Uuid) -> Result<Vec<StatusChanged>, StoreError> {
    db.run(async |client| {
        let statement = client
            .prepare_cached(
                "SELECT event FROM outbox WHERE merchant_transaction_id = $1 ORDER BY id",
            )
            .await?;
        client
            .query(&statement, &[&id])
            .await?
            .iter()
            .map(|row| {
                let Json(event) = row.try_get::<_, Json<OutboxEvent>>("event")?;
                event.into_domain()
            })
            .collect()
    })
    .await
}

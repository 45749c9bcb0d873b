//! Sessions, end users, provider events and the outbox, in memory.

use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use session_core::partner::PartnerId;
use session_core::ports::{EventApplied, Redemption, SessionStore, StoreError};
use session_core::session::{EventPlan, KycState, Session, StatusChanged, StoredSession};
use session_core::time::Timestamp;
use session_core::value::{Email, PartnerUserId};
use uuid::Uuid;

use crate::MemStore;

#[derive(Debug)]
pub(crate) struct UserRecord {
    email: Email,
    kyc: KycState,
}

#[async_trait]
impl SessionStore for MemStore {
    async fn insert_session(&self, session: &Arc<Session>) -> Result<(), StoreError> {
        let user_key = (
            session.partner_id.clone(),
            session.user.partner_user_id.clone(),
        );
        // Most sessions are for a known user with an unchanged email: a shared
        // lock answers that, so a busy user's sessions do not queue on one
        // shard's write lock.
        let known = self
            .users
            .get(&user_key)
            .is_some_and(|user| user.email == session.user.email);
        if !known {
            self.users
                .entry(user_key)
                .and_modify(|user| user.email = session.user.email.clone())
                .or_insert_with(|| UserRecord {
                    email: session.user.email.clone(),
                    kyc: KycState::NOT_STARTED,
                });
        }
        let stored = StoredSession {
            session: Arc::clone(session),
            state: session.initial_state(),
            redeemed_at: None,
        };
        match self.sessions.entry(session.merchant_transaction_id) {
            dashmap::Entry::Occupied(_) => Err(StoreError::Conflict(
                "merchant_transaction_id exists".into(),
            )),
            dashmap::Entry::Vacant(slot) => {
                slot.insert(Box::new(stored));
                Ok(())
            }
        }
    }

    async fn session(&self, id: Uuid) -> Result<Option<StoredSession>, StoreError> {
        Ok(self
            .sessions
            .get(&id)
            .map(|entry| StoredSession::clone(&entry)))
    }

    async fn redeem(&self, id: Uuid, jti: &str, at: Timestamp) -> Result<Redemption, StoreError> {
        // `get_mut` holds the shard's write lock: the check and the set are one step.
        let Some(mut entry) = self.sessions.get_mut(&id) else {
            return Ok(Redemption::Unknown);
        };
        if entry.session.init_token_jti != jti {
            return Ok(Redemption::Unknown);
        }
        if entry.redeemed_at.is_some() {
            return Ok(Redemption::AlreadyUsed);
        }
        entry.redeemed_at = Some(at);
        Ok(Redemption::Redeemed)
    }

    async fn kyc(
        &self,
        partner: &PartnerId,
        user: &PartnerUserId,
    ) -> Result<Option<KycState>, StoreError> {
        Ok(self
            .users
            .get(&(partner.clone(), user.clone()))
            .map(|record| record.kyc))
    }

    async fn apply_provider_event(&self, plan: &EventPlan) -> Result<EventApplied, StoreError> {
        let event = &plan.event;
        let mut seen = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(&event.event_id) {
            return Ok(EventApplied::Replayed);
        }
        let Some(mut stored) = self.sessions.get_mut(&event.merchant_transaction_id) else {
            return Ok(EventApplied::UnknownTransaction);
        };
        let user_key = (
            stored.session.partner_id.clone(),
            stored.session.user.partner_user_id.clone(),
        );
        let Some(mut user) = self.users.get_mut(&user_key) else {
            return Err(StoreError::Failed("session without a user".into()));
        };
        let effects = plan.effects(&stored, &user.kyc);
        if let Some(state) = &effects.state {
            stored.state = state.clone();
        }
        if let Some(kyc) = effects.kyc {
            user.kyc = kyc;
        }
        if let Some(change) = &effects.outbox {
            self.outbox
                .entry(change.merchant_transaction_id)
                .or_default()
                .push(change.clone());
            if self.has_webhook(&change.partner_id) {
                self.webhooks.push(change.clone(), plan.now);
            }
        }
        seen.insert(event.event_id.clone());
        Ok(EventApplied::Applied(Box::new(effects)))
    }

    async fn status_events(&self, id: Uuid) -> Result<Vec<StatusChanged>, StoreError> {
        Ok(self
            .outbox
            .get(&id)
            .map(|events| events.clone())
            .unwrap_or_default())
    }
}

//! Sessions, end users, provider events and the outbox, in memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use session_core::live::TxUpdate;
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
    /// Sessions held for this user; the user goes with the last one evicted.
    sessions: AtomicUsize,
}

impl UserRecord {
    /// Counts one session fewer; whether it was the last.
    pub(crate) fn release_session(&self) -> bool {
        self.sessions.fetch_sub(1, Ordering::SeqCst) <= 1
    }
}

impl MemStore {
    /// `insert_session`, without an `.await`, so a caller may hold a lock
    /// around it.
    pub(crate) fn insert_session_now(&self, session: &Arc<Session>) -> Result<(), StoreError> {
        self.reserve_slot(session.created_at)?;
        let user_key = (
            session.partner_id.clone(),
            session.user.partner_user_id.clone(),
        );
        // Most sessions are for a known user with an unchanged email: a shared
        // lock answers that, so a busy user's sessions do not queue on one
        // shard's write lock. The count changes under the lock, so an eviction
        // cannot remove the user in between.
        let known = self.users.get(&user_key).is_some_and(|user| {
            let same = user.email == session.user.email;
            if same {
                user.sessions.fetch_add(1, Ordering::SeqCst);
            }
            same
        });
        if !known {
            self.users
                .entry(user_key.clone())
                .and_modify(|user| {
                    user.email = session.user.email.clone();
                    user.sessions.fetch_add(1, Ordering::SeqCst);
                })
                .or_insert_with(|| UserRecord {
                    email: session.user.email.clone(),
                    kyc: KycState::NOT_STARTED,
                    sessions: AtomicUsize::new(1),
                });
        }
        let stored = StoredSession {
            session: Arc::clone(session),
            state: session.initial_state(),
            redeemed_at: None,
        };
        match self.sessions.entry(session.merchant_transaction_id) {
            dashmap::Entry::Occupied(_) => {
                self.release_slot();
                self.users
                    .remove_if(&user_key, |_, user| user.release_session());
                Err(StoreError::Conflict(
                    "merchant_transaction_id exists".into(),
                ))
            }
            dashmap::Entry::Vacant(slot) => {
                slot.insert(Box::new(stored));
                self.track_created(session);
                Ok(())
            }
        }
    }
}

#[async_trait]
impl SessionStore for MemStore {
    async fn insert_session(&self, session: &Arc<Session>) -> Result<(), StoreError> {
        self.insert_session_now(session)
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
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = event.merchant_transaction_id;
        if events
            .get(&tx)
            .is_some_and(|seen| seen.contains(&event.event_id))
        {
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
            let mut changes = self
                .outbox
                .entry(change.merchant_transaction_id)
                .or_default();
            changes.push(change.clone());
            // Published under the events lock, so two changes of one
            // transaction reach its subscribers in the order they applied.
            self.feed
                .publish(TxUpdate::of_change(changes.len() - 1, change.clone()));
            drop(changes);
            if self.has_webhook(&change.partner_id) {
                self.webhooks.push(change.clone(), plan.now);
            }
        }
        events.entry(tx).or_default().insert(event.event_id.clone());
        let ended = effects
            .state
            .as_ref()
            .is_some_and(|state| state.status.is_terminal());
        drop((stored, user, events));
        if ended {
            self.track_terminal(event.merchant_transaction_id);
        }
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

#[cfg(test)]
mod tests {
    use session_core::ports::Health;
    use session_core::session::ProviderEvent;
    use session_core::status::TxStatus;
    use session_store_contract::{at, partner, sample_session};

    use super::*;

    /// A session of its own user created at `created` whose init token
    /// expires 100 s later.
    async fn session_at(store: &MemStore, name: &str, created: i64) -> Arc<Session> {
        let acme = partner(store, "acme").await;
        let mut session = (*sample_session(&acme, name, "u@example.com", 1)).clone();
        session.created_at = at(created);
        session.init_token_expires_at = at(created + 100);
        Arc::new(session)
    }

    async fn complete(store: &MemStore, session: &Session, now: i64) {
        let plan = EventPlan {
            event: ProviderEvent {
                event_id: format!("done-{}", session.merchant_transaction_id),
                merchant_transaction_id: session.merchant_transaction_id,
                status: TxStatus::Completed,
                crypto_amount: None,
                fiat_amount: None,
                fiat_currency: None,
                payment_method: None,
                occurred_at: at(now),
                kyc_status: None,
            },
            now: at(now),
        };
        store.apply_provider_event(&plan).await.expect("applied");
    }

    async fn held(store: &MemStore, session: &Session) -> bool {
        store
            .session(session.merchant_transaction_id)
            .await
            .expect("read")
            .is_some()
    }

    #[tokio::test]
    async fn past_its_bound_the_store_evicts_terminal_or_expired_unredeemed_sessions() {
        let store = MemStore::with_max_sessions(3);
        assert!(store.check().await.is_ok());
        let a = session_at(&store, "a", 1).await;
        let b = session_at(&store, "b", 2).await;
        let c = session_at(&store, "c", 3).await;
        for session in [&a, &b, &c] {
            store
                .insert_session(session)
                .await
                .expect("under the bound");
        }
        let d = session_at(&store, "d", 4).await;
        assert!(
            matches!(
                store.insert_session(&d).await,
                Err(StoreError::Unavailable(_))
            ),
            "nothing is terminal or expired: the store is full"
        );
        assert_eq!(store.session_count(), 3);

        store
            .redeem(a.merchant_transaction_id, &a.init_token_jti, at(5))
            .await
            .expect("redeem");
        complete(&store, &b, 5).await;
        let d = session_at(&store, "d", 6).await;
        store
            .insert_session(&d)
            .await
            .expect("b is terminal: evicted");
        assert!(!held(&store, &b).await && held(&store, &a).await && held(&store, &c).await);
        assert_eq!(
            store
                .status_events(b.merchant_transaction_id)
                .await
                .expect("outbox"),
            vec![],
            "an evicted session leaves nothing behind"
        );
        let acme = PartnerId::parse("acme").expect("id");
        assert_eq!(
            store
                .kyc(&acme, &b.user.partner_user_id)
                .await
                .expect("kyc"),
            None
        );

        // At 150, a (redeemed, still pending) stays; c expired unredeemed and goes.
        let e = session_at(&store, "e", 150).await;
        store.insert_session(&e).await.expect("c expired: evicted");
        assert!(!held(&store, &c).await && held(&store, &a).await);
        let f = session_at(&store, "f", 151).await;
        store.insert_session(&f).await.expect("d expired: evicted");
        assert!(!held(&store, &d).await && held(&store, &a).await);

        let g = session_at(&store, "g", 152).await;
        assert!(
            matches!(
                store.insert_session(&g).await,
                Err(StoreError::Unavailable(_))
            ),
            "a redeemed session in progress is never evicted"
        );
        complete(&store, &a, 153).await;
        store.insert_session(&g).await.expect("a is terminal now");
        assert!(!held(&store, &a).await && held(&store, &g).await);
        assert_eq!(store.session_count(), 3);
    }

    #[tokio::test]
    async fn a_refused_or_conflicting_insert_keeps_the_count_right() {
        let store = MemStore::with_max_sessions(2);
        let a = session_at(&store, "a", 1).await;
        store.insert_session(&a).await.expect("first");
        assert!(matches!(
            store.insert_session(&a).await,
            Err(StoreError::Conflict(_))
        ));
        let b = session_at(&store, "b", 2).await;
        store
            .insert_session(&b)
            .await
            .expect("the conflict took no slot");
        assert_eq!(store.session_count(), 2);
    }
}

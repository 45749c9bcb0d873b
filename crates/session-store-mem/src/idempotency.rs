//! Answers kept under partners' `Idempotency-Key`s, in memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use session_core::idempotency::{Fingerprint, IdempotencyKey, KeyedAnswer, StoredAnswer};
use session_core::partner::PartnerId;
use session_core::ports::{IdempotencyStore, KeyedInsert, StoreError};
use session_core::session::Session;
use session_core::time::Timestamp;

use crate::MemStore;

type Slot = (PartnerId, IdempotencyKey);

#[derive(Debug)]
struct Kept {
    fingerprint: Fingerprint,
    /// The session the key created; kept here even if the store evicts it.
    session: Arc<Session>,
}

/// The answers, and the order they were written in, so the oldest go first
/// (on expiry, or when the store holds as many answers as it may hold
/// sessions).
#[derive(Debug, Default)]
pub(crate) struct Answers {
    kept: DashMap<Slot, Kept>,
    /// May hold slots already reaped or rewritten since; their time tells.
    order: Mutex<VecDeque<(Timestamp, Slot)>>,
}

impl Answers {
    fn order(&self) -> std::sync::MutexGuard<'_, VecDeque<(Timestamp, Slot)>> {
        // Every change under this lock is one push or pop.
        self.order.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the answer in `slot` if it is still the one written at `at`.
    fn forget(&self, slot: &Slot, at: Timestamp) -> bool {
        self.kept
            .remove_if(slot, |_, kept| kept.session.created_at == at)
            .is_some()
    }
}

#[async_trait]
impl IdempotencyStore for MemStore {
    async fn idempotent_answer(
        &self,
        partner: &PartnerId,
        key: &IdempotencyKey,
        created_since: Timestamp,
    ) -> Result<Option<StoredAnswer>, StoreError> {
        Ok(self
            .answers
            .kept
            .get(&(partner.clone(), key.clone()))
            .filter(|kept| kept.session.created_at >= created_since)
            .map(|kept| StoredAnswer {
                fingerprint: kept.fingerprint,
                session: Arc::clone(&kept.session),
            }))
    }

    async fn insert_keyed_session(
        &self,
        session: &Arc<Session>,
        keyed: &KeyedAnswer,
    ) -> Result<KeyedInsert, StoreError> {
        let slot = (session.partner_id.clone(), keyed.key.clone());
        let created_at = session.created_at;
        // The slot's shard stays locked until the session and the answer are
        // both in: a concurrent request with the key waits here, then finds
        // the answer.
        match self.answers.kept.entry(slot.clone()) {
            Entry::Occupied(live) if live.get().session.created_at >= keyed.replaces_before => {
                return Ok(KeyedInsert::KeyTaken);
            }
            entry => {
                self.insert_session_now(session)?;
                entry.insert(Kept {
                    fingerprint: keyed.fingerprint,
                    session: Arc::clone(session),
                });
            }
        }
        let mut order = self.answers.order();
        order.push_back((created_at, slot));
        if order.len() > self.max_sessions {
            if let Some((at, oldest)) = order.pop_front() {
                self.answers.forget(&oldest, at);
            }
        }
        Ok(KeyedInsert::Inserted)
    }

    async fn reap_idempotency_keys(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let mut reaped = 0;
        let mut order = self.answers.order();
        while reaped < limit {
            match order.front() {
                Some((at, _)) if *at < created_before => {}
                _ => break,
            }
            if let Some((at, slot)) = order.pop_front() {
                if self.answers.forget(&slot, at) {
                    reaped += 1;
                }
            }
        }
        Ok(reaped)
    }
}

//! Answers kept under partners' `Idempotency-Key`s, in memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use session_core::idempotency::{
    Fingerprint, IdempotencyKey, KeyLookup, KeyedAnswer, StoredAnswer, keyed_transaction_id,
};
use session_core::partner::PartnerId;
use session_core::ports::{IdempotencyStore, KeyedInsert, StoreError};
use session_core::session::Session;
use session_core::time::Timestamp;

use crate::MemStore;

type Slot = (PartnerId, IdempotencyKey);

#[derive(Debug)]
struct Kept {
    /// Which of the key's sessions `session` is.
    generation: u32,
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
    ) -> Result<KeyLookup, StoreError> {
        let next = match self.answers.kept.get(&(partner.clone(), key.clone())) {
            Some(kept) if kept.session.created_at >= created_since => {
                return Ok(KeyLookup::Held(StoredAnswer {
                    fingerprint: kept.fingerprint,
                    session: Arc::clone(&kept.session),
                }));
            }
            Some(expired) => expired.generation.saturating_add(1),
            None => 0,
        };
        // An answer reaped (expired) or dropped for room leaves its sessions
        // behind: the next generation is past every one still stored.
        let mut generation = next;
        while self
            .sessions
            .contains_key(&keyed_transaction_id(partner, key, generation))
        {
            generation = generation.saturating_add(1);
        }
        Ok(KeyLookup::Free { generation })
    }

    async fn insert_keyed_session(
        &self,
        session: &Arc<Session>,
        keyed: &KeyedAnswer,
    ) -> Result<KeyedInsert, StoreError> {
        if session.merchant_transaction_id != keyed.transaction_id(&session.partner_id) {
            return Err(StoreError::Failed(
                "a keyed session's id is not its key's".into(),
            ));
        }
        let slot = (session.partner_id.clone(), keyed.key.clone());
        let created_at = session.created_at;
        // The slot's shard stays locked until the session and the answer are
        // both in: a concurrent request with the key waits here, then finds
        // the answer.
        match self.answers.kept.entry(slot.clone()) {
            Entry::Occupied(holder) if holder.get().generation >= keyed.generation => {
                return Ok(KeyedInsert::KeyTaken);
            }
            entry => {
                match self.insert_session_now(session) {
                    Ok(()) => {}
                    // The generation's id is a stored session's already.
                    Err(StoreError::Conflict(_)) => return Ok(KeyedInsert::KeyTaken),
                    Err(error) => return Err(error),
                }
                entry.insert(Kept {
                    generation: keyed.generation,
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

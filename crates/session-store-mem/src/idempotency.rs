//! Answers kept under partners' `Idempotency-Key`s, in memory.
//!
//! A key's slot holds its newest generation and, while the key lives, that
//! session's answer. The reaper (or the store running out of room) drops the
//! answer but keeps the generation as a tombstone, so the key's next session
//! is its next generation and no transaction id is ever given twice, even
//! after the sessions themselves were evicted. Tombstones are bounded like
//! the sessions: the oldest go first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use session_core::idempotency::{
    Fingerprint, IdNamespace, IdempotencyKey, KeyLookup, KeyedAnswer, StoredAnswer,
    keyed_transaction_id,
};
use session_core::partner::PartnerId;
use session_core::ports::{IdempotencyStore, KeyedInsert, StoreError};
use session_core::session::Session;
use session_core::time::Timestamp;

use crate::MemStore;

type Slot = (PartnerId, IdempotencyKey);

#[derive(Debug)]
struct Kept {
    /// The key's newest generation.
    generation: u32,
    /// When that session was created.
    created_at: Timestamp,
    /// That session's answer, until the key expires.
    answer: Option<Answer>,
}

#[derive(Debug)]
struct Answer {
    fingerprint: Fingerprint,
    /// The session the key created; kept here even if the store evicts it.
    session: Arc<Session>,
}

/// The answers, and the order they were written in, so the oldest go first
/// (on expiry, or when the store holds as many answers as it may hold
/// sessions).
#[derive(Debug)]
pub(crate) struct Answers {
    /// The space keyed ids are derived in: drawn when the store is made.
    namespace: IdNamespace,
    kept: DashMap<Slot, Kept>,
    /// Live answers, oldest first. May hold slots already reaped or
    /// rewritten since; their time tells.
    order: Mutex<VecDeque<(Timestamp, Slot)>>,
    /// Slots whose answer went, oldest first, for dropping tombstones.
    tombstones: Mutex<VecDeque<(u32, Slot)>>,
    /// How many answers, and how many tombstones, are kept at most.
    capacity: usize,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change under these locks is one push or pop.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Answers {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            namespace: IdNamespace::from_bytes(uuid::Uuid::new_v4().into_bytes()),
            kept: DashMap::default(),
            order: Mutex::default(),
            tombstones: Mutex::default(),
            capacity,
        }
    }

    /// Drops the answer in `slot` if it is still the one written at `at`,
    /// keeping its generation.
    fn forget(&self, slot: &Slot, at: Timestamp) -> bool {
        let generation = match self.kept.get_mut(slot) {
            Some(mut kept)
                if kept
                    .answer
                    .as_ref()
                    .is_some_and(|answer| answer.session.created_at == at) =>
            {
                kept.answer = None;
                kept.generation
            }
            _ => return false,
        };
        let mut tombstones = locked(&self.tombstones);
        tombstones.push_back((generation, slot.clone()));
        if tombstones.len() > self.capacity {
            if let Some((generation, oldest)) = tombstones.pop_front() {
                self.kept.remove_if(&oldest, |_, kept| {
                    kept.answer.is_none() && kept.generation == generation
                });
            }
        }
        true
    }
}

#[async_trait]
impl IdempotencyStore for MemStore {
    fn id_namespace(&self) -> IdNamespace {
        self.answers.namespace
    }

    async fn idempotent_answer(
        &self,
        partner: &PartnerId,
        key: &IdempotencyKey,
        created_since: Timestamp,
    ) -> Result<KeyLookup, StoreError> {
        let next = match self.answers.kept.get(&(partner.clone(), key.clone())) {
            Some(kept) if kept.created_at >= created_since => {
                return Ok(match &kept.answer {
                    Some(answer) => KeyLookup::Held(StoredAnswer {
                        fingerprint: answer.fingerprint,
                        session: Arc::clone(&answer.session),
                    }),
                    // Live, yet its answer was dropped (reaped by a clock
                    // ahead of the caller's, or for room): the generation
                    // is not free until the session expires.
                    None => KeyLookup::Free {
                        generation: kept.generation,
                    },
                });
            }
            Some(expired) => expired.generation.saturating_add(1),
            None => 0,
        };
        // A tombstone dropped for room leaves its sessions behind: the next
        // generation is past every one still stored.
        let mut generation = next;
        while self.sessions.contains_key(&keyed_transaction_id(
            &self.answers.namespace,
            partner,
            key,
            generation,
        )) {
            generation = generation.saturating_add(1);
        }
        Ok(KeyLookup::Free { generation })
    }

    async fn insert_keyed_session(
        &self,
        session: &Arc<Session>,
        keyed: &KeyedAnswer,
    ) -> Result<KeyedInsert, StoreError> {
        let id = session.merchant_transaction_id;
        if id != keyed.transaction_id(&self.answers.namespace, &session.partner_id) {
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
            Entry::Occupied(newest) if newest.get().generation >= keyed.generation => {
                return Ok(KeyedInsert::KeyTaken);
            }
            entry => {
                // Checked before the insert reserves room, which may evict
                // another session.
                if self.sessions.contains_key(&id) {
                    return Ok(KeyedInsert::KeyTaken);
                }
                match self.insert_session_now(session) {
                    Ok(()) => {}
                    Err(StoreError::Conflict(_)) => return Ok(KeyedInsert::KeyTaken),
                    Err(error) => return Err(error),
                }
                let kept = Kept {
                    generation: keyed.generation,
                    created_at,
                    answer: Some(Answer {
                        fingerprint: keyed.fingerprint,
                        session: Arc::clone(session),
                    }),
                };
                match entry {
                    Entry::Occupied(mut older) => {
                        older.insert(kept);
                    }
                    Entry::Vacant(vacant) => {
                        vacant.insert(kept);
                    }
                }
            }
        }
        let oldest = {
            let mut order = locked(&self.answers.order);
            order.push_back((created_at, slot));
            if order.len() > self.answers.capacity {
                order.pop_front()
            } else {
                None
            }
        };
        if let Some((at, oldest)) = oldest {
            self.answers.forget(&oldest, at);
        }
        Ok(KeyedInsert::Inserted)
    }

    async fn reap_idempotency_keys(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<usize, StoreError> {
        let mut reaped = 0;
        while reaped < limit {
            let next = {
                let mut order = locked(&self.answers.order);
                match order.front() {
                    Some((at, _)) if *at < created_before => order.pop_front(),
                    _ => None,
                }
            };
            let Some((at, slot)) = next else { break };
            if self.answers.forget(&slot, at) {
                reaped += 1;
            }
        }
        Ok(reaped)
    }
}

//! The bound on sessions: which ones may be evicted, oldest first, and the
//! clean-up of what an evicted session leaves behind.

use std::collections::VecDeque;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use session_core::ports::StoreError;
use session_core::session::{Session, StoredSession};
use session_core::time::Timestamp;
use uuid::Uuid;

use crate::MemStore;

/// Candidates for eviction. Both queues may hold ids already gone (evicted
/// through the other queue); those are skipped when met.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    /// Every session in creation order, with its init token's expiry. Init
    /// tokens share one lifetime, so expiries grow along the queue and the
    /// expired sessions are a prefix of it.
    by_creation: VecDeque<(Uuid, Timestamp)>,
    /// Sessions that reached a terminal status, in that order.
    terminal: VecDeque<Uuid>,
}

/// A session may go when it is terminal (final, nothing will change it), or
/// when its init token expired before anyone redeemed it (the widget can no
/// longer open it).
fn evictable(stored: &StoredSession, now: Timestamp) -> bool {
    stored.state.status.is_terminal()
        || (stored.redeemed_at.is_none() && stored.session.init_token_expires_at <= now)
}

impl MemStore {
    fn queues(&self) -> std::sync::MutexGuard<'_, Queues> {
        // Every change under this lock is one push or pop: a panic cannot
        // leave the queues half-written.
        self.eviction.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for a session about to be inserted at `now`, evicting one
    /// when the store is full. `Unavailable` when none can be evicted.
    pub(crate) fn reserve_slot(&self, now: Timestamp) -> Result<(), StoreError> {
        if self.held.fetch_add(1, Ordering::SeqCst) < self.max_sessions {
            return Ok(());
        }
        let evicted = self.evict_one(now);
        // Either the evicted session's slot is now ours, or we take none.
        self.held.fetch_sub(1, Ordering::SeqCst);
        match evicted {
            Some(session) => {
                self.forget(&session);
                Ok(())
            }
            None => Err(StoreError::Unavailable(format!(
                "the in-memory store holds its maximum of {} sessions and none is terminal \
                 or expired unredeemed",
                self.max_sessions
            ))),
        }
    }

    /// Gives back a slot taken by [`MemStore::reserve_slot`] for a session
    /// that was not inserted.
    pub(crate) fn release_slot(&self) {
        self.held.fetch_sub(1, Ordering::SeqCst);
    }

    /// Records an inserted session as a future candidate.
    pub(crate) fn track_created(&self, session: &Session) {
        let mut queues = self.queues();
        queues.by_creation.push_back((
            session.merchant_transaction_id,
            session.init_token_expires_at,
        ));
        // Ids evicted through the terminal queue stay here until their expiry
        // passes; drop them early so the queue stays near the bound.
        if queues.by_creation.len() > self.max_sessions.saturating_mul(2) {
            queues
                .by_creation
                .retain(|(id, _)| self.sessions.contains_key(id));
        }
    }

    /// Records that a session reached a terminal status.
    pub(crate) fn track_terminal(&self, id: Uuid) {
        self.queues().terminal.push_back(id);
    }

    /// Removes the oldest evictable session, if there is one: first those
    /// whose init token expired, by creation, then terminal ones, by when
    /// they became terminal.
    fn evict_one(&self, now: Timestamp) -> Option<Box<StoredSession>> {
        let mut queues = self.queues();
        while let Some(&(id, expires_at)) = queues.by_creation.front() {
            if expires_at > now {
                break;
            }
            queues.by_creation.pop_front();
            // A redeemed session still in progress stays; if it ends, the
            // terminal queue offers it again.
            if let Some((_, stored)) = self.sessions.remove_if(&id, |_, s| evictable(s, now)) {
                return Some(stored);
            }
        }
        while let Some(id) = queues.terminal.pop_front() {
            if let Some((_, stored)) = self.sessions.remove(&id) {
                return Some(stored);
            }
        }
        None
    }

    /// Drops what an evicted session leaves behind: its outbox, its event ids
    /// and, when it was the user's last session, the user.
    fn forget(&self, stored: &StoredSession) {
        let session = &stored.session;
        let id = session.merchant_transaction_id;
        self.outbox.remove(&id);
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        let user_key = (
            session.partner_id.clone(),
            session.user.partner_user_id.clone(),
        );
        self.users
            .remove_if(&user_key, |_, user| user.release_session());
    }
}

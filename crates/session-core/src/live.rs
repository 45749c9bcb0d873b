//! Live status: what a subscriber to a transaction is sent, and in what order.
//!
//! Every state a transaction has been in carries a `sequence`: 1 for the
//! state at creation, then one more per applied change. The changes are the
//! transaction's outbox events (one per applied change, oldest first, never
//! removed while the transaction is kept), so the sequence of the k-th change
//! is k + 1 and any reader can number them without a counter of its own.

use crate::session::{Session, StatusChanged};

/// One state of a transaction, as a live subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxUpdate {
    /// 1 at creation, one more with every applied change.
    pub sequence: u64,
    pub state: StatusChanged,
}

impl TxUpdate {
    /// The state a session starts in, as an update with sequence 1.
    pub fn at_creation(session: &Session) -> Self {
        let initial = session.initial_state();
        Self {
            sequence: 1,
            state: StatusChanged {
                merchant_transaction_id: session.merchant_transaction_id,
                partner_id: session.partner_id.clone(),
                tx_type: session.tx_type,
                status: initial.status,
                currency: session.currency.clone(),
                network: session.network.clone(),
                crypto_amount: initial.crypto_amount,
                fiat_currency: initial.fiat_currency,
                fiat_amount: initial.fiat_amount,
                payment_method: initial.payment_method,
                created_at: session.created_at,
                updated_at: initial.updated_at,
                occurred_at: session.created_at,
            },
        }
    }

    /// The update of the change at `position` (0-based) among a transaction's
    /// changes, oldest first.
    pub fn of_change(position: usize, state: StatusChanged) -> Self {
        Self {
            sequence: sequence_of_change(position),
            state,
        }
    }

    /// Every change of a transaction (its outbox events, oldest first) as
    /// updates, sequence 2 onwards.
    pub fn of_changes(changes: Vec<StatusChanged>) -> impl Iterator<Item = TxUpdate> {
        changes
            .into_iter()
            .enumerate()
            .map(|(position, state)| Self::of_change(position, state))
    }

    /// The current state of `session`, whose changes so far are `changes`.
    pub fn current(session: &Session, changes: Vec<StatusChanged>) -> Self {
        Self::of_changes(changes)
            .last()
            .unwrap_or_else(|| Self::at_creation(session))
    }

    /// Whether this state is the transaction's last: nothing follows it.
    pub fn is_final(&self) -> bool {
        self.state.status.is_terminal()
    }
}

/// The sequence of the change at `position` (0-based) of a transaction.
pub fn sequence_of_change(position: usize) -> u64 {
    // A transaction has a handful of changes; the conversion cannot fail on
    // any platform Rust supports, and saturating keeps it total.
    u64::try_from(position).map_or(u64::MAX, |p| p.saturating_add(2))
}

/// What a subscription yields next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedNext {
    /// A state newer than any this subscription yielded before.
    Update(std::sync::Arc<TxUpdate>),
    /// The subscriber fell behind by more than its queue holds; updates were
    /// lost, so the subscription is of no further use.
    Lagged,
    /// The feed is gone (the store is shutting down).
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::fixtures::created_session;
    use crate::status::TxStatus;

    #[test]
    fn creation_is_sequence_one_and_changes_follow_in_order() {
        let session = created_session();
        let created = TxUpdate::at_creation(&session);
        assert_eq!(created.sequence, 1);
        assert_eq!(created.state.status, TxStatus::Pending);
        assert_eq!(created.state.occurred_at, session.created_at);
        assert_eq!(TxUpdate::current(&session, vec![]), created);

        let change = |status| StatusChanged {
            status,
            ..created.state.clone()
        };
        let changes = vec![change(TxStatus::Processing), change(TxStatus::Completed)];
        let updates: Vec<_> = TxUpdate::of_changes(changes.clone()).collect();
        assert_eq!(
            updates.iter().map(|u| u.sequence).collect::<Vec<_>>(),
            [2, 3]
        );
        let current = TxUpdate::current(&session, changes);
        assert_eq!(current.sequence, 3);
        assert!(current.is_final());
        assert!(!created.is_final());
    }
}

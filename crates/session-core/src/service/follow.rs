//! Following a transaction live (`GET /ws`): the checks that come before the
//! upgrade, the subscription, and the state to send first.

use uuid::Uuid;

use super::{SessionService, store_rejection};
use crate::error::Rejection;
use crate::live::TxUpdate;
use crate::partner::Partner;
use crate::ports::FeedSubscription;

/// A partner's live view of one of its transactions.
pub struct Following {
    /// The state when the subscription began: the first message to send.
    pub current: TxUpdate,
    /// Every later state, in order; those not newer than `current` are to be
    /// dropped (a change may be both read and yielded).
    pub updates: Box<dyn FeedSubscription>,
}

impl std::fmt::Debug for Following {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Following")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl SessionService {
    /// Subscribes `partner` to its transaction `tx_id` (the raw query
    /// parameter): absent is `missing_param`, not a UUID is
    /// `validation_error`, unknown or another partner's is `not_found`.
    pub async fn follow(
        &self,
        partner: &Partner,
        tx_id: Option<&str>,
    ) -> Result<Following, Rejection> {
        let raw = tx_id.ok_or_else(|| Rejection::missing("tx_id"))?;
        let id = Uuid::try_parse(raw)
            .map_err(|_| Rejection::invalid("tx_id", "must be a transaction id (a UUID)"))?;
        let stored = self.owned_transaction(partner, id).await?;
        // Subscribe before reading: a change committed in between is then
        // both read and yielded, never neither.
        let updates = self
            .ports
            .feed
            .subscribe(id)
            .await
            .map_err(store_rejection)?;
        let changes = self
            .ports
            .sessions
            .status_events(id)
            .await
            .map_err(store_rejection)?;
        Ok(Following {
            current: TxUpdate::current(&stored.session, changes),
            updates,
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;
    use crate::error::ErrorKind;
    use crate::live::FeedNext;
    use crate::partner::PartnerId;
    use crate::service::fixtures::{Mocks, created_session, partner};
    use crate::session::StoredSession;
    use crate::status::TxStatus;

    fn stored() -> StoredSession {
        let session = created_session();
        StoredSession {
            state: session.initial_state(),
            session,
            redeemed_at: None,
        }
    }

    fn refusal(tx_id: Option<&str>, mocks: Mocks) -> Rejection {
        let feed = mocks.feed.clone();
        let refused = block_on(mocks.service().follow(&partner(), tx_id)).expect_err("refused");
        assert!(
            feed.subscribed.lock().expect("not poisoned").is_empty(),
            "nothing is subscribed to on a refusal"
        );
        refused
    }

    #[test]
    fn the_transaction_id_is_required_and_must_be_a_uuid() {
        let missing = refusal(None, Mocks::new());
        assert_eq!(missing.kind(), ErrorKind::MissingParam);
        assert!(missing.message().contains("tx_id"));
        let malformed = refusal(Some("not-a-uuid"), Mocks::new());
        assert_eq!(malformed.kind(), ErrorKind::ValidationError);
        assert!(malformed.message().contains("tx_id"));
    }

    #[test]
    fn unknown_and_foreign_transactions_are_not_found() {
        let mut mocks = Mocks::new();
        mocks.sessions.expect_session().returning(|_| Ok(None));
        let unknown = refusal(Some(&uuid::Uuid::new_v4().to_string()), mocks);
        assert_eq!(unknown.kind(), ErrorKind::NotFound);

        let mut foreign = stored();
        let id = foreign.session.merchant_transaction_id;
        std::sync::Arc::make_mut(&mut foreign.session).partner_id =
            PartnerId::parse("someone-else").expect("valid id");
        let mut mocks = Mocks::new();
        mocks
            .sessions
            .expect_session()
            .returning(move |_| Ok(Some(foreign.clone())));
        let refused = refusal(Some(&id.to_string()), mocks);
        assert_eq!(refused.kind(), ErrorKind::NotFound);
        assert_ne!(partner().id.as_str(), "someone-else");
    }

    #[test]
    fn subscribes_then_starts_from_the_newest_change() {
        let stored = stored();
        let id = stored.session.merchant_transaction_id;
        let processing = crate::session::StatusChanged {
            status: TxStatus::Processing,
            ..TxUpdate::at_creation(&stored.session).state
        };
        let mut mocks = Mocks::new();
        mocks
            .sessions
            .expect_session()
            .returning(move |_| Ok(Some(stored.clone())));
        let changes = vec![processing.clone()];
        mocks
            .sessions
            .expect_status_events()
            .returning(move |_| Ok(changes.clone()));
        let feed = mocks.feed.clone();
        let mut following =
            block_on(mocks.service().follow(&partner(), Some(&id.to_string()))).expect("followed");
        assert_eq!(following.current.sequence, 2);
        assert_eq!(following.current.state, processing);
        assert_eq!(*feed.subscribed.lock().expect("not poisoned"), [id]);
        assert_eq!(block_on(following.updates.next()), FeedNext::Closed);
    }
}

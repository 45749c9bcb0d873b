//! Partner reads: a transaction's status and an end user's KYC status. A
//! foreign or unknown id answers exactly like an unknown one.

use super::{SessionService, store_rejection};
use crate::error::{ErrorKind, Rejection};
use crate::partner::Partner;
use crate::session::StoredSession;
use crate::status::KycStatus;
use crate::value::PartnerUserId;

impl SessionService {
    /// The transaction `id` if it belongs to `partner`.
    pub async fn transaction(
        &self,
        partner: &Partner,
        id: &str,
    ) -> Result<StoredSession, Rejection> {
        let id = uuid::Uuid::try_parse(id).map_err(|_| Rejection::of(ErrorKind::NotFound))?;
        self.owned_transaction(partner, id).await
    }

    /// Transaction `id` if it belongs to `partner`; another partner's answers
    /// exactly like an unknown one.
    pub(super) async fn owned_transaction(
        &self,
        partner: &Partner,
        id: uuid::Uuid,
    ) -> Result<StoredSession, Rejection> {
        self.ports
            .sessions
            .session(id)
            .await
            .map_err(store_rejection)?
            .filter(|stored| stored.session.partner_id == partner.id)
            .ok_or_else(|| Rejection::of(ErrorKind::NotFound))
    }

    /// The KYC status of `partner`'s end user `user`.
    pub async fn kyc_status(
        &self,
        partner: &Partner,
        user: &str,
    ) -> Result<(PartnerUserId, KycStatus), Rejection> {
        let not_found = || Rejection::of(ErrorKind::NotFound);
        let user = PartnerUserId::parse(user).map_err(|_| not_found())?;
        let kyc = self
            .ports
            .sessions
            .kyc(&partner.id, &user)
            .await
            .map_err(store_rejection)?
            .ok_or_else(not_found)?;
        Ok((user, kyc.status))
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;
    use uuid::Uuid;

    use super::*;
    use crate::partner::tests::acme;
    use crate::service::fixtures::{Mocks, partner};
    use crate::session::KycState;

    #[test]
    fn foreign_and_unknown_transactions_are_both_not_found() {
        let mut mocks = Mocks::new();
        mocks.sessions.expect_insert_session().returning(|_| Ok(()));
        let body = br#"{"partner_user_id":"u","user_email":"u@example.com","network":"TRC20","currency":"USDT","amount":"1"}"#;
        let created = block_on(mocks.service().create_session(&partner(), body)).expect("created");
        let stored = StoredSession {
            session: created.session.clone(),
            state: created.session.initial_state(),
            redeemed_at: None,
        };
        let id = stored.session.merchant_transaction_id;

        let mut mocks = Mocks::new();
        mocks
            .sessions
            .expect_session()
            .returning(move |asked| Ok((asked == id).then(|| stored.clone())));
        let service = mocks.service();
        let owner = partner();
        let mut other = acme();
        other.id = "other".into();
        let other = other.build().expect("other partner");

        assert!(block_on(service.transaction(&owner, &id.to_string())).is_ok());
        let foreign = block_on(service.transaction(&other, &id.to_string())).expect_err("foreign");
        let unknown =
            block_on(service.transaction(&owner, &Uuid::nil().to_string())).expect_err("unknown");
        let malformed = block_on(service.transaction(&owner, "not-a-uuid")).expect_err("malformed");
        assert_eq!(
            foreign, unknown,
            "a foreign id must be indistinguishable from an unknown one"
        );
        assert_eq!(malformed.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn kyc_status_of_known_and_unknown_users() {
        let mut mocks = Mocks::new();
        mocks.sessions.expect_kyc().returning(|partner, user| {
            Ok((partner.as_str() == "acme" && user.as_str() == "u1")
                .then_some(KycState::NOT_STARTED))
        });
        let service = mocks.service();
        let (user, status) = block_on(service.kyc_status(&partner(), "u1")).expect("known");
        assert_eq!((user.as_str(), status), ("u1", KycStatus::NotStarted));
        let unknown = block_on(service.kyc_status(&partner(), "u2")).expect_err("unknown");
        assert_eq!(unknown.kind(), ErrorKind::NotFound);
        let invalid = block_on(service.kyc_status(&partner(), "")).expect_err("empty id");
        assert_eq!(invalid.kind(), ErrorKind::NotFound);
    }
}

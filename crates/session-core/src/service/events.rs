//! `POST /provider/events`: the payment provider's progress reports, applied
//! exactly once each through the status state machine.

use uuid::Uuid;

use super::{SessionService, store_rejection};
use crate::error::{ErrorKind, Rejection};
use crate::ports::EventApplied;
use crate::session::{EventPlan, ProviderEvent};
use crate::status::{IgnoredBecause, Transition, TxStatus};

/// What the provider is told about its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventReport {
    pub event_id: String,
    pub merchant_transaction_id: Uuid,
    /// Whether the event changed the transaction's status.
    pub applied: bool,
    /// Whether this `event_id` had been received before for this transaction.
    pub duplicate: bool,
    /// The transaction's status after the event.
    pub status: Option<TxStatus>,
    /// Why the status was not changed, when it was not.
    pub ignored_because: Option<IgnoredBecause>,
}

impl SessionService {
    /// Verifies the provider's signature over the raw body, decodes the event and
    /// applies it. Replays of an `event_id` on its transaction change nothing.
    pub async fn provider_event(
        &self,
        signature: &[u8],
        body: &[u8],
    ) -> Result<EventReport, Rejection> {
        let key = self
            .provider_key
            .as_ref()
            .ok_or_else(|| Rejection::of(ErrorKind::InvalidProviderSignature))?;
        key.verify(signature, body)?;
        let now = self.ports.clock.now();
        self.apply_event(ProviderEvent::decode(body, now)?).await
    }

    /// Applies one decoded event through the status state machine: the one
    /// path every report takes, the provider's and the sandbox's alike.
    pub(super) async fn apply_event(&self, event: ProviderEvent) -> Result<EventReport, Rejection> {
        let plan = EventPlan {
            event,
            now: self.ports.clock.now(),
        };
        let event = &plan.event;
        let sessions = &self.ports.sessions;
        let report = |applied, duplicate, status, ignored_because| EventReport {
            event_id: event.event_id.clone(),
            merchant_transaction_id: event.merchant_transaction_id,
            applied,
            duplicate,
            status,
            ignored_because,
        };
        match sessions
            .apply_provider_event(&plan)
            .await
            .map_err(store_rejection)?
        {
            EventApplied::UnknownTransaction => Err(Rejection::new(
                ErrorKind::NotFound,
                "unknown merchant_transaction_id",
            )),
            EventApplied::Replayed => {
                let current = sessions
                    .session(event.merchant_transaction_id)
                    .await
                    .map_err(store_rejection)?;
                Ok(report(false, true, current.map(|s| s.state.status), None))
            }
            EventApplied::Applied(effects) => {
                let effects = *effects;
                let ignored = match effects.decision {
                    Transition::Apply => None,
                    Transition::Ignore(why) => Some(why),
                };
                Ok(report(
                    ignored.is_none(),
                    false,
                    Some(effects.status_after),
                    ignored,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;
    use crate::service::fixtures::{Mocks, partner};
    use crate::session::{EventEffects, KycState, StoredSession};
    use crate::status::KycStatus;
    use crate::time::Timestamp;
    use crate::value::{Amount, Code};

    /// The pure planning step, as a store calls it.
    fn plan_event(
        event: &ProviderEvent,
        stored: &StoredSession,
        kyc: &KycState,
        now: Timestamp,
    ) -> EventEffects {
        EventPlan {
            event: event.clone(),
            now,
        }
        .effects(stored, kyc)
    }

    fn amount(text: &str) -> Amount {
        Amount::parse(text, 18).expect("test amount")
    }

    fn stored(status: TxStatus) -> StoredSession {
        let mut mocks = Mocks::new();
        mocks.sessions.expect_insert_session().returning(|_| Ok(()));
        let body = br#"{"partner_user_id":"u","user_email":"u@example.com","network":"TRC20","currency":"USDT","amount":"1"}"#;
        let created = block_on(mocks.service().create_session(&partner(), body)).expect("created");
        let mut state = created.session.initial_state();
        state.status = status;
        StoredSession {
            session: created.session,
            state,
            redeemed_at: None,
        }
    }

    fn event(status: TxStatus, occurred_at: i64) -> ProviderEvent {
        ProviderEvent {
            event_id: "e".into(),
            merchant_transaction_id: Uuid::nil(),
            status,
            crypto_amount: None,
            fiat_amount: None,
            fiat_currency: None,
            payment_method: None,
            occurred_at: Timestamp::from_unix_seconds(occurred_at),
            kyc_status: None,
        }
    }

    #[test]
    fn an_applied_move_records_details_and_an_outbox_event() {
        let mut e = event(TxStatus::Processing, 10);
        e.fiat_amount = Some(amount("92.15"));
        e.fiat_currency = Some(Code::parse("USD").expect("code"));
        e.payment_method = Some("card".into());
        let now = Timestamp::from_unix_seconds(20);
        let effects = plan_event(&e, &stored(TxStatus::Pending), &KycState::NOT_STARTED, now);
        let state = effects.state.expect("applied");
        assert_eq!(state.status, TxStatus::Processing);
        assert_eq!(
            (state.fiat_amount.as_deref(), state.fiat_currency.as_str()),
            (Some("92.15"), "USD")
        );
        assert_eq!(state.crypto_amount, None, "unknown until reported");
        assert_eq!(state.updated_at, now);
        let outbox = effects.outbox.expect("outbox event with the change");
        assert_eq!(
            (outbox.status, outbox.occurred_at),
            (TxStatus::Processing, e.occurred_at)
        );
        assert_eq!(effects.kyc, None);
    }

    #[test]
    fn an_ignored_event_writes_no_state_and_no_outbox() {
        for (from, to) in [
            (TxStatus::Completed, TxStatus::Failed),
            (TxStatus::Processing, TxStatus::Pending),
        ] {
            let effects = plan_event(
                &event(to, 10),
                &stored(from),
                &KycState::NOT_STARTED,
                Timestamp::UNIX_EPOCH,
            );
            assert_eq!(
                (effects.state, effects.outbox, effects.status_after),
                (None, None, from)
            );
            assert!(matches!(effects.decision, Transition::Ignore(_)));
        }
    }

    #[test]
    fn details_not_reported_again_are_kept() {
        let mut first = stored(TxStatus::Processing);
        first.state.crypto_amount = Some("100".into());
        let effects = plan_event(
            &event(TxStatus::Completed, 10),
            &first,
            &KycState::NOT_STARTED,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            effects.state.expect("applied").crypto_amount.as_deref(),
            Some("100")
        );
    }

    #[test]
    fn without_a_kyc_report_the_user_state_is_not_read() {
        let states = [
            KycState::NOT_STARTED,
            KycState {
                status: KycStatus::Verified,
                updated_at: Some(Timestamp::from_unix_seconds(5)),
            },
            KycState {
                status: KycStatus::Failed,
                updated_at: Some(Timestamp::from_unix_seconds(50)),
            },
        ];
        for (from, to) in [
            (TxStatus::Pending, TxStatus::Processing),
            (TxStatus::Processing, TxStatus::Completed),
            (TxStatus::Completed, TxStatus::Failed),
        ] {
            let e = event(to, 10);
            let plan = EventPlan {
                event: e.clone(),
                now: Timestamp::from_unix_seconds(20),
            };
            assert!(!plan.reads_kyc());
            let tx = stored(from);
            let first = plan.effects(&tx, &states[0]);
            for kyc in &states[1..] {
                assert_eq!(plan.effects(&tx, kyc), first, "{from:?} -> {to:?}");
            }
        }
        let mut reporting = event(TxStatus::Processing, 10);
        reporting.kyc_status = Some(KycStatus::Verified);
        let plan = EventPlan {
            event: reporting,
            now: Timestamp::UNIX_EPOCH,
        };
        assert!(plan.reads_kyc());
    }

    #[test]
    fn kyc_takes_the_newest_report_only() {
        let known = KycState {
            status: KycStatus::Pending,
            updated_at: Some(Timestamp::from_unix_seconds(100)),
        };
        let with_kyc = |status, at| {
            let mut e = event(TxStatus::Pending, at);
            e.kyc_status = Some(status);
            e
        };
        let tx = stored(TxStatus::Pending);
        let plan = |e: &ProviderEvent| plan_event(e, &tx, &known, Timestamp::UNIX_EPOCH).kyc;
        assert_eq!(
            plan(&with_kyc(KycStatus::Verified, 101)),
            Some(KycState {
                status: KycStatus::Verified,
                updated_at: Some(Timestamp::from_unix_seconds(101))
            })
        );
        assert_eq!(
            plan(&with_kyc(KycStatus::Failed, 99)),
            None,
            "older report ignored"
        );
        assert_eq!(
            plan(&with_kyc(KycStatus::Verified, 100)),
            None,
            "same instant ignored"
        );
        let first = plan_event(
            &with_kyc(KycStatus::Pending, 1),
            &tx,
            &KycState::NOT_STARTED,
            Timestamp::UNIX_EPOCH,
        )
        .kyc;
        assert_eq!(first.map(|k| k.status), Some(KycStatus::Pending));
    }

    #[test]
    fn unsigned_events_are_refused_before_decoding() {
        let mut mocks = Mocks::new();
        mocks.sessions.expect_apply_provider_event().never();
        let refusal = block_on(mocks.service().provider_event(b"00", b"not even json"))
            .expect_err("unsigned");
        assert_eq!(refusal.kind(), ErrorKind::InvalidProviderSignature);
    }
}

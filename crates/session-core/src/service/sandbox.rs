//! `POST /sandbox/transactions/{id}/simulate` (SPEC.md §7): the stand-in
//! widget's *Pay*, *Fail* and *Cancel* become the provider events a real
//! payment would bring (`processing`, then `completed` or `failed`; a cancel
//! is `cancelled` alone, before any payment), applied through the
//! same path as `POST /provider/events`, so polling, WebSocket and webhooks
//! all see them.
//!
//! Only the holder of the session's init token may simulate its payment, and
//! only once the widget has redeemed it, as the real widget would have: the
//! transaction id alone (which partners log and webhooks carry) is not enough.
//! And only a session opened with a test client token (`ct_test_`) can be
//! paid this way: a live session is never completed without a payment, even
//! by a service whose sandbox was switched on by mistake.

use uuid::Uuid;

use super::{SessionService, store_rejection};
use crate::access::bearer_token;
use crate::error::{ErrorKind, Rejection};
use crate::init_token::{InitTokenClaims, TokenRefusal};
use crate::json::{Object, Schema};
use crate::secret::constant_time_eq;
use crate::session::ProviderEvent;
use crate::status::TxStatus;

const SIMULATE_SCHEMA: Schema = Schema {
    required: &["outcome"],
    optional: &[],
};

/// What the user chose in the stand-in widget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed,
    Cancelled,
}

impl Outcome {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "completed" => Some(Self::Completed),
            "failed" => Some(Self::Failed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    pub const fn status(self) -> TxStatus {
        match self {
            Self::Completed => TxStatus::Completed,
            Self::Failed => TxStatus::Failed,
            Self::Cancelled => TxStatus::Cancelled,
        }
    }
}

/// What the simulation did to the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Simulated {
    pub merchant_transaction_id: Uuid,
    /// The transaction's status afterwards.
    pub status: TxStatus,
    /// Whether the outcome changed the status (`false` when the transaction
    /// had already ended, for example on a second click).
    pub applied: bool,
}

/// A request the init token allows to simulate its transaction's payment:
/// the token is authentic, unexpired and names the transaction. Whether it is
/// the session's current token is checked against the store by
/// [`SessionService::simulate`].
#[derive(Debug, Clone)]
pub struct SimulationGrant {
    id: Uuid,
    claims: InitTokenClaims,
}

impl SessionService {
    /// The authentication step, before the body is read: the bearer init token
    /// must be one this service minted for the path's transaction (401) and
    /// unexpired (410). Touches nothing but memory.
    pub fn authorize_simulation(
        &self,
        authorization: Option<&[u8]>,
        raw_id: &str,
    ) -> Result<SimulationGrant, Rejection> {
        let token = bearer_token(authorization)?;
        let invalid_token = || Rejection::of(ErrorKind::InvalidInitToken);
        let id = Uuid::try_parse(raw_id).map_err(|_| invalid_token())?;
        let mut id_buf = Uuid::encode_buffer();
        let id_text: &str = id.hyphenated().encode_lower(&mut id_buf);
        let claims = self
            .tokens
            .verify_subject(token, id_text, self.ports.clock.now())
            .map_err(|refusal| match refusal {
                TokenRefusal::Invalid => invalid_token(),
                TokenRefusal::Expired => Rejection::of(ErrorKind::SessionExpired),
            })?;
        Ok(SimulationGrant { id, claims })
    }

    /// Decodes the body (400), then loads the session: it must be the
    /// token's (401), opened in test mode and redeemed (409). Feeds the outcome's events (see the
    /// module's summary). Event ids are derived from the transaction and the
    /// outcome, so a repeated click replays instead of adding events.
    pub async fn simulate(
        &self,
        grant: &SimulationGrant,
        body: &[u8],
    ) -> Result<Simulated, Rejection> {
        let outcome = decode(body)?;
        let id = grant.id;
        let invalid_token = || Rejection::of(ErrorKind::InvalidInitToken);
        let stored = self
            .ports
            .sessions
            .session(id)
            .await
            .map_err(store_rejection)?
            .ok_or_else(invalid_token)?;
        let session = &stored.session;
        let mut widget_buf = Uuid::encode_buffer();
        let widget_text: &str = session
            .widget
            .widget_id
            .hyphenated()
            .encode_lower(&mut widget_buf);
        let claims = &grant.claims;
        let its_token = constant_time_eq(claims.jti.as_bytes(), session.init_token_jti.as_bytes())
            & constant_time_eq(claims.aud.as_bytes(), widget_text.as_bytes());
        if !its_token {
            return Err(invalid_token());
        }
        if !session.test_mode {
            return Err(Rejection::new(
                ErrorKind::Conflict,
                "only a session opened with a test client token (ct_test_) can be simulated",
            ));
        }
        if stored.redeemed_at.is_none() {
            return Err(Rejection::new(
                ErrorKind::Conflict,
                "the widget has not redeemed its init_token yet (POST /widget/init)",
            ));
        }

        let id_text = session.id_text();
        let event = |status: TxStatus| ProviderEvent {
            event_id: format!("sandbox:{id_text}:{}", status.as_str()),
            merchant_transaction_id: id,
            status,
            crypto_amount: (status == TxStatus::Completed).then(|| session.amount.clone()),
            fiat_amount: None,
            fiat_currency: None,
            payment_method: Some("sandbox".into()),
            occurred_at: self.ports.clock.now(),
            kyc_status: None,
        };
        // A user who cancels has not paid: the state machine takes
        // `cancelled` only from `pending`, as the provider would send it.
        if outcome != Outcome::Cancelled {
            self.apply_event(event(TxStatus::Processing)).await?;
        }
        let status = outcome.status();
        let report = self.apply_event(event(status)).await?;
        Ok(Simulated {
            merchant_transaction_id: id,
            status: report.status.unwrap_or(status),
            applied: report.applied,
        })
    }
}

fn decode(body: &[u8]) -> Result<Outcome, Rejection> {
    let object = Object::parse(body)?;
    object.check(&SIMULATE_SCHEMA)?;
    let text = object.required_str("outcome")?;
    Outcome::parse(text)
        .ok_or_else(|| Rejection::invalid("outcome", "must be one of completed, failed, cancelled"))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_executor::block_on;

    use super::*;
    use crate::client_token::TokenEnv;
    use crate::ports::EventApplied;
    use crate::service::CreatedSession;
    use crate::service::fixtures::{Mocks, partner};
    use crate::session::{EventPlan, KycState, StoredSession};
    use crate::time::Timestamp;

    const SEED: &[u8] =
        br#"{"partner_user_id":"user-123","user_email":"user@example.com","network":"TRC20",
        "currency":"USDT","amount":"100","client_ip":"203.0.113.42"}"#;

    fn created() -> CreatedSession {
        let mut mocks = Mocks::new();
        mocks.sessions.expect_insert_session().returning(|_| Ok(()));
        block_on(
            mocks
                .service()
                .create_session_in(&partner(), TokenEnv::Test, SEED),
        )
        .expect("created")
    }

    fn stored(created: &CreatedSession, redeemed: bool) -> StoredSession {
        StoredSession {
            session: created.session.clone(),
            state: created.session.initial_state(),
            redeemed_at: redeemed.then(|| Timestamp::from_unix_seconds(1)),
        }
    }

    /// A service whose store holds `stored` and records the events applied.
    fn service_with(stored: StoredSession) -> (SessionService, Arc<Mutex<Vec<EventPlan>>>) {
        let mut mocks = Mocks::new();
        let id = stored.session.merchant_transaction_id;
        let current = Arc::new(Mutex::new(stored));
        let reader = Arc::clone(&current);
        mocks.sessions.expect_session().returning(move |asked| {
            Ok((asked == id).then(|| reader.lock().expect("lock").clone()))
        });
        let applied = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&applied);
        mocks
            .sessions
            .expect_apply_provider_event()
            .returning(move |plan| {
                log.lock().expect("lock").push(plan.clone());
                let mut stored = current.lock().expect("lock");
                let effects = plan.effects(&stored, &KycState::NOT_STARTED);
                if let Some(state) = &effects.state {
                    stored.state = state.clone();
                }
                Ok(EventApplied::Applied(Box::new(effects)))
            });
        (mocks.service(), applied)
    }

    /// Both steps, as the HTTP layer runs them.
    fn simulate(
        service: &SessionService,
        authorization: Option<&[u8]>,
        raw_id: &str,
        body: &[u8],
    ) -> Result<Simulated, Rejection> {
        let grant = service.authorize_simulation(authorization, raw_id)?;
        block_on(service.simulate(&grant, body))
    }

    fn bearer(token: &str) -> Vec<u8> {
        format!("Bearer {token}").into_bytes()
    }

    #[test]
    fn pay_feeds_processing_then_completed() {
        let created = created();
        let (service, applied) = service_with(stored(&created, true));
        let id = created.session.id_text();
        let simulated = simulate(
            &service,
            Some(&bearer(&created.init_token)),
            &id,
            br#"{"outcome":"completed"}"#,
        )
        .expect("simulated");
        assert_eq!(
            (simulated.status, simulated.applied),
            (TxStatus::Completed, true)
        );
        let events: Vec<(String, TxStatus)> = applied
            .lock()
            .expect("lock")
            .iter()
            .map(|plan| (plan.event.event_id.clone(), plan.event.status))
            .collect();
        assert_eq!(
            events,
            [
                (format!("sandbox:{id}:processing"), TxStatus::Processing),
                (format!("sandbox:{id}:completed"), TxStatus::Completed),
            ]
        );
    }

    #[test]
    fn cancel_is_cancelled_alone() {
        let created = created();
        let (service, applied) = service_with(stored(&created, true));
        let id = created.session.id_text();
        let simulated = simulate(
            &service,
            Some(&bearer(&created.init_token)),
            &id,
            br#"{"outcome":"cancelled"}"#,
        )
        .expect("simulated");
        assert_eq!(
            (simulated.status, simulated.applied),
            (TxStatus::Cancelled, true)
        );
        let statuses: Vec<TxStatus> = applied
            .lock()
            .expect("lock")
            .iter()
            .map(|plan| plan.event.status)
            .collect();
        assert_eq!(statuses, [TxStatus::Cancelled]);
    }

    #[test]
    fn an_ended_transaction_stays_as_it_ended() {
        let created = created();
        let (service, _) = service_with(stored(&created, true));
        let id = created.session.id_text();
        let token = bearer(&created.init_token);
        simulate(&service, Some(&token), &id, br#"{"outcome":"cancelled"}"#).expect("cancelled");
        let second =
            simulate(&service, Some(&token), &id, br#"{"outcome":"completed"}"#).expect("answered");
        assert_eq!(
            (second.status, second.applied),
            (TxStatus::Cancelled, false)
        );
    }

    #[test]
    fn refusals_in_check_order() {
        let created = created();
        let id = created.session.id_text();
        let token = bearer(&created.init_token);
        let body: &[u8] = br#"{"outcome":"completed"}"#;
        let kind = |service: &SessionService, auth: Option<&[u8]>, id: &str, body: &[u8]| {
            simulate(service, auth, id, body)
                .map(|_| ())
                .map_err(|r| r.kind())
        };

        // Refused before the store is asked.
        let mut mocks = Mocks::new();
        mocks.sessions.expect_session().never();
        mocks.sessions.expect_apply_provider_event().never();
        let untouched = mocks.service();
        let other = Uuid::new_v4().to_string();
        let forged = bearer(&format!("{}x", created.init_token));
        for (why, auth, path_id, body, expected) in [
            ("no token", None, id.as_str(), body, ErrorKind::MissingToken),
            (
                "forged token",
                Some(forged.as_slice()),
                id.as_str(),
                body,
                ErrorKind::InvalidInitToken,
            ),
            (
                "another session's id",
                Some(token.as_slice()),
                other.as_str(),
                body,
                ErrorKind::InvalidInitToken,
            ),
            (
                "not a UUID",
                Some(token.as_slice()),
                "nope",
                body,
                ErrorKind::InvalidInitToken,
            ),
            (
                "unknown outcome",
                Some(token.as_slice()),
                id.as_str(),
                br#"{"outcome":"refunded"}"#,
                ErrorKind::ValidationError,
            ),
            (
                "extra field",
                Some(token.as_slice()),
                id.as_str(),
                br#"{"outcome":"completed","amount":"1"}"#,
                ErrorKind::ValidationError,
            ),
            (
                "no outcome",
                Some(token.as_slice()),
                id.as_str(),
                b"{}",
                ErrorKind::MissingParam,
            ),
        ] {
            assert_eq!(
                kind(&untouched, auth, path_id, body),
                Err(expected),
                "{why}"
            );
        }

        // Refused once the session is read: nothing is applied.
        let refused_on = |held: StoredSession| {
            let mut mocks = Mocks::new();
            mocks
                .sessions
                .expect_session()
                .returning(move |_| Ok(Some(held.clone())));
            mocks.sessions.expect_apply_provider_event().never();
            kind(&mocks.service(), Some(&token), &id, body)
        };
        let edited = |edit: fn(&mut crate::session::Session)| {
            let mut held = stored(&created, true);
            let mut session = (*held.session).clone();
            edit(&mut session);
            held.session = Arc::new(session);
            held
        };
        assert_eq!(
            refused_on(stored(&created, false)),
            Err(ErrorKind::Conflict),
            "not redeemed yet"
        );
        assert_eq!(
            refused_on(edited(|s| s.test_mode = false)),
            Err(ErrorKind::Conflict),
            "a session opened with a live token is never simulated"
        );
        assert_eq!(
            refused_on(edited(|s| s.init_token_jti = "another-jti".into())),
            Err(ErrorKind::InvalidInitToken),
            "a token whose jti is not the session's"
        );
    }
}

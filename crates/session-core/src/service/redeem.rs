//! `POST /widget/init`: the hosted widget redeems its single-use init token.

use uuid::Uuid;

use super::{SessionService, store_rejection};
use crate::error::{ErrorKind, Rejection};
use crate::init_token::TokenRefusal;
use crate::ports::Redemption;
use crate::request::InitRequest;
use crate::secret::constant_time_eq;
use crate::session::StoredSession;

impl SessionService {
    /// Verifies the token (no store access for a forged or expired one), checks
    /// the presented parameters and signature against the stored session in
    /// constant time, then consumes the token atomically. A mismatch consumes
    /// nothing.
    pub async fn redeem_init_token(&self, body: &[u8]) -> Result<StoredSession, Rejection> {
        let request = InitRequest::decode(body)?;
        let now = self.ports.clock.now();
        let mut id_buf = Uuid::encode_buffer();
        let id_text: &str = request
            .merchant_transaction_id
            .hyphenated()
            .encode_lower(&mut id_buf);
        let mut widget_id_buf = Uuid::encode_buffer();
        let widget_id_text: &str = request
            .widget_id
            .hyphenated()
            .encode_lower(&mut widget_id_buf);
        let claims = self
            .tokens
            .verify(&request.init_token, id_text, widget_id_text, now)
            .map_err(|refusal| match refusal {
                TokenRefusal::Invalid => Rejection::of(ErrorKind::InvalidInitToken),
                TokenRefusal::Expired => Rejection::of(ErrorKind::SessionExpired),
            })?;

        let invalid_token = || Rejection::of(ErrorKind::InvalidInitToken);
        let mut stored = self
            .ports
            .sessions
            .session(request.merchant_transaction_id)
            .await
            .map_err(store_rejection)?
            .ok_or_else(invalid_token)?;
        let session = &stored.session;
        if !constant_time_eq(claims.jti.as_bytes(), session.init_token_jti.as_bytes()) {
            return Err(invalid_token());
        }
        // Every comparison runs; `&` (not `&&`) keeps the time independent of
        // which field differs.
        let presented_matches = constant_time_eq(
            request.widget_id.as_bytes(),
            session.widget.widget_id.as_bytes(),
        ) & constant_time_eq(
            request.address.as_bytes(),
            session.address.as_str().as_bytes(),
        ) & constant_time_eq(
            request.currency.as_bytes(),
            session.currency.as_str().as_bytes(),
        ) & constant_time_eq(
            request.network.as_bytes(),
            session.network.as_str().as_bytes(),
        ) & constant_time_eq(
            request.amount.as_bytes(),
            session.amount.as_str().as_bytes(),
        ) & constant_time_eq(
            request.tx_type.as_bytes(),
            session.tx_type.as_str().as_bytes(),
        ) & session.signature.matches(&request.signature);
        if !presented_matches {
            return Err(Rejection::of(ErrorKind::InvalidSignature));
        }

        match self
            .ports
            .sessions
            .redeem(request.merchant_transaction_id, &claims.jti, now)
            .await
            .map_err(store_rejection)?
        {
            Redemption::Redeemed => {
                stored.redeemed_at = Some(now);
                Ok(stored)
            }
            Redemption::AlreadyUsed => Err(Rejection::of(ErrorKind::SessionAlreadyUsed)),
            Redemption::Unknown => Err(invalid_token()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_executor::block_on;
    use uuid::Uuid;

    use super::*;
    use crate::service::CreatedSession;
    use crate::service::fixtures::{Mocks, NOW_MICROS, partner, token_keys};
    use crate::time::Timestamp;

    const SEED: &str = r#"{"partner_user_id":"user-123","user_email":"user@example.com","network":"TRC20",
        "currency":"USDT","amount":"100","client_ip":"203.0.113.42"}"#;

    fn created() -> CreatedSession {
        let mut mocks = Mocks::new();
        mocks.sessions.expect_insert_session().returning(|_| Ok(()));
        block_on(mocks.service().create_session(&partner(), SEED.as_bytes())).expect("created")
    }

    fn init_body(created: &CreatedSession, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let s = &created.session;
        let mut body = serde_json::json!({
            "widget_id": s.widget.widget_id.to_string(),
            "merchant_transaction_id": s.id_text(),
            "init_token": created.init_token,
            "signature": s.signature.as_str(),
            "address": s.address.as_str(),
            "currency": s.currency.as_str(),
            "network": s.network.as_str(),
            "amount": s.amount.as_str(),
            "type": s.tx_type.as_str(),
        });
        edit(&mut body);
        body.to_string().into_bytes()
    }

    /// A service whose store holds `created` and answers `redeem` with `outcome`
    /// (or must not be asked, when `None`).
    fn service_with(
        created: &CreatedSession,
        outcome: Option<Redemption>,
        now_offset_seconds: i64,
    ) -> super::SessionService {
        let mut mocks = Mocks::new();
        let stored = StoredSession {
            session: created.session.clone(),
            state: created.session.initial_state(),
            redeemed_at: None,
        };
        let id = created.session.merchant_transaction_id;
        mocks
            .sessions
            .expect_session()
            .returning(move |asked| Ok((asked == id).then(|| stored.clone())));
        match outcome {
            Some(outcome) => {
                mocks
                    .sessions
                    .expect_redeem()
                    .times(1)
                    .returning(move |_, _, _| Ok(outcome));
            }
            None => {
                mocks.sessions.expect_redeem().never();
            }
        }
        let service = mocks.service();
        let clock = Arc::new(crate::service::fixtures::FixedClock::at_micros(
            NOW_MICROS + now_offset_seconds * 1_000_000,
        ));
        let mut ports = service.ports.clone();
        ports.clock = clock;
        super::SessionService::new(ports, token_keys(), None, service.settings.clone())
    }

    #[test]
    fn redeems_once() {
        let created = created();
        let service = service_with(&created, Some(Redemption::Redeemed), 1);
        let stored =
            block_on(service.redeem_init_token(&init_body(&created, |_| {}))).expect("redeemed");
        assert_eq!(stored.session, created.session);
        assert_eq!(
            stored.redeemed_at,
            Some(Timestamp::from_unix_micros(NOW_MICROS + 1_000_000))
        );
        let again = service_with(&created, Some(Redemption::AlreadyUsed), 2);
        let refusal =
            block_on(again.redeem_init_token(&init_body(&created, |_| {}))).expect_err("reuse");
        assert_eq!(refusal.kind(), ErrorKind::SessionAlreadyUsed);
    }

    #[test]
    fn tampered_parameters_are_refused_without_consuming_the_token() {
        let created = created();
        let edits: [(&str, serde_json::Value); 6] = [
            ("amount", "1000".into()),
            ("address", "TXYZabcdefghijkmnopqrstuvwxyz99999".into()),
            ("network", "ERC20".into()),
            ("currency", "USDC".into()),
            ("type", "sell".into()),
            ("signature", format!("v2:{}", "a".repeat(128)).into()),
        ];
        for (field, value) in edits {
            let service = service_with(&created, None, 1);
            let body = init_body(&created, |b| b[field] = value.clone());
            let refusal = block_on(service.redeem_init_token(&body)).expect_err(field);
            assert_eq!(refusal.kind(), ErrorKind::InvalidSignature, "{field}");
        }
    }

    #[test]
    fn expired_tokens_answer_gone_before_the_store_is_asked() {
        let created = created();
        let mut mocks = Mocks::new();
        mocks.sessions.expect_session().never();
        mocks.sessions.expect_redeem().never();
        let base = mocks.service();
        let mut ports = base.ports.clone();
        ports.clock = Arc::new(crate::service::fixtures::FixedClock::at_micros(
            NOW_MICROS + 3_600_000_000,
        ));
        let service = super::SessionService::new(ports, token_keys(), None, base.settings.clone());
        let refusal =
            block_on(service.redeem_init_token(&init_body(&created, |_| {}))).expect_err("expired");
        assert_eq!(refusal.kind(), ErrorKind::SessionExpired);
    }

    #[test]
    fn forged_or_misdirected_tokens_never_reach_the_store() {
        let created = created();
        let other_widget = Uuid::new_v4().to_string();
        type Edit = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Edit)> = vec![
            (
                "garbage token",
                Box::new(|b| b["init_token"] = "eyJ.x.y".into()),
            ),
            (
                "token for another session",
                Box::new(|b| b["merchant_transaction_id"] = Uuid::nil().to_string().into()),
            ),
            (
                "token for another widget",
                Box::new(move |b| b["widget_id"] = other_widget.clone().into()),
            ),
        ];
        for (why, edit) in cases {
            let mut mocks = Mocks::new();
            mocks.sessions.expect_session().never();
            mocks.sessions.expect_redeem().never();
            let refusal = block_on(
                mocks
                    .service()
                    .redeem_init_token(&init_body(&created, edit)),
            )
            .expect_err(why);
            assert_eq!(refusal.kind(), ErrorKind::InvalidInitToken, "{why}");
        }
    }
}

//! `POST /widget/session`: open a session for one widget transaction.

use std::sync::Arc;

use uuid::Uuid;

use super::{SessionService, store_rejection, upstream_rejection};
use crate::error::{ErrorKind, Rejection};
use crate::partner::Partner;
use crate::random::uuid_v4;
use crate::request::SessionRequest;
use crate::session::{Session, signed_fields};
use crate::signing::Signature;
use crate::value::{Among, TxType};

/// A created session and its init token (which the store never keeps).
#[derive(Debug, Clone)]
pub struct CreatedSession {
    pub session: Arc<Session>,
    pub init_token: String,
}

impl SessionService {
    /// Validates the body for `partner`, applies the partner's rules in the spec's
    /// order (off-ramp, currency, network, wallet), then mints, signs and stores
    /// the session. Nothing is written unless every check passes.
    pub async fn create_session(
        &self,
        partner: &Partner,
        body: &[u8],
    ) -> Result<CreatedSession, Rejection> {
        let request = SessionRequest::decode(body, partner)?;
        let view = &partner.widget.view;
        if request.tx_type == TxType::Sell && !partner.offramp_enabled {
            return Err(Rejection::of(ErrorKind::OfframpDisabled));
        }
        // Decoding looked the codes up among the partner's own (shared) ones, so
        // an enabled code costs the session a reference count, not an allocation.
        let currency = match request.currency {
            Among::Known(code) => code,
            Among::Unknown(code) => {
                let message = format!("currency \"{code}\" is not enabled for this partner");
                return Err(Rejection::new(ErrorKind::CurrencyNotAllowed, message));
            }
        };
        let network = match request.network {
            Among::Known(code) => code,
            Among::Unknown(code) => {
                let message = format!("network \"{code}\" is not enabled for this partner");
                return Err(Rejection::new(ErrorKind::NetworkNotAllowed, message));
            }
        };
        let address = match request.address {
            Some(address) => address,
            None => self
                .ports
                .wallets
                .resolve(partner, &currency, &network)
                .await
                .map_err(upstream_rejection)?
                .ok_or_else(|| {
                    let message = format!("no active wallet for {} on {}", currency, network);
                    Rejection::new(ErrorKind::WalletNotSupported, message)
                })?,
        };

        let now = self.ports.clock.now();
        let id = uuid_v4(self.ports.random.as_ref());
        let mut id_buf = Uuid::encode_buffer();
        let id_text: &str = id.hyphenated().encode_lower(&mut id_buf);
        let mut widget_id_buf = Uuid::encode_buffer();
        let widget_id_text: &str = view.widget_id.hyphenated().encode_lower(&mut widget_id_buf);
        let mut jti = [0u8; 16];
        self.ports.random.fill(&mut jti);
        let minted = self.tokens.mint(
            id_text,
            widget_id_text,
            now,
            self.settings.init_token_ttl_seconds,
            jti,
        );

        let mut session = Session {
            merchant_transaction_id: id,
            partner_id: partner.id.clone(),
            user: request.user,
            tx_type: request.tx_type,
            currency,
            network,
            amount: request.amount,
            address,
            client_ip: request.client_ip,
            redirect_url: request.redirect_url,
            widget: view.clone(),
            // Signed just below, from the session's own fields, so the tuple
            // that is signed is built in one place (`signed_fields`).
            signature: Signature::unsigned(),
            signing_kid: partner.signing.current().kid_shared().clone(),
            init_token_jti: minted.jti,
            init_token_expires_at: minted.expires_at,
            created_at: now,
        };
        session.signature = partner
            .signing
            .sign(&signed_fields(&session, id_text, widget_id_text));
        let session = Arc::new(session);

        self.ports
            .sessions
            .insert_session(&session)
            .await
            .map_err(store_rejection)?;
        Ok(CreatedSession {
            session,
            init_token: minted.token,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures_executor::block_on;

    use super::*;
    use crate::partner::tests::acme;
    use crate::ports::{MockWalletDirectory, StoreError, UpstreamError};
    use crate::service::fixtures::{Captured, Mocks, NOW_MICROS, partner, token_keys};
    use crate::session::signed_fields;
    use crate::time::Timestamp;

    const SEED: &str = r#"{"partner_user_id":"user-123","user_email":"user@example.com","network":"TRC20",
        "currency":"USDT","amount":"100","type":"buy","client_ip":"203.0.113.42"}"#;

    fn capturing_store(mocks: &mut Mocks) -> Captured<Arc<Session>> {
        let written: Captured<Arc<Session>> = Arc::new(Mutex::new(Vec::new()));
        let sink = written.clone();
        mocks
            .sessions
            .expect_insert_session()
            .returning(move |session| {
                sink.lock().expect("lock").push(session.clone());
                Ok(())
            });
        written
    }

    #[test]
    fn creates_signs_and_stores_the_seed_session() {
        let mut mocks = Mocks::new();
        let written = capturing_store(&mut mocks);
        let service = mocks.service();
        let partner = partner();
        let created = block_on(service.create_session(&partner, SEED.as_bytes())).expect("created");
        let session = &created.session;
        assert_eq!(
            written.lock().expect("lock").as_slice(),
            std::slice::from_ref(session),
            "stored before answering"
        );
        assert_eq!(
            session.address.as_str(),
            "TXYZabcdefghijkmnopqrstuvwxyz12345",
            "resolved wallet"
        );
        assert_eq!(session.created_at, Timestamp::from_unix_micros(NOW_MICROS));
        assert_eq!(
            session.init_token_expires_at,
            Timestamp::from_unix_micros(NOW_MICROS).plus_seconds(3_600)
        );

        let id = session.id_text();
        let widget_id = session.widget.widget_id.to_string();
        let fields = signed_fields(session, &id, &widget_id);
        assert!(
            partner
                .signing
                .verify(&fields, session.signature.as_str(), session.created_at)
        );
        let claims = token_keys()
            .verify(&created.init_token, &id, &widget_id, session.created_at)
            .expect("token");
        assert_eq!(claims.jti, session.init_token_jti);
    }

    #[test]
    fn partner_rules_run_in_the_spec_order_and_write_nothing() {
        use ErrorKind::*;
        let body = |fields: &[(&str, &str)]| {
            let mut object: serde_json::Value = serde_json::from_str(SEED).expect("seed");
            for (key, value) in fields {
                object[*key] = serde_json::Value::String((*value).to_owned());
            }
            object.to_string()
        };
        let cases = [
            (
                body(&[("type", "sell"), ("currency", "BTC"), ("network", "BTC")]),
                OfframpDisabled,
                "offramp first",
            ),
            (
                body(&[("currency", "BTC"), ("network", "BTC")]),
                CurrencyNotAllowed,
                "currency before network",
            ),
            (
                body(&[("network", "BEP20")]),
                NetworkNotAllowed,
                "network not configured",
            ),
            (
                body(&[("network", "ERC20")]),
                WalletNotSupported,
                "no ERC20 wallet",
            ),
        ];
        for (body, kind, why) in cases {
            let mut mocks = Mocks::new();
            mocks.sessions.expect_insert_session().never();
            let refusal = block_on(mocks.service().create_session(&partner(), body.as_bytes()))
                .expect_err(why);
            assert_eq!(refusal.kind(), kind, "{why}");
        }
    }

    #[test]
    fn sell_is_allowed_with_offramp() {
        let mut spec = acme();
        spec.offramp_enabled = true;
        let partner = spec.build().expect("partner");
        let mut mocks = Mocks::new();
        capturing_store(&mut mocks);
        let body = SEED.replace("\"buy\"", "\"sell\"");
        let created =
            block_on(mocks.service().create_session(&partner, body.as_bytes())).expect("sell");
        assert_eq!(created.session.tx_type, TxType::Sell);
    }

    #[test]
    fn upstream_and_store_faults_map_to_their_rows() {
        let cases = [
            (
                UpstreamError::Rejected("403 from custody".into()),
                ErrorKind::ProviderError,
            ),
            (
                UpstreamError::Unreachable("timeout".into()),
                ErrorKind::UpstreamUnavailable,
            ),
            (
                UpstreamError::InvalidResponse("not json".into()),
                ErrorKind::UpstreamInvalidResponse,
            ),
        ];
        for (fault, kind) in cases {
            let mut mocks = Mocks::new();
            let mut wallets = MockWalletDirectory::new();
            wallets
                .expect_resolve()
                .returning(move |_, _, _| Err(fault.clone()));
            mocks.wallets = Some(wallets);
            mocks.sessions.expect_insert_session().never();
            let refusal = block_on(mocks.service().create_session(&partner(), SEED.as_bytes()))
                .expect_err("fault");
            assert_eq!(refusal.kind(), kind);
            assert!(refusal.detail().is_some(), "the cause is kept for the logs");
        }
        for (fault, kind) in [
            (
                StoreError::Unavailable("connection refused".into()),
                ErrorKind::StoreUnavailable,
            ),
            (StoreError::Failed("syntax".into()), ErrorKind::DbError),
        ] {
            let mut mocks = Mocks::new();
            mocks
                .sessions
                .expect_insert_session()
                .returning(move |_| Err(fault.clone()));
            let refusal = block_on(mocks.service().create_session(&partner(), SEED.as_bytes()))
                .expect_err("fault");
            assert_eq!(refusal.kind(), kind);
            assert!(
                !refusal.message().contains("connection refused"),
                "no internals in the client message"
            );
        }
    }

    #[test]
    fn client_address_replaces_the_wallet_for_partners_that_allow_it() {
        let mut spec = acme();
        spec.accept_client_address = true;
        let partner = spec.build().expect("partner");
        let mut mocks = Mocks::new();
        let mut wallets = MockWalletDirectory::new();
        wallets.expect_resolve().never();
        mocks.wallets = Some(wallets);
        capturing_store(&mut mocks);
        let body = SEED.replace(
            "\"buy\"",
            "\"buy\",\"address\":\"TXYZabcdefghijkmnopqrstuvwxyz99999\"",
        );
        let created =
            block_on(mocks.service().create_session(&partner, body.as_bytes())).expect("created");
        assert_eq!(
            created.session.address.as_str(),
            "TXYZabcdefghijkmnopqrstuvwxyz99999"
        );
    }

    #[test]
    fn two_sessions_share_no_identifier() {
        let mut mocks = Mocks::new();
        capturing_store(&mut mocks);
        let service = mocks.service();
        let a = block_on(service.create_session(&partner(), SEED.as_bytes())).expect("a");
        let b = block_on(service.create_session(&partner(), SEED.as_bytes())).expect("b");
        assert_ne!(
            a.session.merchant_transaction_id,
            b.session.merchant_transaction_id
        );
        assert_ne!(a.init_token, b.init_token);
        assert_ne!(a.session.signature, b.session.signature);
    }
}

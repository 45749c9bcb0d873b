//! `POST /widget/session`: open a session for one widget transaction.

use std::sync::Arc;

use uuid::Uuid;

use super::{SessionService, store_rejection, upstream_rejection};
use crate::error::{ErrorKind, Rejection};
use crate::idempotency::{Fingerprint, IdempotencyKey, KeyedAnswer, StoredAnswer};
use crate::json::Object;
use crate::partner::Partner;
use crate::ports::KeyedInsert;
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

/// The answer's body to `POST /widget/session`, as the HTTP adapter renders
/// it. The core needs it only to keep it under an idempotency key.
pub type RenderAnswer<'a> = &'a (dyn Fn(&CreatedSession) -> Vec<u8> + Send + Sync);

/// What `POST /widget/session` answers with, `200` either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionAnswer {
    /// A session created by this request.
    Created(Vec<u8>),
    /// The answer an earlier request with the same `Idempotency-Key` and the
    /// same body got, byte for byte. Nothing was created.
    Replayed(Arc<[u8]>),
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
        let created = self.prepare_session(partner, request).await?;
        self.ports
            .sessions
            .insert_session(&created.session)
            .await
            .map_err(store_rejection)?;
        Ok(created)
    }

    /// `POST /widget/session` with its `Idempotency-Key` header values
    /// (`key_header`, empty without one). Without a key this is
    /// [`Self::create_session`]. With one, after the body and the key are
    /// validated: an answer stored under the key for the same request is
    /// replayed, one for a different request is `idempotency_key_reused`;
    /// otherwise the session is created and its answer (`render`ed) stored
    /// with it in one write. A concurrent request with the key that wins the
    /// write makes this one replay its answer.
    pub async fn open_session(
        &self,
        partner: &Partner,
        body: &[u8],
        key_header: &[&[u8]],
        render: RenderAnswer<'_>,
    ) -> Result<SessionAnswer, Rejection> {
        let object = Object::parse(body)?;
        let request = SessionRequest::from_object(&object, partner)?;
        let Some(key) = IdempotencyKey::from_header(key_header)? else {
            let created = self.prepare_session(partner, request).await?;
            self.ports
                .sessions
                .insert_session(&created.session)
                .await
                .map_err(store_rejection)?;
            return Ok(SessionAnswer::Created(render(&created)));
        };
        let fingerprint = Fingerprint::of(&object);
        let created_since = self
            .ports
            .clock
            .now()
            .plus_seconds(-self.settings.idempotency_ttl_seconds);
        if let Some(stored) = self.stored_answer(partner, &key, created_since).await? {
            return replay(stored, fingerprint);
        }

        let created = self.prepare_session(partner, request).await?;
        let body = render(&created);
        let keyed = KeyedAnswer {
            key,
            answer: StoredAnswer {
                fingerprint,
                body: Arc::from(body.as_slice()),
            },
            replaces_before: created_since,
        };
        let written = self
            .ports
            .idempotency
            .insert_keyed_session(&created.session, &keyed)
            .await
            .map_err(store_rejection)?;
        match written {
            KeyedInsert::Inserted => Ok(SessionAnswer::Created(body)),
            KeyedInsert::KeyTaken => {
                match self
                    .stored_answer(partner, &keyed.key, created_since)
                    .await?
                {
                    Some(stored) => replay(stored, fingerprint),
                    // The winner wrote nothing after all (it failed), or its
                    // answer expired this very instant: a retry will settle it.
                    None => Err(Rejection::of(ErrorKind::IdempotencyKeyInUse)),
                }
            }
        }
    }

    async fn stored_answer(
        &self,
        partner: &Partner,
        key: &IdempotencyKey,
        created_since: crate::time::Timestamp,
    ) -> Result<Option<StoredAnswer>, Rejection> {
        self.ports
            .idempotency
            .idempotent_answer(&partner.id, key, created_since)
            .await
            .map_err(store_rejection)
    }

    /// The partner's rules in the spec's order (off-ramp, currency, network,
    /// wallet), then the session minted and signed, not yet stored.
    async fn prepare_session(
        &self,
        partner: &Partner,
        request: SessionRequest,
    ) -> Result<CreatedSession, Rejection> {
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
        Ok(CreatedSession {
            session: Arc::new(session),
            init_token: minted.token,
        })
    }
}

/// The stored answer again when the request is the same one; otherwise the
/// key was reused for a different request.
fn replay(stored: StoredAnswer, fingerprint: Fingerprint) -> Result<SessionAnswer, Rejection> {
    if stored.fingerprint == fingerprint {
        Ok(SessionAnswer::Replayed(stored.body))
    } else {
        Err(Rejection::of(ErrorKind::IdempotencyKeyReused))
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

    mod idempotency {
        use super::*;
        use crate::idempotency::{Fingerprint, IdempotencyKey, KeyedAnswer, StoredAnswer};
        use crate::json::Object;
        use crate::ports::KeyedInsert;
        use crate::service::SessionAnswer;
        use crate::service::fixtures::IDEMPOTENCY_TTL_SECONDS;

        const KEY: &[&[u8]] = &[b"retry-7"];

        /// The answer body: the session's id, so a test can tell whose it is.
        fn render(created: &CreatedSession) -> Vec<u8> {
            created.session.id_text().into_bytes()
        }

        fn seed_fingerprint() -> Fingerprint {
            Fingerprint::of(&Object::parse(SEED.as_bytes()).expect("seed"))
        }

        fn stored(fingerprint: Fingerprint, body: &[u8]) -> StoredAnswer {
            StoredAnswer {
                fingerprint,
                body: Arc::from(body),
            }
        }

        fn open(mocks: Mocks, body: &str, key: &[&[u8]]) -> Result<SessionAnswer, Rejection> {
            block_on(
                mocks
                    .service()
                    .open_session(&partner(), body.as_bytes(), key, &render),
            )
        }

        #[test]
        fn without_a_key_nothing_is_looked_up_or_kept() {
            let mut mocks = Mocks::new();
            let written = capturing_store(&mut mocks);
            mocks.idempotency.expect_idempotent_answer().never();
            mocks.idempotency.expect_insert_keyed_session().never();
            let answer = open(mocks, SEED, &[]).expect("created");
            let session = written.lock().expect("lock")[0].clone();
            assert_eq!(
                answer,
                SessionAnswer::Created(session.id_text().into_bytes())
            );
        }

        #[test]
        fn a_new_key_is_written_with_its_session_and_answer() {
            let mut mocks = Mocks::new();
            mocks.sessions.expect_insert_session().never();
            let asked_since = Arc::new(Mutex::new(None));
            let asked = asked_since.clone();
            mocks
                .idempotency
                .expect_idempotent_answer()
                .times(1)
                .returning(move |partner, key, since| {
                    assert_eq!(partner.as_str(), "acme");
                    assert_eq!(key.as_str(), "retry-7");
                    *asked.lock().expect("lock") = Some(since);
                    Ok(None)
                });
            let keyed: Captured<(Arc<Session>, KeyedAnswer)> = Arc::default();
            let sink = keyed.clone();
            mocks
                .idempotency
                .expect_insert_keyed_session()
                .times(1)
                .returning(move |session, answer| {
                    sink.lock()
                        .expect("lock")
                        .push((session.clone(), answer.clone()));
                    Ok(KeyedInsert::Inserted)
                });
            let answer = open(mocks, SEED, KEY).expect("created");
            let (session, written) = keyed.lock().expect("lock")[0].clone();
            let body = session.id_text().into_bytes();
            assert_eq!(answer, SessionAnswer::Created(body.clone()));
            assert_eq!(written.key.as_str(), "retry-7");
            assert_eq!(written.answer, stored(seed_fingerprint(), &body));
            let cutoff =
                Timestamp::from_unix_micros(NOW_MICROS).plus_seconds(-IDEMPOTENCY_TTL_SECONDS);
            assert_eq!(written.replaces_before, cutoff);
            assert_eq!(
                *asked_since.lock().expect("lock"),
                Some(cutoff),
                "expired answers are not replayed"
            );
        }

        #[test]
        fn the_same_request_replays_without_creating_anything() {
            let mut mocks = Mocks::new();
            let mut wallets = MockWalletDirectory::new();
            wallets.expect_resolve().never();
            mocks.wallets = Some(wallets);
            mocks.sessions.expect_insert_session().never();
            mocks.idempotency.expect_insert_keyed_session().never();
            mocks
                .idempotency
                .expect_idempotent_answer()
                .returning(|_, _, _| Ok(Some(stored(seed_fingerprint(), b"first answer"))));
            // Key order and whitespace differ; the request is the same.
            let reordered = r#"{ "client_ip":"203.0.113.42", "type":"buy", "amount":"100", "currency":"USDT",
                "network":"TRC20", "user_email":"user@example.com", "partner_user_id":"user-123" }"#;
            let answer = open(mocks, reordered, KEY).expect("replayed");
            assert_eq!(
                answer,
                SessionAnswer::Replayed(Arc::from(&b"first answer"[..]))
            );
        }

        #[test]
        fn a_different_request_is_refused_before_the_partner_rules() {
            let mut mocks = Mocks::new();
            mocks.idempotency.expect_insert_keyed_session().never();
            mocks
                .idempotency
                .expect_idempotent_answer()
                .returning(|_, _, _| Ok(Some(stored(seed_fingerprint(), b"first answer"))));
            // This body would also fail the currency rule, which comes later.
            let body = SEED.replace("USDT", "BTC");
            let refusal = open(mocks, &body, KEY).expect_err("reused");
            assert_eq!(refusal.kind(), ErrorKind::IdempotencyKeyReused);
        }

        #[test]
        fn body_errors_come_before_the_key_and_the_key_before_the_store() {
            let cases: [(&str, &[&[u8]], ErrorKind); 4] = [
                ("{", &[b""], ErrorKind::DecodeError),
                (r#"{"amount":"1"}"#, &[b""], ErrorKind::MissingParam),
                (SEED, &[b""], ErrorKind::ValidationError),
                (SEED, &[b"a", b"b"], ErrorKind::ValidationError),
            ];
            for (body, key, kind) in cases {
                let mut mocks = Mocks::new();
                mocks.idempotency.expect_idempotent_answer().never();
                mocks.idempotency.expect_insert_keyed_session().never();
                let refusal = open(mocks, body, key).expect_err("refused");
                assert_eq!(refusal.kind(), kind, "{body}");
                if body == SEED {
                    assert!(
                        refusal.message().starts_with("Idempotency-Key"),
                        "{}",
                        refusal.message()
                    );
                }
            }
        }

        #[test]
        fn a_refused_request_keeps_nothing() {
            let mut mocks = Mocks::new();
            mocks
                .idempotency
                .expect_idempotent_answer()
                .returning(|_, _, _| Ok(None));
            mocks.idempotency.expect_insert_keyed_session().never();
            let refusal = open(mocks, &SEED.replace("TRC20", "ERC20"), KEY).expect_err("no wallet");
            assert_eq!(refusal.kind(), ErrorKind::WalletNotSupported);
        }

        #[test]
        fn losing_the_write_to_a_concurrent_request_replays_or_refuses() {
            let other = Fingerprint::from_bytes([7; 32]);
            let cases = [
                (
                    Some(stored(seed_fingerprint(), b"winner")),
                    Ok(SessionAnswer::Replayed(Arc::from(&b"winner"[..]))),
                ),
                (
                    Some(stored(other, b"winner")),
                    Err(ErrorKind::IdempotencyKeyReused),
                ),
                (None, Err(ErrorKind::IdempotencyKeyInUse)),
            ];
            for (winner, expected) in cases {
                let mut mocks = Mocks::new();
                let mut lookups = 0;
                mocks
                    .idempotency
                    .expect_idempotent_answer()
                    .times(2)
                    .returning(move |_, _, _| {
                        lookups += 1;
                        Ok(if lookups == 1 { None } else { winner.clone() })
                    });
                mocks
                    .idempotency
                    .expect_insert_keyed_session()
                    .times(1)
                    .returning(|_, _| Ok(KeyedInsert::KeyTaken));
                let answer = open(mocks, SEED, KEY).map_err(|refusal| refusal.kind());
                assert_eq!(answer, expected);
            }
        }

        #[test]
        fn quoted_and_bare_keys_are_one_key() {
            for header in [&b"retry-7"[..], &b"\"retry-7\""[..]] {
                let mut mocks = Mocks::new();
                mocks
                    .idempotency
                    .expect_idempotent_answer()
                    .withf(|_, key, _| *key == IdempotencyKey::parse(b"retry-7").expect("key"))
                    .returning(|_, _, _| Ok(Some(stored(seed_fingerprint(), b"a"))));
                assert!(matches!(
                    open(mocks, SEED, &[header]),
                    Ok(SessionAnswer::Replayed(_))
                ));
            }
        }
    }
}

//! `POST /widget/session`: open a session for one widget transaction.

use std::sync::Arc;

use uuid::Uuid;

use super::{SessionService, store_rejection, upstream_rejection};
use crate::client_token::TokenEnv;
use crate::error::{ErrorKind, Rejection};
use crate::idempotency::{
    Fingerprint, IdempotencyKey, KeyLookup, KeyedAnswer, StoredAnswer, keyed_transaction_id,
};
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
    Replayed(Vec<u8>),
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
        self.create_session_in(partner, TokenEnv::Live, body).await
    }

    /// [`Self::create_session`] for a partner authenticated with a token of
    /// environment `mode`.
    pub async fn create_session_in(
        &self,
        partner: &Partner,
        mode: TokenEnv,
        body: &[u8],
    ) -> Result<CreatedSession, Rejection> {
        let request = SessionRequest::decode(body, partner)?;
        let id = uuid_v4(self.ports.random.as_ref());
        let created = self.prepare_session(partner, mode, request, id).await?;
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
    /// replayed, one for a different request is `idempotency_key_reused`,
    /// whatever the partner rules would say; otherwise the session is created
    /// and its answer (`render`ed) stored with it in one write, which fails
    /// for every request with the key but one, on any instance.
    pub async fn open_session(
        &self,
        partner: &Partner,
        mode: TokenEnv,
        body: &[u8],
        key_header: &[&[u8]],
        render: RenderAnswer<'_>,
    ) -> Result<SessionAnswer, Rejection> {
        let object = Object::parse(body)?;
        let request = SessionRequest::from_object(&object, partner)?;
        let Some(key) = IdempotencyKey::from_header(key_header)? else {
            let id = uuid_v4(self.ports.random.as_ref());
            let created = self.prepare_session(partner, mode, request, id).await?;
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
        // The key's check comes before the partner rules (SPEC.md §1), but
        // the store is asked only when its answer can change the outcome:
        // when a rule refuses, or when the write finds the key taken. The
        // outcome is the one a look-up first would give, and a first request
        // (nearly every request) costs no extra round trip: it is written
        // as the key's first generation, which a key never used has free.
        let namespace = self.ports.idempotency.id_namespace();
        let mut generation = 0;
        let first_id = keyed_transaction_id(&namespace, &partner.id, &key, generation);
        let mut created = match self.prepare_session(partner, mode, request, first_id).await {
            Ok(created) => created,
            Err(refusal) => {
                return match self.stored_answer(partner, &key, created_since).await? {
                    KeyLookup::Held(stored) => self.replay(stored, fingerprint, render),
                    KeyLookup::Free { .. } => Err(refusal),
                };
            }
        };
        let mut keyed = KeyedAnswer {
            key,
            fingerprint,
            generation,
            expired_before: created_since,
        };
        // Each round either writes the session, replays the holder's answer,
        // or finds a generation the key has not reached yet (its holders
        // expired): a later one, so the loop ends.
        loop {
            let written = self
                .ports
                .idempotency
                .insert_keyed_session(&created.session, &keyed)
                .await
                .map_err(store_rejection)?;
            if written == KeyedInsert::Inserted {
                return Ok(SessionAnswer::Created(render(&created)));
            }
            // The session prepared for this request is dropped unseen: only
            // the stored answer (or a refusal) goes out.
            match self
                .stored_answer(partner, &keyed.key, created_since)
                .await?
            {
                KeyLookup::Held(stored) => return self.replay(stored, fingerprint, render),
                KeyLookup::Free { generation: next } if next > generation => {
                    generation = next;
                    keyed.generation = next;
                    let id = keyed_transaction_id(&namespace, &partner.id, &keyed.key, next);
                    created = self.reissue(partner, created, id);
                }
                // The holder wrote nothing after all (it failed), or its
                // answer expired this very instant: a retry will settle it.
                KeyLookup::Free { .. } => {
                    return Err(Rejection::of(ErrorKind::IdempotencyKeyInUse));
                }
            }
        }
    }

    /// The kept answer again when the request is the same one (the session
    /// rendered with its init token reminted, the bytes it was first sent
    /// as); otherwise the key was reused for a different request.
    fn replay(
        &self,
        stored: StoredAnswer,
        fingerprint: Fingerprint,
        render: RenderAnswer<'_>,
    ) -> Result<SessionAnswer, Rejection> {
        if stored.fingerprint != fingerprint {
            return Err(Rejection::of(ErrorKind::IdempotencyKeyReused));
        }
        let session = stored.session;
        let init_token = self.tokens.remint(
            &session.id_text(),
            &session.widget.widget_id.to_string(),
            session.created_at,
            session.init_token_expires_at,
            session.init_token_jti.as_str(),
        );
        Ok(SessionAnswer::Replayed(render(&CreatedSession {
            session,
            init_token,
        })))
    }

    async fn stored_answer(
        &self,
        partner: &Partner,
        key: &IdempotencyKey,
        created_since: crate::time::Timestamp,
    ) -> Result<KeyLookup, Rejection> {
        self.ports
            .idempotency
            .idempotent_answer(&partner.id, key, created_since)
            .await
            .map_err(store_rejection)
    }

    /// The partner's rules in the spec's order (off-ramp, currency, network,
    /// wallet), then the session `id` minted and signed, not yet stored.
    async fn prepare_session(
        &self,
        partner: &Partner,
        mode: TokenEnv,
        request: SessionRequest,
        id: Uuid,
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
            // Stamped just below: minted and signed from the session's own
            // fields, so the tuple that is signed is built in one place
            // (`signed_fields`).
            signature: Signature::unsigned(),
            signing_kid: partner.signing.current().kid_shared().clone(),
            init_token_jti: String::new(),
            init_token_expires_at: crate::time::Timestamp::from_unix_micros(0),
            created_at: crate::time::Timestamp::from_unix_micros(0),
            test_mode: mode == TokenEnv::Test,
        };
        let init_token = self.stamp(partner, &mut session);
        Ok(CreatedSession {
            session: Arc::new(session),
            init_token,
        })
    }

    /// `created`, not stored, as the session `id` instead: the same request,
    /// minted and signed again.
    fn reissue(&self, partner: &Partner, created: CreatedSession, id: Uuid) -> CreatedSession {
        let mut session = Arc::unwrap_or_clone(created.session);
        session.merchant_transaction_id = id;
        let init_token = self.stamp(partner, &mut session);
        CreatedSession {
            session: Arc::new(session),
            init_token,
        }
    }

    /// Creates `session` now: mints its init token (a fresh `jti`) and signs
    /// it with the partner's current key. Returns the token, which the store
    /// never keeps.
    fn stamp(&self, partner: &Partner, session: &mut Session) -> String {
        let now = self.ports.clock.now();
        let mut id_buf = Uuid::encode_buffer();
        let id_text: &str = session
            .merchant_transaction_id
            .hyphenated()
            .encode_lower(&mut id_buf);
        let mut widget_id_buf = Uuid::encode_buffer();
        let widget_id_text: &str = session
            .widget
            .widget_id
            .hyphenated()
            .encode_lower(&mut widget_id_buf);
        let mut jti = [0u8; 16];
        self.ports.random.fill(&mut jti);
        let minted = self.tokens.mint(
            id_text,
            widget_id_text,
            now,
            self.settings.init_token_ttl_seconds,
            jti,
        );
        session.created_at = now;
        session.init_token_jti = minted.jti;
        session.init_token_expires_at = minted.expires_at;
        let signing = partner.signing.current();
        session.signing_kid = signing.kid_shared().clone();
        session.signature = partner
            .signing
            .sign(&signed_fields(session, id_text, widget_id_text));
        minted.token
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
        use crate::idempotency::{
            Fingerprint, IdempotencyKey, KeyLookup, KeyedAnswer, StoredAnswer, keyed_transaction_id,
        };
        use crate::json::Object;
        use crate::ports::KeyedInsert;
        use crate::service::SessionAnswer;
        use crate::service::fixtures::{IDEMPOTENCY_TTL_SECONDS, TEST_NAMESPACE, created_session};

        const KEY: &[&[u8]] = &[b"retry-7"];

        /// The answer body: the session's id and its init token, so a test
        /// can tell whose answer it is and that the token is the same.
        fn render(created: &CreatedSession) -> Vec<u8> {
            format!("{}|{}", created.session.id_text(), created.init_token).into_bytes()
        }

        fn seed_fingerprint() -> Fingerprint {
            Fingerprint::of(&Object::parse(SEED.as_bytes()).expect("seed"))
        }

        fn stored(fingerprint: Fingerprint, session: &Arc<Session>) -> StoredAnswer {
            StoredAnswer {
                fingerprint,
                session: Arc::clone(session),
            }
        }

        fn open(mocks: Mocks, body: &str, key: &[&[u8]]) -> Result<SessionAnswer, Rejection> {
            block_on(mocks.service().open_session(
                &partner(),
                TokenEnv::Live,
                body.as_bytes(),
                key,
                &render,
            ))
        }

        /// Opens the seed session with `KEY` on a store that accepts the
        /// write; returns the answer and what was written.
        fn first_request() -> (Vec<u8>, Arc<Session>, KeyedAnswer) {
            let mut mocks = Mocks::new();
            mocks.sessions.expect_insert_session().never();
            // A first request costs no look-up.
            mocks.idempotency.expect_idempotent_answer().never();
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
            let SessionAnswer::Created(body) = open(mocks, SEED, KEY).expect("created") else {
                panic!("a first request creates");
            };
            let (session, written) = keyed.lock().expect("lock")[0].clone();
            (body, session, written)
        }

        #[test]
        fn without_a_key_nothing_is_looked_up_or_kept() {
            let mut mocks = Mocks::new();
            let written = capturing_store(&mut mocks);
            mocks.idempotency.expect_idempotent_answer().never();
            mocks.idempotency.expect_insert_keyed_session().never();
            let SessionAnswer::Created(body) = open(mocks, SEED, &[]).expect("created") else {
                panic!("created");
            };
            let session = written.lock().expect("lock")[0].clone();
            assert!(body.starts_with(session.id_text().as_bytes()));
        }

        #[test]
        fn a_new_key_is_written_with_its_session() {
            let (body, session, written) = first_request();
            assert!(body.starts_with(session.id_text().as_bytes()));
            assert_eq!(written.key.as_str(), "retry-7");
            assert_eq!(written.fingerprint, seed_fingerprint());
            assert_eq!(
                written.generation, 0,
                "a first request tries the first generation"
            );
            let cutoff =
                Timestamp::from_unix_micros(NOW_MICROS).plus_seconds(-IDEMPOTENCY_TTL_SECONDS);
            assert_eq!(written.expired_before, cutoff);
            let key = IdempotencyKey::parse(b"retry-7").expect("key");
            assert_eq!(
                session.merchant_transaction_id,
                keyed_transaction_id(&TEST_NAMESPACE, &partner().id, &key, 0),
                "the key's id, not a random one"
            );
        }

        #[test]
        fn a_key_whose_holders_expired_takes_its_next_generation() {
            let mut mocks = Mocks::new();
            let attempts: Captured<(Arc<Session>, KeyedAnswer)> = Arc::default();
            let sink = attempts.clone();
            mocks
                .idempotency
                .expect_insert_keyed_session()
                .times(2)
                .returning(move |session, keyed| {
                    sink.lock()
                        .expect("lock")
                        .push((session.clone(), keyed.clone()));
                    // The first generation is taken by an expired session.
                    Ok(if keyed.generation == 0 {
                        KeyedInsert::KeyTaken
                    } else {
                        KeyedInsert::Inserted
                    })
                });
            mocks
                .idempotency
                .expect_idempotent_answer()
                .times(1)
                .returning(|_, _, _| Ok(KeyLookup::Free { generation: 3 }));
            let SessionAnswer::Created(body) = open(mocks, SEED, KEY).expect("created") else {
                panic!("created");
            };
            let attempts = attempts.lock().expect("lock");
            let (first, second) = (&attempts[0], &attempts[1]);
            let key = IdempotencyKey::parse(b"retry-7").expect("key");
            assert_eq!(second.1.generation, 3);
            assert_eq!(
                second.0.merchant_transaction_id,
                keyed_transaction_id(&TEST_NAMESPACE, &partner().id, &key, 3)
            );
            assert!(
                body.starts_with(second.0.id_text().as_bytes()),
                "the answer is the written one"
            );
            assert_ne!(
                first.0.init_token_jti, second.0.init_token_jti,
                "minted again"
            );
            // Everything else is the same request, signed again for its id.
            let (id, widget_id) = (second.0.id_text(), second.0.widget.widget_id.to_string());
            let fields = signed_fields(&second.0, &id, &widget_id);
            assert!(
                partner()
                    .signing
                    .verify(&fields, second.0.signature.as_str(), second.0.created_at),
                "signed for its own id"
            );
            assert_eq!(first.0.amount, second.0.amount);
            assert_eq!(first.0.address, second.0.address);
        }

        #[test]
        fn a_lookup_that_finds_no_later_generation_is_in_use() {
            // The write found the generation taken, yet the look-up says it
            // is free: the holder failed, or expired this instant.
            let mut mocks = Mocks::new();
            mocks
                .idempotency
                .expect_insert_keyed_session()
                .times(1)
                .returning(|_, _| Ok(KeyedInsert::KeyTaken));
            mocks
                .idempotency
                .expect_idempotent_answer()
                .times(1)
                .returning(|_, _, _| Ok(KeyLookup::Free { generation: 0 }));
            let refusal = open(mocks, SEED, KEY).expect_err("in use");
            assert_eq!(refusal.kind(), ErrorKind::IdempotencyKeyInUse);
        }

        #[test]
        fn the_same_request_replays_the_first_answer_byte_for_byte() {
            let (first, session, _) = first_request();
            let mut mocks = Mocks::new();
            mocks.sessions.expect_insert_session().never();
            mocks
                .idempotency
                .expect_insert_keyed_session()
                .times(1)
                .returning(|_, _| Ok(KeyedInsert::KeyTaken));
            mocks
                .idempotency
                .expect_idempotent_answer()
                .withf(|partner, key, since| {
                    partner.as_str() == "acme"
                        && key.as_str() == "retry-7"
                        && *since
                            == Timestamp::from_unix_micros(NOW_MICROS)
                                .plus_seconds(-IDEMPOTENCY_TTL_SECONDS)
                })
                .returning(move |_, _, _| {
                    Ok(KeyLookup::Held(stored(seed_fingerprint(), &session)))
                });
            // Key order and whitespace differ; the request is the same.
            let reordered = r#"{ "client_ip":"203.0.113.42", "type":"buy", "amount":"100", "currency":"USDT",
                "network":"TRC20", "user_email":"user@example.com", "partner_user_id":"user-123" }"#;
            let answer = open(mocks, reordered, KEY).expect("replayed");
            assert_eq!(
                answer,
                SessionAnswer::Replayed(first),
                "token reminted identically"
            );
        }

        #[test]
        fn a_different_request_is_refused_before_the_partner_rules() {
            let session = created_session();
            let mut mocks = Mocks::new();
            mocks.idempotency.expect_insert_keyed_session().never();
            mocks
                .idempotency
                .expect_idempotent_answer()
                .returning(move |_, _, _| {
                    Ok(KeyLookup::Held(stored(seed_fingerprint(), &session)))
                });
            // This body would also fail the currency rule, which comes later.
            let body = SEED.replace("USDT", "BTC");
            let refusal = open(mocks, &body, KEY).expect_err("reused");
            assert_eq!(refusal.kind(), ErrorKind::IdempotencyKeyReused);
        }

        #[test]
        fn a_replay_wins_over_a_rule_that_now_refuses() {
            // The same request, after the partner lost its ERC20 wallet: the
            // answer kept under the key still comes back.
            let session = created_session();
            let body = SEED.replace("TRC20", "ERC20");
            let fingerprint = Fingerprint::of(&Object::parse(body.as_bytes()).expect("body"));
            let mut mocks = Mocks::new();
            mocks.idempotency.expect_insert_keyed_session().never();
            let kept = Arc::clone(&session);
            mocks
                .idempotency
                .expect_idempotent_answer()
                .returning(move |_, _, _| Ok(KeyLookup::Held(stored(fingerprint, &kept))));
            let answer = open(mocks, &body, KEY).expect("replayed");
            let SessionAnswer::Replayed(bytes) = answer else {
                panic!("replayed");
            };
            assert!(bytes.starts_with(session.id_text().as_bytes()));
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
                .returning(|_, _, _| Ok(KeyLookup::Free { generation: 0 }));
            mocks.idempotency.expect_insert_keyed_session().never();
            let refusal = open(mocks, &SEED.replace("TRC20", "ERC20"), KEY).expect_err("no wallet");
            assert_eq!(refusal.kind(), ErrorKind::WalletNotSupported);
        }

        #[test]
        fn losing_the_write_to_a_concurrent_request_replays_or_refuses() {
            let winner = created_session();
            let other = Fingerprint::from_bytes([7; 32]);
            let cases = [
                (KeyLookup::Held(stored(seed_fingerprint(), &winner)), Ok(())),
                (
                    KeyLookup::Held(stored(other, &winner)),
                    Err(ErrorKind::IdempotencyKeyReused),
                ),
                (
                    KeyLookup::Free { generation: 0 },
                    Err(ErrorKind::IdempotencyKeyInUse),
                ),
            ];
            for (kept, expected) in cases {
                let mut mocks = Mocks::new();
                mocks
                    .idempotency
                    .expect_idempotent_answer()
                    .times(1)
                    .returning(move |_, _, _| Ok(kept.clone()));
                mocks
                    .idempotency
                    .expect_insert_keyed_session()
                    .times(1)
                    .returning(|_, _| Ok(KeyedInsert::KeyTaken));
                let answer = open(mocks, SEED, KEY);
                match (answer, expected) {
                    (Ok(SessionAnswer::Replayed(bytes)), Ok(())) => {
                        assert!(
                            bytes.starts_with(winner.id_text().as_bytes()),
                            "the winner's"
                        );
                    }
                    (Err(refusal), Err(kind)) => assert_eq!(refusal.kind(), kind),
                    (other, expected) => panic!("{other:?}, expected {expected:?}"),
                }
            }
        }

        #[test]
        fn quoted_and_bare_keys_are_one_key() {
            let session = created_session();
            for header in [&b"retry-7"[..], &b"\"retry-7\""[..]] {
                let mut mocks = Mocks::new();
                mocks
                    .idempotency
                    .expect_insert_keyed_session()
                    .withf(|_, keyed| keyed.key == IdempotencyKey::parse(b"retry-7").expect("key"))
                    .returning(|_, _| Ok(KeyedInsert::KeyTaken));
                let kept = Arc::clone(&session);
                mocks
                    .idempotency
                    .expect_idempotent_answer()
                    .withf(|_, key, _| *key == IdempotencyKey::parse(b"retry-7").expect("key"))
                    .returning(move |_, _, _| {
                        Ok(KeyLookup::Held(stored(seed_fingerprint(), &kept)))
                    });
                assert!(matches!(
                    open(mocks, SEED, &[header]),
                    Ok(SessionAnswer::Replayed(_))
                ));
            }
        }
    }
}

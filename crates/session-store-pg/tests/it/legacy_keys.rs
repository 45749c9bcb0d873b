//! Keys written before transaction ids were derived from them (migration
//! 0011): they hold their sessions' answers, and the key's first generation,
//! until they expire; the reaper then deletes them, and the store stops
//! consulting their table.

use std::sync::Arc;

use session_core::idempotency::{
    Fingerprint, IdempotencyKey, KeyLookup, KeyedAnswer, StoredAnswer,
};
use session_core::ports::{IdempotencyStore, KeyedInsert, SessionStore};
use session_store_contract::{at, keyed_session, partner, sample_session};

use crate::{connect, database, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_written_before_ids_were_derived_holds_until_it_expires() {
    let Some(db) = database().await else { return };
    let store = connect(db.url()).await;
    let acme = partner(&store, "acme").await;
    let key = IdempotencyKey::parse(b"before-upgrade").expect("key");
    let fingerprint = Fingerprint::from_bytes([9; 32]);

    // What an earlier version wrote: a session with a random id carrying
    // the key, which migration 0011 copied to the legacy table.
    let legacy = sample_session(&acme, "u1", "u1@example.com", 10);
    store.insert_session(&legacy).await.expect("insert");
    let client = raw(db.url()).await;
    let key_it = "UPDATE transactions SET idempotency_key = $2, idempotency_fingerprint = $3 \
                  WHERE merchant_transaction_id = $1";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [
        &legacy.merchant_transaction_id,
        &key.as_str(),
        &fingerprint.as_bytes().as_slice(),
    ];
    let refused = client
        .execute(key_it, &params)
        .await
        .expect_err("an earlier version's keyed write is refused now");
    assert_eq!(
        refused.as_db_error().and_then(|e| e.constraint()),
        Some("transactions_keyed_ids_are_derived"),
        "{refused:?}"
    );
    // As it was before the migration.
    client
        .batch_execute(
            "ALTER TABLE transactions DROP CONSTRAINT transactions_keyed_ids_are_derived",
        )
        .await
        .expect("drop the check");
    client
        .execute(key_it, &params)
        .await
        .expect("key the session");
    client
        .execute(
            "INSERT INTO idempotency_legacy_keys \
             SELECT partner_id, idempotency_key, merchant_transaction_id, created_at \
             FROM transactions WHERE idempotency_key IS NOT NULL",
            &[],
        )
        .await
        .expect("as the migration copies it");
    // The legacy table is read at start-up: an instance started after the
    // upgrade.
    drop(store);
    let store = connect(db.url()).await;

    let lookup = async |since| {
        store
            .idempotent_answer(&acme.id, &key, since)
            .await
            .expect("look-up")
    };
    assert_eq!(
        lookup(at(0)).await,
        KeyLookup::Held(StoredAnswer {
            fingerprint,
            session: Arc::clone(&legacy),
        }),
        "a retry finds the answer written before the upgrade"
    );
    let keyed = |expired_before| KeyedAnswer {
        key: key.clone(),
        fingerprint,
        generation: 0,
        expired_before,
    };
    let retry = keyed_session(&store, &acme, "before-upgrade", 0, "u1", 20);
    assert_eq!(
        store
            .insert_keyed_session(&retry, &keyed(at(0)))
            .await
            .expect("insert"),
        KeyedInsert::KeyTaken,
        "the legacy key holds the first generation while it lives"
    );
    assert!(
        store
            .session(retry.merchant_transaction_id)
            .await
            .expect("read")
            .is_none()
    );

    // Expired: the first generation is free, and the reaper deletes the key.
    assert_eq!(lookup(at(11)).await, KeyLookup::Free { generation: 0 });
    assert_eq!(
        store
            .insert_keyed_session(&retry, &keyed(at(11)))
            .await
            .expect("insert"),
        KeyedInsert::Inserted
    );
    store
        .reap_idempotency_keys(at(11), 100)
        .await
        .expect("reap");
    let left: i64 = client
        .query_one("SELECT count(*) FROM idempotency_legacy_keys", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0, "expired legacy keys are deleted");
    assert_eq!(
        lookup(at(0)).await,
        KeyLookup::Held(StoredAnswer {
            fingerprint,
            session: Arc::clone(&retry),
        }),
        "the key's first generation now holds it"
    );
}

//! Migrations: applied once however many instances start together, idempotent,
//! and an edited applied migration stops the start-up.

use session_core::ports::StoreError;
use session_store_pg::PgStore;

use crate::{database, quick, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_instances_starting_at_once_migrate_exactly_once() {
    let Some(db) = database().await else { return };
    let starts: Vec<_> = (0..4)
        .map(|_| tokio::spawn(PgStore::connect(quick(db.url()))))
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.expect("task").expect("every instance starts"));
    }
    let client = raw(db.url()).await;
    let applied = client
        .query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read schema_migrations");
    let names: Vec<&str> = applied.iter().map(|row| row.get("name")).collect();
    assert_eq!(
        names,
        [
            "initial",
            "webhook_deliveries",
            "webhook_previous_secrets",
            "outbox_blocked",
            "outbox_record_final",
            "idempotency_keys",
            "partner_rate_limit",
            "provider_events_per_transaction",
            "outbox_record_final_by_transaction",
            "transaction_test_mode",
            "idempotency_keys_by_transaction_id",
            "outbox_key_and_end_user_reference",
        ],
        "one row per migration, in order"
    );
    assert!(
        applied
            .iter()
            .all(|row| row.get::<_, &str>("checksum").len() == 64)
    );

    // Starting again is a no-op.
    drop(stores);
    PgStore::connect(quick(db.url()))
        .await
        .expect("a later start finds nothing to do");
    let again: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(again, i64::try_from(applied.len()).expect("few"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_applied_migration_stops_the_start_up() {
    let Some(db) = database().await else { return };
    drop(
        PgStore::connect(quick(db.url()))
            .await
            .expect("first start"),
    );
    raw(db.url())
        .await
        .execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1",
            &[],
        )
        .await
        .expect("tamper");
    match PgStore::connect(quick(db.url())).await {
        Err(StoreError::Failed(message)) => {
            assert!(
                message.contains("0001_initial")
                    && message.contains("changed after it was applied"),
                "{message}"
            );
        }
        other => panic!("expected a checksum failure, got {other:?}"),
    }
}

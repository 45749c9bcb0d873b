//! The store contract, run against PostgreSQL: every case on a fresh database.

use session_store_pg::PgStore;
use session_store_pg::testing::TestDatabase;

/// A store on a fresh database, or `None` (the case is skipped; `create`
/// printed why) when no PostgreSQL can be had. Under CI or SESSION_REQUIRE_PG
/// `create` fails the test instead.
async fn fresh_store() -> Option<PgStore> {
    let database = TestDatabase::create().await?;
    let store = PgStore::connect(database.config())
        .await
        .expect("PgStore connects to a fresh database")
        .keep_alive(database);
    Some(store)
}

/// A second instance on the same database.
async fn sibling(store: &PgStore) -> Option<PgStore> {
    Some(store.sibling().await.expect("a second instance connects"))
}

session_store_contract::store_contract_tests!(fresh_store, sibling);

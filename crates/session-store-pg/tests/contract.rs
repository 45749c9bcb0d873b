//! The store contract, run against PostgreSQL: every case on a fresh database.

use session_store_pg::PgStore;
use session_store_pg::testing::TestDatabase;

async fn fresh_store() -> PgStore {
    let Some(database) = TestDatabase::create().await else {
        // The contract macro needs a store from every call, so a skip ends the
        // whole binary (`create` printed why). It is never taken under CI or
        // SESSION_REQUIRE_PG: `create` fails the test there instead.
        std::process::exit(0);
    };
    PgStore::connect(database.config())
        .await
        .expect("PgStore connects to a fresh database")
        .keep_alive(database)
}

session_store_contract::store_contract_tests!(fresh_store);

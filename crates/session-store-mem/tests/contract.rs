//! The store contract, run against the in-memory store.

use session_store_mem::MemStore;

async fn fresh_store() -> Option<MemStore> {
    Some(MemStore::new())
}

/// In memory there is one instance only.
async fn no_sibling(_: &MemStore) -> Option<MemStore> {
    None
}

session_store_contract::store_contract_tests!(fresh_store, no_sibling);

//! Embedded, versioned schema migrations, applied at start-up.
//!
//! Every instance runs [`apply`] when it connects. All of it happens in one
//! transaction that first takes a transaction-scoped advisory lock, so when
//! several instances start at once exactly one applies the pending migrations
//! and the others wait, then find nothing left to do. PostgreSQL's DDL is
//! transactional: a migration that fails leaves no half-applied schema, and
//! the lock is released with the transaction however it ends.
//!
//! An applied migration must never change: its checksum is recorded, and a
//! mismatch stops the start-up with a message that says so.

use session_core::ports::StoreError;
use sha2::{Digest, Sha256};

use crate::db::Client;
use crate::error::Fault;

/// One migration: `migrations/NNNN_name.sql`, embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    pub(crate) version: i32,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

/// Every migration, in order. Append only; never edit an applied one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "webhook_deliveries",
        sql: include_str!("../migrations/0002_webhook_deliveries.sql"),
    },
    Migration {
        version: 3,
        name: "webhook_previous_secrets",
        sql: include_str!("../migrations/0003_webhook_previous_secrets.sql"),
    },
    Migration {
        version: 4,
        name: "outbox_blocked",
        sql: include_str!("../migrations/0004_outbox_blocked.sql"),
    },
    Migration {
        version: 5,
        name: "outbox_record_final",
        sql: include_str!("../migrations/0005_outbox_record_final.sql"),
    },
    Migration {
        version: 6,
        name: "idempotency_keys",
        sql: include_str!("../migrations/0006_idempotency_keys.sql"),
    },
    Migration {
        version: 7,
        name: "partner_rate_limit",
        sql: include_str!("../migrations/0007_partner_rate_limit.sql"),
    },
    Migration {
        version: 8,
        name: "provider_events_per_transaction",
        sql: include_str!("../migrations/0008_provider_events_per_transaction.sql"),
    },
    Migration {
        version: 9,
        name: "outbox_record_final_by_transaction",
        sql: include_str!("../migrations/0009_outbox_record_final_by_transaction.sql"),
    },
    Migration {
        version: 10,
        name: "transaction_test_mode",
        sql: include_str!("../migrations/0010_transaction_test_mode.sql"),
    },
    Migration {
        version: 11,
        name: "idempotency_keys_by_transaction_id",
        sql: include_str!("../migrations/0011_idempotency_keys_by_transaction_id.sql"),
    },
    Migration {
        version: 12,
        name: "outbox_key_and_end_user_reference",
        sql: include_str!("../migrations/0012_outbox_key_and_end_user_reference.sql"),
    },
];

/// The advisory lock key that serialises migrations (any fixed 64-bit value;
/// these are the ASCII bytes of "sessmigr"). Advisory locks are per database.
const LOCK_KEY: i64 = 0x7365_7373_6d69_6772;

impl Migration {
    /// SHA-256 of the SQL text, hex.
    pub(crate) fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    fn label(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

/// Applies the pending migrations of `migrations` after checking the applied
/// ones; returns how many were applied.
pub(crate) async fn apply(client: &mut Client, migrations: &[Migration]) -> Result<usize, Fault> {
    let tx = client.transaction().await?;
    // A migration may legitimately run long (an index on a big table), and
    // waiting for another instance's migration is expected: lift the
    // connection's statement timeout for this transaction only.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version     integer PRIMARY KEY,
            name        text NOT NULL,
            checksum    text NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await?;
    let applied = tx
        .query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    let mut done = Vec::with_capacity(applied.len());
    for row in &applied {
        let version: i32 = row.try_get("version")?;
        let checksum: &str = row.try_get("checksum")?;
        match migrations.iter().find(|m| m.version == version) {
            Some(migration) if migration.checksum() != checksum => {
                return Err(Fault(StoreError::Failed(format!(
                    "migration {} was changed after it was applied (checksum in the \
                     database {checksum}, in this binary {}): applied migrations must not \
                     be edited; add a new migration instead",
                    migration.label(),
                    migration.checksum()
                ))));
            }
            Some(_) => {}
            None => {
                // A newer binary migrated this database (a rolling deploy): this
                // one still works as long as migrations stay backward compatible.
                let name: &str = row.try_get("name")?;
                tracing::warn!(
                    version,
                    name,
                    "database has a migration this binary does not know"
                );
            }
        }
        done.push(version);
    }
    let mut count = 0;
    for migration in migrations.iter().filter(|m| !done.contains(&m.version)) {
        tracing::info!(migration = %migration.label(), "applying migration");
        tx.batch_execute(migration.sql)
            .await
            .map_err(|e| match Fault::from(e).0 {
                StoreError::Failed(detail) => Fault(StoreError::Failed(format!(
                    "migration {} failed: {detail}",
                    migration.label()
                ))),
                other => Fault(other),
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&migration.version, &migration.name, &migration.checksum()],
        )
        .await?;
        count += 1;
    }
    tx.commit().await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_and_match_their_file_names() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("migrations directory")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.label()))
            .collect();
        assert_eq!(
            files, listed,
            "every file in migrations/ is listed, in order"
        );
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            let on_disk = std::fs::read_to_string(dir.join(&listed[i])).expect("readable");
            assert_eq!(on_disk, migration.sql, "{}", migration.label());
            assert_eq!(
                usize::try_from(migration.version).ok(),
                Some(i + 1),
                "{}",
                migration.label()
            );
            assert!(!migration.sql.trim().is_empty());
            assert_eq!(migration.checksum().len(), 64);
        }
        assert_eq!(MIGRATIONS[0].label(), "0001_initial");
    }
}

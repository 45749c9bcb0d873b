//! Group commit for `insert_session` and `insert_keyed_session`, the one
//! write on the hot path.
//!
//! Callers enqueue their session on a bounded channel and wait on a oneshot.
//! A few writer tasks each take everything queued at that moment (up to
//! `batch_max_rows`) and write it with ONE statement, which PostgreSQL commits
//! as one transaction: one round trip and one WAL flush for the whole batch
//! instead of one per session. There is no timer: a writer that finds one
//! session writes one session, so a lone request never waits for company;
//! batches grow only when sessions arrive faster than a commit takes.
//!
//! Every caller is answered only after the statement that wrote its row has
//! returned, i.e. after commit. If a batch fails for a reason other than the
//! connection (say one duplicate id), its rows are retried one by one so the
//! bad row fails alone; a batch that failed only because a keyed session's id
//! is taken (retries of an answered request: a keyed session's id is its
//! idempotency key's, see `keyed_transaction_id`) settles those rows with one
//! look-up and writes the others as a batch again.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use session_core::idempotency::KeyedAnswer;
use session_core::ports::{KeyedInsert, StoreError};
use session_core::session::Session;
use session_core::value::Code;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::{Client, Db};
use crate::error::{Fault, is_unique_violation_of};
use crate::rows::{PgTime, text_array_literal};

/// Counters of the group commit, for the tests that prove batching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Statements that wrote a batch (including batches of one).
    pub batches: u64,
    /// Sessions written.
    pub rows: u64,
    /// Batches that failed and were retried row by row.
    pub split_batches: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    rows: AtomicU64,
    split_batches: AtomicU64,
}

/// A session waiting to be written (with the answer to keep under its
/// idempotency key, if it has one), and where the outcome goes.
#[derive(Debug)]
struct Pending {
    session: Arc<Session>,
    keyed: Option<KeyedAnswer>,
    done: oneshot::Sender<Result<KeyedInsert, StoreError>>,
}

impl Pending {
    /// The id a keyed session claims for its key (the key's, derived from
    /// it); `None` for a session without a key.
    fn claim(&self) -> Option<Uuid> {
        self.keyed
            .as_ref()
            .map(|_| self.session.merchant_transaction_id)
    }
}

/// The callers' side of the group commit. Dropping it stops the writers once
/// they have written what is queued.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    #[cfg_attr(
        not(feature = "testing"),
        expect(dead_code, reason = "read only by the tests that prove batching")
    )]
    counters: Arc<Counters>,
}

impl GroupCommit {
    /// Starts `writers` writer tasks.
    pub(crate) fn start(db: Db, writers: usize, max_rows: usize, queue: usize) -> Self {
        let (sender, receiver) = mpsc::channel(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let counters = Arc::new(Counters::default());
        for _ in 0..writers {
            tokio::spawn(writer(
                db.clone(),
                Arc::clone(&receiver),
                max_rows,
                Arc::clone(&counters),
            ));
        }
        Self {
            queue: sender,
            counters,
        }
    }

    /// Writes `session` (and upserts its end user); returns after commit.
    pub(crate) async fn insert(&self, session: &Arc<Session>) -> Result<(), StoreError> {
        self.enqueue(session, None).await.map(|_| ())
    }

    /// Writes `session` and `keyed` together, unless the session's id (its
    /// key's generation) is taken; returns after commit.
    pub(crate) async fn insert_keyed(
        &self,
        session: &Arc<Session>,
        keyed: &KeyedAnswer,
    ) -> Result<KeyedInsert, StoreError> {
        self.enqueue(session, Some(keyed.clone())).await
    }

    async fn enqueue(
        &self,
        session: &Arc<Session>,
        keyed: Option<KeyedAnswer>,
    ) -> Result<KeyedInsert, StoreError> {
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            session: Arc::clone(session),
            keyed,
            done,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| StoreError::Unavailable("session writers have stopped".into()))?;
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "session writer stopped before answering".into(),
            ))
        })
    }

    #[cfg(feature = "testing")]
    pub(crate) fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            rows: self.counters.rows.load(Ordering::Relaxed),
            split_batches: self.counters.split_batches.load(Ordering::Relaxed),
        }
    }
}

async fn writer(
    db: Db,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max_rows: usize,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(max_rows);
    loop {
        // One writer at a time takes from the queue: it waits for the first
        // session, then takes whatever else is already there, without waiting.
        let taken = receiver.lock().await.recv_many(&mut batch, max_rows).await;
        if taken == 0 {
            return; // Every sender is gone and the queue is empty.
        }
        write_batch(&db, &mut batch, &counters).await;
    }
}

/// Writes `batch`, answers every caller in it, and leaves it empty.
async fn write_batch(db: &Db, batch: &mut Vec<Pending>, counters: &Counters) {
    // One statement can claim a key's id once: a second request with the same
    // key in the batch loses to the first and reads its answer after the
    // commit.
    let mut claimed = HashSet::new();
    let duplicate: Vec<bool> = batch
        .iter()
        .map(|pending| pending.claim().is_some_and(|id| !claimed.insert(id)))
        .collect();
    // Keyed rows go in id order, after the others: two batches holding some
    // of the same keys then take those primary-key entries in one order, and
    // wait for each other instead of deadlocking.
    let mut order: Vec<usize> = (0..batch.len()).filter(|&i| !duplicate[i]).collect();
    order.sort_by_key(|&i| batch[i].claim());
    let rows: Vec<&Pending> = order.iter().map(|&i| &batch[i]).collect();
    let answers: Vec<Result<KeyedInsert, StoreError>> = match rows.as_slice() {
        [] => Vec::new(),
        [row] => {
            let one = db.run(async |client| insert_one(client, row).await).await;
            if one == Ok(KeyedInsert::Inserted) {
                count(counters, 1);
            }
            vec![one]
        }
        _ => match db
            .run(async |client| insert_rows(client, &rows).await)
            .await
        {
            Ok(()) => {
                count(counters, rows.len());
                vec![Ok(KeyedInsert::Inserted); rows.len()]
            }
            // Unreachable database: each row would fail the same way, and the
            // batch may even have committed just before the connection broke.
            // Either way the answer is "unavailable", as for a single insert.
            Err(error @ StoreError::Unavailable(_)) => vec![Err(error); rows.len()],
            // A key someone holds (retries of an answered request, typically
            // many at once): settle those rows and write the rest as a batch
            // again, rather than every row one by one.
            Err(error) if is_unique_violation_of(&error, ID_INDEX) => {
                counters.split_batches.fetch_add(1, Ordering::Relaxed);
                settle_held_keys(db, &rows, counters).await
            }
            Err(error) => {
                tracing::debug!(rows = rows.len(), %error, "group commit failed; writing rows one by one");
                counters.split_batches.fetch_add(1, Ordering::Relaxed);
                let mut answers = Vec::with_capacity(rows.len());
                for row in &rows {
                    // Once the database is gone, the rest fail the same way at
                    // once rather than each waiting out its own timeout.
                    if let Some(Err(lost @ StoreError::Unavailable(_))) = answers.last() {
                        let lost = Err(lost.clone());
                        answers.push(lost);
                        continue;
                    }
                    let one = db.run(async |client| insert_one(client, row).await).await;
                    if one == Ok(KeyedInsert::Inserted) {
                        count(counters, 1);
                    }
                    answers.push(one);
                }
                answers
            }
        },
    };
    // Back to the callers' order: `answers` follows `order`.
    let mut by_caller: Vec<Option<Result<KeyedInsert, StoreError>>> =
        (0..batch.len()).map(|_| None).collect();
    for (&i, answer) in order.iter().zip(answers) {
        by_caller[i] = Some(answer);
    }
    for ((pending, duplicate), answer) in batch.drain(..).zip(duplicate).zip(by_caller) {
        let answer = if duplicate {
            Ok(KeyedInsert::KeyTaken)
        } else {
            answer.unwrap_or_else(|| {
                Err(StoreError::Failed(
                    "group commit lost a row's answer".into(),
                ))
            })
        };
        // The caller may have gone (its request was cancelled); the row stands.
        let _ = pending.done.send(answer);
    }
}

fn count(counters: &Counters, rows: usize) {
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .rows
        .fetch_add(u64::try_from(rows).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// The columns a session writes into `transactions`, in parameter order:
/// name, the array type its parameter arrives as, and whether the value is a
/// text array literal to cast back (see [`text_array_literal`]).
const TRANSACTION_COLUMNS: [(&str, &str, bool); 32] = [
    ("merchant_transaction_id", "uuid", false),
    ("partner_id", "text", false),
    ("partner_user_id", "text", false),
    ("user_email", "text", false),
    ("tx_type", "text", false),
    ("currency", "text", false),
    ("network", "text", false),
    ("amount", "text", false),
    ("address", "text", false),
    ("client_ip", "text", false),
    ("redirect_url", "text", false),
    ("widget_id", "uuid", false),
    ("widget_currencies", "text", true),
    ("widget_networks", "text", true),
    ("widget_fiat_currency", "text", false),
    ("widget_fiat_currencies", "text", true),
    ("widget_lang", "text", false),
    ("widget_theme", "text", false),
    ("signature", "text", false),
    ("signing_kid", "text", false),
    ("init_token_jti", "text", false),
    ("init_token_expires_at", "timestamptz", false),
    ("created_at", "timestamptz", false),
    ("status", "text", false),
    ("crypto_amount", "text", false),
    ("fiat_amount", "text", false),
    ("fiat_currency", "text", false),
    ("payment_method", "text", false),
    ("updated_at", "timestamptz", false),
    ("idempotency_key", "text", false),
    ("idempotency_fingerprint", "bytea", false),
    ("test_mode", "bool", false),
];

/// The primary key of `transactions`: a keyed session's id is its key's, so
/// this index is also what holds idempotency keys.
const ID_INDEX: &str = "transactions_pkey";

/// The group-commit statement. Parameters are parallel arrays, one element
/// per distinct end user ($1..$4) and per session ($5..).
///
/// `new_users` inserts the end users not seen before (`ON CONFLICT DO
/// NOTHING`); `changed_emails` updates the users that existed before the
/// statement, and only those whose email changed (`IS DISTINCT FROM`), so an
/// unchanged user is never locked. Both see the snapshot taken before the
/// statement, so a user is either inserted or updated, never both. The main
/// INSERT writes the transactions. Every transaction's end user thus exists
/// once the statement commits: the invariant a foreign key kept until
/// migration 0012, which a distributed layout could not keep (end users and
/// transactions are sharded by different columns). List columns arrive as
/// text array literals and are cast back with `::text[]`.
///
/// A session's idempotency key and fingerprint (NULL without one) go in with
/// its row; a keyed session whose id (its key's) another session holds fails
/// the whole statement with a unique violation (after waiting for that
/// session's transaction to end), and write_batch then settles the keyed
/// rows, so only the losers fail.
static INSERT_SESSIONS: LazyLock<String> = LazyLock::new(|| {
    let arrays: Vec<String> = TRANSACTION_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (_, ty, _))| format!("${}::{ty}[]", i + 5))
        .collect();
    let names: Vec<&str> = TRANSACTION_COLUMNS.iter().map(|(name, ..)| *name).collect();
    let values: Vec<String> = TRANSACTION_COLUMNS
        .iter()
        .map(|(name, _, list)| {
            if *list {
                format!("{name}::text[]")
            } else {
                (*name).to_owned()
            }
        })
        .collect();
    format!(
        "WITH batch_users AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
        AS u (partner_id, partner_user_id, email, created_at)
), new_users AS (
    INSERT INTO end_users (partner_id, partner_user_id, email, created_at)
    SELECT partner_id, partner_user_id, email, created_at FROM batch_users
    ON CONFLICT (partner_id, partner_user_id) DO NOTHING
), changed_emails AS (
    UPDATE end_users SET email = b.email
    FROM batch_users b
    WHERE end_users.partner_id = b.partner_id
      AND end_users.partner_user_id = b.partner_user_id
      AND end_users.email IS DISTINCT FROM b.email
)
INSERT INTO transactions ({names})
SELECT {values} FROM unnest({arrays}) AS r ({names})",
        names = names.join(", "),
        values = values.join(", "),
        arrays = arrays.join(", "),
    )
});

/// Writes `rows` with one statement (one implicit transaction).
async fn insert_rows(client: &mut Client, rows: &[&Pending]) -> Result<(), Fault> {
    let sessions: Vec<&Session> = rows.iter().map(|p| p.session.as_ref()).collect();
    let users = BatchUsers::of(&sessions);
    let columns = SessionColumns::of(rows);
    let statement = client.prepare_cached(&INSERT_SESSIONS).await?;
    let mut params = users.params();
    params.extend(columns.params());
    client.execute(&statement, &params).await?;
    Ok(())
}

/// After a batch failed on a taken id: one look-up finds the keyed rows whose
/// id (their key's generation) a stored session has (`KeyTaken` at once), and
/// the others are written as a batch again; should that fail too, row by
/// row.
async fn settle_held_keys(
    db: &Db,
    rows: &[&Pending],
    counters: &Counters,
) -> Vec<Result<KeyedInsert, StoreError>> {
    let claims: Vec<Uuid> = rows.iter().filter_map(|row| row.claim()).collect();
    let taken = db
        .run(async |client| {
            let statement = client
                .prepare_cached(crate::idempotency::STORED_IDS)
                .await?;
            let found = client.query(&statement, &[&claims]).await?;
            found
                .iter()
                .map(|row| row.try_get(0).map_err(Fault::from))
                .collect::<Result<HashSet<Uuid>, Fault>>()
        })
        .await;
    let taken = match taken {
        Ok(taken) => taken,
        Err(error) => return vec![Err(error); rows.len()],
    };
    let is_taken = |row: &Pending| row.claim().is_some_and(|id| taken.contains(&id));
    let free: Vec<&Pending> = rows.iter().copied().filter(|row| !is_taken(row)).collect();
    let written = if free.is_empty() {
        Ok(())
    } else {
        db.run(async |client| insert_rows(client, &free).await)
            .await
    };
    let mut free_answers = match written {
        Ok(()) => {
            if !free.is_empty() {
                count(counters, free.len());
            }
            vec![Ok(KeyedInsert::Inserted); free.len()]
        }
        Err(_) => {
            let mut answers = Vec::with_capacity(free.len());
            for row in &free {
                let one = db.run(async |client| insert_one(client, row).await).await;
                if one == Ok(KeyedInsert::Inserted) {
                    count(counters, 1);
                }
                answers.push(one);
            }
            answers
        }
    }
    .into_iter();
    rows.iter()
        .map(|row| {
            if is_taken(row) {
                Ok(KeyedInsert::KeyTaken)
            } else {
                free_answers.next().unwrap_or_else(|| {
                    Err(StoreError::Failed(
                        "group commit lost a row's answer".into(),
                    ))
                })
            }
        })
        .collect()
}

/// Writes one row; a keyed session whose id is taken is `KeyTaken`.
async fn insert_one(client: &mut Client, row: &Pending) -> Result<KeyedInsert, Fault> {
    match insert_rows(client, &[row]).await {
        Ok(()) => Ok(KeyedInsert::Inserted),
        Err(error) if row.keyed.is_some() && is_unique_violation_of(&error.0, ID_INDEX) => {
            Ok(KeyedInsert::KeyTaken)
        }
        Err(error) => Err(error),
    }
}

/// One row per end user of a batch. With several rows for one
/// user, the UPDATE ... FROM would take the email of an arbitrary one of them
/// (and the INSERT the first): the last session of a user in the batch gives
/// the email ("latest wins"). The BTreeMap's key order is the order the
/// INSERT adds new users in, so two batches adding the same new users wait
/// for each other instead of deadlocking. The UPDATE locks in the plan's
/// order, but only users whose email changed; if two batches deadlock there,
/// PostgreSQL aborts one and write_batch writes its rows one by one.
struct BatchUsers<'a> {
    partners: Vec<&'a str>,
    ids: Vec<&'a str>,
    emails: Vec<&'a str>,
    created: Vec<PgTime>,
}

impl<'a> BatchUsers<'a> {
    fn of(sessions: &[&'a Session]) -> Self {
        let mut users: BTreeMap<(&str, &str), (&str, PgTime)> = BTreeMap::new();
        for s in sessions {
            users.insert(
                (s.partner_id.as_str(), s.user.partner_user_id.as_str()),
                (s.user.email.as_str(), PgTime(s.created_at)),
            );
        }
        Self {
            partners: users.keys().map(|(partner, _)| *partner).collect(),
            ids: users.keys().map(|(_, user)| *user).collect(),
            emails: users.values().map(|(email, _)| *email).collect(),
            created: users.values().map(|(_, at)| *at).collect(),
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        vec![&self.partners, &self.ids, &self.emails, &self.created]
    }
}

/// The sessions' columns as parallel arrays, in [`TRANSACTION_COLUMNS`] order.
struct SessionColumns<'a> {
    ids: Vec<Uuid>,
    partner_ids: Vec<&'a str>,
    user_of: Vec<&'a str>,
    emails: Vec<&'a str>,
    tx_types: Vec<&'a str>,
    currencies: Vec<&'a str>,
    networks: Vec<&'a str>,
    amounts: Vec<&'a str>,
    addresses: Vec<&'a str>,
    client_ips: Vec<Option<&'a str>>,
    redirect_urls: Vec<Option<&'a str>>,
    widget_ids: Vec<Uuid>,
    widget_currencies: Vec<String>,
    widget_networks: Vec<String>,
    widget_fiat: Vec<&'a str>,
    widget_fiat_list: Vec<String>,
    langs: Vec<&'a str>,
    themes: Vec<&'a str>,
    signatures: Vec<&'a str>,
    kids: Vec<&'a str>,
    jtis: Vec<&'a str>,
    jti_expiry: Vec<PgTime>,
    created: Vec<PgTime>,
    statuses: Vec<&'static str>,
    crypto_amounts: Vec<Option<String>>,
    fiat_amounts: Vec<Option<String>>,
    fiat_currencies: Vec<String>,
    payment_methods: Vec<Option<String>>,
    updated: Vec<PgTime>,
    keys: Vec<Option<&'a str>>,
    fingerprints: Vec<Option<&'a [u8]>>,
    test_modes: Vec<bool>,
}

impl<'a> SessionColumns<'a> {
    fn of(rows: &[&'a Pending]) -> Self {
        let sessions: Vec<&'a Session> = rows.iter().map(|p| p.session.as_ref()).collect();
        let column = |f: fn(&'a Session) -> &'a str| sessions.iter().map(|s| f(s)).collect();
        let lists = |f: fn(&Session) -> String| sessions.iter().map(|s| f(s)).collect();
        let states: Vec<_> = sessions.iter().map(|s| s.initial_state()).collect();
        Self {
            ids: sessions.iter().map(|s| s.merchant_transaction_id).collect(),
            partner_ids: column(|s| s.partner_id.as_str()),
            user_of: column(|s| s.user.partner_user_id.as_str()),
            emails: column(|s| s.user.email.as_str()),
            tx_types: column(|s| s.tx_type.as_str()),
            currencies: column(|s| s.currency.as_str()),
            networks: column(|s| s.network.as_str()),
            amounts: column(|s| s.amount.as_str()),
            addresses: column(|s| s.address.as_str()),
            client_ips: sessions
                .iter()
                .map(|s| s.client_ip.as_ref().map(|ip| ip.as_str()))
                .collect(),
            redirect_urls: sessions
                .iter()
                .map(|s| s.redirect_url.as_ref().map(|url| url.as_str()))
                .collect(),
            widget_ids: sessions.iter().map(|s| s.widget.widget_id).collect(),
            widget_currencies: lists(|s| {
                text_array_literal(s.widget.currencies.iter().map(Code::as_str))
            }),
            widget_networks: lists(|s| {
                text_array_literal(s.widget.networks.iter().map(Code::as_str))
            }),
            widget_fiat: column(|s| s.widget.fiat_currency.as_str()),
            widget_fiat_list: lists(|s| {
                text_array_literal(s.widget.fiat_currencies.iter().map(Code::as_str))
            }),
            langs: column(|s| s.widget.lang.as_str()),
            themes: column(|s| s.widget.theme.as_str()),
            signatures: column(|s| s.signature.as_str()),
            kids: column(|s| &*s.signing_kid),
            jtis: column(|s| s.init_token_jti.as_str()),
            jti_expiry: sessions
                .iter()
                .map(|s| PgTime(s.init_token_expires_at))
                .collect(),
            created: sessions.iter().map(|s| PgTime(s.created_at)).collect(),
            statuses: states.iter().map(|t| t.status.as_str()).collect(),
            crypto_amounts: states.iter().map(|t| t.crypto_amount.clone()).collect(),
            fiat_amounts: states.iter().map(|t| t.fiat_amount.clone()).collect(),
            fiat_currencies: states
                .iter()
                .map(|t| t.fiat_currency.as_str().to_owned())
                .collect(),
            payment_methods: states.iter().map(|t| t.payment_method.clone()).collect(),
            updated: states.iter().map(|t| PgTime(t.updated_at)).collect(),
            keys: rows
                .iter()
                .map(|p| p.keyed.as_ref().map(|k| k.key.as_str()))
                .collect(),
            fingerprints: rows
                .iter()
                .map(|p| {
                    p.keyed
                        .as_ref()
                        .map(|k| k.fingerprint.as_bytes().as_slice())
                })
                .collect(),
            test_modes: sessions.iter().map(|s| s.test_mode).collect(),
        }
    }

    /// The parameters in [`TRANSACTION_COLUMNS`] order.
    fn params(&self) -> [&(dyn ToSql + Sync); TRANSACTION_COLUMNS.len()] {
        [
            &self.ids,
            &self.partner_ids,
            &self.user_of,
            &self.emails,
            &self.tx_types,
            &self.currencies,
            &self.networks,
            &self.amounts,
            &self.addresses,
            &self.client_ips,
            &self.redirect_urls,
            &self.widget_ids,
            &self.widget_currencies,
            &self.widget_networks,
            &self.widget_fiat,
            &self.widget_fiat_list,
            &self.langs,
            &self.themes,
            &self.signatures,
            &self.kids,
            &self.jtis,
            &self.jti_expiry,
            &self.created,
            &self.statuses,
            &self.crypto_amounts,
            &self.fiat_amounts,
            &self.fiat_currencies,
            &self.payment_methods,
            &self.updated,
            &self.keys,
            &self.fingerprints,
            &self.test_modes,
        ]
    }
}

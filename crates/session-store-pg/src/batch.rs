//! Group commit for `insert_session`, the one write on the hot path.
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
//! bad row fails alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use session_core::ports::StoreError;
use session_core::session::Session;
use session_core::value::Code;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use crate::db::{Client, Db};
use crate::error::Fault;
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

/// A session waiting to be written, and where its answer goes.
#[derive(Debug)]
struct Pending {
    session: Arc<Session>,
    done: oneshot::Sender<Result<(), StoreError>>,
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
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            session: Arc::clone(session),
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
    let sessions: Vec<&Session> = batch.iter().map(|p| p.session.as_ref()).collect();
    let outcome = db
        .run(async |client| insert_rows(client, &sessions).await)
        .await;
    let answers: Vec<Result<(), StoreError>> = match outcome {
        Ok(()) => {
            count(counters, sessions.len());
            vec![Ok(()); batch.len()]
        }
        // Unreachable database: each row would fail the same way, and the
        // batch may even have committed just before the connection broke.
        // Either way the answer is "unavailable", as for a single insert.
        Err(error @ StoreError::Unavailable(_)) => vec![Err(error); batch.len()],
        Err(error) if batch.len() == 1 => vec![Err(error)],
        Err(error) => {
            tracing::debug!(rows = batch.len(), %error, "group commit failed; writing rows one by one");
            counters.split_batches.fetch_add(1, Ordering::Relaxed);
            let mut answers = Vec::with_capacity(batch.len());
            for session in &sessions {
                // Once the database is gone, the rest fail the same way at once
                // rather than each waiting out its own timeout.
                if let Some(Err(lost @ StoreError::Unavailable(_))) = answers.last() {
                    let lost = Err(lost.clone());
                    answers.push(lost);
                    continue;
                }
                let one = db
                    .run(async |client| insert_rows(client, &[session]).await)
                    .await;
                if one.is_ok() {
                    count(counters, 1);
                }
                answers.push(one);
            }
            answers
        }
    };
    for (pending, answer) in batch.drain(..).zip(answers) {
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

/// The group-commit statement. Parameters are parallel arrays, one element per
/// session ($5..) and per distinct end user ($1..$4).
///
/// `new_users` inserts the end users not seen before (`ON CONFLICT DO
/// NOTHING`); `changed_emails` updates the users that existed before the
/// statement, and only those whose email changed (`IS DISTINCT FROM`), so an
/// unchanged user is never locked. Both see the snapshot taken before the
/// statement, so a user is either inserted or updated, never both. The main
/// INSERT writes the transactions; its foreign key to end_users is checked at
/// the end of the statement, when the CTEs' rows exist. List columns arrive as
/// text array literals (see [`text_array_literal`]) and are cast back with
/// `::text[]`.
const INSERT_SESSIONS: &str = "\
WITH batch_users AS (
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
INSERT INTO transactions (
    merchant_transaction_id, partner_id, partner_user_id, user_email, tx_type, currency,
    network, amount, address, client_ip, redirect_url, widget_id, widget_currencies,
    widget_networks, widget_fiat_currency, widget_fiat_currencies, widget_lang, widget_theme,
    signature, signing_kid, init_token_jti, init_token_expires_at, created_at,
    status, crypto_amount, fiat_amount, fiat_currency, payment_method, updated_at)
SELECT id, partner_id, partner_user_id, user_email, tx_type, currency,
    network, amount, address, client_ip, redirect_url, widget_id, widget_currencies::text[],
    widget_networks::text[], widget_fiat_currency, widget_fiat_currencies::text[], widget_lang,
    widget_theme, signature, signing_kid, init_token_jti, init_token_expires_at, created_at,
    status, crypto_amount, fiat_amount, fiat_currency, payment_method, updated_at
FROM unnest(
    $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
    $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::uuid[], $17::text[],
    $18::text[], $19::text[], $20::text[], $21::text[], $22::text[],
    $23::text[], $24::text[], $25::text[], $26::timestamptz[], $27::timestamptz[],
    $28::text[], $29::text[], $30::text[], $31::text[], $32::text[], $33::timestamptz[]
) AS r (
    id, partner_id, partner_user_id, user_email, tx_type, currency,
    network, amount, address, client_ip, redirect_url, widget_id, widget_currencies,
    widget_networks, widget_fiat_currency, widget_fiat_currencies, widget_lang, widget_theme,
    signature, signing_kid, init_token_jti, init_token_expires_at, created_at,
    status, crypto_amount, fiat_amount, fiat_currency, payment_method, updated_at)";

/// Writes `sessions` with one statement (one implicit transaction).
async fn insert_rows(client: &mut Client, sessions: &[&Session]) -> Result<(), Fault> {
    // One row per end user: with several rows for one user, the UPDATE ...
    // FROM would take the email of an arbitrary one of them (and the INSERT
    // the first). The last session of a user in the batch gives the email
    // ("latest wins"). The BTreeMap's key order is the order the INSERT adds
    // new users in, so two batches adding the same new users wait for each
    // other instead of deadlocking. The UPDATE locks in the plan's order, but
    // only users whose email changed; if two batches deadlock there,
    // PostgreSQL aborts one and write_batch writes its rows one by one.
    let mut users: BTreeMap<(&str, &str), (&str, PgTime)> = BTreeMap::new();
    for s in sessions {
        users.insert(
            (s.partner_id.as_str(), s.user.partner_user_id.as_str()),
            (s.user.email.as_str(), PgTime(s.created_at)),
        );
    }
    let user_partners: Vec<&str> = users.keys().map(|(partner, _)| *partner).collect();
    let user_ids: Vec<&str> = users.keys().map(|(_, user)| *user).collect();
    let user_emails: Vec<&str> = users.values().map(|(email, _)| *email).collect();
    let user_created: Vec<PgTime> = users.values().map(|(_, at)| *at).collect();

    let states: Vec<_> = sessions.iter().map(|s| s.initial_state()).collect();
    let column = |f: fn(&Session) -> &str| sessions.iter().map(|s| f(s)).collect::<Vec<&str>>();
    let lists = |f: fn(&Session) -> String| sessions.iter().map(|s| f(s)).collect::<Vec<String>>();
    let ids: Vec<Uuid> = sessions.iter().map(|s| s.merchant_transaction_id).collect();
    let partner_ids = column(|s| s.partner_id.as_str());
    let user_of = column(|s| s.user.partner_user_id.as_str());
    let emails = column(|s| s.user.email.as_str());
    let tx_types = column(|s| s.tx_type.as_str());
    let currencies = column(|s| s.currency.as_str());
    let networks = column(|s| s.network.as_str());
    let amounts = column(|s| s.amount.as_str());
    let addresses = column(|s| s.address.as_str());
    let client_ips: Vec<Option<&str>> = sessions
        .iter()
        .map(|s| s.client_ip.as_ref().map(|ip| ip.as_str()))
        .collect();
    let redirect_urls: Vec<Option<&str>> = sessions
        .iter()
        .map(|s| s.redirect_url.as_ref().map(|url| url.as_str()))
        .collect();
    let widget_ids: Vec<Uuid> = sessions.iter().map(|s| s.widget.widget_id).collect();
    let widget_currencies =
        lists(|s| text_array_literal(s.widget.currencies.iter().map(Code::as_str)));
    let widget_networks = lists(|s| text_array_literal(s.widget.networks.iter().map(Code::as_str)));
    let widget_fiat = column(|s| s.widget.fiat_currency.as_str());
    let widget_fiat_list =
        lists(|s| text_array_literal(s.widget.fiat_currencies.iter().map(Code::as_str)));
    let langs = column(|s| s.widget.lang.as_str());
    let themes = column(|s| s.widget.theme.as_str());
    let signatures = column(|s| s.signature.as_str());
    let kids = column(|s| &*s.signing_kid);
    let jtis = column(|s| s.init_token_jti.as_str());
    let jti_expiry: Vec<PgTime> = sessions
        .iter()
        .map(|s| PgTime(s.init_token_expires_at))
        .collect();
    let created: Vec<PgTime> = sessions.iter().map(|s| PgTime(s.created_at)).collect();
    let statuses: Vec<&str> = states.iter().map(|t| t.status.as_str()).collect();
    let crypto_amounts: Vec<Option<&str>> =
        states.iter().map(|t| t.crypto_amount.as_deref()).collect();
    let fiat_amounts: Vec<Option<&str>> = states.iter().map(|t| t.fiat_amount.as_deref()).collect();
    let fiat_currencies: Vec<&str> = states.iter().map(|t| t.fiat_currency.as_str()).collect();
    let payment_methods: Vec<Option<&str>> =
        states.iter().map(|t| t.payment_method.as_deref()).collect();
    let updated: Vec<PgTime> = states.iter().map(|t| PgTime(t.updated_at)).collect();

    let statement = client.prepare_cached(INSERT_SESSIONS).await?;
    client
        .execute(
            &statement,
            &[
                &user_partners,
                &user_ids,
                &user_emails,
                &user_created,
                &ids,
                &partner_ids,
                &user_of,
                &emails,
                &tx_types,
                &currencies,
                &networks,
                &amounts,
                &addresses,
                &client_ips,
                &redirect_urls,
                &widget_ids,
                &widget_currencies,
                &widget_networks,
                &widget_fiat,
                &widget_fiat_list,
                &langs,
                &themes,
                &signatures,
                &kids,
                &jtis,
                &jti_expiry,
                &created,
                &statuses,
                &crypto_amounts,
                &fiat_amounts,
                &fiat_currencies,
                &payment_methods,
                &updated,
            ],
        )
        .await?;
    Ok(())
}

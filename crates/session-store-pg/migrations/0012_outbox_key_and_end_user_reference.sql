-- Two changes a distributed layout needs (docs/scaling.md, "Citus"): a
-- distributed table's unique keys must include its distribution column, and
-- its foreign keys must stay within its co-location group.
--
-- The outbox's primary key becomes (merchant_transaction_id, id), led by the
-- column a distributed layout would shard the outbox by, so the key could
-- hold on every shard alone. Every hot statement finds deliveries by their
-- transaction and id (the dispatcher's claim, attempt records, releases) or
-- by their transaction alone (a provider event's write, the status feed's
-- reads), which the new key serves as outbox_by_transaction did, so that
-- index goes. Ids still come from one sequence, so they stay unique, though
-- no unique index says so any more. An operator's requeue and the
-- operators' listing without a partner or a transaction find deliveries by
-- id alone: a plain index on id serves them (a distributed table may have
-- one), so the outbox keeps the number of indexes it had.
--
-- The foreign key from transactions to end_users goes: end_users would be
-- distributed by partner_id, transactions by merchant_transaction_id. The
-- invariant it guarded, that a transaction's end user exists, is now the
-- application's: the group-commit statement writes the end user in the same
-- statement as the transaction, and nothing deletes end users.
--
-- Cost: the unique index is built under a SHARE lock, so writes to the
-- outbox (provider events' status changes) wait while it builds, about a
-- second per million rows on two cores; migrations run in one transaction,
-- where CONCURRENTLY is not available. It is built before the ALTER TABLE,
-- whose exclusive lock (reads wait too) is then held only from the key swap,
-- which scans nothing (both columns are NOT NULL), to the commit. Dropping
-- the foreign key scans nothing either; it locks transactions from there to
-- the commit, which follows at once.
--
-- An instance of an earlier version still running beside this schema keeps
-- working until it is replaced: its dispatcher's claim updates the chosen
-- deliveries by id alone, through the index on id. Its session inserts
-- write the end user in the same statement, as they always did.
CREATE UNIQUE INDEX outbox_transaction_key ON outbox (merchant_transaction_id, id);

ALTER TABLE outbox
    DROP CONSTRAINT outbox_pkey,
    ADD CONSTRAINT outbox_pkey PRIMARY KEY USING INDEX outbox_transaction_key;

DROP INDEX outbox_by_transaction;

CREATE INDEX outbox_by_id ON outbox (id);

ALTER TABLE transactions DROP CONSTRAINT transactions_partner_id_partner_user_id_fkey;

-- outbox_record_final (migration 0009) finds the transaction's next pending
-- delivery by the transaction itself rather than through the updated row:
-- joined to the CTE, the planner's generic plan for a table it has no
-- statistics for yet (a new database, or one autovacuum has not analysed
-- since the key changed) was a sequential scan of the whole outbox per
-- recorded attempt. Named by the parameter, it is a probe of the primary
-- key. Nothing else changes: one statement, one snapshot, and a delivery
-- that is not of that transaction (or is gone) still changes nothing.
CREATE OR REPLACE FUNCTION outbox_record_final(
    p_transaction uuid,
    p_id bigint,
    p_attempted_at timestamptz,
    p_result text,
    p_state text,
    p_delivered_at timestamptz
) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM transactions
    WHERE merchant_transaction_id = p_transaction
    FOR NO KEY UPDATE;

    WITH r AS (
        UPDATE outbox SET attempts = attempts + 1, last_attempt_at = p_attempted_at,
            last_result = p_result, state = p_state, next_attempt_at = NULL,
            delivered_at = p_delivered_at, blocked = false
        WHERE merchant_transaction_id = p_transaction AND id = p_id
        RETURNING id)
    UPDATE outbox SET blocked = false
    WHERE merchant_transaction_id = p_transaction
      AND EXISTS (SELECT 1 FROM r)
      AND id = (SELECT min(e.id) FROM outbox e
                WHERE e.merchant_transaction_id = p_transaction
                  AND e.state = 'pending' AND e.id <> p_id);
END
$$;

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

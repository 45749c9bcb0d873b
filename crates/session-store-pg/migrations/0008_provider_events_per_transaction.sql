-- A provider event is identified by its transaction and its `event_id`: the
-- same `event_id` on two transactions is two events, each applied once, and a
-- replay of an event on its transaction changes nothing. The key leads with
-- the transaction, the column a distributed layout would shard
-- provider_events by (docs/ARCHITECTURE.md), so the uniqueness that makes
-- events exactly-once could hold on every shard alone.
--
-- An instance of an earlier version still running beside this schema fails
-- its event inserts (its ON CONFLICT names the old key) until it is replaced;
-- the provider delivers those events again.
ALTER TABLE provider_events
    DROP CONSTRAINT provider_events_pkey,
    ADD PRIMARY KEY (merchant_transaction_id, event_id);

-- A pending delivery is `blocked` while an earlier delivery of its transaction
-- is still pending: events go out in order, one at a time per transaction.
-- The flag keeps the dispatchers' claim an index range scan over deliveries
-- that can go now, however many are waiting behind a failing endpoint (before
-- it, every claim tested every due row for an earlier pending one).
--
-- Invariant: of a transaction's pending deliveries exactly the oldest is not
-- blocked. Every write that changes which rows are pending holds the
-- transaction's row lock (FOR NO KEY UPDATE on `transactions`), as the
-- provider event that inserts them does, so the flag never goes stale.
ALTER TABLE outbox ADD COLUMN blocked boolean NOT NULL DEFAULT false;

UPDATE outbox o SET blocked = true
WHERE o.state = 'pending'
  AND EXISTS (
      SELECT 1 FROM outbox e
      WHERE e.merchant_transaction_id = o.merchant_transaction_id
        AND e.state = 'pending' AND e.id < o.id);

DROP INDEX outbox_pending;
-- The dispatcher's queue: deliveries that can go now, by due time.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending' AND NOT blocked;

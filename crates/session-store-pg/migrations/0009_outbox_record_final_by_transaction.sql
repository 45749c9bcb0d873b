-- outbox_record_final (migration 0005) takes the delivery's transaction
-- beside its id, and every statement of it names the transaction: it locks
-- the transaction's row directly, and finds the delivery and the next one by
-- (merchant_transaction_id, id), the column a distributed layout would shard
-- the outbox by (docs/ARCHITECTURE.md). Nothing else changes: the lock is
-- still taken before the next delivery is read, each statement with its own
-- snapshot, and a delivery that is not of that transaction (or is gone)
-- changes nothing.
--
-- An instance of an earlier version still running beside this schema fails
-- to record its final attempts until it is replaced; their leases end and the
-- deliveries are tried again.
DROP FUNCTION outbox_record_final(bigint, timestamptz, text, text, timestamptz);

CREATE FUNCTION outbox_record_final(
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
        RETURNING merchant_transaction_id)
    UPDATE outbox SET blocked = false
    WHERE merchant_transaction_id = p_transaction
      AND id = (SELECT min(e.id) FROM outbox e, r
                WHERE e.merchant_transaction_id = r.merchant_transaction_id
                  AND e.state = 'pending' AND e.id <> p_id);
END
$$;

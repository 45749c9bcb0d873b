-- Recording a delivery's final attempt (delivered or failed) in one round
-- trip instead of three (BEGIN, the lock and the update pipelined, COMMIT):
-- the dispatcher's outbox pool is small, and each record held one of its
-- connections for all three.
--
-- Migration 0004's invariant still holds: the transaction's row lock is taken
-- before the transaction's next delivery is read, and that read sees every
-- delivery committed before the lock was granted, because in READ COMMITTED
-- each statement of a VOLATILE function (the default) takes a fresh snapshot.
-- The lock and the update are two statements here for that reason, as they
-- were two statements of one transaction before.
CREATE FUNCTION outbox_record_final(
    p_id bigint,
    p_attempted_at timestamptz,
    p_result text,
    p_state text,
    p_delivered_at timestamptz
) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM transactions
    WHERE merchant_transaction_id =
          (SELECT merchant_transaction_id FROM outbox WHERE id = p_id)
    FOR NO KEY UPDATE;

    WITH r AS (
        UPDATE outbox SET attempts = attempts + 1, last_attempt_at = p_attempted_at,
            last_result = p_result, state = p_state, next_attempt_at = NULL,
            delivered_at = p_delivered_at, blocked = false
        WHERE id = p_id
        RETURNING merchant_transaction_id)
    UPDATE outbox SET blocked = false
    WHERE id = (SELECT min(e.id) FROM outbox e, r
                WHERE e.merchant_transaction_id = r.merchant_transaction_id
                  AND e.state = 'pending' AND e.id <> p_id);
END
$$;

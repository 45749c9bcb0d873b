-- `Idempotency-Key`s (SPEC.md §2, Idempotency), kept on the transaction they
-- created.
--
-- The key is written by the same INSERT as its session, so a crash can never
-- leave one without the other, and a replay renders the transaction again
-- (its init token reminted: tokens are deterministic in their claims), so no
-- live token is kept beside it. On the row rather than in a table of its
-- own: a keyed session then costs one more index entry, not a second row
-- with its own heap tuple, index and WAL record (measured: a side table kept
-- 0.68 to 0.80 of the throughput without a key; see
-- docs/performance-idempotency.md).
--
-- The unique index decides between concurrent requests with one key, on any
-- instance: the loser's statement fails (after the winner commits) and
-- writes nothing. The reaper clears keys older than --idempotency-ttl,
-- oldest first through the second index, which holds only rows that still
-- have a key.
ALTER TABLE transactions
    ADD COLUMN idempotency_key text,
    ADD COLUMN idempotency_fingerprint bytea,
    ADD CONSTRAINT transactions_idempotency_pair
        CHECK ((idempotency_key IS NULL) = (idempotency_fingerprint IS NULL)),
    ADD CONSTRAINT transactions_idempotency_key_length
        CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    ADD CONSTRAINT transactions_idempotency_fingerprint_length
        CHECK (length(idempotency_fingerprint) = 32);

CREATE UNIQUE INDEX transactions_idempotency_key
    ON transactions (partner_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE INDEX transactions_idempotency_expiry
    ON transactions (created_at)
    WHERE idempotency_key IS NOT NULL;

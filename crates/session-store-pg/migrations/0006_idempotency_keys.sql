-- Answers kept under partners' `Idempotency-Key`s (SPEC.md §2, Idempotency).
--
-- A row is written in the same statement, and so the same transaction, as the
-- session it answers: a crash can never leave one without the other. The
-- primary key decides between concurrent requests with one key, on any
-- instance. `response_body` is the `200` body byte for byte; it holds the
-- session's init token, which is single-use and expires with the session.
CREATE TABLE idempotency_keys (
    partner_id              text        NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    idempotency_key         text        NOT NULL,
    fingerprint             bytea       NOT NULL,
    merchant_transaction_id uuid        NOT NULL,
    response_body           bytea       NOT NULL,
    created_at              timestamptz NOT NULL,
    PRIMARY KEY (partner_id, idempotency_key),
    CONSTRAINT idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    CONSTRAINT idempotency_fingerprint_length CHECK (length(fingerprint) = 32)
);

-- The reaper deletes expired answers oldest first, in bounded batches.
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

-- `Idempotency-Key`s are held by the transaction's primary key from now on: a
-- keyed session's merchant_transaction_id is derived from its partner, the
-- key and a generation (session_core::idempotency::keyed_transaction_id), so
-- of two requests with one key the second insert of the same id fails, on
-- any instance, and a look-up by key is a look-up by transaction id. That is
-- what lets `transactions` be distributed by merchant_transaction_id
-- (docs/scaling.md, "Citus"): a unique index on (partner_id,
-- idempotency_key) could not exist on such a table, and a look-up by it
-- would ask every node.
--
-- Keys written before this migration hold sessions with random ids, which no
-- derivation finds. They are copied to a table of their own, distributed by
-- partner (each look-up names one), which the store consults until it is
-- empty: the reaper deletes them as they expire, so it empties within one
-- --idempotency-ttl and is never written again.
--
-- The index on (partner_id, idempotency_key) goes: the primary key decides
-- now. An instance of an earlier version still running beside this schema
-- would no longer have it to decide between concurrent requests with one
-- key, nor would a session it keyed under a random id be found by this
-- version. So a keyed session must have a derived id (version 8, the 15th
-- character of its text form): an earlier version's keyed insert fails
-- (its caller gets a 500 and retries against a current instance) instead
-- of creating a second transaction for a key. NOT VALID: existing keyed
-- rows have random ids, and are found through the legacy table. Stop
-- earlier versions before starting this one all the same (as for 0008 and
-- 0009).
CREATE TABLE idempotency_legacy_keys (
    partner_id               text NOT NULL,
    idempotency_key          text NOT NULL,
    merchant_transaction_id  uuid NOT NULL,
    created_at               timestamptz NOT NULL,
    PRIMARY KEY (partner_id, idempotency_key)
);
-- The reaper deletes them oldest first.
CREATE INDEX idempotency_legacy_keys_by_age ON idempotency_legacy_keys (created_at);

INSERT INTO idempotency_legacy_keys (partner_id, idempotency_key, merchant_transaction_id, created_at)
SELECT partner_id, idempotency_key, merchant_transaction_id, created_at
FROM transactions
WHERE idempotency_key IS NOT NULL;

DROP INDEX transactions_idempotency_key;

ALTER TABLE transactions
    ADD CONSTRAINT transactions_keyed_ids_are_derived
        CHECK (idempotency_key IS NULL OR substr(merchant_transaction_id::text, 15, 1) = '8')
        NOT VALID;

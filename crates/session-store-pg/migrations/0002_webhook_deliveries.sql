-- Webhook deliveries live on their outbox rows. `state` is decided when the
-- row is written: 'pending' when the partner has a webhook then, 'none'
-- otherwise (the row still serves status subscribers).
ALTER TABLE outbox
    ADD COLUMN state text NOT NULL DEFAULT 'none'
        CHECK (state IN ('none', 'pending', 'delivered', 'failed')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0,
    -- When a pending delivery is due, or when its claim's lease ends.
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN last_attempt_at timestamptz,
    -- The HTTP status, or why there was none.
    ADD COLUMN last_result text;

DROP INDEX outbox_undelivered;
-- The dispatcher's queue: pending deliveries by due time.
CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) WHERE state = 'pending';
-- Operators' listings by partner.
CREATE INDEX outbox_deliveries_by_partner ON outbox (partner_id, id) WHERE state <> 'none';

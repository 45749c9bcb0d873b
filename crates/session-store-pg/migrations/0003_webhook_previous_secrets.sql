-- Rotated-out webhook secrets: each still signs, beside the current one, until
-- its grace period ends.
CREATE TABLE partner_webhook_secrets (
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    ordinal     integer NOT NULL,
    secret      text NOT NULL,
    not_after   timestamptz NOT NULL,
    PRIMARY KEY (partner_id, ordinal)
);

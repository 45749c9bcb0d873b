-- The initial schema of the widget session service.
--
-- Conventions: timestamps are timestamptz (microsecond precision, the same as the
-- core's Timestamp); enumerations are text with a CHECK so that psql shows
-- readable values; configuration lists keep their order through an ordinal
-- column (child tables) or a text[] (plain string lists).

-- Partners: one row per partner, the scalar part of its PartnerSpec. Secrets are
-- stored as configured: the service needs them in clear to key its MACs.
CREATE TABLE partners (
    id                      text PRIMARY KEY,
    name                    text NOT NULL,
    offramp_enabled         boolean NOT NULL,
    accept_client_address   boolean NOT NULL,
    redirect_hosts          text[] NOT NULL,
    webhook_url             text,
    webhook_secret          text,
    signature_scheme        text NOT NULL,
    widget_id               text NOT NULL,
    widget_currencies       text[] NOT NULL,
    widget_networks         text[] NOT NULL,
    widget_fiat_currency    text NOT NULL,
    widget_fiat_currencies  text[] NOT NULL,
    widget_default_type     text NOT NULL,
    widget_lang             text NOT NULL,
    widget_theme            text NOT NULL,
    widget_redirect_url     text,
    -- Fraction digits per currency, as two parallel arrays (code i has digits i).
    widget_decimal_codes    text[] NOT NULL,
    widget_decimal_digits   smallint[] NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT partners_decimals_parallel
        CHECK (cardinality(widget_decimal_codes) = cardinality(widget_decimal_digits))
);

-- List-valued parts of a partner, one row per element, in spec order. A
-- put_partner replaces them wholesale, so (partner_id, ordinal) is the only key:
-- the spec itself decides whether duplicates are acceptable.
CREATE TABLE partner_origins (
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    ordinal     integer NOT NULL,
    origin      text NOT NULL,
    PRIMARY KEY (partner_id, ordinal)
);

CREATE TABLE partner_ips (
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    ordinal     integer NOT NULL,
    ip_range    text NOT NULL,
    PRIMARY KEY (partner_id, ordinal)
);

CREATE TABLE partner_wallets (
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    ordinal     integer NOT NULL,
    currency    text NOT NULL,
    network     text NOT NULL,
    address     text NOT NULL,
    active      boolean NOT NULL,
    PRIMARY KEY (partner_id, ordinal)
);

-- Ordinal 0 is the current signing key; later ones are rotated-out keys that
-- still verify until not_after.
CREATE TABLE partner_signing_keys (
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    ordinal     integer NOT NULL,
    kid         text NOT NULL,
    secret      text NOT NULL,
    not_after   timestamptz,
    PRIMARY KEY (partner_id, ordinal)
);

-- Client tokens, stored only as their SHA-256 digest.
CREATE TABLE client_tokens (
    digest      bytea PRIMARY KEY CHECK (length(digest) = 32),
    partner_id  text NOT NULL REFERENCES partners (id) ON DELETE CASCADE,
    label       text NOT NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    revoked_at  timestamptz
);

-- PartnerRegistry::tokens lists a partner's tokens in this order.
CREATE INDEX client_tokens_by_partner ON client_tokens (partner_id, created_at, digest);

-- End users, per partner. The email is the latest one a session was opened with.
CREATE TABLE end_users (
    partner_id       text NOT NULL REFERENCES partners (id),
    partner_user_id  text NOT NULL,
    email            text NOT NULL,
    kyc_status       text NOT NULL DEFAULT 'not_started'
        CHECK (kyc_status IN ('not_started', 'pending', 'verified', 'failed')),
    kyc_updated_at   timestamptz,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (partner_id, partner_user_id)
);

-- Transactions: the session as agreed at creation (immutable columns, including
-- the email and the widget view it was created with), then its mutable state.
CREATE TABLE transactions (
    merchant_transaction_id  uuid PRIMARY KEY,
    partner_id               text NOT NULL,
    partner_user_id          text NOT NULL,
    user_email               text NOT NULL,
    tx_type                  text NOT NULL CHECK (tx_type IN ('buy', 'sell')),
    currency                 text NOT NULL,
    network                  text NOT NULL,
    amount                   text NOT NULL,
    address                  text NOT NULL,
    client_ip                text,
    redirect_url             text,
    widget_id                uuid NOT NULL,
    widget_currencies        text[] NOT NULL,
    widget_networks          text[] NOT NULL,
    widget_fiat_currency     text NOT NULL,
    widget_fiat_currencies   text[] NOT NULL,
    widget_lang              text NOT NULL,
    widget_theme             text NOT NULL,
    signature                text NOT NULL,
    signing_kid              text NOT NULL,
    init_token_jti           text NOT NULL,
    init_token_expires_at    timestamptz NOT NULL,
    created_at               timestamptz NOT NULL,
    redeemed_at              timestamptz,
    status                   text NOT NULL
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    crypto_amount            text,
    fiat_amount              text,
    fiat_currency            text NOT NULL,
    payment_method           text,
    updated_at               timestamptz NOT NULL,
    FOREIGN KEY (partner_id, partner_user_id) REFERENCES end_users (partner_id, partner_user_id)
);
-- No secondary index: every query is by merchant_transaction_id, and rows are
-- never deleted, so the foreign key needs no index on the referencing side.
-- Each index would be one more write on the hottest path (POST /widget/session).

-- Provider event ids seen, for exactly-once application. Rows are written in
-- the transaction that applies the event, so an unknown transaction (rolled
-- back) leaves no id behind.
CREATE TABLE provider_events (
    event_id                 text PRIMARY KEY,
    merchant_transaction_id  uuid NOT NULL,
    received_at              timestamptz NOT NULL,
    -- Whether the event moved the transaction's status.
    applied                  boolean NOT NULL
);

-- The durable outbox: one row per applied status change, written in the same
-- transaction as the change. `event` is the adapter's JSON form of StatusChanged.
CREATE TABLE outbox (
    id                       bigserial PRIMARY KEY,
    partner_id               text NOT NULL,
    merchant_transaction_id  uuid NOT NULL,
    event                    jsonb NOT NULL,
    created_at               timestamptz NOT NULL,
    delivered_at             timestamptz
);

-- status_events(id): a transaction's events, oldest first.
CREATE INDEX outbox_by_transaction ON outbox (merchant_transaction_id, id);
-- The webhook dispatcher's queue: only undelivered rows, oldest first.
CREATE INDEX outbox_undelivered ON outbox (id) WHERE delivered_at IS NULL;

-- Secrets shared by every instance on this database (e.g. the init-token key),
-- created once by whichever instance asks first.
CREATE TABLE service_secrets (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A partner's own request budget on the partner API (SPEC.md §2 "Rate
-- limits"). Both NULL: the server's --default-rate-limit applies.
-- rate_limit_per_second = 0 is unlimited (burst 0 then); otherwise the burst
-- is at least 1 (bigint: a burst is any unsigned 32-bit number). Existing
-- partners keep the default.
ALTER TABLE partners
    ADD COLUMN rate_limit_per_second bigint,
    ADD COLUMN rate_limit_burst bigint,
    ADD CONSTRAINT partners_rate_limit_valid CHECK (
        (rate_limit_per_second IS NULL AND rate_limit_burst IS NULL)
        OR (rate_limit_per_second = 0 AND rate_limit_burst = 0)
        OR (rate_limit_per_second > 0 AND rate_limit_burst > 0)
    );

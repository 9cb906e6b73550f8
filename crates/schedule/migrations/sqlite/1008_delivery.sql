-- Many workers, one throttle, delivery per destination (issue 13).
--
-- The throttle's state (GCRA), shared by every worker and updated in the claim
-- transaction: one row per limited key ('global', 'account:<n>', 'site:<name>').
-- `tat` is the key's theoretical arrival time, `ready_at` the earliest time it
-- lets another message go (tat minus the burst's tolerance); Unix microseconds.
CREATE TABLE herald_throttle (
    name     TEXT   PRIMARY KEY,
    account  BIGINT,
    site     TEXT,
    tat      BIGINT NOT NULL,
    ready_at BIGINT NOT NULL
);
CREATE INDEX herald_throttle_ready ON herald_throttle (ready_at);

-- A receiving site: the MX hosts some domains share (all Google-hosted domains
-- are one site), the limits workers apply to it, and its back-off state.
CREATE TABLE herald_sites (
    name            TEXT   PRIMARY KEY,
    provider        TEXT,
    hosts           TEXT   NOT NULL,            -- the MX host names, JSON
    rate_interval   BIGINT,                     -- microseconds between messages; NULL: no rate
    rate_burst      BIGINT NOT NULL DEFAULT 1,
    max_connections BIGINT NOT NULL,
    suspended_until BIGINT,                     -- Unix ms: nothing for it is claimed before
    slowed_until    BIGINT,                     -- Unix ms: its rate is divided by slow_factor until
    slow_factor     BIGINT NOT NULL DEFAULT 1,
    state_reason    TEXT,
    failures        BIGINT NOT NULL DEFAULT 0,  -- connection failures in a row
    recent          TEXT   NOT NULL DEFAULT '[]', -- the last replies that acted on it, JSON
    updated_at      BIGINT NOT NULL
);

-- Which site a recipient domain belongs to, until its MX records' TTL runs out.
CREATE TABLE herald_site_domains (
    domain     TEXT   PRIMARY KEY,
    site       TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX herald_site_domains_site ON herald_site_domains (site);

-- The recipient's domain, lower case, so a claim can pass over suspended sites.
ALTER TABLE herald_outbox ADD COLUMN recipient_domain TEXT;
UPDATE herald_outbox SET recipient_domain = lower(substr(recipient_email, instr(recipient_email, '@') + 1))
    WHERE state IN ('queued', 'deferred', 'claimed');

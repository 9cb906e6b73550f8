-- Event webhooks (issue 14, R-HOOK-1): an account's endpoints, the deliveries
-- each recorded event owes them (written in the transaction that records the
-- event), and the delivery log.
CREATE TABLE herald_webhook_endpoints (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         BIGINT NOT NULL,
    url             TEXT   NOT NULL,
    kinds           TEXT   NOT NULL,          -- ',delivered,click,' or '' for every kind
    secret          TEXT   NOT NULL,          -- whsec_…: the current signing secret
    previous_secret TEXT,                     -- during a rotation, also signed with
    previous_until  BIGINT,                   -- Unix ms: the previous secret's end
    enabled         BIGINT NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    failing_since   BIGINT,                   -- Unix ms of the first failure in a row
    sequence        BIGINT NOT NULL DEFAULT 0, -- batches sent
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX herald_webhook_endpoints_account ON herald_webhook_endpoints (account);

CREATE TABLE herald_webhook_queue (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint    BIGINT NOT NULL REFERENCES herald_webhook_endpoints (id) ON DELETE CASCADE,
    event_id    TEXT   NOT NULL,              -- evt_<account>_<seq>: stable across retries
    payload     TEXT   NOT NULL,              -- the event as sent, JSON
    due_at      BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX herald_webhook_queue_due ON herald_webhook_queue (due_at, id);
CREATE INDEX herald_webhook_queue_endpoint ON herald_webhook_queue (endpoint, id);

CREATE TABLE herald_webhook_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint   BIGINT NOT NULL REFERENCES herald_webhook_endpoints (id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    events     BIGINT NOT NULL,
    status     BIGINT,                        -- HTTP status; NULL: no answer
    latency_ms BIGINT NOT NULL,
    excerpt    TEXT   NOT NULL,               -- the response's first bytes, or the error
    sequence   BIGINT NOT NULL
);
CREATE INDEX herald_webhook_log_endpoint ON herald_webhook_log (endpoint, at);

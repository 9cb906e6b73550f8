-- herald-schedule owns migration versions 1000-1999 (herald-eventlog: 2000-2999).
CREATE TABLE herald_sends (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account       BIGINT  NOT NULL,
    kind          TEXT    NOT NULL,          -- 'individual' | 'mass'
    user_name     TEXT,
    user_email    TEXT    NOT NULL,
    subject       TEXT    NOT NULL,          -- the template's subject, unmerged
    template      TEXT    NOT NULL,          -- CompiledTemplate, JSON, stored once per send
    sender        TEXT    NOT NULL,          -- SenderIdentity, JSON
    campaign      BIGINT,
    created_at    BIGINT  NOT NULL,          -- Unix milliseconds
    scheduled_at  BIGINT  NOT NULL,
    total         BIGINT NOT NULL,
    skipped       BIGINT NOT NULL DEFAULT 0,
    cancelled_at  BIGINT
);
CREATE INDEX herald_sends_account ON herald_sends (account, scheduled_at);

CREATE TABLE herald_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    send_id         BIGINT  NOT NULL REFERENCES herald_sends (id) ON DELETE CASCADE,
    account         BIGINT  NOT NULL,
    batch           BIGINT NOT NULL,
    lane            TEXT    NOT NULL,        -- 'individual' | 'mass'
    recipient_email TEXT    NOT NULL,
    recipient_name  TEXT,
    merge_values    TEXT    NOT NULL,        -- MergeValues, JSON
    state           TEXT    NOT NULL,        -- queued claimed delivered deferred bounced failed cancelled skipped
    due_at          BIGINT  NOT NULL,
    lease_until     BIGINT,
    worker          TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    first_attempt_at BIGINT,
    bounce_class    TEXT,
    reply           TEXT,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX herald_outbox_due ON herald_outbox (state, lane, due_at);
CREATE INDEX herald_outbox_lease ON herald_outbox (state, lease_until);
CREATE INDEX herald_outbox_send ON herald_outbox (send_id, state);

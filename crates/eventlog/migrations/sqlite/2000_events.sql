-- herald-eventlog owns migration versions 2000-2999 (herald-schedule: 1000-1999).
CREATE TABLE herald_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account     BIGINT  NOT NULL,
    kind        TEXT    NOT NULL,   -- processed delivered open click soft_bounce hard_bounce blocked spam_complaint unsubscribe
    at          BIGINT  NOT NULL,   -- Unix milliseconds
    message     BIGINT,             -- outbox message number
    campaign    BIGINT,
    recipient   TEXT    NOT NULL,
    person      TEXT,               -- the CRM's person id, if known
    link        INTEGER,
    label       TEXT,
    ip          TEXT,
    user_agent  TEXT,
    reply       TEXT,               -- SMTP reply or DSN diagnostic
    bot         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX herald_events_account ON herald_events (account, id);
CREATE INDEX herald_events_person ON herald_events (account, person, kind);

-- Totals per account: kept apart from events, never shrink when events are pruned.
CREATE TABLE herald_totals (
    account         BIGINT PRIMARY KEY,
    processed       BIGINT NOT NULL DEFAULT 0,
    delivered       BIGINT NOT NULL DEFAULT 0,
    opened          BIGINT NOT NULL DEFAULT 0,   -- unique per message, humans only
    clicked         BIGINT NOT NULL DEFAULT 0,   -- unique per message, humans only
    bounced         BIGINT NOT NULL DEFAULT 0,   -- soft + hard
    complaints      BIGINT NOT NULL DEFAULT 0,
    blocked         BIGINT NOT NULL DEFAULT 0,
    unsubscribed    BIGINT NOT NULL DEFAULT 0,
    bot_opens       BIGINT NOT NULL DEFAULT 0,
    bot_clicks      BIGINT NOT NULL DEFAULT 0
);

-- First human open / click per message, for unique counts.
CREATE TABLE herald_message_marks (
    account  BIGINT NOT NULL,
    message  BIGINT NOT NULL,
    mark     TEXT   NOT NULL,   -- 'open' | 'click'
    PRIMARY KEY (account, message, mark)
);

CREATE TABLE herald_campaigns (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account       BIGINT  NOT NULL,
    name          TEXT    NOT NULL,
    first_subject TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    emails        BIGINT  NOT NULL DEFAULT 0,
    delivered     BIGINT  NOT NULL DEFAULT 0,
    opened        BIGINT  NOT NULL DEFAULT 0,
    clicked       BIGINT  NOT NULL DEFAULT 0,
    starred       INTEGER NOT NULL DEFAULT 0,
    archived      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (account, name)
);

-- Addresses an account must not mail: blocklist (hard bounce; all mail), unsubscribed
-- and complained (mass mail). Only an explicit unblock lifts a blocklist entry.
CREATE TABLE herald_suppressions (
    account  BIGINT NOT NULL,
    email    TEXT   NOT NULL,   -- lower case
    reason   TEXT   NOT NULL,   -- 'blocklist' | 'unsubscribed' | 'complained'
    at       BIGINT NOT NULL,
    detail   TEXT,
    PRIMARY KEY (account, email, reason)
);

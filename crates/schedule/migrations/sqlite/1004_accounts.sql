-- Accounts, API keys and sending domains (herald-schedule, versions 1000-1999).
-- Accounts (R-ACC-1): enabled once the sending rules are accepted (who, when).
CREATE TABLE herald_accounts (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL,
    timezone          TEXT    NOT NULL,
    date_format       TEXT    NOT NULL,
    created_at        BIGINT  NOT NULL,
    rules_accepted_by TEXT,
    rules_accepted_at BIGINT
);

-- API keys (R-ACC-2): only the SHA-256 of each key is stored.
CREATE TABLE herald_api_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account    BIGINT  NOT NULL,
    hash       TEXT    NOT NULL UNIQUE,
    prefix     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL
);
CREATE INDEX herald_api_keys_account ON herald_api_keys (account);

-- Sending domains: Herald's DKIM key for each, and whether the checks passed.
CREATE TABLE herald_domains (
    account     BIGINT  NOT NULL,
    domain      TEXT    NOT NULL,
    selector    TEXT    NOT NULL,
    private_key TEXT    NOT NULL,
    dns_name    TEXT    NOT NULL,
    txt_record  TEXT    NOT NULL,
    verified    INTEGER NOT NULL DEFAULT 0,
    checked_at  BIGINT,
    PRIMARY KEY (account, domain)
);

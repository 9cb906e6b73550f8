-- The dashboard (R-UI-1): an account's plan (which plans include the dashboard is
-- configuration) and language (that of the user who accepted the rules), one-time
-- sign-in links and sessions. Links and sessions are stored by the SHA-256 of their
-- secret, never the secret.
ALTER TABLE herald_accounts ADD COLUMN plan TEXT NOT NULL DEFAULT 'free';
ALTER TABLE herald_accounts ADD COLUMN language TEXT NOT NULL DEFAULT 'en';

CREATE TABLE herald_dashboard_links (
    hash       TEXT   PRIMARY KEY,
    account    BIGINT NOT NULL,
    user_name  TEXT   NOT NULL,
    language   TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX herald_dashboard_links_account ON herald_dashboard_links (account);

CREATE TABLE herald_dashboard_sessions (
    hash       TEXT   PRIMARY KEY,
    account    BIGINT NOT NULL,
    user_name  TEXT   NOT NULL,
    language   TEXT   NOT NULL,
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL
);
CREATE INDEX herald_dashboard_sessions_account ON herald_dashboard_sessions (account);

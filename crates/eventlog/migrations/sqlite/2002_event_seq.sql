-- Per-account event sequence numbers, so retention prunes by an index range
-- (seq <= seen - retention) instead of counting rows; and indexes for reports
-- filtered by campaign or kind.
ALTER TABLE herald_events ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE herald_totals ADD COLUMN events_seen BIGINT NOT NULL DEFAULT 0;
CREATE INDEX herald_events_seq ON herald_events (account, seq);
CREATE INDEX herald_events_campaign ON herald_events (account, campaign, id);
CREATE INDEX herald_events_kind ON herald_events (account, kind, id);

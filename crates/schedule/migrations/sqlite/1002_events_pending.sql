-- Events a message's outcome owes the event log, until they are recorded
-- (bit 1: processed; bit 2: delivered or bounced). Cleared in the transaction
-- that records them, so a crash loses none: they are recorded again at start.
ALTER TABLE herald_outbox ADD COLUMN events_pending BIGINT NOT NULL DEFAULT 0;
CREATE INDEX herald_outbox_events_pending ON herald_outbox (events_pending);

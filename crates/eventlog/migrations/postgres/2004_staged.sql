-- Tracking events accepted durably but not processed yet: the tracking
-- endpoints group-commit them here before answering, and
-- EventLog::process_staged turns them into events (deleting them in the same
-- transaction), so a burst of clicks is never lost and never counted twice.
CREATE TABLE herald_staged_events (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    events TEXT   NOT NULL                -- a JSON array of NewEvent: one group commit
);

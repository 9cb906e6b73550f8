-- The delivery log names the events of each attempt (issue 14), so one past
-- delivery can be replayed with the same events: 'evt_7_1,evt_7_2'.
ALTER TABLE herald_webhook_log ADD COLUMN event_ids TEXT NOT NULL DEFAULT '';

-- The CRM's person id of each recipient, carried into the events of its message.
ALTER TABLE herald_outbox ADD COLUMN person TEXT;

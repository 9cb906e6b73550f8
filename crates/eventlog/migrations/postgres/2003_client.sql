-- Client details of opens and clicks (R-EVT-1): the User-Agent parsed, and the
-- IP's country and city when a MaxMind-format database is configured.
ALTER TABLE herald_events ADD COLUMN browser TEXT;
ALTER TABLE herald_events ADD COLUMN os TEXT;
ALTER TABLE herald_events ADD COLUMN device TEXT;
ALTER TABLE herald_events ADD COLUMN country TEXT;
ALTER TABLE herald_events ADD COLUMN city TEXT;

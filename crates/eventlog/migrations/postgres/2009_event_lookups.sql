-- A person's events and one address's events, newest first, straight from an index
-- (the dashboard's person page and its event log filtered by address): measured on
-- 200,000 events, the (account, person, kind) index left SQLite walking the account's
-- whole log backwards by id (353 ms a page; docs/PERFORMANCE.md).
DROP INDEX herald_events_person;
CREATE INDEX herald_events_person ON herald_events (account, person, id);
CREATE INDEX herald_events_recipient ON herald_events (account, recipient, id);

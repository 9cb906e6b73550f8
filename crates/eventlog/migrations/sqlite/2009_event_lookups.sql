-- A person's events, newest first, straight from an index (the dashboard's person
-- page): measured on 200,000 events, the (account, person, kind) index left SQLite
-- walking the account's whole log backwards by id (518 ms p95 a page; now under 1 ms;
-- docs/PERFORMANCE.md). An index on (account, recipient) was measured too and not
-- kept: it cost 13% of the ingestion rate on both databases.
DROP INDEX herald_events_person;
CREATE INDEX herald_events_person ON herald_events (account, person, id);

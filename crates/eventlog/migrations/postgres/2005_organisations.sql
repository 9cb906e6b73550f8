-- Organisations with their fields; a person belongs to one through its person
-- field `organisation_id`, and its organisation fields (for merges and reports)
-- are copied from here whenever either side is upserted.
CREATE TABLE herald_organisation_fields (
    account      BIGINT NOT NULL,
    organisation TEXT   NOT NULL,
    field        TEXT   NOT NULL,
    value        TEXT   NOT NULL,
    PRIMARY KEY (account, organisation, field)
);

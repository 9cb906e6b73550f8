-- Person and organisation fields for reports (R-EVT-6), one row per field so
-- every field can be filtered with the same bound-parameter SQL.
CREATE TABLE herald_person_fields (
    account    BIGINT NOT NULL,
    person     TEXT   NOT NULL,
    namespace  TEXT   NOT NULL,   -- 'person' | 'organisation' | 'custom'
    field      TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    PRIMARY KEY (account, person, namespace, field)
);
CREATE INDEX herald_person_fields_value ON herald_person_fields (account, namespace, field, value);

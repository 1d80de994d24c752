-- packaging/maos-export-pg.sql -- load a maos log into PostgreSQL.
--
--   maosctl export --format pg-copy -o events.copy
--   psql -d DB -v file=events.copy -f maos-export-pg.sql
--
-- One row per event, the columns of `maosctl read --json` (docs/EXPORT.md):
-- position is the global log position (unique, dense for a full export),
-- (stream, version) is unique too, data and meta are the event's JSON.
-- Table entries are not in the COPY form: use the JSON Lines export
-- (records with "kind":"entry") for them.

CREATE TABLE IF NOT EXISTS events (
    position bigint PRIMARY KEY,
    stream   text   NOT NULL,
    version  bigint NOT NULL,
    id       uuid   NOT NULL UNIQUE,
    type     text   NOT NULL,
    data     jsonb,
    meta     jsonb  NOT NULL,
    time     timestamptz NOT NULL,
    UNIQUE (stream, version)
);

\set copy_cmd '\\copy events (position, stream, version, id, type, data, meta, time) FROM ' :'file'
:copy_cmd

CREATE INDEX IF NOT EXISTS events_type ON events (type);
CREATE INDEX IF NOT EXISTS events_time ON events (time);

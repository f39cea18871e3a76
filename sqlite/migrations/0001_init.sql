-- Events: the append-only log. seq is the append order (the rowid, so every
-- index below ends with it implicitly and ListEvents' "time DESC, seq DESC"
-- needs no sort). Times are microseconds since the Unix epoch, UTC.
CREATE TABLE events (
	seq             INTEGER PRIMARY KEY,
	namespace       TEXT    NOT NULL,
	source          TEXT    NOT NULL,
	id              TEXT    NOT NULL,
	type            TEXT    NOT NULL,
	subject         TEXT    NOT NULL,
	time            INTEGER NOT NULL,
	ingested_at     INTEGER NOT NULL,
	specversion     TEXT    NOT NULL,
	datacontenttype TEXT    NOT NULL DEFAULT '',
	dataschema      TEXT    NOT NULL DEFAULT '',
	-- The compact JSON object exactly as received, or NULL without data.
	-- Checked like PostgreSQL's json type, so both stores reject the same
	-- batches.
	data            TEXT CHECK (data IS NULL OR json_valid(data))
) STRICT;

-- Identity: the same (namespace, source, id) is stored once, forever.
CREATE UNIQUE INDEX events_identity ON events (namespace, source, id);
-- ScanEvents: one meter's events, optionally per subject, by time.
CREATE INDEX events_scan ON events (namespace, type, subject, time);
-- ListEvents: newest first within a namespace.
CREATE INDEX events_time ON events (namespace, time);

-- Meters. Deleted meters stay (deleted_at set) but free their slug.
-- metadata, group_by and filters hold JSON objects, or NULL for a nil map.
CREATE TABLE meters (
	id             TEXT    PRIMARY KEY,
	namespace      TEXT    NOT NULL,
	slug           TEXT    NOT NULL,
	name           TEXT    NOT NULL,
	description    TEXT    NOT NULL,
	metadata       TEXT,
	aggregation    TEXT    NOT NULL,
	event_type     TEXT    NOT NULL,
	event_from     INTEGER,
	value_property TEXT    NOT NULL,
	group_by       TEXT,
	filters        TEXT,
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	deleted_at     INTEGER
) STRICT;

CREATE UNIQUE INDEX meters_slug ON meters (namespace, slug) WHERE deleted_at IS NULL;

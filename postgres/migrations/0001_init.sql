-- Events: the append-only log. Identity, names and subjects are compared
-- byte for byte (COLLATE "C"): that is the semantics the other stores have,
-- it keeps index maintenance to memcmp instead of locale-aware comparison,
-- and it makes the primary key's order the order AppendEvents sorts rows in
-- (Go's byte order), so a batch is inserted in index order.
CREATE TABLE events (
	namespace       text COLLATE "C" NOT NULL,
	source          text COLLATE "C" NOT NULL,
	id              text COLLATE "C" NOT NULL,
	-- The append order, for ListEvents' tie order (later appended first).
	-- AppendEvents draws it in input order; see insertEventsSQL.
	seq             bigint NOT NULL GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME events_seq),
	type            text COLLATE "C" NOT NULL,
	subject         text COLLATE "C" NOT NULL,
	time            timestamptz NOT NULL,
	ingested_at     timestamptz NOT NULL,
	specversion     text NOT NULL,
	datacontenttype text NOT NULL DEFAULT '',
	dataschema      text NOT NULL DEFAULT '',
	-- json, not jsonb: json keeps the text exactly as received (key order,
	-- number spelling, escapes), which the conformance suite requires, and
	-- still refuses malformed documents. NULL for an event without data.
	data            json,
	-- Identity: the same (namespace, source, id) is stored once, forever.
	CONSTRAINT events_identity PRIMARY KEY (namespace, source, id)
);

-- ScanEvents: one meter's events, optionally per subject, by time.
CREATE INDEX events_scan ON events (namespace, type, subject, time);
-- ListEvents: newest first within a namespace, ties by append order, read
-- backwards without a sort.
CREATE INDEX events_time ON events (namespace, time, seq);

-- Meters. Deleted meters stay (deleted_at set) but free their slug.
-- metadata, group_by and filters hold JSON objects, or NULL for a nil map.
CREATE TABLE meters (
	id             text COLLATE "C" PRIMARY KEY,
	namespace      text COLLATE "C" NOT NULL,
	-- Byte order, so that ListMeters sorts as the SQLite store does.
	slug           text COLLATE "C" NOT NULL,
	name           text NOT NULL,
	description    text NOT NULL,
	metadata       jsonb,
	aggregation    text NOT NULL,
	event_type     text NOT NULL,
	event_from     timestamptz,
	value_property text NOT NULL,
	group_by       jsonb,
	filters        jsonb,
	created_at     timestamptz NOT NULL,
	updated_at     timestamptz NOT NULL,
	deleted_at     timestamptz
);

CREATE UNIQUE INDEX meters_slug ON meters (namespace, slug) WHERE deleted_at IS NULL;

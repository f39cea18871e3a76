-- Durable usage rollups (odometer.RollupStore, docs/rollups.md "On SQLite"),
-- used when events live in this database (--event-log sqlite). One row per
-- rollup: a meter definition of a namespace. AUTOINCREMENT: an ID is never
-- reused, so a delta written for a dropped rollup never counts for a new
-- one. created_seq is the last event seq when the rollup was made: appends
-- add the events after it, the backfill those up to it, in the order
-- (subject, time, seq) of events_scan, from the cursor on.
CREATE TABLE usage_rollups (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	namespace      TEXT    NOT NULL,
	fingerprint    BLOB    NOT NULL,
	-- The definition (odometer.Meter, only the fields that decide which
	-- events count and how), as JSON.
	definition     TEXT    NOT NULL,
	created_seq    INTEGER NOT NULL,
	-- The last event the backfill read (time in microseconds); NULL
	-- before its first step.
	cursor_subject TEXT,
	cursor_time    INTEGER,
	cursor_seq     INTEGER,
	counted        INTEGER NOT NULL DEFAULT 0,
	pending        INTEGER NOT NULL DEFAULT 0,
	backfilled     INTEGER NOT NULL,
	UNIQUE (namespace, fingerprint)
) STRICT;

-- Rollup cells, folded: one row per rollup, kind (per subject or for all
-- subjects, whose subject is ''), bucket size, subject, bucket (Unix
-- seconds) and group values (usage.GroupValues); value is one partial
-- aggregate (usage.Partials). Subject before bucket: a query that names
-- its subjects reads one range per subject. Only the fold, backfills and
-- drops write it.
CREATE TABLE usage_cells (
	rollup       INTEGER NOT NULL,
	by_subject   INTEGER NOT NULL,
	size_seconds INTEGER NOT NULL,
	subject      TEXT    NOT NULL,
	bucket       INTEGER NOT NULL,
	groups       BLOB    NOT NULL,
	value        BLOB    NOT NULL,
	PRIMARY KEY (rollup, by_subject, size_seconds, subject, bucket, groups)
) STRICT, WITHOUT ROWID;

-- The cells of appends not folded into usage_cells yet: one row per
-- append that added to a rollup, written in the append's transaction
-- (usage.Cells' encoding). Queries read them with the cells, in one read
-- transaction; the fold moves them into usage_cells and deletes them in
-- one write transaction.
CREATE TABLE usage_cell_deltas (
	id    INTEGER PRIMARY KEY,
	cells BLOB    NOT NULL
) STRICT;

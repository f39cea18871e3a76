-- Durable usage rollups (odometer.RollupStore, docs/rollups.md "On
-- PostgreSQL"). One row per rollup: a meter definition of a namespace.
-- created_seq is the last event sequence number when the rollup was made:
-- appends add the events after it, the backfill those up to it, in the
-- order (subject, time, seq) of the scan index, from the cursor on.
CREATE TABLE usage_rollups (
	id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	namespace      text COLLATE "C" NOT NULL,
	fingerprint    bytea NOT NULL,
	-- The definition (odometer.Meter, only the fields that decide which
	-- events count and how), as JSON.
	definition     jsonb NOT NULL,
	created_seq    bigint NOT NULL,
	-- The last event the backfill read; NULL before its first step.
	cursor_subject text COLLATE "C",
	cursor_time    timestamptz,
	cursor_seq     bigint,
	counted        boolean NOT NULL DEFAULT false,
	pending        bigint NOT NULL DEFAULT 0,
	backfilled     boolean NOT NULL,
	UNIQUE (namespace, fingerprint)
);

-- Rollup cells, folded: one row per rollup, kind (per subject or for all
-- subjects, whose subject is ''), bucket size, bucket, subject and group
-- values (usage.GroupValues); value is one partial aggregate
-- (usage.Partials). Only the fold, backfills and drops write it, one at a
-- time (an advisory lock), never an append.
CREATE TABLE usage_cells (
	rollup       bigint NOT NULL,
	by_subject   boolean NOT NULL,
	size_seconds integer NOT NULL,
	bucket       timestamptz NOT NULL,
	subject      text COLLATE "C" NOT NULL,
	groups       bytea NOT NULL,
	value        bytea NOT NULL,
	PRIMARY KEY (rollup, by_subject, size_seconds, bucket, subject, groups)
);

-- The cells of appends not folded into usage_cells yet: one row per
-- append that added to a rollup, written in the append's transaction
-- (usage.Cells' encoding, for all of the append's rollups). Queries read
-- them with the cells, from one snapshot; the fold moves them into
-- usage_cells and deletes them in one transaction.
CREATE TABLE usage_cell_deltas (
	id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	cells bytea NOT NULL
);

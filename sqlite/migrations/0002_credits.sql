-- Prepaid credits (docs/credits.md): features, ledgers, grants and resets.
--
-- Every table is keyed by (namespace, id): namespaces are separate tenants,
-- and one may hold the same ids as another. Decimals are TEXT in canonical
-- form (odometer.Decimal.String: plain, no exponent, no trailing fraction
-- zeros), never REAL: SQLite has no exact decimal type, and the store only
-- keeps them. Times are microseconds since the Unix epoch, UTC. Maps are JSON
-- objects, or NULL for a nil map.

-- Features. An archived feature keeps its row (grants refer to it) but frees
-- its key.
CREATE TABLE features (
	namespace              TEXT    NOT NULL,
	id                     TEXT    NOT NULL,
	key                    TEXT    NOT NULL,
	name                   TEXT    NOT NULL,
	meter_slug             TEXT    NOT NULL,
	meter_group_by_filters TEXT CHECK (meter_group_by_filters IS NULL OR json_valid(meter_group_by_filters)),
	metadata               TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
	created_at             INTEGER NOT NULL,
	updated_at             INTEGER NOT NULL,
	archived_at            INTEGER,
	PRIMARY KEY (namespace, id)
) STRICT;

CREATE UNIQUE INDEX features_key ON features (namespace, key) WHERE archived_at IS NULL;

-- Ledgers: at most one per subject in a namespace. version counts the
-- ledger's changes (grants, voids, resets); the store increments it in the
-- transaction that makes the change. The reset schedule's three columns are
-- all NULL (no schedule) or all set (reset_time_zone '' is UTC).
CREATE TABLE ledgers (
	namespace       TEXT    NOT NULL,
	id              TEXT    NOT NULL,
	subject         TEXT    NOT NULL,
	metadata        TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
	reset_interval  TEXT,
	reset_anchor    INTEGER,
	reset_time_zone TEXT,
	created_at      INTEGER NOT NULL,
	version         INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0),
	PRIMARY KEY (namespace, id),
	CHECK ((reset_interval IS NULL) = (reset_anchor IS NULL)
		AND (reset_interval IS NULL) = (reset_time_zone IS NULL))
) STRICT;

CREATE UNIQUE INDEX ledgers_subject ON ledgers (namespace, subject);

-- Resets. The unique index serves ListResets and the "last reset" lookup
-- that every grant, void and reset checks against, and refuses two resets of
-- a ledger at one instant even if a bug got past that check.
CREATE TABLE resets (
	namespace    TEXT    NOT NULL,
	id           TEXT    NOT NULL,
	ledger_id    TEXT    NOT NULL,
	effective_at INTEGER NOT NULL,
	created_at   INTEGER NOT NULL,
	automatic    INTEGER NOT NULL CHECK (automatic IN (0, 1)),
	PRIMARY KEY (namespace, id),
	FOREIGN KEY (namespace, ledger_id) REFERENCES ledgers (namespace, id)
) STRICT;

CREATE UNIQUE INDEX resets_ledger ON resets (namespace, ledger_id, effective_at);

-- Grants. Immutable except voided_at. parent_id and reset_id are NULL on
-- grants that no reset made, so that the foreign keys skip them.
CREATE TABLE grants (
	namespace           TEXT    NOT NULL,
	id                  TEXT    NOT NULL,
	ledger_id           TEXT    NOT NULL,
	feature_id          TEXT    NOT NULL,
	amount              TEXT    NOT NULL,
	priority            INTEGER NOT NULL,
	effective_at        INTEGER NOT NULL,
	expiration_count    INTEGER NOT NULL,
	expiration_duration TEXT    NOT NULL,
	expires_at          INTEGER,
	rollover_type       TEXT    NOT NULL,
	rollover_max_amount TEXT,
	recurrence_interval TEXT    NOT NULL,
	recurrence_anchor   INTEGER,
	parent_id           TEXT,
	reset_id            TEXT,
	start_balance       TEXT,
	metadata            TEXT CHECK (metadata IS NULL OR json_valid(metadata)),
	created_at          INTEGER NOT NULL,
	voided_at           INTEGER,
	PRIMARY KEY (namespace, id),
	FOREIGN KEY (namespace, ledger_id) REFERENCES ledgers (namespace, id),
	-- Also what makes DeleteFeature of a feature with grants fail, whatever
	-- the store's own check missed.
	FOREIGN KEY (namespace, feature_id) REFERENCES features (namespace, id),
	FOREIGN KEY (namespace, parent_id) REFERENCES grants (namespace, id),
	FOREIGN KEY (namespace, reset_id) REFERENCES resets (namespace, id)
) STRICT;

-- ListGrants: a ledger's grants in the listing order, without a sort.
CREATE INDEX grants_ledger ON grants (namespace, ledger_id, effective_at, created_at, id);
-- DeleteFeature's check, and the foreign key's when a feature is deleted.
CREATE INDEX grants_feature ON grants (namespace, feature_id);

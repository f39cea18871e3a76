-- Prepaid credits (docs/credits.md): features, ledgers, grants and resets.
--
-- Every table is keyed by (namespace, id): namespaces are separate tenants,
-- and one may hold the same ids as another. Keys, ids and subjects compare
-- byte for byte (COLLATE "C"), as in the SQLite store. Decimals are numeric,
-- never float, limited as odometer values are (|v| < 10^21, at most 18
-- fraction digits) so that both stores keep the same numbers; the store
-- writes them in canonical form, so the scale stored is the scale given.
-- Maps are jsonb, or NULL for a nil map.

-- Features. An archived feature keeps its row (grants refer to it) but frees
-- its key.
CREATE TABLE features (
	namespace              text COLLATE "C" NOT NULL,
	id                     text COLLATE "C" NOT NULL,
	key                    text COLLATE "C" NOT NULL,
	name                   text NOT NULL,
	meter_slug             text COLLATE "C" NOT NULL,
	meter_group_by_filters jsonb,
	metadata               jsonb,
	created_at             timestamptz NOT NULL,
	updated_at             timestamptz NOT NULL,
	archived_at            timestamptz,
	PRIMARY KEY (namespace, id)
);

CREATE UNIQUE INDEX features_key ON features (namespace, key) WHERE archived_at IS NULL;

-- Ledgers: at most one per subject in a namespace. version counts the
-- ledger's changes (grants, voids, resets). Every change locks the ledger's
-- row (SELECT … FOR UPDATE) before it checks the ledger's state, and
-- increments version in the same transaction: the row lock is what
-- serializes a ledger's changes across nodes. The reset schedule's three
-- columns are all NULL (no schedule) or all set (reset_time_zone '' is UTC).
CREATE TABLE ledgers (
	namespace       text COLLATE "C" NOT NULL,
	id              text COLLATE "C" NOT NULL,
	subject         text COLLATE "C" NOT NULL,
	metadata        jsonb,
	reset_interval  text,
	reset_anchor    timestamptz,
	reset_time_zone text,
	created_at      timestamptz NOT NULL,
	version         bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
	PRIMARY KEY (namespace, id),
	CHECK ((reset_interval IS NULL) = (reset_anchor IS NULL)
		AND (reset_interval IS NULL) = (reset_time_zone IS NULL))
);

CREATE UNIQUE INDEX ledgers_subject ON ledgers (namespace, subject);

-- Resets. The unique index serves ListResets and the "last reset" lookup
-- that every grant, void and reset checks against, and refuses two resets of
-- a ledger at one instant even if a bug got past that check.
CREATE TABLE resets (
	namespace    text COLLATE "C" NOT NULL,
	id           text COLLATE "C" NOT NULL,
	ledger_id    text COLLATE "C" NOT NULL,
	effective_at timestamptz NOT NULL,
	created_at   timestamptz NOT NULL,
	automatic    boolean NOT NULL,
	PRIMARY KEY (namespace, id),
	FOREIGN KEY (namespace, ledger_id) REFERENCES ledgers (namespace, id)
);

CREATE UNIQUE INDEX resets_ledger ON resets (namespace, ledger_id, effective_at);

-- Grants. Immutable except voided_at. parent_id and reset_id are NULL on
-- grants that no reset made, so that the foreign keys skip them.
CREATE TABLE grants (
	namespace           text COLLATE "C" NOT NULL,
	id                  text COLLATE "C" NOT NULL,
	ledger_id           text COLLATE "C" NOT NULL,
	feature_id          text COLLATE "C" NOT NULL,
	amount              numeric NOT NULL CHECK (scale(amount) <= 18 AND abs(amount) < 1e21),
	priority            integer NOT NULL,
	effective_at        timestamptz NOT NULL,
	expiration_count    integer NOT NULL,
	expiration_duration text NOT NULL,
	expires_at          timestamptz,
	rollover_type       text NOT NULL,
	rollover_max_amount numeric CHECK (scale(rollover_max_amount) <= 18 AND abs(rollover_max_amount) < 1e21),
	recurrence_interval text NOT NULL,
	recurrence_anchor   timestamptz,
	parent_id           text COLLATE "C",
	reset_id            text COLLATE "C",
	start_balance       numeric CHECK (scale(start_balance) <= 18 AND abs(start_balance) < 1e21),
	metadata            jsonb,
	created_at          timestamptz NOT NULL,
	voided_at           timestamptz,
	PRIMARY KEY (namespace, id),
	FOREIGN KEY (namespace, ledger_id) REFERENCES ledgers (namespace, id),
	-- Also what makes DeleteFeature of a feature with grants fail, whatever
	-- the store's own check missed.
	FOREIGN KEY (namespace, feature_id) REFERENCES features (namespace, id),
	FOREIGN KEY (namespace, parent_id) REFERENCES grants (namespace, id),
	FOREIGN KEY (namespace, reset_id) REFERENCES resets (namespace, id)
);

-- ListGrants: a ledger's grants in the listing order, without a sort.
CREATE INDEX grants_ledger ON grants (namespace, ledger_id, effective_at, created_at, id);
-- DeleteFeature's check, and the foreign key's when a feature is deleted.
CREATE INDEX grants_feature ON grants (namespace, feature_id);

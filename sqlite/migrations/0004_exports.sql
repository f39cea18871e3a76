-- Usage export (odometer.ExportStore, docs/export-aws.md): destinations,
-- their customer mappings, the running carry of each (subject, dimension),
-- and the outbox of frozen records.
--
-- Every table is keyed by namespace first: namespaces are separate tenants.
-- A destination's customers, accounts and records go with it (ON DELETE
-- CASCADE; the connections run with foreign_keys = ON). Decimals are TEXT in
-- canonical form (odometer.Decimal.String), as in 0002_credits.sql. Times are
-- microseconds since the Unix epoch, UTC; durations are nanoseconds
-- (time.Duration). Lists are JSON arrays, or NULL for a nil slice.

-- Destinations. dimensions holds the []ExportDimension as JSON objects
-- {dimension, meterSlug, groupBy, multiply, divide, rounding}, the decimals
-- as JSON strings. frozen_through is the end of the last frozen hour, NULL
-- before the first freeze; only FreezeExportHour moves it.
CREATE TABLE export_destinations (
	namespace       TEXT    NOT NULL,
	name            TEXT    NOT NULL,
	product_code    TEXT    NOT NULL,
	region          TEXT    NOT NULL,
	endpoint        TEXT    NOT NULL,
	dimensions      TEXT CHECK (dimensions IS NULL OR json_valid(dimensions)),
	start_hour      INTEGER NOT NULL,
	delay_ns        INTEGER NOT NULL,
	window_ns       INTEGER NOT NULL,
	late_horizon_ns INTEGER NOT NULL,
	zero_records    INTEGER NOT NULL CHECK (zero_records IN (0, 1)),
	dry_run         INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	frozen_through  INTEGER,
	PRIMARY KEY (namespace, name)
) STRICT;

-- Customer mappings: one per subject of a destination.
CREATE TABLE export_customers (
	namespace      TEXT    NOT NULL,
	destination    TEXT    NOT NULL,
	subject        TEXT    NOT NULL,
	customer_id    TEXT    NOT NULL,
	aws_account_id TEXT    NOT NULL,
	license_arn    TEXT    NOT NULL,
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	PRIMARY KEY (namespace, destination, subject),
	FOREIGN KEY (namespace, destination) REFERENCES export_destinations (namespace, name) ON DELETE CASCADE
) STRICT;

-- Accounts: the carry after the last record of a (subject, dimension).
CREATE TABLE export_accounts (
	namespace   TEXT    NOT NULL,
	destination TEXT    NOT NULL,
	subject     TEXT    NOT NULL,
	dimension   TEXT    NOT NULL,
	carry       TEXT    NOT NULL,
	last_hour   INTEGER NOT NULL,
	PRIMARY KEY (namespace, destination, subject, dimension),
	FOREIGN KEY (namespace, destination) REFERENCES export_destinations (namespace, name) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- The outbox: one record per (subject, dimension, hour) of a destination.
-- What is sent (customer, dimension, hour, quantity) never changes after the
-- insert; accounted rises with later records, and status, metering_record_id,
-- reason, attempts, next_attempt_at and updated_at follow the sends.
-- late_hours is the []ExportLate as JSON objects {hour, usage}, the usage as
-- a JSON string.
CREATE TABLE export_records (
	namespace          TEXT    NOT NULL,
	destination        TEXT    NOT NULL,
	subject            TEXT    NOT NULL,
	dimension          TEXT    NOT NULL,
	hour               INTEGER NOT NULL,
	customer_id        TEXT    NOT NULL,
	aws_account_id     TEXT    NOT NULL,
	license_arn        TEXT    NOT NULL,
	quantity           INTEGER NOT NULL,
	usage              TEXT    NOT NULL,
	accounted          TEXT    NOT NULL,
	late               TEXT    NOT NULL,
	late_hours         TEXT CHECK (late_hours IS NULL OR json_valid(late_hours)),
	carry              TEXT    NOT NULL,
	status             TEXT    NOT NULL,
	metering_record_id TEXT    NOT NULL,
	reason             TEXT    NOT NULL,
	attempts           INTEGER NOT NULL,
	next_attempt_at    INTEGER NOT NULL,
	frozen_at          INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL,
	PRIMARY KEY (namespace, destination, subject, dimension, hour),
	FOREIGN KEY (namespace, destination) REFERENCES export_destinations (namespace, name) ON DELETE CASCADE
) STRICT;

-- The exporter's "what is due": pending records by next attempt.
CREATE INDEX export_records_due ON export_records (namespace, destination, status, next_attempt_at);
-- ListExportRecords and SummarizeExportRecords: a destination's records by
-- hour, in the listing order.
CREATE INDEX export_records_hour ON export_records (namespace, destination, hour, subject, dimension);

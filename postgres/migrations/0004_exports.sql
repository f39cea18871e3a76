-- Usage export (odometer.ExportStore, docs/export-aws.md): destinations,
-- their customer mappings, the running carry of each (subject, dimension),
-- and the outbox of frozen records.
--
-- Every table is keyed by namespace first: namespaces are separate tenants.
-- A destination's customers, accounts and records go with it (ON DELETE
-- CASCADE). Keys compare byte for byte (COLLATE "C"), as in the SQLite
-- store. Decimals are numeric, written in canonical form, limited as
-- odometer values are (|v| < 10^21, at most 18 fraction digits), except
-- carries, which may have 36 fraction digits (usage × multiply). Durations
-- are nanoseconds (time.Duration). Lists are jsonb arrays, or NULL for a nil
-- slice.

-- Destinations. dimensions holds the []ExportDimension as JSON objects
-- {dimension, meterSlug, groupBy, multiply, divide, rounding}, the decimals
-- as JSON strings. frozen_through is the end of the last frozen hour, NULL
-- before the first freeze; only FreezeExportHour moves it, with the row
-- locked (SELECT … FOR UPDATE), which serializes the freezes of a
-- destination across nodes.
CREATE TABLE export_destinations (
	namespace       text COLLATE "C" NOT NULL,
	name            text COLLATE "C" NOT NULL,
	product_code    text NOT NULL,
	region          text NOT NULL,
	endpoint        text NOT NULL,
	dimensions      jsonb,
	start_hour      timestamptz NOT NULL,
	delay_ns        bigint NOT NULL,
	window_ns       bigint NOT NULL,
	late_horizon_ns bigint NOT NULL,
	zero_records    boolean NOT NULL,
	dry_run         boolean NOT NULL,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	frozen_through  timestamptz,
	PRIMARY KEY (namespace, name)
);

-- Customer mappings: one per subject of a destination.
CREATE TABLE export_customers (
	namespace      text COLLATE "C" NOT NULL,
	destination    text COLLATE "C" NOT NULL,
	subject        text COLLATE "C" NOT NULL,
	customer_id    text NOT NULL,
	aws_account_id text NOT NULL,
	license_arn    text NOT NULL,
	created_at     timestamptz NOT NULL,
	updated_at     timestamptz NOT NULL,
	PRIMARY KEY (namespace, destination, subject),
	FOREIGN KEY (namespace, destination) REFERENCES export_destinations (namespace, name) ON DELETE CASCADE
);

-- Accounts: the carry after the last record of a (subject, dimension).
CREATE TABLE export_accounts (
	namespace   text COLLATE "C" NOT NULL,
	destination text COLLATE "C" NOT NULL,
	subject     text COLLATE "C" NOT NULL,
	dimension   text COLLATE "C" NOT NULL,
	carry       numeric NOT NULL CHECK (scale(carry) <= 36 AND abs(carry) < 1e21),
	last_hour   timestamptz NOT NULL,
	PRIMARY KEY (namespace, destination, subject, dimension),
	FOREIGN KEY (namespace, destination) REFERENCES export_destinations (namespace, name) ON DELETE CASCADE
);

-- The outbox: one record per (subject, dimension, hour) of a destination.
-- What is sent (customer, dimension, hour, quantity) never changes after the
-- insert; accounted rises with later records, and status,
-- metering_record_id, reason, attempts, next_attempt_at and updated_at
-- follow the sends. late_hours is the []ExportLate as JSON objects {hour,
-- usage}, the usage as a JSON string.
CREATE TABLE export_records (
	namespace          text COLLATE "C" NOT NULL,
	destination        text COLLATE "C" NOT NULL,
	subject            text COLLATE "C" NOT NULL,
	dimension          text COLLATE "C" NOT NULL,
	hour               timestamptz NOT NULL,
	customer_id        text NOT NULL,
	aws_account_id     text NOT NULL,
	license_arn        text NOT NULL,
	quantity           bigint NOT NULL,
	usage              numeric NOT NULL CHECK (scale(usage) <= 18 AND abs(usage) < 1e21),
	accounted          numeric NOT NULL CHECK (scale(accounted) <= 18 AND abs(accounted) < 1e21),
	late               numeric NOT NULL CHECK (scale(late) <= 18 AND abs(late) < 1e21),
	late_hours         jsonb,
	carry              numeric NOT NULL CHECK (scale(carry) <= 36 AND abs(carry) < 1e21),
	status             text NOT NULL,
	metering_record_id text NOT NULL,
	reason             text NOT NULL,
	attempts           integer NOT NULL,
	next_attempt_at    timestamptz NOT NULL,
	frozen_at          timestamptz NOT NULL,
	updated_at         timestamptz NOT NULL,
	PRIMARY KEY (namespace, destination, subject, dimension, hour),
	FOREIGN KEY (namespace, destination) REFERENCES export_destinations (namespace, name) ON DELETE CASCADE
);

-- The exporter's "what is due": pending records by next attempt.
CREATE INDEX export_records_due ON export_records (namespace, destination, status, next_attempt_at);
-- ListExportRecords and SummarizeExportRecords: a destination's records by
-- hour, in the listing order.
CREATE INDEX export_records_hour ON export_records (namespace, destination, hour, subject, dimension);

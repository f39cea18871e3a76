-- Late watermarks (odometer.LateMarks, late.go): for each (namespace, type,
-- subject) that ever had an event appended late, the latest such append's
-- time. AppendEvents writes them in the transaction of the events, in key
-- order (byte order, as COLLATE "C" compares; see the package comment on
-- deadlocks), and only ever raises at.
CREATE TABLE late_marks (
	namespace text COLLATE "C" NOT NULL,
	type      text COLLATE "C" NOT NULL,
	subject   text COLLATE "C" NOT NULL,
	at        timestamptz NOT NULL,
	PRIMARY KEY (namespace, type, subject)
);

-- Late watermarks (odometer.LateMarks, late.go): for each (namespace, type,
-- subject) that ever had an event appended late, the latest such append's
-- time, in microseconds since the Unix epoch, UTC. AppendEvents writes them
-- in the transaction of the events, and only ever raises at.
CREATE TABLE late_marks (
	namespace TEXT    NOT NULL,
	type      TEXT    NOT NULL,
	subject   TEXT    NOT NULL,
	at        INTEGER NOT NULL,
	PRIMARY KEY (namespace, type, subject)
) STRICT, WITHOUT ROWID;

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
)

// insertEventSQL relies on the unique index on (namespace, source, id):
// a row that would duplicate an identity is skipped, and RowsAffected tells
// the caller which happened. This also catches duplicates earlier in the
// same transaction.
const insertEventSQL = `INSERT INTO events
	(namespace, source, id, type, subject, time, ingested_at, specversion, datacontenttype, dataschema, data)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (namespace, source, id) DO NOTHING`

// AppendEvents stores events in one transaction and returns once it is
// committed and fsynced (WAL, synchronous=FULL). On error the transaction is
// rolled back and nothing was stored. An event whose Data is not valid JSON
// fails the whole call.
func (s *Store) AppendEvents(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error) {
	if len(events) == 0 {
		return nil, ctx.Err()
	}
	out, err := s.appendEvents(ctx, events)
	if err != nil {
		return nil, fmt.Errorf("append %d events: %w", len(events), err)
	}
	return out, nil
}

func (s *Store) appendEvents(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error) {
	// BeginTx watches ctx: if it is cancelled before Commit, database/sql
	// rolls the transaction back and the remaining calls fail.
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// The statements themselves get a context without cancellation: with a
	// cancellable one the driver starts a watcher goroutine per statement,
	// which costs more than the insert. Cancellation still ends the call
	// between two statements (see above).
	stmtCtx := context.WithoutCancel(ctx)
	stmt := tx.StmtContext(stmtCtx, s.insertEventStmt)
	out := make([]odometer.Outcome, len(events))
	for i := range events {
		e := &events[i]
		res, err := stmt.ExecContext(stmtCtx,
			e.Namespace, e.Source, e.ID, e.Type, e.Subject,
			e.Time.UnixMicro(), e.IngestedAt.UnixMicro(),
			e.SpecVersion, e.DataContentType, e.DataSchema, jsonArg(e.Data))
		if err != nil {
			return nil, fmt.Errorf("event %d (source %q, id %q): %w", i, e.Source, e.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		if n == 0 {
			out[i] = odometer.Duplicate
		} else {
			out[i] = odometer.Accepted
		}
	}
	// Late events leave their watermarks in the same transaction. Appends
	// take turns on the one write connection, so nothing else runs between
	// Due and Written.
	marks := s.late.Due(events, out, time.Now())
	for _, m := range marks {
		if _, err := tx.ExecContext(stmtCtx, upsertLateMarkSQL, m.Namespace, m.Type, m.Subject, m.At.UnixMicro()); err != nil {
			return nil, fmt.Errorf("late watermark (namespace %q, type %q, subject %q): %w", m.Namespace, m.Type, m.Subject, err)
		}
	}
	if err := s.addDeltas(stmtCtx, tx, events, out); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	s.late.Written(marks)
	return out, nil
}

// upsertLateMarkSQL raises a late watermark, never lowers it.
const upsertLateMarkSQL = `INSERT INTO late_marks (namespace, type, subject, at) VALUES (?, ?, ?, ?)
	ON CONFLICT (namespace, type, subject) DO UPDATE SET at = max(late_marks.at, excluded.at)`

// LateWatermark returns the late watermark of (namespace, eventType,
// subject), or the zero time if none was written.
func (s *Store) LateWatermark(ctx context.Context, namespace, eventType, subject string) (time.Time, error) {
	var us int64
	err := s.queryRow(ctx, "SELECT at FROM late_marks WHERE namespace = ? AND type = ? AND subject = ?",
		namespace, eventType, subject).Scan(&us)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("read late watermark: %w", err)
	}
	return fromMicros(us), nil
}

// jsonArg binds JSON as TEXT: the driver would bind a []byte as a BLOB,
// which the STRICT table rejects (and SQLite would read as JSONB).
func jsonArg(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// ListEvents returns the events matching f, newest event time first and,
// among equal times, the most recently appended first. ID and subject
// filters match substrings literally and case-sensitively. f.Limit must be
// positive (EINVALID otherwise).
func (s *Store) ListEvents(ctx context.Context, f odometer.EventFilter) ([]odometer.Event, error) {
	if f.Limit <= 0 {
		return nil, odometer.FieldErrorf("limit", "must be positive, got %d", f.Limit)
	}
	var q strings.Builder
	q.WriteString(`SELECT namespace, source, id, type, subject, time, ingested_at, specversion, datacontenttype, dataschema, data
		FROM events WHERE namespace = ?`)
	args := []any{f.Namespace}
	cond := func(sql string, arg any) {
		q.WriteString(" AND ")
		q.WriteString(sql)
		args = append(args, arg)
	}
	if !f.From.IsZero() {
		cond("time >= ?", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		cond("time < ?", f.To.UnixMicro())
	}
	if !f.IngestedFrom.IsZero() {
		cond("ingested_at >= ?", f.IngestedFrom.UnixMicro())
	}
	if !f.IngestedTo.IsZero() {
		cond("ingested_at < ?", f.IngestedTo.UnixMicro())
	}
	// instr, not LIKE: LIKE would need its wildcards escaped and is
	// case-insensitive for ASCII.
	if f.IDContains != "" {
		cond("instr(id, ?) > 0", f.IDContains)
	}
	if f.SubjectContains != "" {
		cond("instr(subject, ?) > 0", f.SubjectContains)
	}
	// seq is the rowid, which every index ends with, so events_time serves
	// this order without sorting.
	q.WriteString(" ORDER BY time DESC, seq DESC LIMIT ?")
	args = append(args, f.Limit)

	rows, err := s.query(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	events := []odometer.Event{}
	for rows.Next() {
		var e odometer.Event
		var t, ingested int64
		if err := rows.Scan(&e.Namespace, &e.Source, &e.ID, &e.Type, &e.Subject, &t, &ingested,
			&e.SpecVersion, &e.DataContentType, &e.DataSchema, (*[]byte)(&e.Data)); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		e.Time, e.IngestedAt = fromMicros(t), fromMicros(ingested)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return events, nil
}

// scanEventsSQL scans a meter's events in a time range; scanSubjectSQL
// one subject's, a range of the events_scan index. Unbounded times are
// bound as the extreme int64 values so that one prepared statement serves
// every scan.
const (
	scanEventsSQL = `SELECT subject, source, id, time, ingested_at, data FROM events
	WHERE namespace = ? AND type = ? AND time >= ? AND time < ?`
	scanSubjectSQL = scanEventsSQL + " AND subject = ?"
)

// ScanEvents calls fn for each event matching sc, grouped by subject when
// sc.Subjects is set; each event is delivered once even if a subject is
// listed twice. All subjects are read from one snapshot. The ScannedEvent
// and its Data are reused between calls. If fn returns an error, the scan
// stops and ScanEvents returns that error unwrapped.
func (s *Store) ScanEvents(ctx context.Context, sc odometer.EventScan, fn func(*odometer.ScannedEvent) error) error {
	if sc.NotRolledUp != 0 {
		return odometer.Errorf(odometer.EINVALID, "scan events: NotRolledUp is only for a Snapshot's scans")
	}
	// A read transaction, so that the per-subject queries see one snapshot.
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("scan events: %w", err)
	}
	defer tx.Rollback()
	return s.scanEvents(ctx, tx, sc, "", nil, fn)
}

// scanEvents is ScanEvents in tx, with cond (SQL starting with " AND ", and
// its arguments) added to every query.
func (s *Store) scanEvents(ctx context.Context, tx *sql.Tx, sc odometer.EventScan, cond string, condArgs []any,
	fn func(*odometer.ScannedEvent) error) error {
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !sc.From.IsZero() {
		from = sc.From.UnixMicro()
	}
	if !sc.To.IsZero() {
		to = sc.To.UnixMicro()
	}
	var e odometer.ScannedEvent
	var data sql.RawBytes
	scan := func(stmt *sql.Stmt, query string, args ...any) error {
		var rows *sql.Rows
		var err error
		if cond == "" {
			rows, err = tx.StmtContext(ctx, stmt).QueryContext(ctx, args...)
		} else {
			rows, err = tx.QueryContext(ctx, query+cond, append(args, condArgs...)...)
		}
		if err != nil {
			return fmt.Errorf("scan events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var t, ingested int64
			if err := rows.Scan(&e.Subject, &e.Source, &e.ID, &t, &ingested, &data); err != nil {
				return fmt.Errorf("scan events: %w", err)
			}
			e.Time, e.IngestedAt = fromMicros(t), fromMicros(ingested)
			e.Data = data
			if err := fn(&e); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("scan events: %w", err)
		}
		return nil
	}

	if len(sc.Subjects) == 0 {
		return scan(s.scanAllStmt, scanEventsSQL, sc.Namespace, sc.Type, from, to)
	}
	subjects := slices.Clone(sc.Subjects)
	slices.Sort(subjects)
	for _, subj := range slices.Compact(subjects) {
		if err := scan(s.scanSubjectStmt, scanSubjectSQL, sc.Namespace, sc.Type, from, to, subj); err != nil {
			return err
		}
	}
	return nil
}

// HasEvents reports whether the events table holds any event. The server
// uses it to refuse a data directory whose events live in a different event
// store than the one it was started with.
func (s *Store) HasEvents(ctx context.Context) (bool, error) {
	var n int
	if err := s.queryRow(ctx, "SELECT EXISTS (SELECT 1 FROM events)").Scan(&n); err != nil {
		return false, fmt.Errorf("check for events: %w", err)
	}
	return n == 1, nil
}

// listSubjectsSQL lists distinct subjects with a loose index scan of
// events_scan (namespace, type, subject, time), written as two recursive
// CTEs, so that it never reads every event: "types" steps from each type
// of the namespace to the next with one index probe (min(type) above the
// previous one), and "subjects" steps through each type's subjects from
// the lower bound, one probe (min(subject) above the previous one) per
// subject, at most @limit per type. The outer query merges the types'
// subjects. Cost: types × (limit + 1) probes at most. %s is the optional
// upper bound, " AND e.subject < @upper".
//
// EXPLAIN QUERY PLAN shows every probe as "SEARCH e USING COVERING INDEX
// events_scan (namespace=? AND type=? AND subject>?)" (or type>?), and
// the outer DISTINCT and ORDER BY as temporary B-trees over at most
// types × limit rows.
const listSubjectsSQL = `WITH RECURSIVE
	types(type) AS (
		SELECT (SELECT min(e.type) FROM events e WHERE e.namespace = @ns)
		UNION ALL
		SELECT (SELECT min(e.type) FROM events e WHERE e.namespace = @ns AND e.type > t.type)
		FROM types t WHERE t.type IS NOT NULL
	),
	subjects(type, subject, n) AS (
		SELECT t.type, (SELECT min(e.subject) FROM events e
			WHERE e.namespace = @ns AND e.type = t.type AND e.subject >= @lower%[1]s), 1
		FROM types t WHERE t.type IS NOT NULL
		UNION ALL
		SELECT s.type, (SELECT min(e.subject) FROM events e
			WHERE e.namespace = @ns AND e.type = s.type AND e.subject > s.subject%[1]s), s.n + 1
		FROM subjects s WHERE s.subject IS NOT NULL AND s.n < @limit
	)
	SELECT DISTINCT subject FROM subjects WHERE subject IS NOT NULL ORDER BY subject LIMIT @limit`

// ListSubjects returns the distinct subjects of f.Namespace's events that
// start with f.Prefix and sort after f.After, in byte order (SQLite
// compares TEXT with memcmp), at most f.Limit (which must be positive).
// Prefix and After become the range [max(Prefix, After+"\x00"),
// successor(Prefix)): no LIKE, so '%', '_' and case are literal.
func (s *Store) ListSubjects(ctx context.Context, f odometer.SubjectFilter) ([]string, error) {
	if f.Limit <= 0 {
		return nil, odometer.FieldErrorf("limit", "must be positive, got %d", f.Limit)
	}
	lower := f.Prefix
	if f.After != "" {
		// The smallest string above After; SQLite's TEXT holds NUL.
		lower = max(lower, f.After+"\x00")
	}
	args := []any{sql.Named("ns", f.Namespace), sql.Named("lower", lower), sql.Named("limit", f.Limit)}
	bound := ""
	if upper, ok := prefixSuccessor(f.Prefix); ok {
		if upper <= lower {
			return []string{}, nil
		}
		bound = " AND e.subject < @upper"
		args = append(args, sql.Named("upper", upper))
	}
	rows, err := s.query(ctx, fmt.Sprintf(listSubjectsSQL, bound), args...)
	if err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	defer rows.Close()
	subjects := []string{}
	for rows.Next() {
		var subject string
		if err := rows.Scan(&subject); err != nil {
			return nil, fmt.Errorf("list subjects: %w", err)
		}
		subjects = append(subjects, subject)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	return subjects, nil
}

// prefixSuccessor returns the smallest string greater than every string
// that starts with p, and false if there is none (p is empty or all 0xFF).
func prefixSuccessor(p string) (string, bool) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xFF {
			return p[:i] + string([]byte{p[i] + 1}), true
		}
	}
	return "", false
}

// maxLookupSources is how many distinct sources a namespace may have for
// LookupEvents to probe each of them when no source is given.
const maxLookupSources = 100_000

// lookupEventSQL is a point lookup in the unique index events_identity.
const lookupEventSQL = `SELECT source, type, subject, time, ingested_at, specversion, datacontenttype, dataschema, data
	FROM events WHERE namespace = @ns AND source = @source AND id = @id`

// lookupEventsSQL finds an id in every source of a namespace with a loose
// index scan of events_identity (namespace, source, id), as a recursive
// CTE, because a plain query would read every index entry of the
// namespace: "sources" steps from each source to the next with one index
// probe (min(source) above the previous one), at most @max + 1 of them,
// and each source found is joined with one point lookup of (namespace,
// source, id). The result holds the events found and, when the namespace
// has more than @max sources, a row whose n is @max + 1, which says so
// (ifnull gives it scannable blanks where it has no event).
// Cost: about two probes per distinct source.
//
// EXPLAIN QUERY PLAN shows the probes as "SEARCH e USING COVERING INDEX
// events_identity (namespace=? AND source>?)" (namespace=? for the first)
// and the join as "SEARCH e USING INDEX events_identity (namespace=? AND
// source=? AND id=?) LEFT-JOIN", driven by "SCAN s" of the CTE: no scan of
// events. On 500K events of 300 sources, an id that is not stored took
// 1 ms (12 ms cold), where the substring match of the whole namespace
// that the look-up used before took 72 ms.
const lookupEventsSQL = `WITH RECURSIVE
	sources(source, n) AS (
		SELECT (SELECT min(e.source) FROM events e WHERE e.namespace = @ns), 1
		UNION ALL
		SELECT (SELECT min(e.source) FROM events e WHERE e.namespace = @ns AND e.source > s.source), s.n + 1
		FROM sources s WHERE s.source IS NOT NULL AND s.n <= @max
	)
	SELECT s.n, s.source, ifnull(e.type, ''), ifnull(e.subject, ''), ifnull(e.time, 0), ifnull(e.ingested_at, 0),
		ifnull(e.specversion, ''), ifnull(e.datacontenttype, ''), ifnull(e.dataschema, ''), e.data
	FROM sources s LEFT JOIN events e ON e.namespace = @ns AND e.source = s.source AND e.id = @id
	WHERE s.source IS NOT NULL AND (e.seq IS NOT NULL OR s.n > @max)`

// LookupEvents returns the stored events of namespace with exactly this
// id, and this source unless source is "": at most one per source, ordered
// by source (byte order). With a source it is one lookup in the identity
// index; without, a loose index scan over the namespace's distinct sources
// (lookupEventsSQL), refused with EINVALID naming field "source" for a
// namespace with more than 100,000 of them.
func (s *Store) LookupEvents(ctx context.Context, namespace, id, source string) ([]odometer.Event, error) {
	q, args := lookupEventsSQL, []any{sql.Named("ns", namespace), sql.Named("id", id), sql.Named("max", maxLookupSources)}
	if source != "" {
		q, args = lookupEventSQL, []any{sql.Named("ns", namespace), sql.Named("source", source), sql.Named("id", id)}
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("look up events: %w", err)
	}
	defer rows.Close()
	events := []odometer.Event{}
	for rows.Next() {
		e := odometer.Event{Namespace: namespace, ID: id}
		var n, t, ingested int64
		dest := []any{&e.Source, &e.Type, &e.Subject, &t, &ingested, &e.SpecVersion, &e.DataContentType, &e.DataSchema, (*[]byte)(&e.Data)}
		if source == "" {
			dest = append([]any{&n}, dest...)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("look up events: %w", err)
		}
		if n > maxLookupSources { // the row that says the namespace has too many sources
			return nil, odometer.FieldErrorf("source",
				"required for this namespace: it has more than %d distinct sources, too many to look an id up in each", maxLookupSources)
		}
		e.Time, e.IngestedAt = fromMicros(t), fromMicros(ingested)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up events: %w", err)
	}
	slices.SortFunc(events, func(a, b odometer.Event) int { return strings.Compare(a.Source, b.Source) })
	return events, nil
}

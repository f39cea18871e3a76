package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

var _ odometer.RollupStore = (*Store)(nil)

// Usage rollups on SQLite (docs/rollups.md "On SQLite"), for a database
// that keeps its events (--event-log sqlite). They follow PostgreSQL's
// design, which SQLite's one writer makes simpler:
//
//   - An append adds its accepted events' cells, for the rollups of their
//     namespaces and types, as one row of usage_cell_deltas in its own
//     transaction.
//   - The fold moves deltas into usage_cells, added up, and deletes them,
//     in one write transaction.
//   - A query reads usage_cells, usage_cell_deltas and events in one read
//     transaction, one WAL snapshot: each event's cells are in one table
//     or the other, never both, never neither.
//
// Every write transaction holds SQLite's write lock from its start (BEGIN
// IMMEDIATE), also against other processes on the same file: an append
// reads which rollups exist and writes its delta with no rollup created
// or dropped between, and the fold, backfills and drops each read a cell
// and write it back with no other write between. No other lock is needed.

// foldEvery is how often a Store folds deltas, and foldDeltas the most it
// folds in one transaction.
const (
	foldEvery  = time.Second
	foldDeltas = 200
)

// rollupGenSQL identifies the set of rollups: IDs only grow
// (AUTOINCREMENT), so a created rollup raises the maximum and a dropped one
// lowers the count.
const rollupGenSQL = `SELECT coalesce(max(id), 0), count(*) FROM usage_rollups`

type rollupGen struct{ max, count int64 }

// rollupCache holds the rollers of the rollups an append adds to, as of
// the last generation an append read.
type rollupCache struct {
	mu     sync.Mutex
	gen    rollupGen
	loaded bool
	byType map[[2]string][]*usage.Roller
}

// addDeltas writes the cells of an append's accepted events, if any rollup
// counts them, as one usage_cell_deltas row in its transaction.
func (s *Store) addDeltas(ctx context.Context, tx *sql.Tx, events []odometer.Event, out []odometer.Outcome) error {
	var gen rollupGen
	if err := tx.StmtContext(ctx, s.rollupGenStmt).QueryRowContext(ctx).Scan(&gen.max, &gen.count); err != nil {
		return fmt.Errorf("read rollups: %w", err)
	}
	if gen.count == 0 {
		return nil
	}
	byType, err := s.rollers(ctx, tx, gen)
	if err != nil {
		return err
	}
	var cells usage.Cells
	cells.AddEvents(func(ns, typ string) []*usage.Roller { return byType[[2]string{ns, typ}] }, events, out)
	if cells.Len() == 0 {
		return nil
	}
	if _, err := tx.StmtContext(ctx, s.insertDeltaStmt).ExecContext(ctx, cells.AppendEncoded(nil)); err != nil {
		return fmt.Errorf("write rollup cell delta: %w", err)
	}
	return nil
}

// rollers returns, for gen, the rollers of each namespace and type,
// reading the rollups in tx when the cache holds another generation.
func (s *Store) rollers(ctx context.Context, tx *sql.Tx, gen rollupGen) (map[[2]string][]*usage.Roller, error) {
	c := &s.rollupCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded && c.gen == gen {
		return c.byType, nil
	}
	list, err := readRollups(ctx, tx, "")
	if err != nil {
		return nil, err
	}
	byType := map[[2]string][]*usage.Roller{}
	for _, r := range list {
		rl, err := usage.NewRoller(r.Rollup)
		if err != nil {
			return nil, err
		}
		k := [2]string{r.Meter.Namespace, r.Meter.EventType}
		byType[k] = append(byType[k], rl)
	}
	c.gen, c.loaded, c.byType = gen, true, byType
	return byType, nil
}

// rollupRow is a usage_rollups row.
type rollupRow struct {
	odometer.Rollup
	createdSeq int64
	counted    bool
	// The backfill's cursor: the last event it read; valid if hasCursor.
	hasCursor     bool
	cursorSubject string
	cursorTime    int64 // microseconds
	cursorSeq     int64
}

const rollupColumns = `id, namespace, fingerprint, definition, created_seq, cursor_subject, cursor_time, cursor_seq,
	counted, pending, backfilled`

func scanRollup(row interface{ Scan(dest ...any) error }) (*rollupRow, error) {
	var (
		r       rollupRow
		id      int64
		fp      []byte
		def     string
		subject sql.NullString
		at, seq sql.NullInt64
	)
	if err := row.Scan(&id, &r.Meter.Namespace, &fp, &def, &r.createdSeq, &subject, &at, &seq,
		&r.counted, &r.Pending, &r.Backfilled); err != nil {
		return nil, err
	}
	ns := r.Meter.Namespace
	if err := json.Unmarshal([]byte(def), &r.Meter); err != nil {
		return nil, fmt.Errorf("rollup %d: definition: %w", id, err)
	}
	r.Meter.Namespace = ns
	if len(fp) != len(r.Fingerprint) {
		return nil, fmt.Errorf("rollup %d: fingerprint of %d bytes", id, len(fp))
	}
	r.ID = uint64(id)
	copy(r.Fingerprint[:], fp)
	if subject.Valid && at.Valid && seq.Valid {
		r.hasCursor, r.cursorSubject, r.cursorTime, r.cursorSeq = true, subject.String, at.Int64, seq.Int64
	}
	return &r, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readRollups returns the namespace's rollups ("" = every namespace's) by
// ID.
func readRollups(ctx context.Context, q querier, namespace string) ([]*rollupRow, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+rollupColumns+` FROM usage_rollups
		WHERE ?1 = '' OR namespace = ?1 ORDER BY id`, namespace)
	if err != nil {
		return nil, fmt.Errorf("read rollups: %w", err)
	}
	defer rows.Close()
	var out []*rollupRow
	for rows.Next() {
		r, err := scanRollup(rows)
		if err != nil {
			return nil, fmt.Errorf("read rollups: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rollups: %w", err)
	}
	return out, nil
}

func rollupList(rows []*rollupRow, namespace string) []odometer.Rollup {
	out := []odometer.Rollup{}
	for _, r := range rows {
		if namespace == "" || r.Meter.Namespace == namespace {
			out = append(out, r.Rollup)
		}
	}
	return out
}

// EnsureRollup returns the namespace's rollup of r's definition, creating
// it if needed. Its transaction holds the write lock, so no append is in
// flight: every event up to the rollup's created_seq is committed, and
// every later one is appended by a transaction that sees the rollup.
func (s *Store) EnsureRollup(ctx context.Context, r odometer.Rollup) (odometer.Rollup, error) {
	got, err := s.ensureRollup(ctx, r)
	if err != nil {
		return odometer.Rollup{}, fmt.Errorf("ensure rollup: %w", err)
	}
	return got.Rollup, nil
}

func (s *Store) ensureRollup(ctx context.Context, r odometer.Rollup) (*rollupRow, error) {
	def, err := json.Marshal(r.Meter)
	if err != nil {
		return nil, err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	got, err := scanRollup(tx.QueryRowContext(ctx, `SELECT `+rollupColumns+` FROM usage_rollups
		WHERE namespace = ? AND fingerprint = ?`, r.Meter.Namespace, r.Fingerprint[:]))
	if !errors.Is(err, sql.ErrNoRows) {
		return got, err
	}
	var last int64
	var stored bool
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&last); err != nil {
		return nil, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE namespace = ? AND type = ?)`,
		r.Meter.Namespace, r.Meter.EventType).Scan(&stored); err != nil {
		return nil, err
	}
	// With no event of its type stored yet, there is nothing to backfill.
	got, err = scanRollup(tx.QueryRowContext(ctx, `INSERT INTO usage_rollups
			(namespace, fingerprint, definition, created_seq, counted, backfilled)
		VALUES (?1, ?2, ?3, ?4, ?5, ?5) RETURNING `+rollupColumns,
		r.Meter.Namespace, r.Fingerprint[:], string(def), last, !stored))
	if err != nil {
		return nil, err
	}
	return got, tx.Commit()
}

// Rollups returns the namespace's rollups ("" = every namespace's), by ID.
func (s *Store) Rollups(ctx context.Context, namespace string) ([]odometer.Rollup, error) {
	rows, err := readRollups(ctx, s.read, namespace)
	if err != nil {
		return nil, err
	}
	return rollupList(rows, namespace), nil
}

// DropRollup deletes a rollup and its cells. Its deltas are left to the
// fold, which skips the cells of rollups that are gone.
func (s *Store) DropRollup(ctx context.Context, id uint64) error {
	if err := s.dropRollup(ctx, id); err != nil {
		return fmt.Errorf("drop rollup %d: %w", id, err)
	}
	return nil
}

func (s *Store) dropRollup(ctx context.Context, id uint64) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM usage_rollups WHERE id = ?`, int64(id))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err == nil {
			err = odometer.Errorf(odometer.ENOTFOUND, "rollup %d not found", id)
		}
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM usage_cells WHERE rollup = ?`, int64(id)); err != nil {
		return err
	}
	return tx.Commit()
}

// notRolledUp returns the condition, to AND to a scan of a rollup's
// namespace and type, that keeps the events its backfill has not read:
// stored before its creation, after its cursor if it has one.
func notRolledUp(r *rollupRow) (string, []any) {
	if !r.hasCursor {
		return ` AND seq <= ?`, []any{r.createdSeq}
	}
	// The bound on subject alone is what events_scan seeks with.
	return ` AND seq <= ? AND subject >= ? AND (subject, time, seq) > (?, ?, ?)`,
		[]any{r.createdSeq, r.cursorSubject, r.cursorSubject, r.cursorTime, r.cursorSeq}
}

// BackfillRollup adds up to limit of the events stored before the rollup's
// creation, in events_scan's order from its cursor, to its cells, in one
// transaction with the new cursor.
func (s *Store) BackfillRollup(ctx context.Context, id uint64, limit int) (odometer.Rollup, error) {
	r, err := s.backfill(ctx, id, limit)
	if err != nil {
		return odometer.Rollup{}, fmt.Errorf("backfill rollup %d: %w", id, err)
	}
	return r.Rollup, nil
}

func (s *Store) backfill(ctx context.Context, id uint64, limit int) (*rollupRow, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	r, err := scanRollup(tx.QueryRowContext(ctx, `SELECT `+rollupColumns+` FROM usage_rollups WHERE id = ?`, int64(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, odometer.Errorf(odometer.ENOTFOUND, "rollup %d not found", id)
	}
	if err != nil || r.Backfilled {
		return r, err
	}
	roller, err := usage.NewRoller(r.Rollup)
	if err != nil {
		return nil, err
	}
	if !r.counted {
		cond, condArgs := notRolledUp(r)
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE namespace = ? AND type = ?`+cond,
			append([]any{r.Meter.Namespace, r.Meter.EventType}, condArgs...)...).Scan(&r.Pending); err != nil {
			return nil, err
		}
		r.counted = true
	}
	// In events_scan's order from the cursor: first the rest of the
	// cursor's subject, then the subjects after it. Each is one seek of
	// the index, where a condition on (subject, time, seq) together would
	// read the cursor's subject from its first event at every step.
	var cells usage.Cells
	var e odometer.ScannedEvent
	var data sql.RawBytes
	n, done := 0, true
	read := func(where string, args ...any) error {
		rows, err := tx.QueryContext(ctx, `SELECT subject, source, id, time, ingested_at, data, seq FROM events
			WHERE namespace = ? AND type = ? AND seq <= ? AND `+where+` ORDER BY subject, time, seq LIMIT ?`,
			append(append([]any{r.Meter.Namespace, r.Meter.EventType, r.createdSeq}, args...), limit-n+1)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if n == limit {
				done = false
				break
			}
			var t, ingested, seq int64
			if err := rows.Scan(&e.Subject, &e.Source, &e.ID, &t, &ingested, &data, &seq); err != nil {
				return err
			}
			e.Time, e.IngestedAt, e.Data = fromMicros(t), fromMicros(ingested), data
			cells.Add(roller, &e)
			r.hasCursor, r.cursorSubject, r.cursorTime, r.cursorSeq = true, e.Subject, t, seq
			n++
		}
		return rows.Err()
	}
	if !r.hasCursor {
		err = read(`1`)
	} else {
		subject := r.cursorSubject
		err = read(`subject = ? AND time >= ? AND (time, seq) > (?, ?)`, subject, r.cursorTime, r.cursorTime, r.cursorSeq)
		if err == nil && done {
			err = read(`subject > ?`, subject)
		}
	}
	if err != nil {
		return nil, err
	}
	aggs := map[uint64]odometer.Aggregation{r.ID: r.Meter.Aggregation}
	if err := s.writeCells(ctx, tx, cells.Cells(), aggs); err != nil {
		return nil, err
	}
	r.Pending = max(0, r.Pending-int64(n))
	if r.Backfilled = done; done {
		r.Pending = 0
	}
	var subject, at, seq any
	if r.hasCursor {
		subject, at, seq = r.cursorSubject, r.cursorTime, r.cursorSeq
	}
	if _, err := tx.ExecContext(ctx, `UPDATE usage_rollups SET cursor_subject = ?2, cursor_time = ?3, cursor_seq = ?4,
		counted = 1, pending = ?5, backfilled = ?6 WHERE id = ?1`, int64(id), subject, at, seq, r.Pending, r.Backfilled); err != nil {
		return nil, err
	}
	return r, tx.Commit()
}

// writeCells adds cells (each with a one-partial value) to usage_cells in
// tx, a write transaction: it reads the stored cell each adds to, folds
// the two into one partial and writes it back.
func (s *Store) writeCells(ctx context.Context, tx *sql.Tx, cells []usage.Cell, aggs map[uint64]odometer.Aggregation) error {
	get, put := tx.StmtContext(ctx, s.getCellStmt), tx.StmtContext(ctx, s.putCellStmt)
	var old []byte
	for _, c := range cells {
		groups := c.Groups
		if groups == nil {
			groups = []byte{} // NOT NULL: the driver binds a nil slice as NULL
		}
		key := []any{int64(c.Rollup), c.BySubject, int64(c.Size / time.Second), c.Subject, c.Bucket.Unix(), groups}
		value := c.Value
		err := get.QueryRowContext(ctx, key...).Scan(&old)
		switch {
		case err == nil:
			if value, err = usage.FoldPartials(aggs[c.Rollup], append(old, c.Value...)); err != nil {
				return fmt.Errorf("rollup %d cell at %s: %w", c.Rollup, c.Bucket.Format(time.RFC3339), err)
			}
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("read rollup cell: %w", err)
		}
		if _, err := put.ExecContext(ctx, append(key, value)...); err != nil {
			return fmt.Errorf("write rollup cell: %w", err)
		}
	}
	return nil
}

const (
	getCellSQL = `SELECT value FROM usage_cells
		WHERE rollup = ? AND by_subject = ? AND size_seconds = ? AND subject = ? AND bucket = ? AND groups = ?`
	putCellSQL = `INSERT INTO usage_cells (rollup, by_subject, size_seconds, subject, bucket, groups, value)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (rollup, by_subject, size_seconds, subject, bucket, groups) DO UPDATE SET value = excluded.value`
)

// FoldRollups moves up to foldDeltas rows of usage_cell_deltas into
// usage_cells, in one transaction, and returns how many it moved. Each
// Store runs it every second; tests call it to fold at a chosen moment.
func (s *Store) FoldRollups(ctx context.Context) (int, error) {
	n, err := s.fold(ctx)
	if err != nil {
		return 0, fmt.Errorf("fold rollup cells: %w", err)
	}
	return n, nil
}

func (s *Store) fold(ctx context.Context) (int, error) {
	// Most of the time there is nothing to fold: find out without taking
	// the write lock from appends.
	var waiting bool
	if err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM usage_cell_deltas)`).Scan(&waiting); err != nil || !waiting {
		return 0, err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	list, err := readRollups(ctx, tx, "")
	if err != nil {
		return 0, err
	}
	aggs := map[uint64]odometer.Aggregation{}
	for _, r := range list {
		aggs[r.ID] = r.Meter.Aggregation
	}
	keep := func(id uint64) bool { _, ok := aggs[id]; return ok }
	rows, err := tx.QueryContext(ctx, `SELECT id, cells FROM usage_cell_deltas ORDER BY id LIMIT ?`, foldDeltas)
	if err != nil {
		return 0, err
	}
	var cells usage.Cells
	var last int64
	var b []byte
	n := 0
	for rows.Next() {
		if err := rows.Scan(&last, &b); err != nil {
			rows.Close()
			return 0, err
		}
		if err := cells.AddEncoded(b, keep); err != nil {
			rows.Close()
			return 0, fmt.Errorf("cell delta %d: %w", last, err)
		}
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil || n == 0 {
		return 0, err
	}
	if err := s.writeCells(ctx, tx, cells.Cells(), aggs); err != nil {
		return 0, err
	}
	// The transaction holds the write lock: the rows up to last are
	// exactly those read.
	if _, err := tx.ExecContext(ctx, `DELETE FROM usage_cell_deltas WHERE id <= ?`, last); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// runFold folds deltas every foldEvery until ctx ends.
func (s *Store) runFold(ctx context.Context) {
	usage.RunFold(ctx, foldEvery, foldDeltas, s.FoldRollups, func(err error) {
		s.log.Warn("sqlite: fold usage rollup cells", "err", err)
	})
}

// Snapshot returns a view of the events and rollups as of now: a read
// transaction, which holds a read connection and one WAL snapshot until it
// is closed.
func (s *Store) Snapshot(ctx context.Context) (odometer.RollupSnapshot, error) {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &snapshot{s: s, tx: tx}, nil
}

type snapshot struct {
	s      *Store
	tx     *sql.Tx
	rows   []*rollupRow // every namespace's, read on first use
	read   bool
	deltas *usage.Deltas // every delta row, read on first use
}

func (s *snapshot) Close() error { return s.tx.Rollback() }

func (s *snapshot) rollups(ctx context.Context) ([]*rollupRow, error) {
	if !s.read {
		rows, err := readRollups(ctx, s.tx, "")
		if err != nil {
			return nil, err
		}
		s.rows, s.read = rows, true
	}
	return s.rows, nil
}

func (s *snapshot) Rollups(ctx context.Context, namespace string) ([]odometer.Rollup, error) {
	rows, err := s.rollups(ctx)
	if err != nil {
		return nil, err
	}
	return rollupList(rows, namespace), nil
}

func (s *snapshot) ScanEvents(ctx context.Context, sc odometer.EventScan, fn func(*odometer.ScannedEvent) error) error {
	if sc.NotRolledUp == 0 {
		return s.s.scanEvents(ctx, s.tx, sc, "", nil, fn)
	}
	rows, err := s.rollups(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(rows, func(r *rollupRow) bool { return r.ID == sc.NotRolledUp })
	if i < 0 {
		return odometer.Errorf(odometer.ENOTFOUND, "rollup %d not found", sc.NotRolledUp)
	}
	if rows[i].Backfilled {
		return nil
	}
	cond, args := notRolledUp(rows[i])
	return s.s.scanEvents(ctx, s.tx, sc, cond, args, fn)
}

// readCellsSQL reads a rollup's cells of one kind and size, of one
// subject (the empty one for cells for all subjects), over a range of buckets: one
// range of the primary key.
const readCellsSQL = `SELECT bucket, subject, groups, value FROM usage_cells
	WHERE rollup = ?1 AND by_subject = ?2 AND size_seconds = ?3 AND subject = ?4 AND bucket >= ?5 AND bucket < ?6`

// readSubjectsCellsSQL reads the per-subject cells of every subject over
// a range of buckets: a loose index scan steps from each subject to the
// next with one probe of the primary key and reads that subject's range,
// so that the buckets outside the range are never read, however long the
// history. CROSS JOIN is SQLite's way to fix the join order: with JOIN the
// SQLite this binary embeds put the cells outside and rescanned the list of
// subjects for each (minutes at 200K events instead of 0.1 s;
// TestSubjectsCellsPlan).
const readSubjectsCellsSQL = `WITH RECURSIVE subjects(subject) AS (
		SELECT (SELECT min(subject) FROM usage_cells WHERE rollup = ?1 AND by_subject = 1 AND size_seconds = ?2)
		UNION ALL
		SELECT (SELECT min(c.subject) FROM usage_cells c
			WHERE c.rollup = ?1 AND c.by_subject = 1 AND c.size_seconds = ?2 AND c.subject > s.subject)
		FROM subjects s WHERE s.subject IS NOT NULL
	)
	SELECT c.bucket, c.subject, c.groups, c.value FROM subjects s CROSS JOIN usage_cells c
		ON c.rollup = ?1 AND c.by_subject = 1 AND c.size_seconds = ?2 AND c.subject = s.subject
			AND c.bucket >= ?3 AND c.bucket < ?4`

func (s *snapshot) ReadRollups(ctx context.Context, sc odometer.RollupScan, fn func(*odometer.RollupCell) error) error {
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !sc.From.IsZero() {
		from = sc.From.Unix()
	}
	if !sc.To.IsZero() {
		to = sc.To.Unix()
	}
	rollup, size := int64(sc.Rollup), int64(sc.Size/time.Second)
	read := func(query string, args ...any) error {
		rows, err := s.tx.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("read rollup cells: %w", err)
		}
		defer rows.Close()
		var c odometer.RollupCell
		var bucket int64
		var groups, value sql.RawBytes
		for rows.Next() {
			if err := rows.Scan(&bucket, &c.Subject, &groups, &value); err != nil {
				return fmt.Errorf("read rollup cells: %w", err)
			}
			c.Bucket, c.Groups, c.Value = time.Unix(bucket, 0).UTC(), groups, value
			if err := fn(&c); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read rollup cells: %w", err)
		}
		return nil
	}
	var err error
	switch {
	case !sc.BySubject:
		err = read(readCellsSQL, rollup, false, size, "", from, to)
	case len(sc.Subjects) > 0:
		for _, subject := range sc.Subjects {
			if err = read(readCellsSQL, rollup, true, size, subject, from, to); err != nil {
				break
			}
		}
	case sc.From.IsZero():
		// From the first bucket: every cell of the kind is read anyway.
		err = read(`SELECT bucket, subject, groups, value FROM usage_cells
			WHERE rollup = ? AND by_subject = 1 AND size_seconds = ? AND bucket < ?`, rollup, size, to)
	default:
		err = read(readSubjectsCellsSQL, rollup, size, from, to)
	}
	if err != nil {
		return err
	}
	// The cells of appends not folded yet, from the same snapshot.
	d, err := s.readDeltas(ctx)
	if err != nil {
		return err
	}
	if err := d.Scan(sc, fn); err != nil {
		return fmt.Errorf("read rollup cell deltas: %w", err)
	}
	return nil
}

// readDeltas returns the snapshot's deltas, reading every delta row on
// first use.
func (s *snapshot) readDeltas(ctx context.Context) (*usage.Deltas, error) {
	if s.deltas == nil {
		rows, err := s.tx.QueryContext(ctx, `SELECT cells FROM usage_cell_deltas`)
		if err != nil {
			return nil, fmt.Errorf("read rollup cell deltas: %w", err)
		}
		var list [][]byte
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read rollup cell deltas: %w", err)
			}
			list = append(list, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read rollup cell deltas: %w", err)
		}
		s.deltas = usage.NewDeltas(list)
	}
	return s.deltas, nil
}

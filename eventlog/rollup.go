package eventlog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// Usage rollups (docs/rollups.md). A rollup's definition lives under
//
//	'R' u64(id) → JSON rollupRecord
//
// and its cells under
//
//	'r' u64(id) byte(by subject: 1, all subjects: 0) u64(size, ns) time(bucket) [str(subject)] groups
//
// valued with a list of partial aggregates (usage/partial.go). The
// flusher (pending.go) and backfills add to a cell with a Pebble merge: a
// cell is never read to be written, so a flush costs one merge per cell it
// touches.

// Folding. A cell's list grows by one partial per flush (or backfill step)
// that touches it, and every read decodes the whole list. cellMerger folds
// the list into one partial whenever Pebble merges a cell's operands: in
// every flush of a memtable and every compaction. Stored, a cell holds at
// most one partial per table that holds it (one per level of the LSM
// tree, plus level 0's few overlapping tables), however many events it
// counts; only a memtable holds one per flush until it is flushed.
var cellMerger = &pebble.Merger{
	// The default merger's name, on purpose: Pebble refuses to open a
	// store whose recorded merger name differs, and this merger's results
	// are what concatenation's would be once read (a folded list is the
	// value of the events its concatenation holds), so stores written
	// before it and after it are the same store.
	Name: pebble.DefaultMerger.Name,
	Merge: func(key, value []byte) (pebble.ValueMerger, error) {
		return &cellFold{list: slices.Clone(value)}, nil
	},
}

// cellFold collects a cell's operands, in any order (partials merge
// commutatively), and folds them in Finish.
type cellFold struct {
	list     []byte
	operands int
}

func (f *cellFold) MergeNewer(v []byte) error {
	f.list = append(f.list, v...)
	f.operands++
	return nil
}
func (f *cellFold) MergeOlder(v []byte) error { return f.MergeNewer(v) }

// Finish folds; a list FoldList cannot fold (a corrupt cell, or a key that
// is not a cell) stays concatenated, for the reader to report.
func (f *cellFold) Finish(bool) ([]byte, io.Closer, error) {
	if f.operands > 0 {
		if folded, ok := usage.FoldList(f.list); ok {
			return folded, nil, nil
		}
	}
	return f.list, nil, nil
}

// rollupRecord is a rollup's stored state.
type rollupRecord struct {
	// Namespace is Meter.Namespace, which Meter's JSON leaves out.
	Namespace   string         `json:"namespace"`
	Meter       odometer.Meter `json:"meter"`
	Fingerprint []byte         `json:"fingerprint"`
	// Seq is the last event sequence number stored before the rollup was
	// created: appends add the events after it; the backfill those up to
	// it, in key order.
	Seq uint64 `json:"seq"`
	// Cursor is the last event key the backfill added; nil before the
	// first.
	Cursor     []byte `json:"cursor,omitempty"`
	Backfilled bool   `json:"backfilled"`
	Pending    int64  `json:"pending"`
	Counted    bool   `json:"counted"` // Pending has been counted
}

// rollupState is a rollup held in memory, under l.mu.
type rollupState struct {
	id     uint64
	rec    rollupRecord
	roller *usage.Roller
}

func (s *rollupState) rollup() odometer.Rollup {
	r := odometer.Rollup{ID: s.id, Meter: s.rec.Meter, Backfilled: s.rec.Backfilled, Pending: s.rec.Pending}
	copy(r.Fingerprint[:], s.rec.Fingerprint)
	return r
}

type nsType struct{ ns, typ string }

// rollupSet is the log's rollups, guarded by Log.mu.
type rollupSet struct {
	byID   map[uint64]*rollupState
	byType map[nsType][]*usage.Roller
	lastID uint64
}

var keyRollupID = []byte{tagMeta, 'r', 'o', 'l', 'l', 'u', 'p', 'i', 'd'}

func rollupDefKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagRollupDef}, id)
}

func rollupPrefix(dst []byte, id uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagRollup), id)
}

// cellKey returns the key of a cell; the bucket part ends at len(prefix)
// + 8 (see cellPrefix).
func cellKey(dst []byte, c *usage.Cell) []byte {
	dst = cellPrefix(dst, c.Rollup, c.BySubject, c.Size)
	dst = appendTime(dst, c.Bucket)
	if c.BySubject {
		dst = appendString(dst, c.Subject)
	}
	return append(dst, c.Groups...)
}

func cellPrefix(dst []byte, id uint64, bySubject bool, size time.Duration) []byte {
	dst = rollupPrefix(dst, id)
	g := byte(0)
	if bySubject {
		g = 1
	}
	return binary.BigEndian.AppendUint64(append(dst, g), uint64(size))
}

// loadRollups reads the rollups' definitions at Open.
func (l *Log) loadRollups() error {
	l.rollups = rollupSet{byID: map[uint64]*rollupState{}, byType: map[nsType][]*usage.Roller{}}
	v, closer, err := l.db.Get(keyRollupID)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read rollup id: %w", err)
	default:
		if len(v) == 8 {
			l.rollups.lastID = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	}
	recs, err := readRollupRecords(l.db)
	if err != nil {
		return err
	}
	for _, s := range recs {
		if err := l.rollups.add(s); err != nil {
			return err
		}
	}
	return nil
}

// readRollupRecords reads every stored rollup.
func readRollupRecords(r pebble.Reader) ([]*rollupState, error) {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{tagRollupDef}, UpperBound: []byte{tagRollupDef + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*rollupState
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 9 {
			return nil, fmt.Errorf("rollup key %x: %w", k, errCorruptKey)
		}
		s := &rollupState{id: binary.BigEndian.Uint64(k[1:])}
		if err := json.Unmarshal(it.Value(), &s.rec); err != nil {
			return nil, fmt.Errorf("rollup %d: %w", s.id, err)
		}
		s.rec.Meter.Namespace = s.rec.Namespace
		out = append(out, s)
	}
	return out, it.Error()
}

func (rs *rollupSet) add(s *rollupState) error {
	roller, err := usage.NewRoller(s.rollup())
	if err != nil {
		return err
	}
	s.roller = roller
	rs.byID[s.id] = s
	k := nsType{s.rec.Meter.Namespace, s.rec.Meter.EventType}
	rs.byType[k] = append(rs.byType[k], roller)
	return nil
}

func (rs *rollupSet) remove(id uint64) {
	s := rs.byID[id]
	delete(rs.byID, id)
	k := nsType{s.rec.Meter.Namespace, s.rec.Meter.EventType}
	rs.byType[k] = slices.DeleteFunc(rs.byType[k], func(r *usage.Roller) bool { return r == s.roller })
	if len(rs.byType[k]) == 0 {
		delete(rs.byType, k)
	}
}

func (rs *rollupSet) rollers(ns, typ string) []*usage.Roller { return rs.byType[nsType{ns, typ}] }

// writeCells adds cells to batch, one merge each. Called under l.cellMu.
func writeCells(batch *pebble.Batch, cells []usage.Cell) error {
	// In key order: consecutive inserts into the memtable's skiplist then
	// share most of their search path.
	keys := make([][]byte, len(cells))
	var arena []byte
	for i := range cells {
		n := len(arena)
		arena = cellKey(arena, &cells[i])
		keys[i] = arena[n:len(arena):len(arena)]
	}
	order := make([]int, len(cells))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int { return bytes.Compare(keys[i], keys[j]) })
	for _, i := range order {
		if err := batch.Merge(keys[i], cells[i].Value, nil); err != nil {
			return err
		}
	}
	return nil
}

// readRollupRecord reads a rollup's stored state; nil if there is none.
func readRollupRecord(r pebble.Reader, id uint64) (*rollupRecord, error) {
	v, closer, err := r.Get(rollupDefKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read rollup %d: %w", id, err)
	}
	defer closer.Close()
	var rec rollupRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("rollup %d: %w", id, err)
	}
	return &rec, nil
}

// EnsureRollup returns the namespace's rollup of r's definition, creating
// it if needed. A new rollup records the last event sequence number: the
// events after it are added by their appends, those up to it by
// BackfillRollup.
func (l *Log) EnsureRollup(ctx context.Context, r odometer.Rollup) (odometer.Rollup, error) {
	if err := ctx.Err(); err != nil {
		return odometer.Rollup{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return odometer.Rollup{}, fmt.Errorf("ensure rollup: %w", errClosed)
	}
	for _, s := range l.rollups.byID {
		if s.rec.Meter.Namespace == r.Meter.Namespace && bytes.Equal(s.rec.Fingerprint, r.Fingerprint[:]) {
			return s.rollup(), nil
		}
	}
	s := &rollupState{id: l.rollups.lastID + 1, rec: rollupRecord{Namespace: r.Meter.Namespace, Meter: r.Meter, Fingerprint: r.Fingerprint[:], Seq: l.seq}}
	// With no event of its type stored yet, there is nothing to backfill.
	prefix := eventPrefix(nil, r.Meter.Namespace, r.Meter.EventType)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixSuccessor(nil, prefix)})
	if err != nil {
		return odometer.Rollup{}, fmt.Errorf("ensure rollup: %w", err)
	}
	empty := !it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return odometer.Rollup{}, fmt.Errorf("ensure rollup: %w", err)
	}
	s.rec.Backfilled, s.rec.Counted = empty, empty
	if err := l.rollups.add(s); err != nil {
		return odometer.Rollup{}, err
	}
	batch := l.db.NewBatch()
	defer batch.Close()
	rec, _ := json.Marshal(s.rec)
	batch.Set(rollupDefKey(s.id), rec, nil)
	batch.Set(keyRollupID, binary.BigEndian.AppendUint64(nil, s.id), nil)
	if err := batch.Commit(pebble.Sync); err != nil {
		l.rollups.remove(s.id)
		return odometer.Rollup{}, fmt.Errorf("ensure rollup: %w", err)
	}
	l.rollups.lastID = s.id
	return s.rollup(), nil
}

// Rollups returns the namespace's rollups ("" = every namespace's), by ID.
func (l *Log) Rollups(ctx context.Context, namespace string) ([]odometer.Rollup, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []odometer.Rollup
	for _, s := range l.rollups.byID {
		if namespace == "" || s.rec.Meter.Namespace == namespace {
			out = append(out, s.rollup())
		}
	}
	slices.SortFunc(out, func(a, b odometer.Rollup) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DropRollup deletes a rollup and its cells. Its pending cells are left
// out by the next flush.
func (l *Log) DropRollup(ctx context.Context, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.cellMu.Lock()
	defer l.cellMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return fmt.Errorf("drop rollup: %w", errClosed)
	}
	if l.rollups.byID[id] == nil {
		return odometer.Errorf(odometer.ENOTFOUND, "rollup %d not found", id)
	}
	batch := l.db.NewBatch()
	defer batch.Close()
	batch.Delete(rollupDefKey(id), nil)
	p := rollupPrefix(nil, id)
	batch.DeleteRange(p, prefixSuccessor(nil, p), nil)
	if err := batch.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("drop rollup %d: %w", id, err)
	}
	l.rollups.remove(id)
	return nil
}

// BackfillRollup adds up to about limit of the events stored before the
// rollup's creation, in key order from where the last call stopped, in
// one batch with the new position.
func (l *Log) BackfillRollup(ctx context.Context, id uint64, limit int) (odometer.Rollup, error) {
	l.backfillMu.Lock()
	defer l.backfillMu.Unlock()
	if l.closed.Load() {
		return odometer.Rollup{}, fmt.Errorf("backfill rollup %d: %w", id, errClosed)
	}
	l.mu.Lock()
	s := l.rollups.byID[id]
	var rec rollupRecord
	if s != nil {
		rec = s.rec
	}
	l.mu.Unlock()
	if s == nil {
		return odometer.Rollup{}, odometer.Errorf(odometer.ENOTFOUND, "rollup %d not found", id)
	}
	if rec.Backfilled {
		return s.rollup(), nil
	}
	prefix := eventPrefix(nil, rec.Meter.Namespace, rec.Meter.EventType)
	lower := prefix
	if rec.Cursor != nil {
		lower = append(slices.Clip(rec.Cursor), 0) // just after it
	}
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: prefixSuccessor(nil, prefix)})
	if err != nil {
		return odometer.Rollup{}, fmt.Errorf("backfill rollup %d: %w", id, err)
	}
	defer it.Close()
	if !rec.Counted {
		n := int64(0)
		for ok := it.First(); ok; ok = it.Next() {
			if k := it.Key(); binary.BigEndian.Uint64(k[len(k)-8:]) <= rec.Seq {
				n++
			}
		}
		if err := it.Error(); err != nil {
			return odometer.Rollup{}, fmt.Errorf("backfill rollup %d: %w", id, err)
		}
		rec.Pending, rec.Counted = n, true
	}
	var cells usage.Cells
	var r recordView
	var e odometer.ScannedEvent
	done, n := true, 0
	var cursor []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < len(prefix)+suffixLen+2 {
			return odometer.Rollup{}, fmt.Errorf("backfill rollup %d: %w", id, errCorruptKey)
		}
		if binary.BigEndian.Uint64(k[len(k)-8:]) > rec.Seq {
			continue // appended after the rollup's creation: added then
		}
		if n >= limit {
			done = false
			break
		}
		subjEnd := len(k) - suffixLen
		subj, _, err := decodeString(k[len(prefix):subjEnd])
		if err != nil {
			return odometer.Rollup{}, err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return odometer.Rollup{}, err
		}
		if err := decodeRecord(v, &r); err != nil {
			return odometer.Rollup{}, err
		}
		e = odometer.ScannedEvent{Subject: subj, Source: string(r.source), ID: string(r.id), Time: decodeTime(k[subjEnd:]),
			IngestedAt: time.UnixMicro(r.ingestedAt).UTC(), Data: r.data}
		cells.Add(s.roller, &e)
		cursor = append(cursor[:0], k...)
		n++
		if n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return odometer.Rollup{}, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return odometer.Rollup{}, fmt.Errorf("backfill rollup %d: %w", id, err)
	}
	if cursor != nil {
		rec.Cursor = cursor
	}
	rec.Pending = max(0, rec.Pending-int64(n))
	rec.Backfilled = done
	if done {
		rec.Pending = 0
	}

	l.cellMu.Lock()
	defer l.cellMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return odometer.Rollup{}, fmt.Errorf("backfill rollup %d: %w", id, errClosed)
	}
	if l.rollups.byID[id] != s {
		return odometer.Rollup{}, odometer.Errorf(odometer.ENOTFOUND, "rollup %d not found", id)
	}
	batch := l.db.NewBatch()
	defer batch.Close()
	if err := writeCells(batch, cells.Cells()); err != nil {
		return odometer.Rollup{}, fmt.Errorf("backfill rollup %d: %w", id, err)
	}
	b, _ := json.Marshal(rec)
	batch.Set(rollupDefKey(id), b, nil)
	// NoSync: a later synced append makes it durable, and if it is lost
	// the cells and the cursor are lost together.
	if err := batch.Commit(pebble.NoSync); err != nil {
		return odometer.Rollup{}, fmt.Errorf("backfill rollup %d: %w", id, err)
	}
	s.rec = rec
	return s.rollup(), nil
}

// Snapshot returns a consistent view of the log's events and rollups.
func (l *Log) Snapshot(ctx context.Context) (odometer.RollupSnapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if l.closed.Load() {
		return nil, fmt.Errorf("snapshot: %w", errClosed)
	}
	snap, gens, err := l.view()
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &snapshot{l: l, snap: snap, gens: gens}, nil
}

type snapshot struct {
	l    *Log
	snap *pebble.Snapshot
	gens []pendingGen   // the pending cells of the snapshot's events
	recs []*rollupState // read on first use
}

func (s *snapshot) Close() error { return s.snap.Close() }

func (s *snapshot) records() ([]*rollupState, error) {
	if s.recs == nil {
		recs, err := readRollupRecords(s.snap)
		if err != nil {
			return nil, fmt.Errorf("read rollups: %w", err)
		}
		s.recs = recs
	}
	return s.recs, nil
}

func (s *snapshot) Rollups(ctx context.Context, namespace string) ([]odometer.Rollup, error) {
	recs, err := s.records()
	if err != nil {
		return nil, err
	}
	var out []odometer.Rollup
	for _, r := range recs {
		if namespace == "" || r.rec.Meter.Namespace == namespace {
			out = append(out, r.rollup())
		}
	}
	return out, nil
}

func (s *snapshot) ScanEvents(ctx context.Context, sc odometer.EventScan, fn func(*odometer.ScannedEvent) error) error {
	var mark *notRolledUp
	if sc.NotRolledUp != 0 {
		recs, err := s.records()
		if err != nil {
			return err
		}
		i := slices.IndexFunc(recs, func(r *rollupState) bool { return r.id == sc.NotRolledUp })
		if i < 0 {
			return odometer.Errorf(odometer.ENOTFOUND, "rollup %d not found", sc.NotRolledUp)
		}
		if recs[i].rec.Backfilled {
			return nil
		}
		mark = &notRolledUp{seq: recs[i].rec.Seq, cursor: recs[i].rec.Cursor}
	}
	_, err := s.l.scanOn(ctx, s.snap, sc, mark, fn)
	return err
}

// notRolledUp selects the events a rollup does not hold yet.
type notRolledUp struct {
	seq    uint64
	cursor []byte
}

func (n *notRolledUp) skip(k []byte) bool {
	return binary.BigEndian.Uint64(k[len(k)-8:]) > n.seq || bytes.Compare(k, n.cursor) <= 0
}

func (s *snapshot) ReadRollups(ctx context.Context, sc odometer.RollupScan, fn func(*odometer.RollupCell) error) error {
	prefix := cellPrefix(nil, sc.Rollup, sc.BySubject, sc.Size)
	lower, upper := timeBounds(prefix, sc.From, sc.To)
	it, err := s.snap.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("read rollup cells: %w", err)
	}
	defer it.Close()
	var c odometer.RollupCell
	var subj, seek []byte
	var cur string
	subjects := sc.Subjects
	n := 0
	for ok := it.First(); ok; {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := it.Key()
		at := len(prefix) + 8
		if len(k) < at {
			return fmt.Errorf("rollup cell key %x: %w", k, errCorruptKey)
		}
		c.Bucket = decodeTime(k[len(prefix):at])
		c.Subject = ""
		rest := k[at:]
		if sc.BySubject {
			sl, err := stringLen(rest)
			if err != nil {
				return fmt.Errorf("rollup cell key %x: %w", k, err)
			}
			if !bytes.Equal(rest[:sl], subj) {
				subj = append(subj[:0], rest[:sl]...)
				if cur, _, err = decodeString(rest); err != nil {
					return fmt.Errorf("rollup cell key %x: %w", k, err)
				}
			}
			c.Subject = cur
			if len(subjects) > 0 {
				// Skip to the next listed subject of this bucket, or the
				// next bucket.
				i, found := slices.BinarySearch(subjects, c.Subject)
				if !found {
					seek = append(seek[:0], k[:at]...)
					if i < len(subjects) {
						seek = appendString(seek, subjects[i])
					} else {
						seek = prefixSuccessor(seek, k[:at])
					}
					ok = it.SeekGE(seek)
					continue
				}
			}
			rest = rest[sl:]
		}
		c.Groups = rest
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		c.Value = v
		if err := fn(&c); err != nil {
			return err
		}
		ok = it.Next()
	}
	if err := it.Error(); err != nil {
		return err
	}
	for _, g := range s.gens {
		if err := g.cells.Scan(sc, fn); err != nil {
			return err
		}
	}
	return nil
}

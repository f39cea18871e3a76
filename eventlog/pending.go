package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// Rollup cells are written behind the events (docs/rollups.md). An append
// commits its events with a journal entry that lists those a rollup counts,
//
//	'j' u64(last seq of the append) → (uvarint(len) 'e' key)…
//
// and then adds their cells to pending, in memory. The flusher writes the
// pending cells to Pebble about once a second, aggregated over every
// append since the last flush, in one batch with the deletion of the
// journal entries they cover and the sequence number they reach:
//
//	'm' "rolled" → u64(seq): every journaled event up to seq is in the cells
//
// A query reads, from one Pebble snapshot, the stored cells, and the
// pending cells of the appends that snapshot holds and the rolled
// sequence number it holds does not cover; Open re-reads the journal into
// pending, so a crash loses no cell and counts none twice. Writing behind
// costs an append no Pebble write per cell, and the flusher one write per
// distinct cell per flush rather than one per cell per append.
const (
	tagJournal = 'j'

	// flushEvery is how often the flusher writes pending cells.
	flushEvery = time.Second
	// flushCells wakes the flusher early: pending cells take memory
	// (a few hundred bytes each) and every query scans them.
	flushCells = 50_000
	// maxPendingCells makes appends wait for the flusher, so that a
	// flusher that falls behind slows ingestion instead of filling memory.
	maxPendingCells = 200_000
)

// testHookFlushed, if set, runs between a flush's commit and the removal
// of the generations it wrote (for tests).
var testHookFlushed atomic.Pointer[func()]

var keyRolled = []byte{tagMeta, 'r', 'o', 'l', 'l', 'e', 'd'}

func journalKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tagJournal}, seq)
}

// pendingGen is a sealed set of pending cells: nothing adds to it any
// more, so queries read it without a lock.
type pendingGen struct {
	cells *usage.Cells
	last  uint64 // the last sequence number whose cells it holds
}

// pending holds the cells of the appends not yet flushed. Lock order:
// Log.cellMu, then Log.mu, then pending.mu.
type pending struct {
	mu sync.Mutex
	// cond is broadcast when reg advances and when a flush shrinks n.
	cond sync.Cond
	// reg is the last sequence number whose append has added its cells.
	reg uint64
	// cur takes the cells of new appends; sealed are older generations,
	// oldest first, each covering the sequence numbers after the one
	// before it up to its last.
	cur    *usage.Cells
	sealed []pendingGen
	n      int // cells in cur and sealed

	kick chan struct{} // wakes the flusher before its tick
	stop chan struct{} // closed to stop it
	done sync.WaitGroup
	once sync.Once
}

func (p *pending) init(reg uint64, cur *usage.Cells) {
	p.cond.L = &p.mu
	p.reg, p.cur, p.n = reg, cur, cur.Len()
	p.kick = make(chan struct{}, 1)
	p.stop = make(chan struct{})
}

// seal makes cur a generation of its own, if it has cells. Called under
// p.mu.
func (p *pending) seal() {
	if p.cur.Len() == 0 {
		return
	}
	p.sealed = append(p.sealed, pendingGen{p.cur, p.reg})
	p.cur = new(usage.Cells)
}

// register records that the append that ended with seq is committed, after
// adding its cells with add (nil: it has none). Called under Log.mu.
func (p *pending) register(seq uint64, add func(*usage.Cells)) {
	p.mu.Lock()
	if add != nil {
		before := p.cur.Len()
		add(p.cur)
		p.n += p.cur.Len() - before
	}
	p.reg = seq
	n := p.n
	p.cond.Broadcast()
	p.mu.Unlock()
	if n >= flushCells {
		p.wake()
	}
}

func (p *pending) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// throttle waits while the flusher is far behind. Called without Log.mu,
// which the flusher does not need.
func (p *pending) throttle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.n >= maxPendingCells {
		select {
		case <-p.stop:
			return
		default:
		}
		p.wake()
		p.cond.Wait()
	}
}

// view returns a snapshot of the log and the pending generations whose
// cells it holds events of and its stored cells do not.
func (l *Log) view() (*pebble.Snapshot, []pendingGen, error) {
	p := &l.pend
	p.mu.Lock()
	var snap *pebble.Snapshot
	for {
		snap = l.db.NewSnapshot()
		seq, err := readU64(snap, keySeq)
		if err != nil {
			p.mu.Unlock()
			snap.Close()
			return nil, nil, err
		}
		if seq <= p.reg {
			break
		}
		// An append committed and has not added its cells yet: it will
		// in a moment, under l.mu.
		snap.Close()
		p.cond.Wait()
	}
	p.seal()
	gens := slices.Clone(p.sealed)
	p.mu.Unlock()
	rolled, err := readU64(snap, keyRolled)
	if err != nil {
		snap.Close()
		return nil, nil, err
	}
	i := 0
	for i < len(gens) && gens[i].last <= rolled {
		i++ // flushed already: in the snapshot's cells
	}
	return snap, gens[i:], nil
}

// readU64 reads a big-endian uint64 value; a missing key reads as 0.
func readU64(r pebble.Reader, key []byte) (uint64, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %q: %w", key, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("read %q: %w", key, errCorruptKey)
	}
	return binary.BigEndian.Uint64(v), nil
}

// runFlusher flushes pending cells every flushEvery, or sooner when woken,
// until stopFlusher.
func (l *Log) runFlusher() {
	p := &l.pend
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		case <-p.kick:
		}
		if err := l.flush(pebble.NoSync); err != nil {
			slog.Warn("write rollup cells", "component", "eventlog", "err", err)
		}
	}
}

func (l *Log) stopFlusher() {
	l.pend.once.Do(func() {
		close(l.pend.stop)
		l.pend.mu.Lock()
		l.pend.cond.Broadcast() // throttled appends
		l.pend.mu.Unlock()
	})
	l.pend.done.Wait()
}

// flush writes every pending cell to Pebble in one batch with the rolled
// sequence number and the deletion of the journal entries it covers.
// NoSync is enough for the flusher: a lost flush leaves its journal
// entries, which Open re-reads.
func (l *Log) flush(opts *pebble.WriteOptions) error {
	l.cellMu.Lock()
	defer l.cellMu.Unlock()
	if l.closed.Load() {
		return nil
	}
	p := &l.pend
	p.mu.Lock()
	p.seal()
	gens := slices.Clone(p.sealed)
	upTo := p.reg
	p.mu.Unlock()
	if upTo == l.rolled && len(gens) == 0 {
		return nil
	}

	// One generation is the common case; several (sealed by queries) are
	// added up first, so that each cell gets one merge.
	all := new(usage.Cells)
	flushed := 0
	for _, g := range gens {
		flushed += g.cells.Len()
	}
	if len(gens) == 1 {
		all = gens[0].cells
	} else {
		for _, g := range gens {
			all.Merge(g.cells)
		}
	}
	// A rollup dropped since its cells were added has no stored
	// definition, and its cells are left out (cellMu keeps it from being
	// dropped while this runs).
	exists := map[uint64]bool{}
	live := func(id uint64) (bool, error) {
		if ok, seen := exists[id]; seen {
			return ok, nil
		}
		rec, err := readRollupRecord(l.db, id)
		if err != nil {
			return false, err
		}
		exists[id] = rec != nil
		return rec != nil, nil
	}
	cells := all.Cells()
	keep := cells[:0]
	for _, c := range cells {
		ok, err := live(c.Rollup)
		if err != nil {
			return err
		}
		if ok {
			keep = append(keep, c)
		}
	}
	batch := l.db.NewBatch()
	defer batch.Close()
	if err := writeCells(batch, keep); err != nil {
		return err
	}
	if upTo > l.rolled {
		if err := batch.Set(keyRolled, binary.BigEndian.AppendUint64(nil, upTo), nil); err != nil {
			return err
		}
		if err := batch.DeleteRange(journalKey(0), journalKey(upTo+1), nil); err != nil {
			return err
		}
	}
	if err := batch.Commit(opts); err != nil {
		return fmt.Errorf("commit rollup cells: %w", err)
	}
	l.rolled = max(l.rolled, upTo)
	if f := testHookFlushed.Load(); f != nil {
		(*f)() // queries now see the cells both stored and pending
	}
	p.mu.Lock()
	p.sealed = slices.Clone(p.sealed[len(gens):])
	p.n -= flushed
	p.cond.Broadcast()
	p.mu.Unlock()
	return nil
}

// appendJournalEntry appends one event's 'e' key to dst, the journal
// entry of an append being built (one per accepted event a rollup counts).
func appendJournalEntry(dst []byte, eventKey []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(eventKey)))
	return append(dst, eventKey...)
}

// replayJournal adds the cells of the journaled events to pending: the
// appends a crash or a lost flush left out of the stored cells. Called by
// Open, after loadRollups.
func (l *Log) replayJournal(cells *usage.Cells) error {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagJournal}, UpperBound: []byte{tagJournal + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var r recordView
	for ok := it.First(); ok; ok = it.Next() {
		v := it.Value()
		for len(v) > 0 {
			n, k := binary.Uvarint(v)
			if k <= 0 || uint64(len(v)-k) < n {
				return fmt.Errorf("journal entry %x: %w", it.Key(), errCorruptKey)
			}
			key := v[k : k+int(n)]
			v = v[k+int(n):]
			if err := l.replayEvent(cells, key, &r); err != nil {
				return fmt.Errorf("journal entry %x: %w", it.Key(), err)
			}
		}
	}
	return it.Error()
}

func (l *Log) replayEvent(cells *usage.Cells, key []byte, r *recordView) error {
	if len(key) < 1+suffixLen || key[0] != tagEvent {
		return errCorruptKey
	}
	ns, rest, err := decodeString(key[1:])
	if err != nil {
		return err
	}
	typ, rest, err := decodeString(rest)
	if err != nil {
		return err
	}
	subj, rest, err := decodeString(rest)
	if err != nil {
		return err
	}
	if len(rest) != suffixLen {
		return errCorruptKey
	}
	seq := binary.BigEndian.Uint64(rest[8:])
	v, closer, err := l.db.Get(key)
	if err != nil {
		return fmt.Errorf("read journaled event: %w", err)
	}
	defer closer.Close()
	if err := decodeRecord(v, r); err != nil {
		return err
	}
	e := odometer.ScannedEvent{Subject: subj, Source: string(r.source), ID: string(r.id), Time: decodeTime(rest),
		IngestedAt: time.UnixMicro(r.ingestedAt).UTC(), Data: r.data}
	for _, roller := range l.rollups.rollers(ns, typ) {
		// A rollup created after the event counts it by its backfill.
		if s := l.rollups.byID[roller.Rollup.ID]; s != nil && seq > s.rec.Seq {
			cells.Add(roller, &e)
		}
	}
	return nil
}

// Package eventlog implements odometer.EventStore on Pebble, an embedded
// LSM-tree key-value store (github.com/cockroachdb/pebble/v2): the event log
// and its deduplication keys of the embedded store. Meters and everything
// else stay in SQLite (package sqlite); docs/storage.md explains the split
// and the measurements behind it.
//
// A successful AppendEvents has been written to Pebble's write-ahead log and
// fsynced (pebble.Sync) before it returns; a failed one stored nothing,
// because every call is one Pebble batch, applied atomically. Reads see
// consistent snapshots and never wait for appends.
package eventlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// DirName is the name of the event log's directory inside the data
// directory, next to sqlite.FileName.
const DirName = "events"

// formatVersion is the layout of keys and records described in keys.go.
// Open refuses a log written in a newer layout rather than misread it.
// Version 2 added usage rollups, which every append must keep; version 3
// writes their cells behind the events, with a journal that Open must
// re-read (pending.go). Open raises an older log to 3, so that an older
// binary, which would append without adding to the rollups or ignore the
// journal, refuses the log instead of corrupting them.
const formatVersion = 3

// Log is an odometer.EventStore on Pebble. It is safe for concurrent use;
// appends are serialized, reads run concurrently with them.
type Log struct {
	db     *pebble.DB
	closed atomic.Bool

	// mu serializes appends, so that the dedup check and the write of one
	// call are atomic with respect to every other call. It guards the
	// fields below.
	mu   sync.Mutex
	seq  uint64 // the last sequence number used; 0 for an empty log
	ap   appendBuffers
	late odometer.LateMarks // the late watermarks appends write
	// rollups are the usage rollups appends add to (rollup.go).
	rollups rollupSet

	// backfillMu serializes BackfillRollup calls.
	backfillMu sync.Mutex
	// cellMu serializes the writers of rollup cells: the flusher,
	// backfills and DropRollup. It guards rolled, the last sequence
	// number whose cells are stored.
	cellMu sync.Mutex
	rolled uint64
	// pend holds the cells of appended events until the flusher writes
	// them (pending.go).
	pend pending

	// filter answers "certainly new" for most new identities (filter.go);
	// a background scan fills it, which Close cancels and waits for. Set
	// by Open, never replaced.
	filter       *identityFilter
	filterCancel context.CancelFunc
	filterDone   sync.WaitGroup
}

var _ odometer.RollupStore = (*Log)(nil)

// Options tune a Log. Zero values take the defaults.
type Options struct {
	// FilterBytes is the size of the in-memory identity filter (default
	// DefaultFilterBytes), fixed for the life of the Log: it holds
	// FilterBytes × 8 / 12 identities at a false-positive rate under 1%,
	// and more at a higher one (filter.go).
	FilterBytes int64
}

// DefaultFilterBytes is the default Options.FilterBytes: 64 MiB, about
// 44.7 million identities at 12 bits each.
const DefaultFilterBytes = 64 << 20

// Open opens the event log in dir with the default Options; see
// OpenOptions.
func Open(dir string) (*Log, error) { return OpenOptions(dir, Options{}) }

// OpenOptions opens (creating if needed, with its parent directories) the
// event log in dir. The returned Log must be closed with Close. Pebble
// holds a lock file in dir, so a second Open of the same directory fails
// until the first Log is closed.
func OpenOptions(dir string, o Options) (*Log, error) {
	if o.FilterBytes <= 0 {
		o.FilterBytes = DefaultFilterBytes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	// The block cache is created here and shared by every level and table of
	// this database; Pebble takes its own reference, so ours is dropped
	// once the DB holds it.
	cache := pebble.NewCache(blockCacheBytes)
	defer cache.Unref()
	db, err := pebble.Open(dir, options(cache))
	if err != nil {
		return nil, fmt.Errorf("open event log %s: %w", dir, err)
	}
	l := &Log{db: db}
	if err := l.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open event log %s: %w", dir, err)
	}
	if err := l.startFilter(o.FilterBytes); err != nil {
		db.Close()
		return nil, fmt.Errorf("open event log %s: %w", dir, err)
	}
	l.pend.done.Go(l.runFlusher)
	return l, nil
}

// Tuning, for 1,000 to 20,000-event batches of ~250-byte events with random
// ids, on a small machine (2 cores); see docs/storage.md for the numbers.
const (
	// blockCacheBytes is shared by every level and table. Pebble charges
	// its memtables to it (one or two of memTableBytes, more while flushes
	// queue), so 256 MiB leaves about 128 MiB for sstable blocks. That must
	// keep every table's bloom filter and index blocks resident (10 bits per
	// key: about 37 MiB of filters for 10M events' 30M keys) so that a dedup
	// check for a new identity does no I/O, plus the hot data blocks of
	// recent events that usage queries read. At 128 MiB, filter blocks were
	// evicted and re-read: 31K instead of 48–55K events/s at 2M events.
	blockCacheBytes = 256 << 20

	// memTableBytes: Pebble's default is 4 MiB. Larger memtables flush less
	// often and in bigger L0 tables, so there are fewer L0 files for every
	// dedup Get to check and less data to rewrite. Measured at 2M events:
	// 4 MiB ran at less than half the rate of 64 MiB (88 L0 files), 32 MiB
	// about 10% slower, 128 MiB the same. The cost is memory (up to
	// memTableStopWrites × 64 MiB) and a longer WAL replay after a crash.
	memTableBytes = 64 << 20

	// memTableStopWrites lets up to four memtables queue while one flushes,
	// so a burst is absorbed instead of stalling the writer (default 2).
	memTableStopWrites = 4

	// l0CompactionThreshold (the default) starts an L0 compaction at four
	// sublevels: L0 tables overlap, so each one is a bloom filter check per
	// dedup Get.
	l0CompactionThreshold = 4

	// l0StopWrites is the L0 read amplification at which Pebble stops
	// writes until compaction catches up. The default, 12, is tuned for
	// machines with spare cores for compaction; with one core for it,
	// bursts would stall ingestion (an acknowledged batch is never at risk;
	// this only bounds latency against read amplification).
	l0StopWrites = 24
)

func options(cache *pebble.Cache) *pebble.Options {
	o := &pebble.Options{
		Cache:                       cache,
		MemTableSize:                memTableBytes,
		MemTableStopWritesThreshold: memTableStopWrites,
		L0CompactionThreshold:       l0CompactionThreshold,
		L0StopWritesThreshold:       l0StopWrites,
		// The write-ahead log is what makes an acknowledged batch survive a
		// crash before its memtable is flushed. Never disable it.
		DisableWAL: false,
		// Pinned by name rather than pebble.FormatNewest: raising the format
		// is one-way (an older binary cannot open the directory again), so it
		// should be a visible decision when the library is upgraded. This is
		// the newest format of pebble v2.1.7 (columnar blocks, WAL sync
		// chunks that tell a torn tail from corruption).
		FormatMajorVersion: pebble.FormatValueSeparation,
		Logger:             slogLogger{},
		// Folds rollup cells as Pebble merges them (rollup.go).
		Merger: cellMerger,
		// CompactionConcurrencyRange stays at its default (1, 1): on two
		// cores, one compaction beside the writer is all the machine has.
		// LBaseMaxBytes stays at its default (64 MiB): 256 MiB measured the
		// same.
	}
	for i := range o.Levels {
		// A bloom filter on every level, L0 included (Pebble's default has
		// none): nearly every dedup Get is for a new identity, and a filter
		// answers "not here" for about 99% of the tables that do not hold
		// it without reading a data block.
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		o.Levels[i].FilterType = pebble.TableFilter
	}
	o.EnsureDefaults()
	return o
}

// init checks the format of an existing log, or writes it into a new one,
// and restores the sequence number.
func (l *Log) init() error {
	v, closer, err := l.db.Get(keyFormat)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		it, err := l.db.NewIter(nil)
		if err != nil {
			return err
		}
		empty := !it.First()
		if err := errors.Join(it.Error(), it.Close()); err != nil {
			return err
		}
		if !empty {
			return errors.New("directory holds a Pebble database that is not an event log (no format key)")
		}
		if err := l.db.Set(keyFormat, []byte{formatVersion}, pebble.Sync); err != nil {
			return err
		}
		return l.initRollups()
	case err != nil:
		return fmt.Errorf("read format: %w", err)
	}
	format := -1
	if len(v) == 1 {
		format = int(v[0])
	}
	closer.Close()
	if format == 1 || format == 2 {
		// Nothing in a version 1 or 2 log changes meaning in version 3:
		// it has no journal, and all its cells are stored.
		if err := l.db.Set(keyFormat, []byte{formatVersion}, pebble.Sync); err != nil {
			return fmt.Errorf("raise format to %d: %w", formatVersion, err)
		}
		format = formatVersion
	}
	if format != formatVersion {
		return fmt.Errorf("event log format %d is newer than this program understands (%d); upgrade Odometer", format, formatVersion)
	}

	v, closer, err = l.db.Get(keySeq)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		// No append yet.
	case err != nil:
		return fmt.Errorf("read sequence: %w", err)
	case len(v) != 8:
		closer.Close()
		return errors.New("corrupt sequence key")
	default:
		l.seq = binary.BigEndian.Uint64(v)
		closer.Close()
	}
	return l.initRollups()
}

// initRollups loads the rollups and puts the journaled events' cells back
// into pending.
func (l *Log) initRollups() error {
	if err := l.loadRollups(); err != nil {
		return err
	}
	rolled, err := readU64(l.db, keyRolled)
	if err != nil {
		return err
	}
	l.rolled = rolled
	cells := new(usage.Cells)
	if err := l.replayJournal(cells); err != nil {
		return fmt.Errorf("re-read rollup journal: %w", err)
	}
	l.pend.init(l.seq, cells)
	return nil
}

// Close closes the log. It waits for a running append; reads must have
// returned. Calls after Close fail; a second Close does nothing.
func (l *Log) Close() error { return l.close(true) }

// close is Close; without flush it leaves the pending cells unwritten, as
// a crash would (for tests).
func (l *Log) close(flush bool) error {
	l.stopFlusher()
	if flush {
		// The pending cells are written, so that the next Open has no
		// journal to re-read; appends still running are journaled.
		if err := l.flush(pebble.Sync); err != nil {
			slog.Warn("write rollup cells", "component", "eventlog", "err", err)
		}
	}
	// A running backfill step reads without l.mu; let it finish first.
	l.backfillMu.Lock()
	defer l.backfillMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Swap(true) {
		return nil
	}
	if l.filterCancel != nil {
		l.filterCancel()
	}
	l.filterDone.Wait() // its snapshot must be closed before the database
	err := l.db.Close()
	l.filter.close() // no append runs (l.mu), and none will (closed)
	if err != nil {
		return fmt.Errorf("close event log: %w", err)
	}
	return nil
}

// errClosed is returned by calls after Close (Pebble itself would panic).
var errClosed = odometer.Errorf(odometer.EUNAVAILABLE, "event log is closed")

// Ping reads a key, which fails if the log has been closed or its files
// cannot be read.
func (l *Log) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.closed.Load() {
		return fmt.Errorf("ping event log: %w", errClosed)
	}
	_, closer, err := l.db.Get(keyFormat)
	if err != nil {
		return fmt.Errorf("ping event log: %w", err)
	}
	return closer.Close()
}

// slogLogger sends Pebble's log messages to slog's default logger: its
// routine messages (flushes, WAL recovery) at debug level, errors at error
// level.
type slogLogger struct{}

func (slogLogger) Infof(format string, args ...any) {
	slog.Debug(fmt.Sprintf(format, args...), "component", "eventlog")
}

func (slogLogger) Errorf(format string, args ...any) {
	slog.Error(fmt.Sprintf(format, args...), "component", "eventlog")
}

// Fatalf is called on a broken invariant; Pebble expects it not to return.
func (slogLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}

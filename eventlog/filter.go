package eventlog

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// identityFilter is a blocked Bloom filter of the dedup keys (identities)
// in the log. An append asks it first: an identity it has never seen is
// new, and needs no lookup in Pebble, whose memtable and table searches
// were the largest cost of ingesting new events. An identity it may have
// seen (every duplicate, and about one new identity in a hundred) is looked
// up as before. A Bloom filter has no false negatives, so the answer
// "new" is always right, provided the filter holds every stored identity:
// it only answers once a scan of the stored keys has finished (see
// Log.startFilter), and every append adds its identities.
//
// Each key sets filterProbes bits inside one 512-bit block (one cache
// line), so a query costs one cache miss. At filterBitsPerKey bits per key
// (its capacity) the false-positive rate is under 1%.
//
// Its size is fixed when the log is opened (Options.FilterBytes), so that
// the memory it takes does not grow with the events stored. Past its
// capacity it stays correct, with a false-positive rate that rises with
// the identities it holds (TestIdentityFilter: 0.5% at its capacity, 3%
// at 1.5 times, 9% at twice, 32% at three times, 75% at five times), so that more and more new events are looked up in Pebble, as
// all were before the filter existed. docs/storage.md ("Memory").
type identityFilter struct {
	seed     maphash.Seed
	blocks   []filterBlock // outside the Go heap (allocBlocks)
	free     func()        // releases blocks
	capacity int           // keys it holds at filterBitsPerKey bits each
	n        atomic.Int64  // keys added (repeats included)
	ready    atomic.Bool   // holds every stored identity
	warned   atomic.Bool   // the log said that it is over capacity
}

type filterBlock [8]atomic.Uint64

const (
	filterBitsPerKey = 12
	filterProbes     = 8
	filterBlockBytes = 64
)

// newIdentityFilter returns an empty filter of size bytes (at least one
// block). Its close must be called once it is no longer used.
func newIdentityFilter(size int64) (*identityFilter, error) {
	nblocks := max(1, int(size/filterBlockBytes))
	blocks, free, err := allocBlocks(nblocks)
	if err != nil {
		return nil, fmt.Errorf("identity filter of %d bytes: %w", size, err)
	}
	return &identityFilter{seed: maphash.MakeSeed(), blocks: blocks, free: free,
		capacity: nblocks * filterBlockBytes * 8 / filterBitsPerKey}, nil
}

// close releases the filter's memory; it must not be used afterwards.
func (f *identityFilter) close() {
	f.blocks = nil
	f.free()
}

// bytes is the filter's size.
func (f *identityFilter) bytes() int64 { return int64(len(f.blocks)) * filterBlockBytes }

// hash returns key's hash for add and mayContain, so that an append
// hashes each identity once.
func (f *identityFilter) hash(key []byte) uint64 { return maphash.Bytes(f.seed, key) }

// probe returns the block of a key's hash h and the first bit position and
// step of its probes.
func (f *identityFilter) probe(h uint64) (b *filterBlock, pos, step uint32) {
	b = &f.blocks[(h>>32)*uint64(len(f.blocks))>>32]
	return b, uint32(h), uint32(h>>9) | 1
}

// add records the key of hash h. It is safe to call concurrently with add
// and mayContain.
func (f *identityFilter) add(h uint64) {
	b, pos, step := f.probe(h)
	for range filterProbes {
		b[pos>>6&7].Or(1 << (pos & 63))
		pos += step
	}
	f.n.Add(1)
}

// mayContain reports whether the key of hash h may have been added; false
// means it certainly was not.
func (f *identityFilter) mayContain(h uint64) bool {
	b, pos, step := f.probe(h)
	for range filterProbes {
		if b[pos>>6&7].Load()&(1<<(pos&63)) == 0 {
			return false
		}
		pos += step
	}
	return true
}

// overCapacity reports, once, that the filter holds more keys than it was
// sized for, so that the log can say how to size it.
func (f *identityFilter) overCapacity() bool {
	return f.n.Load() > int64(f.capacity) && !f.warned.Swap(true)
}

// startFilter gives the log an empty filter of size bytes and fills it in
// the background from a snapshot of the stored identities; appends add
// theirs from now on, so together they cover every identity. Until the
// scan ends, appends look identities up in Pebble. Open calls it once,
// before the log is shared.
func (l *Log) startFilter(size int64) error {
	f, err := newIdentityFilter(size)
	if err != nil {
		return err
	}
	l.filter = f
	snap := l.db.NewSnapshot() // no append runs yet

	ctx, cancel := context.WithCancel(context.Background())
	l.filterCancel = cancel
	l.filterDone.Add(1)
	go func() {
		defer l.filterDone.Done()
		defer snap.Close()
		err := fillFilter(ctx, snap, f)
		switch {
		case err == nil:
			f.ready.Store(true)
			l.warnFilterFull()
		case !errors.Is(err, context.Canceled):
			slog.Warn("building the identity filter failed; new events are looked up in the log", "component", "eventlog", "err", err)
		}
	}()
	return nil
}

// warnFilterFull logs, once per process, that the filter holds more
// identities than its size is meant for.
func (l *Log) warnFilterFull() {
	if f := l.filter; f.overCapacity() {
		slog.Warn("the identity filter holds more event identities than it is sized for, so more new events are looked up in the log; "+
			"a larger --identity-filter-bytes makes ingestion faster (docs/storage.md)",
			"component", "eventlog", "identities", f.n.Load(), "capacity", f.capacity, "bytes", f.bytes())
	}
}

// fillFilter adds every dedup key of snap to f.
func fillFilter(ctx context.Context, snap *pebble.Snapshot, f *identityFilter) error {
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: []byte{tagDedup}, UpperBound: []byte{tagDedup + 1}})
	if err != nil {
		return fmt.Errorf("identity filter: %w", err)
	}
	n := 0
	for it.First(); it.Valid(); it.Next() {
		f.add(f.hash(it.Key()))
		if n++; n%4096 == 0 && ctx.Err() != nil {
			it.Close()
			return ctx.Err()
		}
	}
	return errors.Join(it.Error(), it.Close())
}

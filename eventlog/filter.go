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
// Log.buildFilter), and every append adds its identities.
//
// Each key sets filterProbes bits inside one 512-bit block (one cache
// line), so a query costs one cache miss. At filterBitsPerKey bits per key
// the false-positive rate is about 1–2%.
type identityFilter struct {
	seed     maphash.Seed
	blocks   []filterBlock
	capacity int          // keys it was sized for
	n        atomic.Int64 // keys added (repeats included)
	ready    atomic.Bool  // holds every stored identity
}

type filterBlock [8]atomic.Uint64

const (
	filterBitsPerKey = 12
	filterProbes     = 8
)

// minFilterKeys is the smallest capacity, so that a new log does not
// rebuild its filter again and again while it grows. A variable for tests.
var minFilterKeys = 1 << 20

func newIdentityFilter(capacity int) *identityFilter {
	capacity = max(capacity, minFilterKeys)
	nblocks := (capacity*filterBitsPerKey + 511) / 512
	return &identityFilter{seed: maphash.MakeSeed(), blocks: make([]filterBlock, nblocks), capacity: capacity}
}

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

// full reports whether the filter holds more keys than it was sized for;
// its false-positive rate then climbs, so the log builds a larger one.
func (f *identityFilter) full() bool { return f.n.Load() > int64(f.capacity) }

// startFilter replaces the log's filter with an empty one sized for twice
// the stored events and fills it in the background from a snapshot of the
// stored identities; appends add theirs from now on, so together they
// cover every identity. Until the scan ends, appends look identities up in
// Pebble. l.mu must be held.
func (l *Log) startFilter() {
	if l.filterCancel != nil {
		l.filterCancel()
	}
	f := newIdentityFilter(2 * int(l.seq))
	l.filter = f
	snap := l.db.NewSnapshot() // under l.mu: no append is half-way

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
		case !errors.Is(err, context.Canceled):
			slog.Warn("building the identity filter failed; new events are looked up in the log", "component", "eventlog", "err", err)
		}
	}()
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

package eventlog

import "github.com/cockroachdb/pebble/v2"

// Flush writes the pending rollup cells now, as the flusher does.
func (l *Log) Flush() error { return l.flush(pebble.NoSync) }

// Abandon closes l without writing its pending rollup cells, leaving the
// log as a crash would for the next Open: their journal entries stay.
func (l *Log) Abandon() error { return l.close(false) }

// Journaled returns the number of journal entries stored.
func (l *Log) Journaled() (int, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{tagJournal}, UpperBound: []byte{tagJournal + 1}})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	if err := it.Error(); err != nil {
		it.Close()
		return 0, err
	}
	return n, it.Close()
}

// SetFlushHook makes f run inside every flush, after its commit and before
// its generations leave pending, until the test ends.
func SetFlushHook(t interface{ Cleanup(func()) }, f func()) {
	if f == nil {
		testHookFlushed.Store(nil)
		return
	}
	testHookFlushed.Store(&f)
	t.Cleanup(func() { testHookFlushed.Store(nil) })
}

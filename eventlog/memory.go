package eventlog

// Memory is what a Log holds in memory, in bytes. docs/storage.md
// ("Memory") states the bounds.
type Memory struct {
	// BlockCache is the sstable blocks in Pebble's block cache, allocated
	// outside the Go heap. Together with MemTables it stays within the
	// cache's capacity (blockCacheBytes), except while more memtables
	// wait to be flushed than fit in it.
	BlockCache int64
	// MemTables is Pebble's memtables (the mutable one, those waiting to be
	// flushed and one kept for reuse), allocated outside the Go heap.
	MemTables int64
	// Filter is the identity filter, mapped outside the Go heap (fixed by
	// Options.FilterBytes).
	Filter int64
}

// Memory returns what the log holds in memory now; zero after Close. It
// waits for a running append (Close must not run under it).
func (l *Log) Memory() Memory {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return Memory{}
	}
	m := l.db.Metrics()
	return Memory{
		BlockCache: m.BlockCache.Size,
		MemTables:  int64(m.MemTable.Size + m.MemTable.ZombieSize),
		Filter:     l.filter.bytes(),
	}
}

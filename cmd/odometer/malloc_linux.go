//go:build cgo

package main

/*
#include <malloc.h>

// limit_malloc_arenas caps glibc's malloc arenas at n; elsewhere (musl) it
// does nothing.
static void limit_malloc_arenas(int n) {
#ifdef M_ARENA_MAX
	mallopt(M_ARENA_MAX, n);
#endif
}
*/
import "C"

import (
	"os"
	"strings"
)

// mallocArenas is how many malloc arenas the C allocator may use. The
// embedded event log keeps its block cache and memtables in C memory
// (Pebble allocates them with malloc, outside the Go heap), and so does
// SQLite its page cache. glibc gives threads up to 8 arenas per core; a
// freed block stays in its arena for reuse by that arena only, so with
// blocks allocated and freed on different threads each arena keeps its own
// share of free memory. Under sustained ingestion that measured about
// 150 MB of resident memory beyond what Pebble had allocated; with two
// arenas it was about 30 MB (docs/storage.md, "Memory").
const mallocArenas = 2

func init() {
	// An operator's own setting wins.
	if os.Getenv("MALLOC_ARENA_MAX") != "" || strings.Contains(os.Getenv("GLIBC_TUNABLES"), "arena_max") {
		return
	}
	C.limit_malloc_arenas(mallocArenas)
}

package usage

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// BenchmarkRollupEntryBytes reports the heap a cache entry takes: an hour
// of one subject with groups distinct group-by values, as a query fills
// it. docs/meters.md quotes it.
//
//	go test -run xxx -bench RollupEntryBytes .
func BenchmarkRollupEntryBytes(b *testing.B) {
	for _, groups := range []int{0, 1, 4} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			m, err := (&odometer.Meter{Namespace: "ns", Slug: "tokens", Aggregation: odometer.Sum, EventType: "t",
				ValueProperty: "$.v", GroupBy: map[string]string{"model": "$.model"}}).Compile()
			if err != nil {
				b.Fatal(err)
			}
			const n = 100_000
			r := NewRollups(n)
			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range n {
				f := &hourFill{key: rollupKey{sha256.Sum256(nil), fmt.Sprintf("customer-%05d", i%10_000), hourIndex(at) + int64(i/10_000), false}}
				var key []byte
				for g := range groups {
					e := &odometer.ScannedEvent{Time: at, Data: fmt.Appendf(nil, `{"v":"1.5","model":"m-%d"}`, g)}
					key = f.add(m, key, odometer.MustDecimal("1.5"), e)
				}
				r.put(at, []*hourFill{f})
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(r)
			for b.Loop() {
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/entry")
		})
	}
}

package storetest

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// BenchmarkAppendEvents measures the write path of ingestion on s: batches
// of 1,000 new events with random ids over 10,000 subjects, one durable
// commit per batch. It reports events/s. Every store's benchmark calls it,
// so that their figures compare.
func BenchmarkAppendEvents(b *testing.B, s odometer.EventStore) {
	const batchSize = 1000
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	now := time.Now().UTC().Truncate(time.Microsecond)
	batches := make([][]odometer.Event, b.N)
	for i := range batches {
		batch := make([]odometer.Event, batchSize)
		for j := range batch {
			batch[j] = odometer.Event{
				Namespace:   "default",
				ID:          fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
				Source:      "bench",
				SpecVersion: "1.0",
				Type:        "tokens",
				Subject:     fmt.Sprint("customer-", rng.IntN(10_000)),
				Time:        now.Add(-time.Duration(rng.IntN(3600_000_000)) * time.Microsecond),
				IngestedAt:  now,
				Data:        fmt.Appendf(nil, `{"tokens":%d,"model":"gpt-4","region":"eu-west-1"}`, rng.IntN(5000)),
			}
		}
		batches[i] = batch
	}
	ctx := b.Context()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.AppendEvents(ctx, batches[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batchSize)/b.Elapsed().Seconds(), "events/s")
}

package odometer_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/odometerhq/odometer"
)

// benchBatch returns a JSON array of n typical CloudEvents (~250 bytes each).
func benchBatch(n int) []byte {
	evs := make([]map[string]any, n)
	for i := range evs {
		evs[i] = map[string]any{
			"specversion": "1.0", "id": fmt.Sprintf("5c10fade-1c9e-4d6c-8275-%012d", i), "source": "api-gateway",
			"type": "prompt", "subject": fmt.Sprintf("customer-%d", i%10000), "time": "2024-05-01T11:00:00.123456Z",
			"data": map[string]any{"tokens": json.Number("1234"), "model": "gpt-4-turbo", "type": "input"},
		}
	}
	b, _ := json.Marshal(evs)
	return b
}

func BenchmarkDecodeEvents(b *testing.B) {
	body := benchBatch(1000)
	b.SetBytes(int64(len(body)))
	lim := odometer.IngestLimits{MaxEvents: 10000}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := odometer.DecodeEvents(body, "default", now, lim); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}

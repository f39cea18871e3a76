package eventlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// TestFoldOnRead checks that a cell of a past bucket, which flushes do not
// fold, is folded once a query has read its long list, without another
// append, and that answers stay the same.
func TestFoldOnRead(t *testing.T) {
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m, err := (&odometer.Meter{Namespace: "ns", Slug: "sum", Aggregation: odometer.Sum, EventType: "t", ValueProperty: "$.v"}).Compile()
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.EnsureRollup(t.Context(), odometer.Rollup{Meter: usage.Definition(m.Meter), Fingerprint: usage.Fingerprint(m.Meter)})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC)
	for i := range 100 {
		e := odometer.Event{Namespace: "ns", ID: fmt.Sprint(i), Source: "s", SpecVersion: "1.0", Type: "t", Subject: "a",
			Time: day.Add(time.Duration(i) * time.Minute), IngestedAt: time.Now().UTC(), Data: []byte(`{"v":"1.5"}`)}
		if _, err := l.AppendEvents(t.Context(), []odometer.Event{e}); err != nil {
			t.Fatal(err)
		}
		// One flush per append, as with appends a second apart.
		if err := l.flush(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	key := cellKey(nil, &usage.Cell{Rollup: r.ID, Size: 24 * time.Hour, Bucket: day, Groups: nil})
	cellLen := func() int {
		v, closer, err := l.db.Get(key)
		if err != nil {
			t.Fatalf("read the day's cell: %v", err)
		}
		defer closer.Close()
		return len(v)
	}
	if n := cellLen(); n <= foldBytes {
		t.Fatalf("the day's cell after 100 flushes holds %d bytes; the test needs more than %d", n, foldBytes)
	}
	q := odometer.UsageQuery{From: day, To: day.Add(24 * time.Hour)}
	for range 2 {
		got, err := usage.QueryUsage(t.Context(), l, m, q, day.Add(48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Data) != 1 || got.Data[0].Value.String() != "150" {
			t.Fatalf("query: %+v, want one row of 150", got.Data)
		}
		for i := 0; i < 100 && cellLen() > foldBytes; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if n := cellLen(); n > 64 {
		t.Errorf("the day's cell holds %d bytes after the query, want one folded partial", n)
	}
}

package eventlog

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// TestCellsFoldAsPebbleMerges checks that a cell written by many flushes
// reads as one partial, that a compaction stores it as one (read back
// with Pebble's plain concatenating merger, which shows what is on disk),
// and that answers stay exact before and after.
func TestCellsFoldAsPebbleMerges(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
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
		// One flush per append, as with appends a second apart: one merge
		// operand each.
		if err := l.flush(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	key := cellKey(nil, &usage.Cell{Rollup: r.ID, Size: 24 * time.Hour, Bucket: day})
	partials := func(db *pebble.DB) int {
		v, closer, err := db.Get(key)
		if err != nil {
			t.Fatalf("read the day's cell: %v", err)
		}
		defer closer.Close()
		n := 0
		for len(v) > 0 {
			size, k := binary.Uvarint(v)
			if k <= 0 || uint64(len(v)-k) < size {
				t.Fatalf("the day's cell is not a list of partials: %x", v)
			}
			v = v[k+int(size):]
			n++
		}
		return n
	}
	query := func() {
		t.Helper()
		got, err := usage.QueryUsage(t.Context(), l, m, odometer.UsageQuery{From: day, To: day.Add(24 * time.Hour)}, day.Add(48*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Data) != 1 || got.Data[0].Value.String() != "150" {
			t.Fatalf("query: %+v, want one row of 150", got.Data)
		}
	}
	query()
	if n := partials(l.db); n != 1 {
		t.Errorf("the day's cell reads as %d partials, want 1", n)
	}
	if err := l.db.Compact(t.Context(), []byte{tagRollup}, []byte{tagRollup + 1}, true); err != nil {
		t.Fatal(err)
	}
	query()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	raw, err := pebble.Open(dir, &pebble.Options{Logger: slogLogger{}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	n := partials(raw)
	raw.Close()
	if n != 1 {
		t.Errorf("after a compaction the day's cell is stored as %d partials, want 1", n)
	}
	if l, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	query()
}

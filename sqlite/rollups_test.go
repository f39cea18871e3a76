package sqlite_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/sqlite"
	"github.com/odometerhq/odometer/usage"
)

func openWithoutFold(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.OpenWithoutFold(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestRollupsTwoStores checks rollups shared by two Stores on one database
// file, as a server and `odometer ingest` beside it share one: each
// Store's appends count in the other's queries at once, before and after
// the fold moves their cells into usage_cells, while a fold runs beside
// the queries, and on a Store opened afterwards (a restart).
func TestRollupsTwoStores(t *testing.T) {
	dir := t.TempDir()
	stores := []*sqlite.Store{openWithoutFold(t, dir), openWithoutFold(t, dir)}
	db := rawDB(t, dir)
	ctx := t.Context()
	count := func(table string) int {
		t.Helper()
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var meters []*odometer.CompiledMeter
	for _, agg := range []odometer.Aggregation{odometer.Sum, odometer.Latest, odometer.Count, odometer.Min} {
		m := &odometer.Meter{ID: odometer.NewID(base), Namespace: "default", Slug: string(agg), Aggregation: agg,
			EventType: "calls", ValueProperty: "$.v", GroupBy: map[string]string{"model": "$.model"}}
		if agg == odometer.Count {
			m.ValueProperty = ""
		}
		cm, err := m.Compile()
		if err != nil {
			t.Fatal(err)
		}
		meters = append(meters, cm)
		if _, err := stores[0].EnsureRollup(ctx, odometer.Rollup{Meter: usage.Definition(m), Fingerprint: usage.Fingerprint(m)}); err != nil {
			t.Fatal(err)
		}
	}

	rng := rand.New(rand.NewPCG(4, 2))
	seq := 0
	batch := func(n int, from time.Time, span time.Duration) []odometer.Event {
		out := make([]odometer.Event, n)
		for i := range out {
			seq++
			at := from.Add(time.Duration(rng.Int64N(int64(span/time.Second))) * time.Second)
			out[i] = odometer.Event{Namespace: "default", Source: "test", ID: fmt.Sprint("e-", seq), SpecVersion: "1.0",
				Type: "calls", Subject: fmt.Sprint("customer-", rng.IntN(7)), Time: at, IngestedAt: base.Add(40 * 24 * time.Hour),
				Data: fmt.Appendf(nil, `{"v":"%d.%03d","model":"%s"}`, rng.IntN(90)-10, rng.IntN(1000), []string{"a", "b", "c"}[rng.IntN(3)])}
		}
		return out
	}
	now := base.Add(31 * 24 * time.Hour)
	kathmandu, err := time.LoadLocation("Asia/Kathmandu")
	if err != nil {
		t.Fatal(err)
	}
	queries := []odometer.UsageQuery{
		{From: base, To: now, WindowSize: odometer.Day, GroupBy: []string{"model"}},
		{From: base, To: now, GroupBy: []string{"subject"}},
		{To: now, GroupBy: []string{"subject", "model"}},
		{From: base, To: now, WindowSize: odometer.Hour, Subjects: []string{"customer-3", "customer-5"}},
		{From: base.Add(90 * time.Minute), To: now, WindowSize: odometer.Day, TimeZone: kathmandu},
	}
	compare := func(what string, s *sqlite.Store) {
		t.Helper()
		for _, m := range meters {
			for _, q := range queries {
				want, err := usage.QueryEvents(ctx, s, m, q, now)
				if err != nil {
					t.Fatal(err)
				}
				got, err := usage.QueryUsage(ctx, s, m, q, now)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(usageRows(want), usageRows(got)); d != "" {
					t.Fatalf("%s: meter %s, query %+v: rollups differ from events (-events +rollups):\n%s", what, m.Slug, q, d)
				}
			}
		}
	}

	for i := range 12 {
		writer, reader := stores[i%2], stores[(i+1)%2]
		// On-time events, and every third batch late ones for last month.
		evs := batch(200, now.Add(-2*time.Hour), 2*time.Hour)
		if i%3 == 2 {
			evs = batch(200, base, 20*24*time.Hour)
		}
		if _, err := writer.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		compare(fmt.Sprintf("after batch %d, on the other store", i), reader)
		if i%4 == 1 {
			if _, err := reader.FoldRollups(ctx); err != nil {
				t.Fatal(err)
			}
			compare(fmt.Sprintf("after the fold of batch %d", i), writer)
		}
	}
	if count("usage_cell_deltas") == 0 {
		t.Fatal("no cell deltas are waiting for a fold; the test needs some")
	}

	// A fold beside queries: each query sees the deltas or their cells.
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			n, err := stores[1].FoldRollups(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if n == 0 {
				return
			}
		}
	})
	compare("during a fold", stores[0])
	wg.Wait()
	if n := count("usage_cell_deltas"); n != 0 {
		t.Fatalf("%d cell deltas left after folding them all", n)
	}
	if count("usage_cells") == 0 {
		t.Fatal("no folded cells")
	}
	compare("after every fold", stores[0])
	compare("on a Store opened after the folds", openWithoutFold(t, dir))
}

// usageRows renders a result's rows, values as exact decimals, for a diff.
func usageRows(res *odometer.UsageResult) []string {
	out := []string{}
	for _, r := range res.Data {
		b, _ := json.Marshal(r)
		out = append(out, string(b))
	}
	return out
}

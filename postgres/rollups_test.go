package postgres_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/postgres"
	"github.com/odometerhq/odometer/postgres/pgtest"
	"github.com/odometerhq/odometer/usage"
)

// TestRollupsTwoNodes checks rollups shared by two Stores on one database:
// each node's appends count in the other's queries at once, before and
// after the fold moves their cells into usage_cells, while a fold runs
// beside the queries, and on a Store opened afterwards (a restart).
func TestRollupsTwoNodes(t *testing.T) {
	db := pgtest.NewDatabase(t)
	opts := postgres.WithoutFold(postgres.Options{})
	nodes := []*postgres.Store{open(t, db, opts), open(t, db, opts)}
	conn := rawConn(t, db)
	ctx := t.Context()

	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var meters []*odometer.CompiledMeter
	for _, agg := range []odometer.Aggregation{odometer.Sum, odometer.Latest, odometer.Count} {
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
		def := usage.Definition(m)
		if _, err := nodes[0].EnsureRollup(ctx, odometer.Rollup{Meter: def, Fingerprint: usage.Fingerprint(m)}); err != nil {
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
		{From: base, To: now, WindowSize: odometer.Hour, Subjects: []string{"customer-3"}},
		{From: base.Add(90 * time.Minute), To: now, WindowSize: odometer.Day, TimeZone: kathmandu},
	}
	compare := func(what string, s *postgres.Store) {
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
		writer, reader := nodes[i%2], nodes[(i+1)%2]
		// On-time events, and every third batch late ones for last month.
		evs := batch(200, now.Add(-2*time.Hour), 2*time.Hour)
		if i%3 == 2 {
			evs = batch(200, base, 20*24*time.Hour)
		}
		if _, err := writer.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		compare(fmt.Sprintf("after batch %d, on the other node", i), reader)
		if i%4 == 1 {
			if _, err := reader.FoldRollups(ctx); err != nil {
				t.Fatal(err)
			}
			compare(fmt.Sprintf("after the fold of batch %d", i), writer)
		}
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM usage_cell_deltas`); n == 0 {
		t.Fatal("no cell deltas are waiting for a fold; the test needs some")
	}

	// A fold beside queries: each query sees the deltas or their cells.
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			n, err := nodes[1].FoldRollups(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			if n == 0 {
				return
			}
		}
	})
	compare("during a fold", nodes[0])
	wg.Wait()
	if n := queryInt(t, conn, `SELECT count(*) FROM usage_cell_deltas`); n != 0 {
		t.Fatalf("%d cell deltas left after folding them all", n)
	}
	if n := queryInt(t, conn, `SELECT count(*) FROM usage_cells`); n == 0 {
		t.Fatal("no folded cells")
	}
	compare("after every fold", nodes[0])
	compare("on a Store opened after the folds", open(t, db, opts))
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

// TestAppendWaitsForFolds checks that an append which finds more bytes of
// deltas waiting for a fold than the bound returns only once the folds
// have brought them under it, with its events committed all the same, and
// that many small deltas (single-event appends) do not make it wait.
func TestAppendWaitsForFolds(t *testing.T) {
	db := pgtest.NewDatabase(t)
	open(t, db, postgres.WithoutFold(postgres.Options{})) // migrates
	conn := rawConn(t, db)
	ctx := t.Context()
	rows := postgres.MaxDeltaRows + 50
	insert := func(cells []byte) {
		t.Helper()
		if _, err := conn.Exec(ctx, `INSERT INTO usage_cell_deltas (cells) SELECT $1::bytea FROM generate_series(1, $2)`, cells, rows); err != nil {
			t.Fatal(err)
		}
	}
	waiting := func() (rows, bytes int) {
		return queryInt(t, conn, `SELECT coalesce(max(id) - min(id) + 1, 0)::int FROM usage_cell_deltas`),
			queryInt(t, conn, `SELECT coalesce(sum(octet_length(cells)), 0)::int FROM usage_cell_deltas`)
	}
	event := func(id string) []odometer.Event {
		return []odometer.Event{{Namespace: "default", Source: "test", ID: id, SpecVersion: "1.0", Type: "calls",
			Subject: "a", Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), IngestedAt: time.Now().UTC()}}
	}

	// Small deltas, as many rows as the bound's pre-check lets through.
	insert([]byte{})
	folding := open(t, db, postgres.Options{})
	if _, err := folding.AppendEvents(ctx, event("1")); err != nil {
		t.Fatal(err)
	}
	if n, _ := waiting(); n <= postgres.MaxDeltaRows {
		t.Fatalf("the append behind %d empty deltas returned with %d waiting: it waited for folds", rows, n)
	}

	// Large deltas: encoded cells of a rollup that does not exist (the
	// fold skips them), enough rows of them to pass the bound in bytes.
	r, err := usage.NewRoller(odometer.Rollup{ID: 1 << 40, Meter: odometer.Meter{Namespace: "default", EventType: "calls", Aggregation: odometer.Count}})
	if err != nil {
		t.Fatal(err)
	}
	var cells usage.Cells
	var blob []byte
	for i := 0; len(blob) <= postgres.MaxDeltaBytes/postgres.MaxDeltaRows; i++ {
		e := odometer.ScannedEvent{Subject: fmt.Sprint("customer-", i), Source: "test", ID: fmt.Sprint(i),
			Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)}
		cells.Add(r, &e)
		if i%100 == 0 {
			blob = cells.AppendEncoded(blob[:0])
		}
	}
	insert(blob)
	start := time.Now()
	out, err := folding.AppendEvents(ctx, event("2"))
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != odometer.Accepted {
		t.Fatalf("outcome %v, want accepted", out[0])
	}
	if _, b := waiting(); b > postgres.MaxDeltaBytes {
		t.Errorf("the append returned after %v with %d bytes of deltas waiting; want at most %d", time.Since(start), b, postgres.MaxDeltaBytes)
	}
	if n := queryInt(t, conn, `SELECT count(*)::int FROM events`); n != 2 {
		t.Errorf("%d events stored, want 2", n)
	}
}

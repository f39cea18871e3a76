package eventlog_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/eventlog"
	"github.com/odometerhq/odometer/usage"
)

// rollupMeters are a SUM meter grouped by model and a COUNT meter of the
// same events.
func rollupMeters(t testing.TB) []*odometer.CompiledMeter {
	var out []*odometer.CompiledMeter
	for _, m := range []*odometer.Meter{
		{Namespace: "ns", Slug: "tokens", Aggregation: odometer.Sum, EventType: "tokens", ValueProperty: "$.n",
			GroupBy: map[string]string{"model": "$.model"}},
		{Namespace: "ns", Slug: "calls", Aggregation: odometer.Count, EventType: "tokens"},
	} {
		cm, err := m.Compile()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cm)
	}
	return out
}

// rollupEvents returns n events of batch b, spread over 40 days before t0
// so that most of them are late, over 7 subjects and 3 models.
func rollupEvents(b, n int) []odometer.Event {
	events := make([]odometer.Event, n)
	for i := range events {
		k := b*n + i
		events[i] = odometer.Event{Namespace: "ns", ID: fmt.Sprintf("b%d-%d", b, i), Source: "src", SpecVersion: "1.0",
			Type: "tokens", Subject: fmt.Sprintf("s%d", k%7), IngestedAt: ingested,
			Time: t0.Add(-time.Duration(k*7919%(40*24*60)) * time.Minute).Add(time.Duration(k%1000) * time.Microsecond),
			Data: fmt.Appendf(nil, `{"n":"%d.%d","model":"m%d"}`, k%97, k%10, k%3)}
	}
	return events
}

func ensureRollups(t testing.TB, l *eventlog.Log, meters []*odometer.CompiledMeter) []odometer.Rollup {
	var out []odometer.Rollup
	for _, m := range meters {
		r, err := l.EnsureRollup(context.Background(), odometer.Rollup{Meter: usage.Definition(m.Meter), Fingerprint: usage.Fingerprint(m.Meter)})
		if err != nil {
			t.Fatalf("EnsureRollup(%s): %v", m.Slug, err)
		}
		out = append(out, r)
	}
	return out
}

// sameUsage checks that queries through the rollups answer what reading
// every event answers.
func sameUsage(t *testing.T, what string, l *eventlog.Log, meters []*odometer.CompiledMeter) {
	t.Helper()
	ctx := t.Context()
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range meters {
		for _, q := range []odometer.UsageQuery{
			{From: t0.Add(-41 * 24 * time.Hour), To: t0.Add(time.Hour), WindowSize: odometer.Day, GroupBy: []string{"model"}},
			{GroupBy: []string{"subject"}},
			{From: t0.Add(-30 * 24 * time.Hour), To: t0, WindowSize: odometer.Hour, TimeZone: kolkata},
			{From: t0.Add(-41 * 24 * time.Hour), To: t0, WindowSize: odometer.Day, Subjects: []string{"s3"}},
		} {
			if m.Aggregation == odometer.Count {
				q.GroupBy = nil
			}
			want, err := usage.QueryEvents(ctx, l, m, q, t0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := usage.QueryUsage(ctx, l, m, q, t0)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b odometer.Decimal) bool { return a.Cmp(b) == 0 })); diff != "" {
				t.Fatalf("%s: meter %s, query %+v: rollups differ from events (-events +rollups):\n%s", what, m.Slug, q, diff)
			}
		}
	}
}

// TestRollupsReopen checks that rollups, their cells and a backfill's
// position survive Close and Open: the reopened log answers from them at
// once and finishes the backfill where it stopped.
func TestRollupsReopen(t *testing.T) {
	dir := t.TempDir()
	meters := rollupMeters(t)
	l, err := eventlog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 10 {
		mustAppend(t, l, rollupEvents(b, 300)...)
	}
	rollups := ensureRollups(t, l, meters)
	r, err := l.BackfillRollup(t.Context(), rollups[0].ID, 1000)
	if err != nil || r.Backfilled || r.Pending != 2000 {
		t.Fatalf("first backfill step: %+v, %v; want 2,000 events pending", r, err)
	}
	mustAppend(t, l, rollupEvents(10, 300)...)
	sameUsage(t, "before Close", l, meters)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = open(t, dir)
	got, err := l.Rollups(t.Context(), "ns")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != rollups[0].ID || got[0].Pending != 2000 || got[0].Backfilled {
		t.Fatalf("Rollups after Open: %+v, want both, the first with 2,000 events pending", got)
	}
	sameUsage(t, "after Open", l, meters)
	for _, r := range rollups {
		for done := false; !done; {
			nr, err := l.BackfillRollup(t.Context(), r.ID, 700)
			if err != nil {
				t.Fatal(err)
			}
			done = nr.Backfilled
		}
	}
	mustAppend(t, l, rollupEvents(11, 300)...)
	sameUsage(t, "after the backfills", l, meters)
}

// TestFormatUpgrade checks that a log of format 1, written before rollups,
// opens, is raised to format 2 and takes rollups.
func TestFormatUpgrade(t *testing.T) {
	dir := t.TempDir()
	l, err := eventlog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, rollupEvents(0, 100)...)
	l.Close()
	setRaw(t, dir, "mformat", []byte{1})
	l = open(t, dir)
	meters := rollupMeters(t)
	for _, r := range ensureRollups(t, l, meters) {
		if _, err := l.BackfillRollup(t.Context(), r.ID, 1000); err != nil {
			t.Fatal(err)
		}
	}
	sameUsage(t, "upgraded log", l, meters)
	if ids := listIDs(t, l, "ns"); len(ids) != 100 {
		t.Fatalf("%d events after the upgrade, want 100", len(ids))
	}
	l.Close()
	// The log now says format 3, which a binary that knows only format 1
	// or 2 refuses rather than append without adding to the rollups or
	// ignore their journal.
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, closer, err := db.Get([]byte("mformat"))
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	if string(v) != "\x03" {
		t.Fatalf("format after the upgrade: %x, want 03", v)
	}
}

// TestRollupsCrash kills a process appending late events to a log with
// rollups, one of them backfilling, and checks after reopening that every
// acknowledged event is counted exactly once by every query.
func TestRollupsCrash(t *testing.T) {
	if dir := os.Getenv("EVENTLOG_ROLLUP_CRASH_CHILD"); dir != "" {
		rollupCrashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	acked := killChild(t, "TestRollupsCrash", "EVENTLOG_ROLLUP_CRASH_CHILD", dir, 30)

	l := open(t, dir)
	meters := rollupMeters(t)
	sameUsage(t, "after the crash", l, meters)
	// The COUNT through the rollups covers every acknowledged batch, and
	// the history, once.
	res, err := usage.QueryUsage(t.Context(), l, meters[1], odometer.UsageQuery{To: t0.Add(time.Hour)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := res.Data[0].Value.Int64()
	stored := len(listIDs(t, l, "ns"))
	if int(n) != stored || stored < (acked+1)*crashBatch+3000 {
		t.Fatalf("COUNT through the rollups is %d; %d events stored; %d batches of %d acknowledged after 3,000 of history",
			n, stored, acked+1, crashBatch)
	}
}

// rollupCrashChild stores 3,000 events of history, makes the rollups,
// then appends batches of late events and backfills between them until it
// is killed, printing each batch's number once it is acknowledged.
func rollupCrashChild(dir string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	l, err := eventlog.Open(dir)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	for b := range 10 {
		if _, err := l.AppendEvents(ctx, rollupEvents(1000+b, 300)); err != nil {
			fail(err)
		}
	}
	var ids []uint64
	for _, m := range rollupMeters(nil) {
		r, err := l.EnsureRollup(ctx, odometer.Rollup{Meter: usage.Definition(m.Meter), Fingerprint: usage.Fingerprint(m.Meter)})
		if err != nil {
			fail(err)
		}
		ids = append(ids, r.ID)
	}
	w := bufio.NewWriter(os.Stdout)
	for b := 0; ; b++ {
		if _, err := l.AppendEvents(ctx, rollupEvents(b, crashBatch)); err != nil {
			fail(err)
		}
		fmt.Fprintln(w, b)
		w.Flush()
		if _, err := l.BackfillRollup(ctx, ids[b%2], 150); err != nil {
			fail(err)
		}
	}
}

// TestRollupsJournal checks the cells written behind the events: queries
// count each event once whether its cells are pending, being flushed or
// stored, and a log closed without writing its pending cells, as a crash
// leaves it, re-reads them from the journal at Open.
func TestRollupsJournal(t *testing.T) {
	dir := t.TempDir()
	meters := rollupMeters(t)
	l, err := eventlog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 4 {
		mustAppend(t, l, rollupEvents(b, 300)...)
	}
	rollups := ensureRollups(t, l, meters)
	if _, err := l.BackfillRollup(t.Context(), rollups[0].ID, 500); err != nil {
		t.Fatal(err)
	}
	// Queries run beside the flushes and appends, each checked against
	// the events its own snapshot holds.
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := l.Flush(); err != nil {
				done <- err
				return
			}
		}
	}()
	for b := 4; b < 14; b++ {
		mustAppend(t, l, rollupEvents(b, 300)...)
		// A resent batch: duplicates add nothing to the cells.
		mustAppend(t, l, rollupEvents(b-1, 300)...)
		sameUsage(t, fmt.Sprintf("after batch %d", b), l, meters)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Journaled(); err != nil || n != 0 {
		t.Fatalf("after a flush the journal holds %d entries (%v), want 0", n, err)
	}
	sameUsage(t, "all cells stored", l, meters)
	// A query between a flush's commit and the end of the flush sees the
	// flushed cells in the snapshot and must not count their pending copy.
	mustAppend(t, l, rollupEvents(50, 300)...)
	hooked := false
	eventlog.SetFlushHook(t, func() {
		hooked = true
		sameUsage(t, "inside a flush", l, meters)
	})
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	eventlog.SetFlushHook(t, nil)
	if !hooked {
		t.Fatal("the flush did not run its hook")
	}
	for b := 14; b < 18; b++ {
		mustAppend(t, l, rollupEvents(b, 300)...)
	}
	if n, err := l.Journaled(); err != nil || n != 4 {
		t.Fatalf("the journal holds %d entries (%v), want one per append since the flush: 4", n, err)
	}
	if err := l.Abandon(); err != nil {
		t.Fatal(err)
	}

	l = open(t, dir)
	sameUsage(t, "after the journal was re-read", l, meters)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	sameUsage(t, "after the re-read cells were stored", l, meters)
	res, err := usage.QueryUsage(t.Context(), l, meters[1], odometer.UsageQuery{To: t0.Add(time.Hour)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.Data[0].Value.Int64(); n != 19*300 {
		t.Fatalf("COUNT through the rollups is %d, want %d", n, 19*300)
	}
}

// BenchmarkBackfill measures re-aggregation after a meter change: a new
// rollup of 200,000 stored events (SUM grouped by model, 7 subjects,
// spread over 40 days) backfilled in the maintainer's chunks of 20,000
// until it is ready, when queries read only cells again. It reports the
// events backfilled per second.
func BenchmarkBackfill(b *testing.B) {
	dir := b.TempDir()
	l, err := eventlog.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const batches, per = 200, 1000
	for i := range batches {
		mustAppend(b, l, rollupEvents(i, per)...)
	}
	m := rollupMeters(b)[0]
	b.ResetTimer()
	for i := range b.N {
		// Each round is a changed meter: a definition of its own.
		def := usage.Definition(m.Meter)
		def.Filters = map[string][]string{"$.model": {"m0", "m1", "m2", fmt.Sprint("none-", i)}}
		r, err := l.EnsureRollup(b.Context(), odometer.Rollup{Meter: def, Fingerprint: usage.Fingerprint(&def)})
		if err != nil {
			b.Fatal(err)
		}
		for !r.Backfilled {
			if r, err = l.BackfillRollup(b.Context(), r.ID, 20_000); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*batches*per)/b.Elapsed().Seconds(), "events/s")
}

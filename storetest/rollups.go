package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// rollupFixture builds events and meters for the durable rollup tests.
type rollupFixture struct {
	t        *testing.T
	s        odometer.RollupStore
	ns       string
	base     time.Time
	rng      *rand.Rand
	seq      atomic.Int64
	subjects []string
	meters   []*odometer.CompiledMeter
	zones    []*time.Location
}

func newRollupFixture(t *testing.T, s odometer.RollupStore, ns string) *rollupFixture {
	f := &rollupFixture{t: t, s: s, ns: ns, rng: rand.New(rand.NewPCG(3, 5)),
		base:     time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC),
		subjects: []string{"a", "b", "c", "d\x00e"}}
	// A subject with NUL sorts between "d" and "da"; stores that cannot
	// hold NUL (PostgreSQL) refuse it, and get one with a byte that sorts
	// low instead.
	probe := ev(ns+"-probe", "src", "nul", "calls", "d\x00e", f.base, "")
	if _, err := s.AppendEvents(t.Context(), []odometer.Event{probe}); odometer.ErrorCode(err) == odometer.EINVALID {
		f.subjects[3] = "d\x01e"
	} else if err != nil {
		t.Fatalf("AppendEvents of a subject with NUL: %v", err)
	}
	for _, agg := range []odometer.Aggregation{odometer.Sum, odometer.Count, odometer.Avg, odometer.Min,
		odometer.Max, odometer.Latest, odometer.UniqueCount} {
		m := &odometer.Meter{ID: odometer.NewID(created), Namespace: ns, Slug: strings.ToLower(string(agg)),
			Aggregation: agg, EventType: "calls", ValueProperty: "$.v",
			GroupBy: map[string]string{"model": "$.model", "region": "$.region"}, CreatedAt: created, UpdatedAt: created}
		switch agg {
		case odometer.Count:
			m.ValueProperty = ""
		case odometer.Max:
			m.Filters = map[string][]string{"$.region": {"eu"}}
		case odometer.Sum:
			from := f.base.Add(-10 * 24 * time.Hour)
			m.EventFrom = &from
		}
		cm, err := m.Compile()
		if err != nil {
			t.Fatalf("compile %s: %v", agg, err)
		}
		f.meters = append(f.meters, cm)
	}
	f.zones = []*time.Location{time.UTC}
	// Europe/Berlin has DST; Kolkata (+05:30), Kathmandu (+05:45) and
	// St John's (-03:30) are not whole hours from UTC.
	for _, name := range []string{"Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatalf("LoadLocation(%s): %v", name, err)
		}
		f.zones = append(f.zones, loc)
	}
	return f
}

// events returns n events with times in [from, to), received at ingestedAt.
// rng is used by one goroutine at a time.
func (f *rollupFixture) events(rng *rand.Rand, n int, from, to, ingestedAt time.Time) []odometer.Event {
	out := make([]odometer.Event, n)
	for i := range out {
		at := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)/time.Microsecond))) * time.Microsecond)
		model := []string{`"m-a"`, `"m-b"`, `null`, `"m\u00e9"`}[rng.IntN(4)]
		data := fmt.Sprintf(`{"v":"%d.%02d","model":%s,"region":"%s"}`,
			rng.IntN(200)-20, rng.IntN(100), model, []string{"eu", "us"}[rng.IntN(2)])
		if rng.IntN(50) == 0 {
			data = `{"model":"m-a","region":"eu"}` // no value: only COUNT counts it
		}
		out[i] = ev(f.ns, "src", fmt.Sprint("r-", f.seq.Add(1)), "calls", f.subjects[rng.IntN(len(f.subjects))], at, data)
		out[i].IngestedAt = ingestedAt
	}
	return out
}

// ensure creates the rollups of the fixture's meters that can have one.
func (f *rollupFixture) ensure(meters ...*odometer.CompiledMeter) []odometer.Rollup {
	f.t.Helper()
	var out []odometer.Rollup
	for _, m := range meters {
		if !usage.Rollable(m.Meter) {
			continue
		}
		r, err := f.s.EnsureRollup(f.t.Context(), odometer.Rollup{Meter: usage.Definition(m.Meter), Fingerprint: usage.Fingerprint(m.Meter)})
		if err != nil {
			f.t.Fatalf("EnsureRollup(%s): %v", m.Slug, err)
		}
		out = append(out, r)
	}
	return out
}

// randomQuery returns a query over the fixture's history: any window size
// and zone, with and without subjects, group-by keys and filters, with
// bounds that are and are not on quarter hours, and unbounded ones.
func (f *rollupFixture) randomQuery(rng *rand.Rand) odometer.UsageQuery {
	q := odometer.UsageQuery{TimeZone: f.zones[rng.IntN(len(f.zones))]}
	q.WindowSize = []odometer.WindowSize{"", odometer.Hour, odometer.Day, odometer.Month, odometer.Minute}[rng.IntN(5)]
	span := time.Duration(1+rng.IntN(15*24*60)) * time.Minute
	if q.WindowSize == odometer.Minute {
		span = time.Duration(1+rng.IntN(180)) * time.Minute
	}
	q.From = f.base.Add(-14 * 24 * time.Hour).Add(time.Duration(rng.IntN(14*24*4)) * 15 * time.Minute)
	if rng.IntN(3) == 0 {
		q.From = q.From.Add(time.Duration(rng.Int64N(int64(time.Hour/time.Microsecond))) * time.Microsecond)
	}
	q.To = q.From.Add(span)
	if rng.IntN(8) == 0 && q.WindowSize != odometer.Minute {
		q.From = time.Time{}
	}
	if rng.IntN(2) == 0 {
		for range 1 + rng.IntN(2) {
			q.Subjects = append(q.Subjects, append(slices.Clone(f.subjects), "nobody")[rng.IntN(len(f.subjects)+1)])
		}
	}
	for _, k := range []string{"model", "region", "subject"} {
		if rng.IntN(2) == 0 {
			q.GroupBy = append(q.GroupBy, k)
		}
	}
	switch rng.IntN(4) {
	case 0:
		q.FilterGroupBy = map[string][]string{"region": {"eu"}}
	case 1:
		q.FilterGroupBy = map[string][]string{"model": {"m-a", "mé"}, "subject": {"a", f.subjects[3]}}
	}
	return q
}

// compare runs q on m through the store's rollups and by reading every
// event, at now, and fails on any difference.
func (f *rollupFixture) compare(what string, now time.Time, m *odometer.CompiledMeter, q odometer.UsageQuery) {
	f.t.Helper()
	ctx := f.t.Context()
	want, err := usage.QueryEvents(ctx, f.s, m, q, now)
	if err != nil {
		f.t.Fatalf("%s: QueryEvents(%s, %+v): %v", what, m.Slug, q, err)
	}
	got, err := usage.QueryUsage(ctx, f.s, m, q, now)
	if err != nil {
		f.t.Fatalf("%s: QueryUsage(%s, %+v): %v", what, m.Slug, q, err)
	}
	if diff := cmp.Diff(resultRows(want), resultRows(got)); diff != "" {
		f.t.Fatalf("%s: meter %s, query %+v (zone %s): the rollups' answer differs (-events +rollups):\n%s",
			what, m.Slug, q, q.TimeZone, diff)
	}
}

func (f *rollupFixture) round(what string, n int) {
	f.t.Helper()
	now := f.base.Add(24 * time.Hour)
	for _, m := range f.meters {
		// Everything, by day and model: every bucket size at once.
		f.compare(what, now, m, odometer.UsageQuery{From: f.base.Add(-15 * 24 * time.Hour), To: now,
			WindowSize: odometer.Day, GroupBy: []string{"model"}})
		f.compare(what, now, m, odometer.UsageQuery{GroupBy: []string{"subject"}})
	}
	for range n {
		f.compare(what, now, f.meters[f.rng.IntN(len(f.meters))], f.randomQuery(f.rng))
	}
}

func resultRows(res *odometer.UsageResult) []string {
	out := []string{}
	if res.From != nil {
		out = append(out, "from "+res.From.Format(time.RFC3339Nano))
	}
	for _, r := range res.Data {
		row := fmt.Sprintf("%s..%s", r.WindowStart.Format(time.RFC3339Nano), r.WindowEnd.Format(time.RFC3339Nano))
		if r.Subject != nil {
			row += fmt.Sprintf(" %q", *r.Subject)
		}
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range r.GroupBy {
				if !yield(k) {
					return
				}
			}
		}) {
			v := "null"
			if p := r.GroupBy[k]; p != nil {
				v = fmt.Sprintf("%q", *p)
			}
			row += " " + k + "=" + v
		}
		out = append(out, row+" = "+r.Value.String())
	}
	return out
}

// testRollupsExact checks that usage served from a store's rollups equals
// usage read from every event, for every aggregation, window size and zone:
// before, during and after the backfill of events stored before a rollup
// existed, after late events, and for a changed meter.
func testRollupsExact(t *testing.T, st odometer.Store) {
	s, ok := st.(odometer.RollupStore)
	if !ok {
		t.Skip("the store keeps no rollups")
	}
	ctx := t.Context()
	f := newRollupFixture(t, s, "rollups-exact")
	rng := rand.New(rand.NewPCG(1, 2))
	// History stored before any rollup exists.
	appendInBatches(t, st, f.events(rng, 2000, f.base.Add(-14*24*time.Hour), f.base, f.base), 400)
	rollups := f.ensure(f.meters...)
	f.round("before the backfill", 30)

	// Events after the rollups' creation: on time, and late ones for
	// hours that the backfill has and has not reached.
	appendInBatches(t, st, f.events(rng, 300, f.base.Add(-14*24*time.Hour), f.base.Add(time.Hour), f.base.Add(time.Hour)), 100)
	for i := 0; ; i++ {
		done := true
		for _, r := range rollups {
			r, err := s.BackfillRollup(ctx, r.ID, 450)
			if err != nil {
				t.Fatalf("BackfillRollup(%d): %v", r.ID, err)
			}
			done = done && r.Backfilled
		}
		if done {
			break
		}
		f.round(fmt.Sprintf("backfill step %d", i), 10)
		appendInBatches(t, st, f.events(rng, 40, f.base.Add(-14*24*time.Hour), f.base.Add(time.Hour), f.base.Add(2*time.Hour)), 40)
		if i > 20 {
			t.Fatal("backfill did not finish in 20 steps of 450 events")
		}
	}
	list, err := s.Rollups(ctx, f.ns)
	if err != nil {
		t.Fatalf("Rollups: %v", err)
	}
	for _, r := range list {
		if !r.Backfilled || r.Pending != 0 {
			t.Errorf("rollup %d after its backfill: %+v", r.ID, r)
		}
	}
	f.round("after the backfill", 60)

	// A burst of late events counts at the next query.
	appendInBatches(t, st, f.events(rng, 500, f.base.Add(-14*24*time.Hour), f.base.Add(-13*24*time.Hour), f.base.Add(3*time.Hour)), 250)
	f.round("after late events", 60)

	// A changed meter gets a rollup of its own; until its backfill is done
	// its queries read the events it lacks, and never the old cells.
	changed := *f.meters[0].Meter
	changed.GroupBy = map[string]string{"model": "$.region", "region": "$.model"}
	cm, err := changed.Compile()
	if err != nil {
		t.Fatal(err)
	}
	nr := f.ensure(cm)[0]
	if nr.ID == rollups[0].ID || nr.Backfilled {
		t.Fatalf("rollup of the changed meter: %+v, want a new one to backfill (old: %+v)", nr, rollups[0])
	}
	now := f.base.Add(24 * time.Hour)
	q := odometer.UsageQuery{From: f.base.Add(-15 * 24 * time.Hour), To: now, WindowSize: odometer.Day, GroupBy: []string{"model", "region"}}
	f.compare("changed meter before its backfill", now, cm, q)
	if _, err := s.BackfillRollup(ctx, nr.ID, 1000); err != nil {
		t.Fatal(err)
	}
	f.compare("changed meter during its backfill", now, cm, q)
	for r := nr; !r.Backfilled; {
		if r, err = s.BackfillRollup(ctx, nr.ID, 1000); err != nil {
			t.Fatal(err)
		}
	}
	f.compare("changed meter after its backfill", now, cm, q)

	// Ensuring an existing definition returns its rollup; dropping one
	// makes queries read events again, still exactly.
	again := f.ensure(f.meters[1])
	if again[0].ID != rollups[1].ID {
		t.Errorf("EnsureRollup of an existing definition made rollup %d, want %d", again[0].ID, rollups[1].ID)
	}
	if err := s.DropRollup(ctx, rollups[1].ID); err != nil {
		t.Fatalf("DropRollup: %v", err)
	}
	if err := s.DropRollup(ctx, rollups[1].ID); odometer.ErrorCode(err) != odometer.ENOTFOUND {
		t.Errorf("second DropRollup: %v, want ENOTFOUND", err)
	}
	f.compare("dropped rollup", now, f.meters[1], q)
}

// testRollupsConcurrent checks the rollups while appends and a backfill
// run: every COUNT the rollups give lies between the events acknowledged
// before the query began and those acknowledged by its end, and once all
// is quiet every answer equals the events'.
func testRollupsConcurrent(t *testing.T, st odometer.Store) {
	s, ok := st.(odometer.RollupStore)
	if !ok {
		t.Skip("the store keeps no rollups")
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := newRollupFixture(t, s, "rollups-concurrent")
	count := f.meters[1]
	rng := rand.New(rand.NewPCG(8, 9))
	appendInBatches(t, st, f.events(rng, 3000, f.base.Add(-14*24*time.Hour), f.base, f.base), 500)
	// acked counts the events acknowledged, sent those sent: a query
	// may see a batch whose acknowledgement is still on its way.
	var acked, sent atomic.Int64
	acked.Store(3000)
	sent.Store(3000)
	rollups := f.ensure(f.meters...)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	errs := make(chan error, 8)
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for ctx.Err() == nil {
				batch := f.events(rng, 1+rng.IntN(60), f.base.Add(-14*24*time.Hour), f.base.Add(time.Hour), f.base.Add(time.Hour))
				sent.Add(int64(len(batch)))
				if _, err := st.AppendEvents(ctx, batch); err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				acked.Add(int64(len(batch)))
			}
		})
	}
	wg.Go(func() {
		for _, r := range rollups {
			for done := false; !done && ctx.Err() == nil; {
				r, err := s.BackfillRollup(ctx, r.ID, 200)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				done = r.Backfilled
			}
		}
	})
	now := f.base.Add(24 * time.Hour)
	total := odometer.UsageQuery{From: f.base.Add(-15 * 24 * time.Hour), To: now, WindowSize: odometer.Day}
	for i := range 60 {
		before := acked.Load()
		res, err := usage.QueryUsage(ctx, s, count, total, now)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		after := sent.Load()
		var n int64
		for _, r := range res.Data {
			v, _ := r.Value.Int64()
			n += v
		}
		if n < before || n > after {
			t.Fatalf("query %d counted %d events; %d were acknowledged before it and %d sent by its end", i, n, before, after)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("while querying: %v", err)
	}
	for _, r := range rollups {
		for done := false; !done; {
			r, err := s.BackfillRollup(t.Context(), r.ID, 10_000)
			if err != nil {
				t.Fatal(err)
			}
			done = r.Backfilled
		}
	}
	f.t = t
	f.round("after concurrent appends and backfills", 40)
}

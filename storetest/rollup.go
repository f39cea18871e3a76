package storetest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// testUsageRollups checks that usage read through the rollup cache equals
// usage read from every event, for every aggregation, window size, zone and
// filter, while on-time and late events arrive and the store's late
// watermarks invalidate cached hours.
func testUsageRollups(t *testing.T, s odometer.Store) {
	const ns = "rollups"
	ctx := t.Context()
	// The clock runs a year ahead of the real one, so that the stores take
	// the events' receive times (not their own clocks) for late marks.
	base := time.Now().UTC().AddDate(1, 0, 0).Truncate(24 * time.Hour)
	rng := rand.New(rand.NewPCG(7, 11))
	subjects := []string{"a", "b", "c"}
	seq := 0
	events := func(n int, from, to, ingestedAt time.Time) []odometer.Event {
		out := make([]odometer.Event, n)
		for i := range out {
			seq++
			at := from.Add(time.Duration(rng.Int64N(int64(to.Sub(from)/time.Microsecond))) * time.Microsecond)
			model := []string{`"m-a"`, `"m-b"`, `null`}[rng.IntN(3)]
			data := fmt.Sprintf(`{"v":"%d.%02d","model":%s,"region":"%s"}`,
				rng.IntN(200)-20, rng.IntN(100), model, []string{"eu", "us"}[rng.IntN(2)])
			out[i] = ev(ns, "src", fmt.Sprint("r-", seq), "calls", subjects[rng.IntN(len(subjects))], at, data)
			out[i].IngestedAt = ingestedAt
		}
		return out
	}

	var meters []*odometer.CompiledMeter
	for _, agg := range []odometer.Aggregation{odometer.Sum, odometer.Count, odometer.Avg, odometer.Min,
		odometer.Max, odometer.Latest, odometer.UniqueCount} {
		m := &odometer.Meter{ID: odometer.NewID(created), Namespace: ns, Slug: strings.ToLower(string(agg)),
			Aggregation: agg, EventType: "calls", ValueProperty: "$.v",
			GroupBy: map[string]string{"model": "$.model", "region": "$.region"}, CreatedAt: created, UpdatedAt: created}
		if agg == odometer.Count {
			m.ValueProperty = ""
		}
		if agg == odometer.Max {
			m.Filters = map[string][]string{"$.region": {"eu"}}
		}
		cm, err := m.Compile()
		if err != nil {
			t.Fatalf("compile %s: %v", agg, err)
		}
		meters = append(meters, cm)
	}
	zones := []*time.Location{time.UTC}
	for _, name := range []string{"Europe/Berlin", "Asia/Kolkata", "America/St_Johns"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Fatalf("LoadLocation(%s): %v", name, err)
		}
		zones = append(zones, loc)
	}

	rollups := usage.NewRollups(0)
	rows := func(res *odometer.UsageResult) []string {
		out := []string{}
		for _, r := range res.Data {
			row := fmt.Sprintf("%s..%s", r.WindowStart.Format(time.RFC3339), r.WindowEnd.Format(time.RFC3339))
			if r.Subject != nil {
				row += " " + *r.Subject
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
					v = *p
				}
				row += " " + k + "=" + v
			}
			out = append(out, row+" = "+r.Value.String())
		}
		return out
	}
	// compare runs q on m both ways at now and fails on any difference.
	compare := func(now time.Time, m *odometer.CompiledMeter, q odometer.UsageQuery) {
		t.Helper()
		want, err := usage.QueryEvents(ctx, s, m, q, now)
		if err != nil {
			t.Fatalf("QueryUsage(%s, %+v): %v", m.Slug, q, err)
		}
		got, err := rollups.View(s, now).Query(ctx, m, q)
		if err != nil {
			t.Fatalf("cached Query(%s, %+v): %v", m.Slug, q, err)
		}
		if diff := cmp.Diff(rows(want), rows(got)); diff != "" {
			t.Fatalf("now %s, meter %s, query %+v (zone %s): cached result differs (-events +cached):\n%s",
				now, m.Slug, q, q.TimeZone, diff)
		}
	}
	randomQuery := func() odometer.UsageQuery {
		q := odometer.UsageQuery{TimeZone: zones[rng.IntN(len(zones))]}
		q.WindowSize = []odometer.WindowSize{"", odometer.Hour, odometer.Day, odometer.Month, odometer.Minute}[rng.IntN(5)]
		span := time.Duration(1+rng.IntN(11*24*60)) * time.Minute
		if q.WindowSize == odometer.Minute {
			span = time.Duration(1+rng.IntN(180)) * time.Minute
		}
		q.From = base.Add(-13 * 24 * time.Hour).Add(time.Duration(rng.Int64N(int64(13 * 24 * time.Hour))))
		q.To = q.From.Add(span)
		for range 1 + rng.IntN(2) {
			q.Subjects = append(q.Subjects, append(subjects, "nobody")[rng.IntN(4)])
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
			q.FilterGroupBy = map[string][]string{"model": {"m-a", "m-b"}, "subject": {"a", "c"}}
		}
		return q
	}
	// whole is one subject's usage over everything, in DAY windows.
	whole := func(subject string) odometer.UsageQuery {
		return odometer.UsageQuery{From: base.Add(-14 * 24 * time.Hour), To: base.Add(time.Hour),
			WindowSize: odometer.Day, Subjects: []string{subject}, GroupBy: []string{"model"}}
	}
	round := func(now time.Time, n int) {
		t.Helper()
		for _, subject := range subjects {
			for _, m := range meters {
				compare(now, m, whole(subject))
			}
		}
		for range n {
			compare(now, meters[rng.IntN(len(meters))], randomQuery())
		}
	}
	stats := func() usage.RollupStats { return rollups.Stats() }

	// A backfill: events from 13 days to 1 day back, received at base.
	appendInBatches(t, s, events(3000, base.Add(-13*24*time.Hour), base.Add(-24*time.Hour), base), 500)
	// Right after a backfill its subjects' cached hours are stale: the
	// cache fills, but nothing it holds may be used yet. (Random queries
	// come later: they also ask about a subject without events, and
	// without a watermark, whose empty hours the cache may serve at once.)
	round(base.Add(time.Minute), 0)
	if st := stats(); st.Hits != 0 || st.Misses == 0 {
		t.Fatalf("right after the backfill: %+v, want misses and no hits", st)
	}
	// Entries computed more than the margin after the backfill are used.
	round(base.Add(10*time.Minute), 40)
	before := stats()
	round(base.Add(20*time.Minute), 40)
	if st := stats(); st.Hits-before.Hits < 1000 {
		t.Fatalf("20 minutes after the backfill: %+v (before %+v), want the cache to serve most hours", st, before)
	}

	// On-time events never touch a cacheable hour and leave no watermark.
	now := base.Add(30 * time.Minute)
	appendInBatches(t, s, events(50, now.Add(-50*time.Minute), now, now), 50)
	before = stats()
	round(now.Add(time.Minute), 40)
	if st := stats(); st.Hits-before.Hits < 1000 {
		t.Fatalf("after on-time events: %+v (before %+v), want the cache still used", st, before)
	}

	// A late event lands in hours the cache holds; its watermark makes the
	// subject's entries stale, and every answer still counts it.
	now = now.Add(2 * time.Minute)
	late := events(30, base.Add(-13*24*time.Hour), base.Add(-24*time.Hour), now)
	appendInBatches(t, s, late, 30)
	for _, e := range late[:3] {
		for _, m := range meters {
			compare(now.Add(time.Minute), m, odometer.UsageQuery{From: e.Time.Truncate(time.Hour).Add(-3 * time.Hour),
				To: e.Time.Truncate(time.Hour).Add(4 * time.Hour), WindowSize: odometer.Hour, Subjects: []string{e.Subject}})
		}
	}
	round(now.Add(time.Minute), 40)
	round(now.Add(10*time.Minute), 40)

	// A meter whose definition changes reads none of the old entries.
	changed := *meters[0].Meter
	changed.GroupBy = map[string]string{"model": "$.region", "region": "$.model"}
	cm, err := changed.Compile()
	if err != nil {
		t.Fatalf("compile changed meter: %v", err)
	}
	for _, subject := range subjects {
		compare(now.Add(10*time.Minute), cm, whole(subject))
	}
}

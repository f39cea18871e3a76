package ledger

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/sqlite"
	"github.com/odometerhq/odometer/usage"
)

// Balances, access checks and history read through the rollup cache equal
// those read from every event, before and after a late event lands in
// hours the cache holds.
func TestRollupsDoNotChangeCredits(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	// A clock a year ahead of the real one, so that the store takes the
	// events' receive times for late marks (see odometer.LateMarks).
	base := time.Now().UTC().AddDate(1, 0, 0).Truncate(24 * time.Hour)
	now := base
	clock := func() time.Time { return now }
	rollups := usage.NewRollups(0)
	plain, cached := New(store, clock, nil), New(store, clock, rollups)

	start := base.AddDate(0, 0, -20)
	if err := store.CreateMeter(ctx, &odometer.Meter{ID: odometer.NewID(start), Namespace: "default", Slug: "tokens",
		Aggregation: odometer.Sum, EventType: "prompt", ValueProperty: "$.tokens", GroupBy: map[string]string{"model": "$.model"},
		CreatedAt: start, UpdatedAt: start}); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.CreateFeature(ctx, "default", FeatureInput{Key: "ai", Meter: "tokens",
		MeterGroupByFilters: map[string]string{"model": "big"}}); err != nil {
		t.Fatal(err)
	}
	l, err := plain.CreateLedger(ctx, "default", LedgerInput{Subject: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		in := GrantInput{Feature: "ai", Amount: odometer.MustDecimal(fmt.Sprint(400 + 150*i)), Priority: ptr(1 + i%3),
			EffectiveAt: start.Add(time.Duration(i)*71*time.Hour + time.Duration(i*7)*time.Minute)}
		if i%2 == 0 {
			in.Expiration = &Expiration{Count: 5, Duration: "DAY"}
		}
		if i == 3 {
			in.Recurrence = &Recurrence{Interval: "DAY"}
		}
		if _, err := plain.CreateGrant(ctx, "default", l.ID, in); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	usage := func(at, ingested time.Time, model string) odometer.Event {
		n++
		return odometer.Event{Namespace: "default", ID: fmt.Sprint("e", n), Source: "test", SpecVersion: "1.0",
			Type: "prompt", Subject: "acme", Time: at, IngestedAt: ingested,
			Data: fmt.Appendf(nil, `{"tokens":"%d.%d","model":"%s"}`, n%13, n%10, model)}
	}
	var backfill []odometer.Event
	for at := start; at.Before(base); at = at.Add(7 * time.Minute) {
		backfill = append(backfill, usage(at, base, []string{"big", "small"}[n%2]))
	}
	if _, err := store.AppendEvents(ctx, backfill); err != nil {
		t.Fatal(err)
	}

	asJSON := func(v any, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	compare := func() string {
		t.Helper()
		var balance string
		for _, at := range []time.Time{{}, start.Add(50 * time.Hour), base.Add(-30 * time.Hour)} {
			want := asJSON(plain.Balance(ctx, "default", l.ID, at))
			if got := asJSON(cached.Balance(ctx, "default", l.ID, at)); got != want {
				t.Fatalf("at %s (now %s): balance through rollups\n%s\nwant\n%s", at, now, got, want)
			}
			if at.IsZero() {
				balance = want
			}
		}
		want := asJSON(plain.Access(ctx, "default", l.ID, "ai", false))
		if got := asJSON(cached.Access(ctx, "default", l.ID, "ai", false)); got != want {
			t.Fatalf("now %s: access through rollups\n%s\nwant\n%s", now, got, want)
		}
		q := HistoryQuery{Limit: 1000}
		want = asJSON(plain.History(ctx, "default", l.ID, q))
		if got := asJSON(cached.History(ctx, "default", l.ID, q)); got != want {
			t.Fatalf("now %s: history through rollups\n%s\nwant\n%s", now, got, want)
		}
		return balance
	}

	for _, after := range []time.Duration{time.Minute, 10 * time.Minute, 20 * time.Minute} {
		now = base.Add(after)
		compare()
	}
	if st := rollups.Stats(); st.Hits < 1000 {
		t.Fatalf("rollup stats %+v: want the cache to serve most hours", st)
	}
	before := compare()

	// A late event for an hour the cache holds.
	now = now.Add(time.Minute)
	if _, err := store.AppendEvents(ctx, []odometer.Event{usage(start.Add(100*time.Hour+30*time.Minute), now, "big")}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if after := compare(); after == before {
		t.Fatalf("the late event did not change the balance: %s", after)
	}
}

package credit

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// One test per rule of docs/credits.md, "Rules"; the test names carry the
// rule numbers.

const p0 = "2025-01-01 00:00" // the period start of most cases

func TestRule1WholeMinutes(t *testing.T) {
	t.Parallel()
	start := tm(p0)
	half := 30 * time.Second
	ok := grant("a", "10", p0)
	runWith := func(s State, grants []Grant, to time.Time) error {
		_, _, err := Run(t.Context(), s, grants, to, usageAt())
		return err
	}
	fresh := State{At: start, PeriodStart: start, Balances: map[string]odometer.Decimal{"a": d("10")}}
	cases := []struct {
		name  string
		err   func() error
		field string
	}{
		{"effectiveAt", func() error {
			return runWith(fresh, []Grant{ok, with(grant("b", "1", "2025-01-01 01:00"), func(g *Grant) { g.EffectiveAt = g.EffectiveAt.Add(half) })}, start)
		}, "effectiveAt"},
		{"expiresAt", func() error {
			return runWith(fresh, []Grant{with(ok, func(g *Grant) { g.ExpiresAt = start.Add(time.Hour + half) })}, start)
		}, "expiresAt"},
		{"voidedAt", func() error {
			return runWith(fresh, []Grant{with(ok, func(g *Grant) { g.VoidedAt = start.Add(time.Hour + time.Nanosecond) })}, start)
		}, "voidedAt"},
		{"recurrence anchor", func() error {
			return runWith(fresh, []Grant{with(ok, func(g *Grant) { g.Recurrence = Recurrence{Day, start.Add(half)} })}, start)
		}, "recurrence.anchor"},
		{"to", func() error { return runWith(fresh, []Grant{ok}, start.Add(time.Hour+half)) }, "to"},
		{"state at", func() error {
			s := fresh
			s.At = start.Add(time.Hour + half)
			return runWith(s, []Grant{ok}, start.Add(2*time.Hour))
		}, "at"},
		{"period start", func() error {
			_, err := NewPeriod(start.Add(half), []Grant{ok})
			return err
		}, "periodStart"},
		{"expiration count", func() error {
			_, err := ExpiresAt(start, 0, Day)
			return err
		}, "expiration.count"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.err()
			if odometer.ErrorCode(err) != odometer.EINVALID || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("err = %v (code %q), want an EINVALID error naming %q", err, odometer.ErrorCode(err), c.field)
			}
		})
	}

	t.Run("createdAt may have seconds: it only orders", func(t *testing.T) {
		g := with(ok, func(g *Grant) { g.CreatedAt = start.Add(17*time.Second + 5*time.Millisecond) })
		runFromStart(t, start, []Grant{g}, start.Add(time.Hour), usageAt())
	})

	t.Run("usage is asked per segment on minute boundaries, not per minute", func(t *testing.T) {
		runCase{
			start:    p0,
			grants:   []Grant{with(ok, func(g *Grant) { g.ExpiresAt = tm("2025-01-01 02:00") })},
			uses:     []use{{"2025-01-01 00:10", "1"}, {"2025-01-01 05:00", "2"}},
			to:       "2025-01-02 00:00",
			balances: "",
			overage:  "2",
			calls:    []string{"[2025-01-01 00:00, 2025-01-01 02:00)", "[2025-01-01 02:00, 2025-01-02 00:00)"},
		}.run(t)
	})
}

func TestRule2Grants(t *testing.T) {
	t.Parallel()
	ok := grant("a", "10", p0)
	invalid := []struct {
		name  string
		g     Grant
		field string
	}{
		{"empty id", with(ok, func(g *Grant) { g.ID = "" }), "id"},
		{"zero amount", with(ok, func(g *Grant) { g.Amount = d("0") }), "amount"},
		{"negative amount", with(ok, func(g *Grant) { g.Amount = d("-1") }), "amount"},
		{"priority 0", with(ok, func(g *Grant) { g.Priority = 0 }), "priority"},
		{"priority 256", with(ok, func(g *Grant) { g.Priority = 256 }), "priority"},
		{"expires at effectiveAt", with(ok, func(g *Grant) { g.ExpiresAt = g.EffectiveAt }), "expiresAt"},
		{"expires before effectiveAt", with(ok, func(g *Grant) { g.ExpiresAt = tm("2024-12-31 00:00") }), "expiresAt"},
		{"start balance above amount", with(ok, func(g *Grant) { g.StartBalance = dp("10.5") }), "startBalance"},
		{"negative start balance", with(ok, func(g *Grant) { g.StartBalance = dp("-1") }), "startBalance"},
		{"unknown interval", with(ok, func(g *Grant) { g.Recurrence = Recurrence{"FORTNIGHT", tm(p0)} }), "recurrence.interval"},
		{"recurrence without anchor", with(ok, func(g *Grant) { g.Recurrence = Recurrence{Interval: Day} }), "recurrence.anchor"},
		{"anchor without interval", with(ok, func(g *Grant) { g.Recurrence = Recurrence{Anchor: tm(p0)} }), "recurrence.interval"},
		{"unknown rollover", with(ok, func(g *Grant) { g.Rollover = "ALL" }), "rollover"},
		{"cap without rollover", with(ok, func(g *Grant) { g.RolloverMax = dp("5") }), "rolloverMax"},
		{"negative cap", with(ok, func(g *Grant) { g.Rollover, g.RolloverMax = RolloverOriginal, dp("-5") }), "rolloverMax"},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			err := c.g.Validate()
			if odometer.ErrorCode(err) != odometer.EINVALID || len(odometer.ErrorFields(err)) != 1 || odometer.ErrorFields(err)[0].Field != c.field {
				t.Fatalf("Validate = %v, want an EINVALID error on field %q", err, c.field)
			}
			if _, err := NewPeriod(tm(p0), []Grant{c.g}); err == nil {
				t.Fatal("NewPeriod accepted the grant")
			}
		})
	}
	t.Run("duplicate id", func(t *testing.T) {
		_, err := NewPeriod(tm(p0), []Grant{ok, with(ok, func(g *Grant) { g.Amount = d("3") })})
		if odometer.ErrorCode(err) != odometer.EINVALID || !strings.Contains(err.Error(), `"a" appears twice`) {
			t.Fatalf("err = %v", err)
		}
	})

	// Active on [EffectiveAt, min(ExpiresAt, VoidedAt)); z, last in burn
	// order, takes the usage outside.
	z := with(grant("z", "100", p0), func(g *Grant) { g.Priority = 255 })
	uses := []use{{"2025-01-01 00:30", "1"}, {"2025-01-01 01:00", "1"}, {"2025-01-01 01:59", "1"}, {"2025-01-01 02:00", "1"}, {"2025-01-01 02:59", "1"}, {"2025-01-01 03:00", "1"}}
	for _, c := range []runCase{{
		name: "expiry",
		grants: []Grant{z, with(grant("a", "100", "2025-01-01 01:00"), func(g *Grant) {
			g.ExpiresAt = tm("2025-01-01 03:00")
		})},
		balances: "z:98",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-01 01:00) 1",
			"GRANT_USAGE z [2025-01-01 00:00, 2025-01-01 01:00) 1",
			"USAGE [2025-01-01 01:00, 2025-01-01 03:00) 4",
			"GRANT_USAGE a [2025-01-01 01:00, 2025-01-01 03:00) 4",
			"GRANT_END a @2025-01-01 03:00 96",
			"USAGE [2025-01-01 03:00, 2025-01-01 04:00) 1",
			"GRANT_USAGE z [2025-01-01 03:00, 2025-01-01 04:00) 1",
		},
	}, {
		name: "void",
		grants: []Grant{z, with(grant("a", "100", "2025-01-01 01:00"), func(g *Grant) {
			g.ExpiresAt, g.VoidedAt = tm("2025-01-01 03:00"), tm("2025-01-01 02:00")
		})},
		balances: "z:96",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-01 01:00) 1",
			"GRANT_USAGE z [2025-01-01 00:00, 2025-01-01 01:00) 1",
			"USAGE [2025-01-01 01:00, 2025-01-01 02:00) 2",
			"GRANT_USAGE a [2025-01-01 01:00, 2025-01-01 02:00) 2",
			"GRANT_END a @2025-01-01 02:00 98",
			"USAGE [2025-01-01 02:00, 2025-01-01 04:00) 3",
			"GRANT_USAGE z [2025-01-01 02:00, 2025-01-01 04:00) 3",
		},
	}, {
		name: "voided before it became effective: never active",
		grants: []Grant{z, with(grant("a", "100", "2025-01-01 01:00"), func(g *Grant) {
			g.VoidedAt = tm("2025-01-01 01:00")
		})},
		balances: "z:94",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-01 04:00) 6",
			"GRANT_USAGE z [2025-01-01 00:00, 2025-01-01 04:00) 6",
		},
	}} {
		c.start, c.uses, c.to = p0, uses, "2025-01-01 04:00"
		t.Run(c.name, c.run)
	}
}

func TestRule2ExpiresAt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from  string
		count int
		unit  Interval
		want  string
	}{
		{"2025-01-01 10:00", 1, Hour, "2025-01-01 11:00"},
		{"2025-01-01 10:00", 36, Hour, "2025-01-02 22:00"},
		{"2025-03-30 00:30", 1, Day, "2025-03-31 00:30"}, // UTC: no DST
		{"2025-01-01 10:00", 2, Week, "2025-01-15 10:00"},
		{"2025-01-31 10:00", 1, Month, "2025-02-28 10:00"},
		{"2024-01-31 10:00", 1, Month, "2024-02-29 10:00"},
		{"2025-01-31 10:00", 2, Month, "2025-03-31 10:00"}, // from the start, not via Feb 28
		{"2025-12-31 10:00", 2, Month, "2026-02-28 10:00"},
		{"2025-05-15 00:00", 12, Month, "2026-05-15 00:00"},
		{"2024-02-29 00:00", 1, Year, "2025-02-28 00:00"},
		{"2024-02-29 00:00", 4, Year, "2028-02-29 00:00"},
	}
	for _, c := range cases {
		got, err := ExpiresAt(tm(c.from), c.count, c.unit)
		if err != nil || !got.Equal(tm(c.want)) {
			t.Errorf("ExpiresAt(%s, %d, %s) = %s, %v; want %s", c.from, c.count, c.unit, got.Format(tmLayout), err, c.want)
		}
	}
	for _, bad := range []struct {
		count int
		unit  Interval
		field string
	}{{0, Day, "expiration.count"}, {-1, Day, "expiration.count"}, {1, "DECADE", "expiration.duration"}, {1 << 21, Hour, "expiration.count"}, {1 << 20, Year, "expiration"}} {
		if _, err := ExpiresAt(tm(p0), bad.count, bad.unit); odometer.ErrorCode(err) != odometer.EINVALID || odometer.ErrorFields(err)[0].Field != bad.field {
			t.Errorf("ExpiresAt(%d, %s): err = %v, want EINVALID on %s", bad.count, bad.unit, err, bad.field)
		}
	}
}

func TestRule3BurnOrder(t *testing.T) {
	t.Parallel()
	prio := func(g Grant, p int) Grant { return with(g, func(g *Grant) { g.Priority = p }) }
	exp := func(g Grant, at string) Grant { return with(g, func(g *Grant) { g.ExpiresAt = tm(at) }) }
	created := func(g Grant, at time.Time) Grant { return with(g, func(g *Grant) { g.CreatedAt = at }) }
	a, b, c := grant("a", "10", p0), grant("b", "10", p0), grant("c", "10", p0)
	cases := []runCase{{
		name:     "lower priority number first",
		grants:   []Grant{prio(a, 2), prio(b, 1)},
		uses:     []use{{p0, "15"}},
		balances: "a:5 b:0",
		entries:  []string{"USAGE [2025-01-01 00:00, 2025-01-02 00:00) 15", "GRANT_USAGE b [2025-01-01 00:00, 2025-01-02 00:00) 10", "GRANT_USAGE a [2025-01-01 00:00, 2025-01-02 00:00) 5"},
	}, {
		name:     "priority before expiry",
		grants:   []Grant{prio(a, 1), prio(exp(b, "2025-01-05 00:00"), 2)},
		uses:     []use{{p0, "15"}},
		balances: "a:0 b:5",
	}, {
		name:     "earlier expiry first, never-expiring last",
		grants:   []Grant{exp(a, "2025-01-10 00:00"), exp(b, "2025-01-05 00:00"), created(c, tm("2024-12-01 00:00"))},
		uses:     []use{{p0, "25"}},
		balances: "a:0 b:0 c:5",
		entries:  []string{"USAGE [2025-01-01 00:00, 2025-01-02 00:00) 25", "GRANT_USAGE b [2025-01-01 00:00, 2025-01-02 00:00) 10", "GRANT_USAGE a [2025-01-01 00:00, 2025-01-02 00:00) 10", "GRANT_USAGE c [2025-01-01 00:00, 2025-01-02 00:00) 5"},
	}, {
		name:     "earlier creation first, to the sub-minute",
		grants:   []Grant{created(a, tm(p0).Add(40*time.Second)), created(b, tm(p0).Add(20*time.Second))},
		uses:     []use{{p0, "15"}},
		balances: "a:5 b:0",
	}, {
		name:     "then by id",
		grants:   []Grant{b, a},
		uses:     []use{{p0, "15"}},
		balances: "a:0 b:5",
	}}
	for _, c := range cases {
		c.start, c.to = p0, "2025-01-02 00:00"
		t.Run(c.name, c.run)
		c.name += " (reversed input)"
		c.grants = slices.Clone(c.grants)
		slices.Reverse(c.grants)
		t.Run(c.name, c.run)
	}
}

func TestRule4Segments(t *testing.T) {
	t.Parallel()
	grants := []Grant{
		with(grant("a", "10", p0), func(g *Grant) { g.ExpiresAt = tm("2025-01-01 02:00") }),
		with(grant("b", "10", "2025-01-01 01:00"), func(g *Grant) { g.VoidedAt = tm("2025-01-01 01:30") }),
		with(grant("c", "10", p0), func(g *Grant) { g.Recurrence = Recurrence{Hour, tm("2024-12-31 23:30")} }),
		// Of an earlier period: ignored, so 00:45 is no cut.
		with(grant("old", "10", "2024-12-31 00:00"), func(g *Grant) { g.ExpiresAt = tm("2025-01-01 00:45") }),
		// Never active: 00:40 is no cut.
		with(grant("never", "10", "2025-01-01 00:40"), func(g *Grant) { g.VoidedAt = tm("2025-01-01 00:40") }),
	}
	for _, c := range []runCase{{
		name:     "cut at every start, end and refill inside the run",
		to:       "2025-01-01 03:00",
		balances: "c:10",
		calls: []string{
			"[2025-01-01 00:00, 2025-01-01 00:30)", "[2025-01-01 00:30, 2025-01-01 01:00)",
			"[2025-01-01 01:00, 2025-01-01 01:30)", "[2025-01-01 01:30, 2025-01-01 02:00)",
			"[2025-01-01 02:00, 2025-01-01 02:30)", "[2025-01-01 02:30, 2025-01-01 03:00)",
		},
	}, {
		name:     "no change inside: one call",
		to:       "2025-01-01 00:20",
		balances: "a:10 c:10",
		calls:    []string{"[2025-01-01 00:00, 2025-01-01 00:20)"},
	}, {
		name:     "empty run: no call",
		to:       p0,
		balances: "a:10 c:10",
		calls:    []string{},
	}} {
		c.start, c.grants = p0, grants
		t.Run(c.name, c.run)
	}
}

func TestRule5Overage(t *testing.T) {
	t.Parallel()
	for _, c := range []runCase{{
		name:     "usage beyond all grants is overage",
		grants:   []Grant{grant("a", "10", p0)},
		uses:     []use{{"2025-01-01 00:10", "15"}},
		to:       "2025-01-01 01:00",
		balances: "a:0",
		overage:  "5",
		entries:  []string{"USAGE [2025-01-01 00:00, 2025-01-01 01:00) 15", "GRANT_USAGE a [2025-01-01 00:00, 2025-01-01 01:00) 10", "OVERAGE [2025-01-01 00:00, 2025-01-01 01:00) 5"},
	}, {
		name:    "no grant at all",
		uses:    []use{{"2025-01-01 00:10", "7"}},
		to:      "2025-01-01 01:00",
		overage: "7",
		entries: []string{"USAGE [2025-01-01 00:00, 2025-01-01 01:00) 7", "OVERAGE [2025-01-01 00:00, 2025-01-01 01:00) 7"},
	}, {
		name:     "a grant becoming active pays the debt first",
		grants:   []Grant{grant("b", "100", "2025-01-01 01:00")},
		uses:     []use{{"2025-01-01 00:10", "30"}, {"2025-01-01 02:00", "5"}},
		to:       "2025-01-01 03:00",
		balances: "b:65",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-01 01:00) 30",
			"OVERAGE [2025-01-01 00:00, 2025-01-01 01:00) 30",
			"OVERAGE_REPAID b @2025-01-01 01:00 30",
			"USAGE [2025-01-01 01:00, 2025-01-01 03:00) 5",
			"GRANT_USAGE b [2025-01-01 01:00, 2025-01-01 03:00) 5",
		},
	}, {
		name:     "as much as its balance covers",
		grants:   []Grant{grant("b", "20", "2025-01-01 01:00"), grant("c", "50", "2025-01-01 02:00")},
		uses:     []use{{"2025-01-01 00:10", "30"}},
		to:       "2025-01-01 03:00",
		balances: "b:0 c:40",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-01 01:00) 30",
			"OVERAGE [2025-01-01 00:00, 2025-01-01 01:00) 30",
			"OVERAGE_REPAID b @2025-01-01 01:00 20",
			"USAGE [2025-01-01 01:00, 2025-01-01 02:00) 0",
			"OVERAGE_REPAID c @2025-01-01 02:00 10",
			"USAGE [2025-01-01 02:00, 2025-01-01 03:00) 0",
		},
	}, {
		name: "grants starting together pay in burn order",
		grants: []Grant{
			with(grant("x", "100", "2025-01-01 01:00"), func(g *Grant) { g.Priority = 2 }),
			grant("y", "20", "2025-01-01 01:00"),
		},
		uses:     []use{{"2025-01-01 00:10", "30"}},
		to:       "2025-01-01 01:00",
		balances: "x:90 y:0",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-01 01:00) 30",
			"OVERAGE [2025-01-01 00:00, 2025-01-01 01:00) 30",
			"OVERAGE_REPAID y @2025-01-01 01:00 20",
			"OVERAGE_REPAID x @2025-01-01 01:00 10",
		},
	}, {
		name: "a refill and a start at one instant pay in burn order",
		grants: []Grant{
			with(grant("r", "10", p0), func(g *Grant) { g.Priority = 2; g.Recurrence = Recurrence{Hour, tm(p0)} }),
			grant("s", "10", "2025-01-01 01:00"),
		},
		uses:     []use{{"2025-01-01 00:10", "15"}},
		to:       "2025-01-01 01:00",
		balances: "r:10 s:5",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-01 01:00) 15",
			"GRANT_USAGE r [2025-01-01 00:00, 2025-01-01 01:00) 10",
			"OVERAGE [2025-01-01 00:00, 2025-01-01 01:00) 5",
			"GRANT_REFILL r @2025-01-01 01:00 10",
			"OVERAGE_REPAID s @2025-01-01 01:00 5",
		},
	}, {
		name:     "the debt still open at the run's end is reported",
		grants:   []Grant{grant("b", "100", "2025-01-01 01:00")},
		uses:     []use{{"2025-01-01 00:10", "30"}},
		to:       "2025-01-01 00:59",
		overage:  "30",
		balances: "",
	}} {
		c.start = p0
		t.Run(c.name, c.run)
	}
}

func TestRule6Recurrence(t *testing.T) {
	t.Parallel()
	t.Run("occurrences are computed from the anchor", func(t *testing.T) {
		for _, c := range []struct {
			r    Recurrence
			k    int
			want string
		}{
			{Recurrence{Month, tm("2025-01-31 08:00")}, 1, "2025-02-28 08:00"},
			{Recurrence{Month, tm("2025-01-31 08:00")}, 2, "2025-03-31 08:00"},
			{Recurrence{Month, tm("2025-01-31 08:00")}, 3, "2025-04-30 08:00"},
			{Recurrence{Month, tm("2025-01-31 08:00")}, 13, "2026-02-28 08:00"},
			{Recurrence{Month, tm("2025-01-31 08:00")}, -1, "2024-12-31 08:00"},
			{Recurrence{Month, tm("2025-01-31 08:00")}, -2, "2024-11-30 08:00"},
			{Recurrence{Month, tm("2025-01-31 08:00")}, -11, "2024-02-29 08:00"},
			{Recurrence{Year, tm("2024-02-29 00:00")}, 1, "2025-02-28 00:00"},
			{Recurrence{Year, tm("2024-02-29 00:00")}, 4, "2028-02-29 00:00"},
			{Recurrence{Year, tm("2024-02-29 00:00")}, -1, "2023-02-28 00:00"},
			{Recurrence{Week, tm("2025-03-10 00:00")}, -9, "2025-01-06 00:00"},
			{Recurrence{Hour, tm("0001-01-01 00:00")}, 17745648, "2025-06-01 00:00"},
		} {
			if got := c.r.at(c.k); !got.Equal(tm(c.want)) {
				t.Errorf("%s from %s, k=%d: %s, want %s", c.r.Interval, c.r.Anchor.Format(tmLayout), c.k, got.Format(tmLayout), c.want)
			}
			// firstAfter finds k from the occurrence and from just before it.
			if k := c.r.firstAfter(tm(c.want)); k != c.k+1 {
				t.Errorf("%s from %s: firstAfter(%s) = %d, want %d", c.r.Interval, c.r.Anchor.Format(tmLayout), c.want, k, c.k+1)
			}
			if k := c.r.firstAfter(tm(c.want).Add(-time.Minute)); k != c.k {
				t.Errorf("%s from %s: firstAfter(%s - 1m) = %d, want %d", c.r.Interval, c.r.Anchor.Format(tmLayout), c.want, k, c.k)
			}
		}
	})
	recurring := func(g Grant, iv Interval, anchor string) Grant {
		return with(g, func(g *Grant) { g.Recurrence = Recurrence{iv, tm(anchor)} })
	}
	for _, c := range []runCase{{
		name:     "monthly from a month-end anchor",
		start:    "2025-01-31 00:00",
		grants:   []Grant{recurring(grant("a", "100", "2025-01-31 00:00"), Month, "2025-01-31 00:00")},
		uses:     []use{{"2025-02-10 00:00", "80"}, {"2025-03-05 00:00", "120"}, {"2025-04-01 00:00", "30"}},
		to:       "2025-05-01 00:00",
		balances: "a:100",
		entries: []string{
			"USAGE [2025-01-31 00:00, 2025-02-28 00:00) 80",
			"GRANT_USAGE a [2025-01-31 00:00, 2025-02-28 00:00) 80",
			"GRANT_REFILL a @2025-02-28 00:00 80",
			"USAGE [2025-02-28 00:00, 2025-03-31 00:00) 120",
			"GRANT_USAGE a [2025-02-28 00:00, 2025-03-31 00:00) 100",
			"OVERAGE [2025-02-28 00:00, 2025-03-31 00:00) 20",
			"GRANT_REFILL a @2025-03-31 00:00 100",
			"OVERAGE_REPAID a @2025-03-31 00:00 20",
			"USAGE [2025-03-31 00:00, 2025-04-30 00:00) 30",
			"GRANT_USAGE a [2025-03-31 00:00, 2025-04-30 00:00) 30",
			"GRANT_REFILL a @2025-04-30 00:00 50",
			"USAGE [2025-04-30 00:00, 2025-05-01 00:00) 0",
		},
	}, {
		name:     "anchor before EffectiveAt",
		start:    p0,
		grants:   []Grant{recurring(grant("a", "10", "2025-01-01 10:00"), Day, "2024-06-15 00:00")},
		uses:     []use{{"2025-01-01 11:00", "4"}},
		to:       "2025-01-03 00:00",
		balances: "a:10",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-01 10:00) 0",
			"USAGE [2025-01-01 10:00, 2025-01-02 00:00) 4",
			"GRANT_USAGE a [2025-01-01 10:00, 2025-01-02 00:00) 4",
			"GRANT_REFILL a @2025-01-02 00:00 4",
			"USAGE [2025-01-02 00:00, 2025-01-03 00:00) 0",
			"GRANT_REFILL a @2025-01-03 00:00 0",
		},
	}, {
		name:     "anchor after EffectiveAt",
		start:    p0,
		grants:   []Grant{recurring(grant("a", "10", p0), Week, "2025-03-10 00:00")},
		to:       "2025-01-14 00:00",
		balances: "a:10",
		calls:    []string{"[2025-01-01 00:00, 2025-01-06 00:00)", "[2025-01-06 00:00, 2025-01-13 00:00)", "[2025-01-13 00:00, 2025-01-14 00:00)"},
	}, {
		name:  "no refill at EffectiveAt nor at the end",
		start: p0,
		grants: []Grant{with(recurring(grant("a", "10", p0), Day, p0), func(g *Grant) {
			g.ExpiresAt = tm("2025-01-03 00:00")
		})},
		uses:     []use{{"2025-01-02 10:00", "4"}},
		to:       "2025-01-04 00:00",
		balances: "",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-02 00:00) 0",
			"GRANT_REFILL a @2025-01-02 00:00 0",
			"USAGE [2025-01-02 00:00, 2025-01-03 00:00) 4",
			"GRANT_USAGE a [2025-01-02 00:00, 2025-01-03 00:00) 4",
			"GRANT_END a @2025-01-03 00:00 6",
			"USAGE [2025-01-03 00:00, 2025-01-04 00:00) 0",
		},
	}, {
		name:     "a refill pays overage first",
		start:    p0,
		grants:   []Grant{recurring(grant("a", "10", p0), Day, p0)},
		uses:     []use{{"2025-01-01 01:00", "25"}},
		to:       "2025-01-04 00:00",
		balances: "a:10",
		entries: []string{
			"USAGE [2025-01-01 00:00, 2025-01-02 00:00) 25",
			"GRANT_USAGE a [2025-01-01 00:00, 2025-01-02 00:00) 10",
			"OVERAGE [2025-01-01 00:00, 2025-01-02 00:00) 15",
			"GRANT_REFILL a @2025-01-02 00:00 10",
			"OVERAGE_REPAID a @2025-01-02 00:00 10",
			"USAGE [2025-01-02 00:00, 2025-01-03 00:00) 0",
			"GRANT_REFILL a @2025-01-03 00:00 10",
			"OVERAGE_REPAID a @2025-01-03 00:00 5",
			"USAGE [2025-01-03 00:00, 2025-01-04 00:00) 0",
			"GRANT_REFILL a @2025-01-04 00:00 5",
		},
	}} {
		t.Run(c.name, c.run)
	}
}

func TestRule7Snapshots(t *testing.T) {
	t.Parallel()
	t.Run("NewPeriod holds the grants effective at the start", func(t *testing.T) {
		s, err := NewPeriod(tm(p0), []Grant{
			grant("now", "10", p0),
			with(grant("child", "10", p0), func(g *Grant) { g.StartBalance = dp("4") }),
			grant("later", "10", "2025-01-01 00:01"),
			grant("old", "10", "2024-12-31 23:59"),
			with(grant("voided", "10", p0), func(g *Grant) { g.VoidedAt = tm(p0) }),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fmtState(s), "at 2025-01-01 00:00 usage 0 overage 0 {child:4 now:10}"; got != want {
			t.Fatalf("state = %s, want %s", got, want)
		}
	})

	t.Run("grants effective inside the run start with StartBalance or Amount", func(t *testing.T) {
		runCase{
			start: p0,
			grants: []Grant{
				grant("a", "10", "2025-01-01 01:00"),
				with(grant("b", "10", "2025-01-01 01:00"), func(g *Grant) { g.StartBalance = dp("3") }),
			},
			to:       "2025-01-01 01:00",
			balances: "a:10 b:3",
		}.run(t)
	})

	t.Run("split at every minute", func(t *testing.T) {
		grants := []Grant{
			with(grant("a", "5", p0), func(g *Grant) { g.ExpiresAt = tm("2025-01-01 01:00") }),
			with(grant("b", "3", p0), func(g *Grant) { g.Priority = 2; g.Recurrence = Recurrence{Hour, tm("2025-01-01 00:30")} }),
			grant("c", "4", "2025-01-01 01:10"),
		}
		uses := usageAt(use{"2025-01-01 00:05", "2"}, use{"2025-01-01 00:20", "4"}, use{"2025-01-01 00:45", "3"},
			use{"2025-01-01 01:00", "6"}, use{"2025-01-01 01:29", "1"}, use{"2025-01-01 01:40", "2.5"})
		s0, err := NewPeriod(tm(p0), grants)
		if err != nil {
			t.Fatal(err)
		}
		end := tm("2025-01-01 02:00")
		want, wantEntries, err := Run(t.Context(), s0, grants, end, uses)
		if err != nil {
			t.Fatal(err)
		}
		for t1 := tm(p0); !t1.After(end); t1 = t1.Add(time.Minute) {
			s1, e1, err := Run(t.Context(), s0, grants, t1, uses)
			if err != nil {
				t.Fatal(err)
			}
			s2, e2, err := Run(t.Context(), s1, grants, end, uses)
			if err != nil {
				t.Fatal(err)
			}
			if !equalStates(s2, want) {
				t.Fatalf("split at %s: state %s, want %s", t1.Format(tmLayout), fmtState(s2), fmtState(want))
			}
			if got := MergeEntries(e1, e2); !equalEntries(got, wantEntries) {
				diffLines(t, "split at "+t1.Format(tmLayout), fmtEntries(got), fmtEntries(wantEntries))
				t.FailNow()
			}
		}
	})

	s, err := NewPeriod(tm(p0), []Grant{grant("a", "10", p0)})
	if err != nil {
		t.Fatal(err)
	}
	a := grant("a", "10", p0)
	for _, c := range []struct {
		name   string
		state  func(State) State
		grants []Grant
		to     string
		want   string
	}{
		{"backwards", func(s State) State { s.At = tm("2025-01-01 01:00"); return s }, []Grant{a}, p0, "cannot run back"},
		{"before the period", func(s State) State { s.At = tm("2024-12-31 00:00"); return s }, []Grant{a}, p0, "before its period start"},
		{"grant missing from the state", func(s State) State { s.Balances = nil; return s }, []Grant{a}, p0, `no balance for grant "a"`},
		{"unknown grant in the state", func(s State) State {
			s.Balances = map[string]odometer.Decimal{"a": d("1"), "x": d("1"), "w": d("1")}
			return s
		}, []Grant{a}, p0, `balance for grant "w"`},
		{"void added after the snapshot", func(s State) State { return s }, []Grant{with(a, func(g *Grant) { g.VoidedAt = tm(p0) })}, p0, `balance for grant "a", which is not an active grant`},
		{"balance above amount", func(s State) State { s.Balances = map[string]odometer.Decimal{"a": d("11")}; return s }, []Grant{a}, p0, "outside [0, 10]"},
		{"overage while a balance is left", func(s State) State { s.Overage = d("1"); return s }, []Grant{a}, p0, "overage 1 while grant"},
		{"negative usage", func(s State) State { s.Usage = d("-1"); return s }, []Grant{a}, p0, "negative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Run(t.Context(), c.state(s), c.grants, tm(c.to), usageAt())
			if odometer.ErrorCode(err) != odometer.EINVALID || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want EINVALID containing %q", err, c.want)
			}
		})
	}
	t.Run("usage errors and negative usage are reported with their range", func(t *testing.T) {
		failing := func(context.Context, time.Time, time.Time) (odometer.Decimal, error) {
			return odometer.Decimal{}, context.DeadlineExceeded
		}
		_, _, err := Run(t.Context(), s, []Grant{a}, tm("2025-01-01 01:00"), failing)
		if err == nil || !strings.Contains(err.Error(), "usage in [2025-01-01T00:00:00Z, 2025-01-01T01:00:00Z)") {
			t.Fatalf("err = %v", err)
		}
		negative := func(context.Context, time.Time, time.Time) (odometer.Decimal, error) { return d("-1"), nil }
		_, _, err = Run(t.Context(), s, []Grant{a}, tm("2025-01-01 01:00"), negative)
		if odometer.ErrorCode(err) != odometer.EINVALID || !strings.Contains(err.Error(), "is negative") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestRule8Rollover(t *testing.T) {
	t.Parallel()
	reset := "2025-02-01 00:00"
	parent := with(grant("p", "100", p0), func(g *Grant) {
		g.Priority = 3
		g.ExpiresAt = tm("2025-06-01 00:00")
		g.RolloverMax = nil
	})
	roll := func(kind RolloverKind, max string) Grant {
		return with(parent, func(g *Grant) {
			g.Rollover = kind
			if max != "" {
				g.RolloverMax = dp(max)
			}
		})
	}
	uses70 := []use{{"2025-01-10 00:00", "70"}}
	for _, c := range []struct {
		name   string
		parent Grant
		uses   []use
		want   string // the child's start balance; "" for no child
	}{
		{"ORIGINAL_AMOUNT", roll(RolloverOriginal, ""), uses70, "100"},
		{"ORIGINAL_AMOUNT capped", roll(RolloverOriginal, "50"), uses70, "50"},
		{"ORIGINAL_AMOUNT cap above amount", roll(RolloverOriginal, "500"), uses70, "100"},
		{"REMAINING_AMOUNT", roll(RolloverRemaining, ""), uses70, "30"},
		{"REMAINING_AMOUNT capped", roll(RolloverRemaining, "20"), uses70, "20"},
		{"REMAINING_AMOUNT cap above balance", roll(RolloverRemaining, "40"), uses70, "30"},
		{"no rollover: no child", parent, uses70, ""},
		{"zero start, not recurring: no child", roll(RolloverRemaining, ""), []use{{"2025-01-10 00:00", "100"}}, ""},
		{"zero cap, not recurring: no child", roll(RolloverOriginal, "0"), uses70, ""},
		{"zero start, recurring: child", with(roll(RolloverRemaining, ""), func(g *Grant) { g.Recurrence = Recurrence{Month, tm("2025-01-15 00:00")} }), []use{{"2025-01-20 00:00", "100"}}, "0"},
		{"expired before the reset: no child", with(roll(RolloverOriginal, ""), func(g *Grant) { g.ExpiresAt = tm("2025-01-20 00:00") }), uses70, ""},
		{"expires at the reset: no child", with(roll(RolloverOriginal, ""), func(g *Grant) { g.ExpiresAt = tm(reset) }), uses70, ""},
		{"voided before the reset: no child", with(roll(RolloverOriginal, ""), func(g *Grant) { g.VoidedAt = tm("2025-01-20 00:00") }), uses70, ""},
		{"effective at the reset: no child, it is a grant of the new period", with(roll(RolloverOriginal, ""), func(g *Grant) { g.EffectiveAt = tm(reset) }), uses70, ""},
		{"not yet effective: no child, it is a grant of the new period", with(roll(RolloverOriginal, ""), func(g *Grant) { g.EffectiveAt = tm("2025-02-10 00:00") }), uses70, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := runFromStart(t, tm(p0), []Grant{c.parent}, tm(reset), usageAt(c.uses...))
			n := 0
			children, err := Rollover(s, []Grant{c.parent}, func() string { n++; return "child" })
			if err != nil {
				t.Fatal(err)
			}
			if c.want == "" {
				if len(children) != 0 || n != 0 {
					t.Fatalf("children = %+v (newID called %d times), want none", children, n)
				}
				return
			}
			if len(children) != 1 {
				t.Fatalf("children = %+v, want one", children)
			}
			ch := children[0]
			if ch.StartBalance == nil || ch.StartBalance.Cmp(d(c.want)) != 0 {
				t.Errorf("start balance = %v, want %s", ch.StartBalance, c.want)
			}
			want := c.parent
			want.ID, want.ParentID, want.EffectiveAt, want.CreatedAt, want.StartBalance = "child", "p", tm(reset), tm(reset), ch.StartBalance
			if !sameGrant(ch, want) {
				t.Errorf("child = %+v\nwant    %+v", ch, want)
			}
		})
	}

	t.Run("a grant voided after the reset carries its void", func(t *testing.T) {
		g := with(roll(RolloverOriginal, ""), func(g *Grant) { g.VoidedAt = tm("2025-02-10 00:00") })
		s, _ := runFromStart(t, tm(p0), []Grant{g}, tm(reset), usageAt())
		children, err := Rollover(s, []Grant{g}, func() string { return "child" })
		if err != nil || len(children) != 1 || !children[0].VoidedAt.Equal(tm("2025-02-10 00:00")) {
			t.Fatalf("children = %+v, %v", children, err)
		}
	})

	t.Run("overage is cleared by the reset", func(t *testing.T) {
		g := roll(RolloverOriginal, "")
		s, _ := runFromStart(t, tm(p0), []Grant{g}, tm(reset), usageAt(use{"2025-01-31 10:00", "130"}))
		if s.Overage.Cmp(d("30")) != 0 {
			t.Fatalf("old period overage = %s, want 30", s.Overage)
		}
		children, err := Rollover(s, []Grant{g}, func() string { return "child" })
		if err != nil {
			t.Fatal(err)
		}
		next, err := NewPeriod(tm(reset), append([]Grant{g}, children...))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fmtState(next), "at 2025-02-01 00:00 usage 0 overage 0 {child:100}"; got != want {
			t.Fatalf("new period = %s, want %s", got, want)
		}
	})

	t.Run("a recurring child refills to the parent's amount", func(t *testing.T) {
		g := with(roll(RolloverRemaining, ""), func(g *Grant) { g.Recurrence = Recurrence{Day, tm("2025-01-01 00:00")} })
		s, _ := runFromStart(t, tm(p0), []Grant{g}, tm(reset), usageAt(use{"2025-01-31 10:00", "130"}))
		// The refill at the reset instant belongs to the old period and
		// pays its debt first, so 100 - 30 rolls over.
		if got, want := fmtState(s), "at 2025-02-01 00:00 usage 130 overage 0 {p:70}"; got != want {
			t.Fatalf("old period = %s, want %s", got, want)
		}
		children, err := Rollover(s, []Grant{g}, func() string { return "child" })
		if err != nil || len(children) != 1 {
			t.Fatalf("children = %+v, %v", children, err)
		}
		runCase{
			start:    reset,
			grants:   append([]Grant{g}, children...),
			uses:     []use{{"2025-02-01 10:00", "50"}},
			to:       "2025-02-02 00:00",
			balances: "child:100",
			entries: []string{
				"USAGE [2025-02-01 00:00, 2025-02-02 00:00) 50",
				"GRANT_USAGE child [2025-02-01 00:00, 2025-02-02 00:00) 50",
				"GRANT_REFILL child @2025-02-02 00:00 80",
			},
		}.run(t)
	})

	t.Run("children in the parents' burn order", func(t *testing.T) {
		a := with(grant("a", "10", p0), func(g *Grant) { g.Priority = 2; g.Rollover = RolloverOriginal })
		b := with(grant("b", "10", p0), func(g *Grant) { g.Priority = 1; g.Rollover = RolloverOriginal })
		s, _ := runFromStart(t, tm(p0), []Grant{a, b}, tm(reset), usageAt())
		ids := []string{"1", "2"}
		children, err := Rollover(s, []Grant{a, b}, func() string { id := ids[0]; ids = ids[1:]; return id })
		if err != nil || len(children) != 2 || children[0].ParentID != "b" || children[0].ID != "1" || children[1].ParentID != "a" {
			t.Fatalf("children = %+v, %v", children, err)
		}
	})
}

// sameGrant compares grants field by field, amounts by value.
func sameGrant(a, b Grant) bool {
	eqp := func(x, y *odometer.Decimal) bool { return (x == nil) == (y == nil) && (x == nil || x.Cmp(*y) == 0) }
	return a.ID == b.ID && a.ParentID == b.ParentID && a.Amount.Cmp(b.Amount) == 0 && eqp(a.StartBalance, b.StartBalance) &&
		a.Priority == b.Priority && a.EffectiveAt.Equal(b.EffectiveAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.VoidedAt.Equal(b.VoidedAt) && a.Recurrence.Interval == b.Recurrence.Interval &&
		a.Recurrence.Anchor.Equal(b.Recurrence.Anchor) && a.Rollover == b.Rollover && eqp(a.RolloverMax, b.RolloverMax)
}

func TestRule9EntryOrder(t *testing.T) {
	t.Parallel()
	grants := []Grant{
		with(grant("a", "10", p0), func(g *Grant) { g.ExpiresAt = tm("2025-01-01 01:00") }),
		with(grant("b", "5", p0), func(g *Grant) { g.Priority = 2; g.Recurrence = Recurrence{Hour, tm(p0)} }),
		with(grant("c", "20", "2025-01-01 01:00"), func(g *Grant) { g.Priority = 3 }),
	}
	uses := []use{{"2025-01-01 00:10", "30"}, {"2025-01-01 01:30", "3"}}
	want := []string{
		"USAGE [2025-01-01 00:00, 2025-01-01 01:00) 30",
		"GRANT_USAGE a [2025-01-01 00:00, 2025-01-01 01:00) 10",
		"GRANT_USAGE b [2025-01-01 00:00, 2025-01-01 01:00) 5",
		"OVERAGE [2025-01-01 00:00, 2025-01-01 01:00) 15",
		"GRANT_END a @2025-01-01 01:00 0",
		"GRANT_REFILL b @2025-01-01 01:00 5",
		"OVERAGE_REPAID b @2025-01-01 01:00 5",
		"OVERAGE_REPAID c @2025-01-01 01:00 10",
		"USAGE [2025-01-01 01:00, 2025-01-01 02:00) 3",
		"GRANT_USAGE c [2025-01-01 01:00, 2025-01-01 02:00) 3",
		"GRANT_REFILL b @2025-01-01 02:00 5",
	}
	runCase{start: p0, grants: grants, uses: uses, to: "2025-01-01 02:00", balances: "b:5 c:7", entries: want}.run(t)

	t.Run("a run from a snapshot names the segment it continues; MergeEntries joins", func(t *testing.T) {
		s0, _ := NewPeriod(tm(p0), grants)
		s1, e1, err := Run(t.Context(), s0, grants, tm("2025-01-01 01:20"), usageAt(uses...))
		if err != nil {
			t.Fatal(err)
		}
		_, e2, err := Run(t.Context(), s1, grants, tm("2025-01-01 02:00"), usageAt(uses...))
		if err != nil {
			t.Fatal(err)
		}
		diffLines(t, "second run", fmtEntries(e2), []string{
			"USAGE [2025-01-01 01:00, 2025-01-01 02:00) 3",
			"GRANT_USAGE c [2025-01-01 01:00, 2025-01-01 02:00) 3",
			"GRANT_REFILL b @2025-01-01 02:00 5",
		})
		diffLines(t, "first run's end", fmtEntries(e1[len(e1)-1:]), []string{"USAGE [2025-01-01 01:00, 2025-01-01 01:20) 0"})
		diffLines(t, "merged", fmtEntries(MergeEntries(e1, e2)), want)
	})
}

func TestRule10Balance(t *testing.T) {
	t.Parallel()
	grants := []Grant{
		with(grant("expired", "10", p0), func(g *Grant) { g.ExpiresAt = tm("2025-01-01 01:00") }),
		with(grant("voided", "10", p0), func(g *Grant) { g.VoidedAt = tm("2025-01-01 01:00") }),
		grant("future", "10", "2025-01-02 00:00"),
		grant("old", "10", "2024-12-01 00:00"),
		with(grant("a", "10", p0), func(g *Grant) { g.Priority = 2 }),
		with(grant("b", "5.5", p0), func(g *Grant) { g.Priority = 3 }),
	}
	s, _ := runFromStart(t, tm(p0), grants, tm("2025-01-01 02:00"), usageAt(use{"2025-01-01 01:30", "12"}))
	fb := Balance(s)
	if fb.Balance.Cmp(d("3.5")) != 0 || fb.Usage.Cmp(d("12")) != 0 || !fb.Overage.IsZero() {
		t.Errorf("Balance = %+v, want balance 3.5, usage 12, overage 0", fb)
	}
	var got []string
	for _, gb := range GrantBalances(s, grants) {
		got = append(got, gb.GrantID+" "+gb.Balance.String()+map[bool]string{true: " active", false: " inactive"}[gb.Active])
	}
	diffLines(t, "grant balances", got, []string{
		"expired 0 inactive", "old 0 inactive", "voided 0 inactive", "future 0 inactive", "a 0 active", "b 3.5 active",
	})

	s2, _ := runFromStart(t, tm(p0), grants, tm("2025-01-01 02:00"), usageAt(use{"2025-01-01 01:30", "20"}))
	if fb := Balance(s2); !fb.Balance.IsZero() || fb.Overage.Cmp(d("4.5")) != 0 {
		t.Errorf("Balance = %+v, want balance 0, overage 4.5", fb)
	}
}

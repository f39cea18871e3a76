package credit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// world is a random ledger: grants and per-minute usage over a horizon
// starting at the period start.
type world struct {
	start  time.Time
	end    time.Time // the horizon: runs go to at most end
	grants []Grant
	prefix []odometer.Decimal // prefix[i]: usage in [start, start+i min)
	minute []odometer.Decimal // minute[i]: usage in minute i
}

const worldSeeds = 300

func randomWorld(rng *rand.Rand) *world {
	w := &world{start: tm("2025-03-01 00:00")}
	minutes := 60 + rng.IntN(3*24*60)
	w.end = w.start.Add(time.Duration(minutes) * time.Minute)
	w.minute = make([]odometer.Decimal, minutes)
	w.prefix = make([]odometer.Decimal, minutes+1)
	busy := rng.IntN(200) // per mille of minutes with usage
	for i := range minutes {
		if rng.IntN(1000) < busy {
			w.minute[i] = odometer.NewDecimal(rng.Int64N(500)+1, -int32(rng.IntN(3)))
		}
		w.prefix[i+1] = w.prefix[i].Add(w.minute[i])
	}
	// Random minutes in [lo, hi), a third of them whole hours so that
	// starts, ends and refills often fall on the same instant.
	at := func(lo, hi int) time.Time {
		m := lo + rng.IntN(hi-lo)
		if rng.IntN(3) == 0 {
			m -= ((m % 60) + 60) % 60
		}
		return w.start.Add(time.Duration(m) * time.Minute)
	}
	for i := range rng.IntN(9) {
		g := Grant{
			ID:       fmt.Sprintf("g%02d", i),
			Amount:   odometer.NewDecimal(rng.Int64N(3000)+1, -int32(rng.IntN(2))),
			Priority: 1 + rng.IntN(3),
		}
		switch r := rng.IntN(100); {
		case r < 25:
			g.EffectiveAt = w.start
		case r < 35:
			g.EffectiveAt = at(-3000, 0) // an earlier period's: ignored
		default:
			g.EffectiveAt = at(0, minutes)
		}
		// Sub-minute creation times, often equal minutes: ties go to ID.
		g.CreatedAt = g.EffectiveAt.Add(-time.Duration(rng.IntN(3)) * 20 * time.Second)
		if rng.IntN(100) < 40 {
			g.ExpiresAt = g.EffectiveAt.Add(time.Duration(1+rng.IntN(minutes)) * time.Minute)
			if rng.IntN(2) == 0 {
				g.ExpiresAt = g.ExpiresAt.Truncate(time.Hour).Add(time.Hour)
			}
		}
		if rng.IntN(100) < 15 {
			g.VoidedAt = g.EffectiveAt.Add(time.Duration(rng.IntN(minutes)-60) * time.Minute)
		}
		if rng.IntN(100) < 30 {
			iv := []Interval{Hour, Hour, Day, Week}[rng.IntN(4)]
			g.Recurrence = Recurrence{iv, at(-4*24*60, 4*24*60)}
		}
		if rng.IntN(100) < 15 {
			// A rolled-over child's start: anything in [0, Amount].
			b := g.Amount.Mul(odometer.NewDecimal(int64(rng.IntN(11)), -1))
			g.StartBalance = &b
		}
		w.grants = append(w.grants, g)
	}
	return w
}

// usage sums the per-minute usage over [from, to), exactly; it fails the
// test on a range the engine must never ask for.
func (w *world) usage(t *testing.T, calls *[]call) UsageFunc {
	return func(_ context.Context, from, to time.Time) (odometer.Decimal, error) {
		*calls = append(*calls, call{from, to})
		if !from.Before(to) || from.Before(w.start) || to.After(w.end) {
			t.Fatalf("usage asked for [%s, %s) outside [%s, %s]", from, to, w.start, w.end)
		}
		return w.prefix[w.index(to)].Sub(w.prefix[w.index(from)]), nil
	}
}

func (w *world) index(t time.Time) int { return int(t.Sub(w.start) / time.Minute) }

// randomTime returns a whole minute in [w.start, w.end].
func (w *world) randomTime(rng *rand.Rand) time.Time {
	return w.start.Add(time.Duration(rng.IntN(w.index(w.end)+1)) * time.Minute)
}

func (w *world) run(t *testing.T, s State, grants []Grant, to time.Time) (State, []Entry, []call) {
	t.Helper()
	var calls []call
	end, entries, err := Run(t.Context(), s, grants, to, w.usage(t, &calls))
	if err != nil {
		t.Fatalf("Run to %s: %v", to, err)
	}
	return end, entries, calls
}

// forWorlds runs check on worldSeeds random worlds, each from the state at
// its period start.
func forWorlds(t *testing.T, check func(t *testing.T, rng *rand.Rand, w *world, s0 State)) {
	t.Parallel()
	for seed := range uint64(worldSeeds) {
		rng := rand.New(rand.NewPCG(seed, 0x0d0))
		w := randomWorld(rng)
		s0, err := NewPeriod(w.start, w.grants)
		if err != nil {
			t.Fatalf("seed %d: NewPeriod: %v", seed, err)
		}
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) { check(t, rng, w, s0) })
		if t.Failed() {
			return
		}
	}
}

// (a) A run split at any minute through its snapshot gives the same state
// and, merged, the same history; also split twice.
func TestPropertySplit(t *testing.T) {
	forWorlds(t, func(t *testing.T, rng *rand.Rand, w *world, s0 State) {
		to := w.randomTime(rng)
		want, wantEntries, _ := w.run(t, s0, w.grants, to)
		for range 5 {
			t1 := w.start.Add(time.Duration(rng.IntN(w.index(to)+1)) * time.Minute)
			t2 := t1.Add(time.Duration(rng.IntN(w.index(to)-w.index(t1)+1)) * time.Minute)
			s1, e1, _ := w.run(t, s0, w.grants, t1)
			s2, e2, _ := w.run(t, s1, w.grants, t2)
			s3, e3, _ := w.run(t, s2, w.grants, to)
			if !equalStates(s3, want) {
				t.Fatalf("split at %s and %s: state %s, want %s", t1, t2, fmtState(s3), fmtState(want))
			}
			if got := MergeEntries(MergeEntries(e1, e2), e3); !equalEntries(got, wantEntries) {
				diffLines(t, fmt.Sprintf("split at %s and %s", t1.Format(tmLayout), t2.Format(tmLayout)), fmtEntries(got), fmtEntries(wantEntries))
				t.FailNow()
			}
		}
	})
}

// (b) The order of the grants slice changes nothing.
func TestPropertyGrantOrder(t *testing.T) {
	forWorlds(t, func(t *testing.T, rng *rand.Rand, w *world, s0 State) {
		to := w.randomTime(rng)
		want, wantEntries, _ := w.run(t, s0, w.grants, to)
		for range 3 {
			shuffled := slices.Clone(w.grants)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if s, err := NewPeriod(w.start, shuffled); err != nil || !equalStates(s, s0) {
				t.Fatalf("NewPeriod with shuffled grants: %s, %v; want %s", fmtState(s), err, fmtState(s0))
			}
			got, entries, _ := w.run(t, s0, shuffled, to)
			if !equalStates(got, want) || !equalEntries(entries, wantEntries) {
				t.Fatalf("shuffled grants: state %s, want %s", fmtState(got), fmtState(want))
			}
		}
	})
}

// sums adds up the entries' amounts by kind and grant.
func sums(entries []Entry) map[EntryKind]map[string]odometer.Decimal {
	m := map[EntryKind]map[string]odometer.Decimal{}
	for _, e := range entries {
		if m[e.Kind] == nil {
			m[e.Kind] = map[string]odometer.Decimal{}
		}
		m[e.Kind][e.GrantID] = m[e.Kind][e.GrantID].Add(e.Amount)
	}
	return m
}

// (c) Per grant: start balance + refills = balance + burned + repaid
// overage + forfeited at its end; and 0 ≤ balance ≤ Amount.
// (d) Per period: usage = burned + outstanding overage + repaid overage;
// outstanding overage = overage − repaid; the USAGE entries add up to the
// usage, which is the usage of [start, At).
func TestPropertyConservation(t *testing.T) {
	forWorlds(t, func(t *testing.T, rng *rand.Rand, w *world, s0 State) {
		to := w.randomTime(rng)
		s, entries, _ := w.run(t, s0, w.grants, to)
		m := sums(entries)
		for _, g := range w.grants {
			end := g.end()
			if g.EffectiveAt.Before(w.start) || g.EffectiveAt.After(to) || (!end.IsZero() && !end.After(g.EffectiveAt)) {
				for k, byGrant := range m {
					if _, ok := byGrant[g.ID]; ok {
						t.Fatalf("grant %s never active in the run has %s entries", g.ID, k)
					}
				}
				continue
			}
			in := g.startBalance().Add(m[KindRefill][g.ID])
			out := s.Balances[g.ID].Add(m[KindGrantUsage][g.ID]).Add(m[KindOverageRepaid][g.ID]).Add(m[KindGrantEnd][g.ID])
			if in.Cmp(out) != 0 {
				t.Fatalf("grant %s: start %s + refills %s = %s, but balance %s + burned %s + repaid %s + forfeited %s = %s",
					g.ID, g.startBalance(), m[KindRefill][g.ID], in, s.Balances[g.ID], m[KindGrantUsage][g.ID], m[KindOverageRepaid][g.ID], m[KindGrantEnd][g.ID], out)
			}
			if b, ok := s.Balances[g.ID]; ok && (b.Sign() < 0 || b.Cmp(g.Amount) > 0) {
				t.Fatalf("grant %s: balance %s outside [0, %s]", g.ID, b, g.Amount)
			}
		}
		var burned, repaid, overage odometer.Decimal
		for _, v := range m[KindGrantUsage] {
			burned = burned.Add(v)
		}
		for _, v := range m[KindOverageRepaid] {
			repaid = repaid.Add(v)
		}
		overage = m[KindOverage][""]
		if want := w.prefix[w.index(to)]; s.Usage.Cmp(want) != 0 || m[KindUsage][""].Cmp(want) != 0 {
			t.Fatalf("usage %s, USAGE entries %s; want %s", s.Usage, m[KindUsage][""], want)
		}
		if got := burned.Add(s.Overage).Add(repaid); got.Cmp(s.Usage) != 0 {
			t.Fatalf("burned %s + overage %s + repaid %s = %s, want usage %s", burned, s.Overage, repaid, got, s.Usage)
		}
		if s.Overage.Cmp(overage.Sub(repaid)) != 0 {
			t.Fatalf("outstanding overage %s, want overage %s − repaid %s", s.Overage, overage, repaid)
		}
		if s.Overage.Sign() > 0 {
			for id, b := range s.Balances {
				if !b.IsZero() {
					t.Fatalf("overage %s while grant %s has %s left", s.Overage, id, b)
				}
			}
		}
	})
}

// (e) Usage is asked on minute boundaries, from < to, in contiguous ranges
// that cover the run exactly once, once per segment: the number of distinct
// start, end and refill times strictly inside the run, plus one.
func TestPropertyUsageCalls(t *testing.T) {
	forWorlds(t, func(t *testing.T, rng *rand.Rand, w *world, s0 State) {
		t1 := w.randomTime(rng)
		t2 := t1.Add(time.Duration(rng.IntN(w.index(w.end)-w.index(t1)+1)) * time.Minute)
		s1, _, _ := w.run(t, s0, w.grants, t1)
		_, _, calls := w.run(t, s1, w.grants, t2)
		next := t1
		for _, c := range calls {
			if !c.from.Equal(next) || !c.from.Before(c.to) || !c.to.Truncate(time.Minute).Equal(c.to) {
				t.Fatalf("call %s after a call ending %s", c, next.Format(tmLayout))
			}
			next = c.to
		}
		if !next.Equal(t2) {
			t.Fatalf("calls end at %s, want %s", next, t2)
		}
		boundaries := map[time.Time]bool{}
		inside := func(u time.Time) {
			if u.After(t1) && u.Before(t2) {
				boundaries[u] = true
			}
		}
		for _, g := range w.grants {
			end := g.end()
			if g.EffectiveAt.Before(w.start) || (!end.IsZero() && !end.After(g.EffectiveAt)) {
				continue
			}
			inside(g.EffectiveAt)
			if !end.IsZero() {
				inside(end)
			}
			if r := g.Recurrence; !r.IsZero() {
				// Brute force, independent of the engine's calendar code.
				step := map[Interval]time.Duration{Hour: time.Hour, Day: 24 * time.Hour, Week: 7 * 24 * time.Hour}[r.Interval]
				for u := t1; u.Before(t2); u = u.Add(time.Minute) {
					if u.Sub(r.Anchor)%step == 0 && u.After(g.EffectiveAt) && (end.IsZero() || u.Before(end)) {
						inside(u)
					}
				}
			}
		}
		want := len(boundaries) + 1
		if t1.Equal(t2) {
			want = 0
		}
		if len(calls) != want {
			t.Fatalf("%d usage calls for [%s, %s), want %d", len(calls), t1.Format(tmLayout), t2.Format(tmLayout), want)
		}
	})
}

// (f) The engine agrees with a minute-by-minute reference: at every minute
// apply that minute's ends, refills and starts, pay back overage, then burn
// that minute's usage. Segments are only an optimisation of this.
func TestPropertyMatchesMinuteByMinute(t *testing.T) {
	forWorlds(t, func(t *testing.T, rng *rand.Rand, w *world, s0 State) {
		to := w.randomTime(rng)
		got, _, _ := w.run(t, s0, w.grants, to)
		want := w.reference(to)
		if !equalStates(got, want) {
			t.Fatalf("engine %s\nreference %s", fmtState(got), fmtState(want))
		}
	})
}

func (w *world) reference(to time.Time) State {
	var grants []Grant
	for _, g := range w.grants {
		if !g.EffectiveAt.Before(w.start) {
			grants = append(grants, g)
		}
	}
	slices.SortFunc(grants, func(a, b Grant) int { return compareBurnOrder(&a, &b) })
	bal := map[string]odometer.Decimal{}
	active := func(g Grant, m time.Time) bool {
		end := g.end()
		return !m.Before(g.EffectiveAt) && (end.IsZero() || m.Before(end))
	}
	var overage, usage odometer.Decimal
	for m := w.start; !m.After(to); m = m.Add(time.Minute) {
		var fresh []Grant
		for _, g := range grants {
			switch {
			case !active(g, m):
				delete(bal, g.ID)
			case g.EffectiveAt.Equal(m):
				bal[g.ID] = g.startBalance()
				fresh = append(fresh, g)
			case !g.Recurrence.IsZero() && m.After(g.EffectiveAt) && refillsAt(g.Recurrence, m):
				bal[g.ID] = g.Amount
				fresh = append(fresh, g)
			}
		}
		if m.After(w.start) { // the state at the start has paid nothing back
			for _, g := range fresh {
				pay := minDecimal(bal[g.ID], overage)
				bal[g.ID], overage = bal[g.ID].Sub(pay), overage.Sub(pay)
			}
		}
		if m.Equal(to) {
			break
		}
		u := w.minute[w.index(m)]
		usage = usage.Add(u)
		for _, g := range grants {
			if b, ok := bal[g.ID]; ok {
				take := minDecimal(b, u)
				bal[g.ID], u = b.Sub(take), u.Sub(take)
			}
		}
		overage = overage.Add(u)
	}
	return State{At: to, PeriodStart: w.start, Balances: bal, Overage: overage, Usage: usage}
}

func refillsAt(r Recurrence, m time.Time) bool {
	step := map[Interval]time.Duration{Hour: time.Hour, Day: 24 * time.Hour, Week: 7 * 24 * time.Hour}[r.Interval]
	return m.Sub(r.Anchor)%step == 0
}

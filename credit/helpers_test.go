package credit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// Test shorthands: d("1.5") is a decimal, tm("2025-01-01 10:00") a UTC time.

func d(s string) odometer.Decimal { return odometer.MustDecimal(s) }

func dp(s string) *odometer.Decimal { x := d(s); return &x }

const tmLayout = "2006-01-02 15:04"

func tm(s string) time.Time {
	t, err := time.Parse(tmLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}

// use is usage recorded at one minute.
type use struct {
	at     string
	amount string
}

// usageAt returns a UsageFunc that sums the uses in [from, to): exact for
// any range, like a meter query.
func usageAt(uses ...use) UsageFunc {
	return func(_ context.Context, from, to time.Time) (odometer.Decimal, error) {
		var sum odometer.Decimal
		for _, u := range uses {
			if t := tm(u.at); !t.Before(from) && t.Before(to) {
				sum = sum.Add(d(u.amount))
			}
		}
		return sum, nil
	}
}

// call is one UsageFunc call.
type call struct{ from, to time.Time }

// recording wraps f and records its calls.
func recording(f UsageFunc, calls *[]call) UsageFunc {
	return func(ctx context.Context, from, to time.Time) (odometer.Decimal, error) {
		*calls = append(*calls, call{from, to})
		return f(ctx, from, to)
	}
}

func (c call) String() string {
	return "[" + c.from.Format(tmLayout) + ", " + c.to.Format(tmLayout) + ")"
}

// fmtEntry renders an entry on one line for table expectations, e.g.
// "GRANT_USAGE a [2025-01-01 00:00, 2025-01-02 00:00) 30"; instant entries
// show one time: "GRANT_REFILL a @2025-02-28 00:00 70".
func fmtEntry(e Entry) string {
	who := ""
	if e.GrantID != "" {
		who = " " + e.GrantID
	}
	if e.instant() {
		return fmt.Sprintf("%s%s @%s %s", e.Kind, who, e.From.Format(tmLayout), e.Amount)
	}
	return fmt.Sprintf("%s%s [%s, %s) %s", e.Kind, who, e.From.Format(tmLayout), e.To.Format(tmLayout), e.Amount)
}

func fmtEntries(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = fmtEntry(e)
	}
	return out
}

// fmtState renders a state with its balances sorted by grant ID, e.g.
// "at 2025-01-02 00:00 usage 30 overage 0 {a:70 b:0}".
func fmtState(s State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "at %s usage %s overage %s {", s.At.Format(tmLayout), s.Usage, s.Overage)
	for i, id := range slices.Sorted(maps.Keys(s.Balances)) {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%s", id, s.Balances[id])
	}
	b.WriteString("}")
	return b.String()
}

// fmtBalances renders balances as "a:70 b:0", sorted by grant ID.
func fmtBalances(m map[string]odometer.Decimal) string {
	parts := make([]string, 0, len(m))
	for id, v := range m {
		parts = append(parts, id+":"+v.String())
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// equalStates compares states exactly: same times, same grants, equal
// amounts.
func equalStates(a, b State) bool {
	if !a.At.Equal(b.At) || !a.PeriodStart.Equal(b.PeriodStart) || a.Overage.Cmp(b.Overage) != 0 ||
		a.Usage.Cmp(b.Usage) != 0 || len(a.Balances) != len(b.Balances) {
		return false
	}
	for id, v := range a.Balances {
		w, ok := b.Balances[id]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

func equalEntries(a, b []Entry) bool {
	return slices.EqualFunc(a, b, func(x, y Entry) bool {
		return x.Kind == y.Kind && x.GrantID == y.GrantID && x.From.Equal(y.From) && x.To.Equal(y.To) && x.Amount.Cmp(y.Amount) == 0
	})
}

// diffLines reports the first difference between two line lists.
func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("%s:\ngot:\n\t%s\nwant:\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
}

// runFromStart runs a period from its start to `to`.
func runFromStart(t *testing.T, start time.Time, grants []Grant, to time.Time, usage UsageFunc) (State, []Entry) {
	t.Helper()
	s, err := NewPeriod(start, grants)
	if err != nil {
		t.Fatalf("NewPeriod: %v", err)
	}
	end, entries, err := Run(t.Context(), s, grants, to, usage)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return end, entries
}

// grant returns a valid grant: ID id, amount, priority 1, effective and
// created at eff. Tests change the fields they care about.
func grant(id, amount, eff string) Grant {
	return Grant{ID: id, Amount: d(amount), Priority: 1, EffectiveAt: tm(eff), CreatedAt: tm(eff)}
}

// with applies changes to a copy of g.
func with(g Grant, change func(*Grant)) Grant {
	change(&g)
	return g
}

// runCase is a table case: run a period from start to `to` and compare the
// resulting balances, overage, usage and, when given, history and calls.
type runCase struct {
	name     string
	start    string // the period start
	grants   []Grant
	uses     []use
	to       string
	balances string   // fmtBalances of the final state
	overage  string   // "" means 0
	entries  []string // fmtEntries; nil: not checked
	calls    []string // UsageFunc calls; nil: not checked
}

func (c runCase) run(t *testing.T) {
	t.Helper()
	var calls []call
	s, entries := runFromStart(t, tm(c.start), c.grants, tm(c.to), recording(usageAt(c.uses...), &calls))
	if got := fmtBalances(s.Balances); got != c.balances {
		t.Errorf("balances = %q, want %q", got, c.balances)
	}
	overage := c.overage
	if overage == "" {
		overage = "0"
	}
	if s.Overage.Cmp(d(overage)) != 0 {
		t.Errorf("overage = %s, want %s", s.Overage, overage)
	}
	var total odometer.Decimal
	for _, u := range c.uses {
		if !tm(u.at).Before(tm(c.start)) && tm(u.at).Before(tm(c.to)) {
			total = total.Add(d(u.amount))
		}
	}
	if s.Usage.Cmp(total) != 0 {
		t.Errorf("usage = %s, want %s", s.Usage, total)
	}
	if c.entries != nil {
		diffLines(t, "entries", fmtEntries(entries), c.entries)
	}
	if c.calls != nil {
		got := make([]string, len(calls))
		for i, cl := range calls {
			got[i] = cl.String()
		}
		diffLines(t, "usage calls", got, c.calls)
	}
}

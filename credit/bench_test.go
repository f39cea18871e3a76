package credit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// monthLedger is the benchmark's ledger: 20 grants over January 2025 with
// three priorities, a third of them expiring (some within the month), three
// recurring daily and starting every 31 hours; the usage function answers
// a constant, so a run measures the engine alone.
func monthLedger() (s0 State, grants []Grant, to time.Time, usage UsageFunc) {
	start := tm("2025-01-01 00:00")
	for i := range 20 {
		g := Grant{
			ID:          fmt.Sprintf("grant-%02d", i),
			Amount:      odometer.NewDecimal(int64(1000+100*i), -1),
			Priority:    1 + i%3,
			EffectiveAt: start.Add(time.Duration(i) * 31 * time.Hour),
			CreatedAt:   start,
		}
		if i%3 == 0 {
			g.ExpiresAt = g.EffectiveAt.Add(time.Duration(10+i*2) * 24 * time.Hour)
		}
		if i%7 == 1 {
			g.Recurrence = Recurrence{Day, start}
		}
		grants = append(grants, g)
	}
	s0, err := NewPeriod(start, grants)
	if err != nil {
		panic(err)
	}
	per := odometer.MustDecimal("12.5")
	usage = func(context.Context, time.Time, time.Time) (odometer.Decimal, error) { return per, nil }
	return s0, grants, tm("2025-02-01 00:00"), usage
}

// TestMonthLedgerShape pins the size of the benchmark's work, which
// docs/credits.md quotes.
func TestMonthLedgerShape(t *testing.T) {
	s0, grants, to, usage := monthLedger()
	_, entries, err := Run(t.Context(), s0, grants, to, usage)
	if err != nil {
		t.Fatal(err)
	}
	segments := 0
	for _, e := range entries {
		if e.Kind == KindUsage {
			segments++
		}
	}
	if segments != 51 || len(entries) != 171 {
		t.Fatalf("%d segments, %d entries; docs/credits.md says 51 and 171", segments, len(entries))
	}
}

// BenchmarkRunMonth runs the month of monthLedger. The goal for a whole
// balance request is 5 ms and for an access check 1 ms; the engine should
// stay well under 100 µs of that.
func BenchmarkRunMonth(b *testing.B) {
	s0, grants, to, usage := monthLedger()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Run(ctx, s0, grants, to, usage); err != nil {
			b.Fatal(err)
		}
	}
}

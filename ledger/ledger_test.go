package ledger

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/sqlite"
)

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestScheduleOccurrences(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		schedule odometer.ResetSchedule
		after    string
		want     []string // the occurrences following `after`, in UTC
	}{{
		name:     "month-end anchor clamps, computed from the anchor",
		schedule: odometer.ResetSchedule{Interval: "MONTH", Anchor: utc("2025-01-31 00:00")},
		after:    "2025-01-31 00:00",
		want:     []string{"2025-02-28 00:00", "2025-03-31 00:00", "2025-04-30 00:00", "2025-05-31 00:00"},
	}, {
		name:     "leap day yearly",
		schedule: odometer.ResetSchedule{Interval: "YEAR", Anchor: utc("2024-02-29 12:00")},
		after:    "2024-03-01 00:00",
		want:     []string{"2025-02-28 12:00", "2026-02-28 12:00", "2027-02-28 12:00", "2028-02-29 12:00"},
	}, {
		name:     "anchor after the time: negative occurrences",
		schedule: odometer.ResetSchedule{Interval: "MONTH", Anchor: utc("2030-06-15 08:30")},
		after:    "2025-01-20 00:00",
		want:     []string{"2025-02-15 08:30", "2025-03-15 08:30"},
	}, {
		name:     "local midnight across the spring DST change",
		schedule: odometer.ResetSchedule{Interval: "MONTH", Anchor: utc("2024-10-31 23:00"), TimeZone: "Europe/Berlin"}, // Nov 1 00:00 CET
		after:    "2025-01-15 10:00",
		want:     []string{"2025-01-31 23:00", "2025-02-28 23:00", "2025-03-31 22:00"},
	}, {
		name:     "daily in local time: 23 and 25 hour days",
		schedule: odometer.ResetSchedule{Interval: "DAY", Anchor: utc("2025-03-01 23:00"), TimeZone: "Europe/Berlin"},
		after:    "2025-03-29 23:00",
		want:     []string{"2025-03-30 22:00", "2025-03-31 22:00"},
	}, {
		name:     "weekly, half-hour zone",
		schedule: odometer.ResetSchedule{Interval: "WEEK", Anchor: utc("2025-01-05 18:30"), TimeZone: "Asia/Kolkata"}, // Monday 00:00 IST
		after:    "2025-01-06 00:00",
		want:     []string{"2025-01-12 18:30", "2025-01-19 18:30"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := newSchedule(&tc.schedule)
			if err != nil {
				t.Fatal(err)
			}
			at := utc(tc.after)
			for _, w := range tc.want {
				got := s.firstAfter(at)
				if !got.Equal(utc(w)) {
					t.Fatalf("first occurrence after %s = %s, want %s", at.Format(time.RFC3339), got.Format(time.RFC3339), w)
				}
				at = got
			}
		})
	}
	if _, err := newSchedule(&odometer.ResetSchedule{Interval: "HOUR", Anchor: utc("2025-01-01 00:00")}); err == nil {
		t.Error("HOUR schedule accepted")
	}
}

// raceStore lets another writer change a ledger just before the service's
// first CreateReset, as a concurrent request on another node would.
type raceStore struct {
	odometer.Store
	race   func(ctx context.Context) error
	resets atomic.Int32
}

func (s *raceStore) CreateReset(ctx context.Context, r *odometer.Reset, rollover []*odometer.Grant, version int64) error {
	if s.resets.Add(1) == 1 {
		if err := s.race(ctx); err != nil {
			return err
		}
	}
	return s.Store.CreateReset(ctx, r, rollover, version)
}

func newTestService(t *testing.T, now time.Time) (*Service, *raceStore) {
	t.Helper()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	rs := &raceStore{Store: store, race: func(context.Context) error { return nil }}
	ctx := t.Context()
	if err := store.CreateMeter(ctx, &odometer.Meter{ID: odometer.NewID(now), Namespace: "default", Slug: "tokens",
		Aggregation: odometer.Sum, EventType: "prompt", ValueProperty: "$.tokens", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return New(rs, func() time.Time { return now }, nil), rs
}

// A reset whose ledger changes between its computation and its store is
// computed again, and rolls over the grant the other writer added.
func TestResetRetriesAfterAConcurrentChange(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	svc, rs := newTestService(t, utc("2025-03-01 00:00"))
	if _, err := svc.CreateFeature(ctx, "default", FeatureInput{Key: "ai", Meter: "tokens"}); err != nil {
		t.Fatal(err)
	}
	l, err := svc.CreateLedger(ctx, "default", LedgerInput{Subject: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	grant := func(ctx context.Context, amount int64) error {
		_, err := svc.CreateGrant(ctx, "default", l.ID, GrantInput{Feature: "ai", Amount: odometer.DecimalFromInt(amount),
			EffectiveAt: utc("2025-01-01 00:00"), Rollover: &Rollover{Type: "ORIGINAL_AMOUNT"}})
		return err
	}
	if err := grant(ctx, 10); err != nil {
		t.Fatal(err)
	}
	rs.race = func(ctx context.Context) error { return grant(ctx, 20) }
	res, err := svc.Reset(ctx, "default", l.ID, utc("2025-02-01 00:00"))
	if err != nil {
		t.Fatal(err)
	}
	var starts []string
	for _, g := range res.Grants {
		starts = append(starts, g.StartBalance.String())
	}
	slices.Sort(starts) // created in the same instant: burn order is by random id
	if got := strings.Join(starts, ","); got != "10,20" || rs.resets.Load() != 2 {
		t.Fatalf("rolled over %q in %d attempts; want 10,20 in 2", got, rs.resets.Load())
	}

	// A conflict that is not a change of the ledger is not retried.
	_, err = svc.Reset(ctx, "default", l.ID, utc("2025-02-01 00:00"))
	if odometer.ErrorCode(err) != odometer.ECONFLICT || !strings.Contains(err.Error(), "last reset") {
		t.Fatalf("reset at the last reset: %v", err)
	}
}

// Automatic resets lost to another node are not made twice: the loser
// reads the ledger again and finds the reset done.
func TestAutomaticResetLostToAnotherNode(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	created := utc("2025-01-15 10:00")
	early, rs := newTestService(t, created)
	if _, err := early.CreateFeature(ctx, "default", FeatureInput{Key: "ai", Meter: "tokens"}); err != nil {
		t.Fatal(err)
	}
	l, err := early.CreateLedger(ctx, "default", LedgerInput{Subject: "acme",
		ResetSchedule: &odometer.ResetSchedule{Interval: "MONTH", Anchor: utc("2025-01-01 00:00")}})
	if err != nil {
		t.Fatal(err)
	}
	now := utc("2025-03-10 00:00")
	svc := New(rs, func() time.Time { return now }, nil)
	other := New(rs.Store, func() time.Time { return now }, nil)
	// The other node materializes the resets just before this one stores
	// its first.
	rs.race = func(ctx context.Context) error {
		_, err := other.Balance(ctx, "default", l.ID, time.Time{})
		return err
	}
	b, err := svc.Balance(ctx, "default", l.ID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	resets, err := rs.ListResets(ctx, "default", l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(resets) != 2 || !resets[0].EffectiveAt.Equal(utc("2025-02-01 00:00")) || !resets[1].EffectiveAt.Equal(utc("2025-03-01 00:00")) ||
		!resets[0].Automatic || !b.PeriodStart.Equal(utc("2025-03-01 00:00")) {
		t.Fatalf("resets %+v, period start %v", resets, b.PeriodStart)
	}
}

package ledger

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/eventlog"
	"github.com/odometerhq/odometer/sqlite"
)

// embedded is the default embedded store: events in the Pebble log, the
// rest in SQLite, as odometer serve composes them.
type embedded struct {
	*eventlog.Log
	*sqlite.Store
}

func (s *embedded) AppendEvents(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error) {
	return s.Log.AppendEvents(ctx, events)
}

func (s *embedded) ListEvents(ctx context.Context, f odometer.EventFilter) ([]odometer.Event, error) {
	return s.Log.ListEvents(ctx, f)
}

func (s *embedded) ScanEvents(ctx context.Context, sc odometer.EventScan, fn func(*odometer.ScannedEvent) error) error {
	return s.Log.ScanEvents(ctx, sc, fn)
}

func (s *embedded) Ping(ctx context.Context) error {
	return errors.Join(s.Log.Ping(ctx), s.Store.Ping(ctx))
}

func (s *embedded) Close() error { return errors.Join(s.Log.Close(), s.Store.Close()) }

// benchLedger builds the credits benchmark of the issue: one ledger with 20
// grants (mixed priorities, some expiring, some refilled daily) and a month
// of minute-level usage (43,200 events), on the default embedded store.
func benchLedger(b *testing.B) (svc *Service, ledgerID string) {
	b.Helper()
	dir := b.TempDir()
	meters, err := sqlite.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	log, err := eventlog.Open(filepath.Join(dir, eventlog.DirName))
	if err != nil {
		b.Fatal(err)
	}
	store := &embedded{Log: log, Store: meters}
	b.Cleanup(func() { store.Close() })

	ctx := context.Background()
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	now := start.AddDate(0, 1, 0)
	svc = New(store, func() time.Time { return now })
	m := &odometer.Meter{ID: odometer.NewID(start), Namespace: "default", Slug: "tokens", Name: "tokens",
		Aggregation: odometer.Sum, EventType: "prompt", ValueProperty: "$.tokens", CreatedAt: start, UpdatedAt: start}
	if err := store.CreateMeter(ctx, m); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateFeature(ctx, "default", FeatureInput{Key: "ai", Meter: "tokens"}); err != nil {
		b.Fatal(err)
	}
	l, err := svc.CreateLedger(ctx, "default", LedgerInput{Subject: "acme"})
	if err != nil {
		b.Fatal(err)
	}
	for i := range 20 {
		in := GrantInput{Feature: "ai", Amount: odometer.MustDecimal(fmt.Sprint(5000 + 1000*i)),
			Priority: ptr(1 + i%4), EffectiveAt: start.Add(time.Duration(i) * 36 * time.Hour)}
		if i%3 == 0 {
			in.Expiration = &Expiration{Count: 10, Duration: "DAY"}
		}
		if i%5 == 0 {
			in.Recurrence = &Recurrence{Interval: "DAY"}
		}
		if _, err := svc.CreateGrant(ctx, "default", l.ID, in); err != nil {
			b.Fatal(err)
		}
	}
	var batch []odometer.Event
	for t := start; t.Before(now); t = t.Add(time.Minute) {
		batch = append(batch, odometer.Event{Namespace: "default", ID: fmt.Sprint(t.Unix()), Source: "bench",
			SpecVersion: "1.0", Type: "prompt", Subject: "acme", Time: t, IngestedAt: t,
			Data: []byte(fmt.Sprintf(`{"tokens":%d}`, 1+t.Unix()%17))})
		if len(batch) == 1000 {
			if _, err := store.AppendEvents(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := store.AppendEvents(ctx, batch); err != nil {
		b.Fatal(err)
	}
	return svc, l.ID
}

func ptr[T any](v T) *T { return &v }

// BenchmarkBalance measures GET …/balance's work for the benchmark ledger:
// the goal is a median of at most 5 ms.
func BenchmarkBalance(b *testing.B) {
	svc, id := benchLedger(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := svc.Balance(ctx, "default", id, time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccess measures GET …/access's work for the benchmark ledger:
// the goal is a median of at most 1 ms.
func BenchmarkAccess(b *testing.B) {
	svc, id := benchLedger(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := svc.Access(ctx, "default", id, "ai", false); err != nil {
			b.Fatal(err)
		}
	}
}

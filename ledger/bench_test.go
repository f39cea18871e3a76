package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/eventlog"
	"github.com/odometerhq/odometer/sqlite"
	"github.com/odometerhq/odometer/usage"
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

func (s *embedded) LateWatermark(ctx context.Context, namespace, eventType, subject string) (time.Time, error) {
	return s.Log.LateWatermark(ctx, namespace, eventType, subject)
}

func (s *embedded) ListSubjects(ctx context.Context, f odometer.SubjectFilter) ([]string, error) {
	return s.Log.ListSubjects(ctx, f)
}

func (s *embedded) LookupEvents(ctx context.Context, namespace, id, source string) ([]odometer.Event, error) {
	return s.Log.LookupEvents(ctx, namespace, id, source)
}

func (s *embedded) Ping(ctx context.Context) error {
	return errors.Join(s.Log.Ping(ctx), s.Store.Ping(ctx))
}

func (s *embedded) Close() error { return errors.Join(s.Log.Close(), s.Store.Close()) }

// benchLedger builds the credits benchmark of the issue: one ledger with 20
// grants (mixed priorities, some expiring, some refilled daily) and a month
// of minute-level usage (43,200 events), on the default embedded store.
// Grants take effect on whole hours, plus offset. Usage is read through
// rollups (nil: from every event each time).
func benchLedger(b *testing.B, rollups *usage.Rollups, offset time.Duration) (svc *Service, ledgerID string) {
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
	// The month of usage is appended as a backfill, which the rollup cache
	// trusts only a few minutes later (docs/meters.md), so the service's
	// clock runs ten minutes after the real one: the checks come after the
	// backfill, as they would in production.
	now := time.Now().UTC().Add(10 * time.Minute).Truncate(time.Minute)
	start := now.AddDate(0, -1, 0).Truncate(time.Hour)
	svc = New(store, func() time.Time { return now }, rollups)
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
			Priority: ptr(1 + i%4), EffectiveAt: start.Add(time.Duration(i)*36*time.Hour + offset)}
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

// benchCases are the ways BenchmarkBalance and BenchmarkAccess read usage:
// from every event; from a warm rollup cache with grants on whole hours;
// and with grants 17 minutes past the hour, so that each segment of the
// burn-down also reads the events of its partial first and last hours.
var benchCases = []struct {
	name    string
	rollups bool
	offset  time.Duration
}{
	{"events", false, 0},
	{"rollups", true, 0},
	{"rollups-offset", true, 17 * time.Minute},
}

// benchLedgerCases runs fn once per benchCase on its own ledger, after one
// call that warms the cache.
func benchLedgerCases(b *testing.B, fn func(ctx context.Context, svc *Service, ledgerID string) error) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			var r *usage.Rollups
			if c.rollups {
				r = usage.NewRollups(0)
			}
			svc, id := benchLedger(b, r, c.offset)
			ctx := context.Background()
			if err := fn(ctx, svc, id); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if err := fn(ctx, svc, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBalance measures GET …/balance's work for the benchmark ledger:
// the goal is a median of at most 5 ms.
func BenchmarkBalance(b *testing.B) {
	benchLedgerCases(b, func(ctx context.Context, svc *Service, id string) error {
		_, err := svc.Balance(ctx, "default", id, time.Time{})
		return err
	})
}

// BenchmarkAccess measures GET …/access's work for the benchmark ledger:
// the goal is a median of at most 1 ms.
func BenchmarkAccess(b *testing.B) {
	benchLedgerCases(b, func(ctx context.Context, svc *Service, id string) error {
		_, err := svc.Access(ctx, "default", id, "ai", false)
		return err
	})
}

// BenchmarkAccessManyLedgers measures access checks per second across
// 10,000 ledgers × 5 features (one grant each, a day of usage per
// subject), from concurrent callers as an API under load would serve them.
// Building the store takes about a minute: every grant is its own durable
// transaction.
func BenchmarkAccessManyLedgers(b *testing.B) {
	fx, err := manyLedgers()
	if err != nil {
		b.Fatal(err)
	}
	svc, ids, ctx := fx.svc, fx.ids, context.Background()
	const features = manyFeatures
	ledgers := int64(len(ids))
	b.ResetTimer()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := svc.Access(ctx, "default", ids[(i*7919)%ledgers], fmt.Sprint("f", i%features), false); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}

const manyFeatures = 5

// manyLedgersFixture is the store of BenchmarkAccessManyLedgers, built once
// per test binary: the benchmark function runs several times with growing
// b.N, and the store takes a minute to build. TestMain removes it.
type manyLedgersFixture struct {
	svc   *Service
	ids   []string
	store *embedded
	dir   string
}

var manyLedgers = sync.OnceValues(func() (*manyLedgersFixture, error) {
	const ledgers, features = 10_000, manyFeatures
	dir, err := os.MkdirTemp("", "odometer-ledger-bench-")
	if err != nil {
		return nil, err
	}
	meters, err := sqlite.Open(dir)
	if err != nil {
		return nil, err
	}
	log, err := eventlog.Open(filepath.Join(dir, eventlog.DirName))
	if err != nil {
		return nil, err
	}
	store := &embedded{Log: log, Store: meters}
	fx := &manyLedgersFixture{store: store, dir: dir, ids: make([]string, ledgers)}
	fixtures = append(fixtures, fx)
	ctx := context.Background()
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	now := start.Add(24 * time.Hour)
	fx.svc = New(store, func() time.Time { return now }, nil)
	m := &odometer.Meter{ID: odometer.NewID(start), Namespace: "default", Slug: "tokens", Name: "tokens",
		Aggregation: odometer.Sum, EventType: "prompt", ValueProperty: "$.tokens",
		GroupBy: map[string]string{"model": "$.model"}, CreatedAt: start, UpdatedAt: start}
	if err := store.CreateMeter(ctx, m); err != nil {
		return nil, err
	}
	for f := range features {
		in := FeatureInput{Key: fmt.Sprint("f", f), Meter: "tokens", MeterGroupByFilters: map[string]string{"model": fmt.Sprint("m", f)}}
		if _, err := fx.svc.CreateFeature(ctx, "default", in); err != nil {
			return nil, err
		}
	}
	var batch []odometer.Event
	for i := range ledgers {
		subject := fmt.Sprint("customer-", i)
		l, err := fx.svc.CreateLedger(ctx, "default", LedgerInput{Subject: subject})
		if err != nil {
			return nil, err
		}
		fx.ids[i] = l.ID
		for f := range features {
			if _, err := fx.svc.CreateGrant(ctx, "default", l.ID, GrantInput{Feature: fmt.Sprint("f", f),
				Amount: odometer.MustDecimal("1000"), EffectiveAt: start}); err != nil {
				return nil, err
			}
		}
		for e := range 10 {
			t := start.Add(time.Duration(e*137+i%60) * time.Minute)
			batch = append(batch, odometer.Event{Namespace: "default", ID: fmt.Sprint(i, "-", e), Source: "bench",
				SpecVersion: "1.0", Type: "prompt", Subject: subject, Time: t, IngestedAt: t,
				Data: []byte(fmt.Sprintf(`{"model":"m%d","tokens":%d}`, e%features, 1+e))})
		}
		if len(batch) >= 1000 {
			if _, err := store.AppendEvents(ctx, batch); err != nil {
				return nil, err
			}
			batch = batch[:0]
		}
	}
	if _, err := store.AppendEvents(ctx, batch); err != nil {
		return nil, err
	}
	return fx, nil
})

// fixtures are the stores built once per test binary, removed by TestMain.
var fixtures []*manyLedgersFixture

func TestMain(m *testing.M) {
	code := m.Run()
	for _, fx := range fixtures {
		fx.store.Close()
		os.RemoveAll(fx.dir)
	}
	os.Exit(code)
}

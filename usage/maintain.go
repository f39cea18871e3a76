package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/odometerhq/odometer"
)

// DefaultBackfillChunk is how many events one backfill step reads.
const DefaultBackfillChunk = 20_000

// resyncEvery is how often a Maintainer syncs every namespace, so that it
// sees the meter changes other nodes made.
const resyncEvery = time.Minute

// Maintainer keeps a store's rollups in step with its meters: every
// rollable meter has the rollup of its definition, no rollup outlives the
// meters that use it, and it backfills new rollups in the background. It
// never affects what a query answers, only how fast: a meter without its
// rollup, or one whose backfill runs, is still answered exactly.
type Maintainer struct {
	Store  odometer.RollupStore
	Meters odometer.MeterStore
	Log    *slog.Logger
	// Chunk is the events per backfill step (DefaultBackfillChunk if 0).
	Chunk int

	wake chan struct{}
	once sync.Once

	mu    sync.Mutex
	stats MaintainerStats
}

// MaintainerStats are a Maintainer's counters.
type MaintainerStats struct {
	Rollups    int   // rollups kept
	Pending    int64 // events stored before their rollup that its backfill has yet to read
	Backfilled int64 // events read by backfills since start
}

func (mt *Maintainer) init() {
	mt.once.Do(func() {
		mt.wake = make(chan struct{}, 1)
		if mt.Log == nil {
			mt.Log = slog.Default()
		}
		if mt.Chunk <= 0 {
			mt.Chunk = DefaultBackfillChunk
		}
	})
}

// Changed tells the maintainer that a meter of namespace was created,
// changed or deleted. It syncs the namespace's rollups before it returns,
// so that the next query of a changed meter can use its new rollup, and
// wakes the backfill. A nil Maintainer does nothing.
func (mt *Maintainer) Changed(ctx context.Context, namespace string) {
	if mt == nil {
		return
	}
	mt.init()
	if err := mt.Sync(ctx, namespace); err != nil {
		// Queries stay exact without the rollup; the next sync retries.
		mt.Log.Warn("sync usage rollups", "namespace", namespace, "err", err)
	}
	select {
	case mt.wake <- struct{}{}:
	default:
	}
}

// Sync creates the rollups that the namespace's meters lack ("": of every
// namespace) and drops those that no meter uses.
func (mt *Maintainer) Sync(ctx context.Context, namespace string) error {
	mt.init()
	meters, err := mt.Meters.ListMeters(ctx, namespace)
	if err != nil {
		return err
	}
	rollups, err := mt.Store.Rollups(ctx, namespace)
	if err != nil {
		return err
	}
	type key struct {
		ns string
		fp [32]byte
	}
	used := map[key]bool{}
	var errs []error
	for _, m := range meters {
		if !Rollable(m) {
			continue
		}
		k := key{m.Namespace, Fingerprint(m)}
		if used[k] {
			continue
		}
		used[k] = true
		if _, err := mt.Store.EnsureRollup(ctx, odometer.Rollup{Meter: Definition(m), Fingerprint: k.fp}); err != nil {
			errs = append(errs, fmt.Errorf("rollup of meter %q: %w", m.Slug, err))
		}
	}
	for _, r := range rollups {
		if used[key{r.Meter.Namespace, r.Fingerprint}] {
			continue
		}
		if err := mt.Store.DropRollup(ctx, r.ID); err != nil && odometer.ErrorCode(err) != odometer.ENOTFOUND {
			errs = append(errs, fmt.Errorf("drop rollup %d: %w", r.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Run syncs every namespace, then backfills until ctx ends: each rollup
// that lacks events stored before it, one chunk at a time, and again when
// Changed wakes it or resyncEvery passes.
func (mt *Maintainer) Run(ctx context.Context) {
	mt.init()
	tick := time.NewTicker(resyncEvery)
	defer tick.Stop()
	for {
		if err := mt.Sync(ctx, ""); err != nil && ctx.Err() == nil {
			mt.Log.Warn("sync usage rollups", "err", err)
		}
		if err := mt.backfill(ctx); err != nil && ctx.Err() == nil {
			mt.Log.Warn("backfill usage rollups", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-mt.wake:
		case <-tick.C:
		}
	}
}

// backfill runs every rollup's backfill to its end.
func (mt *Maintainer) backfill(ctx context.Context) error {
	for {
		rollups, err := mt.Store.Rollups(ctx, "")
		if err != nil {
			return err
		}
		var pending int64
		var todo []odometer.Rollup
		for _, r := range rollups {
			if !r.Backfilled {
				todo = append(todo, r)
				pending += r.Pending
			}
		}
		mt.mu.Lock()
		mt.stats.Rollups, mt.stats.Pending = len(rollups), pending
		mt.mu.Unlock()
		if len(todo) == 0 {
			return nil
		}
		for _, r := range todo {
			start := time.Now()
			before := r.Pending
			nr, err := mt.Store.BackfillRollup(ctx, r.ID, mt.Chunk)
			if odometer.ErrorCode(err) == odometer.ENOTFOUND {
				continue // dropped meanwhile
			}
			if err != nil {
				return fmt.Errorf("rollup %d: %w", r.ID, err)
			}
			mt.mu.Lock()
			mt.stats.Backfilled += max(0, before-nr.Pending)
			mt.mu.Unlock()
			if nr.Backfilled {
				mt.Log.Info("usage rollup backfilled", "namespace", r.Meter.Namespace, "eventType", r.Meter.EventType,
					"rollup", r.ID, "step", time.Since(start).Round(time.Millisecond))
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
}

// Stats returns the maintainer's counters as of its last backfill step.
func (mt *Maintainer) Stats() MaintainerStats {
	if mt == nil {
		return MaintainerStats{}
	}
	mt.mu.Lock()
	defer mt.mu.Unlock()
	return mt.stats
}

// Status is a meter's rollup, as the API shows it.
type Status struct {
	// State is "ready" (queries read the rollup), "backfilling" (they
	// read it and the events it lacks) or "none" (they read events:
	// UNIQUE_COUNT meters, stores without rollups, or before the rollup
	// is made).
	State         string `json:"state"`
	PendingEvents int64  `json:"pendingEvents"`
}

// MeterStatus returns the state of the meter's rollup in store.
func MeterStatus(ctx context.Context, store odometer.EventStore, m *odometer.Meter) (Status, error) {
	rs, ok := store.(odometer.RollupStore)
	if !ok || !Rollable(m) {
		return Status{State: "none"}, nil
	}
	list, err := rs.Rollups(ctx, m.Namespace)
	if err != nil {
		return Status{}, err
	}
	fp := Fingerprint(m)
	for _, r := range list {
		if r.Fingerprint == fp {
			if r.Backfilled {
				return Status{State: "ready"}, nil
			}
			return Status{State: "backfilling", PendingEvents: r.Pending}, nil
		}
	}
	return Status{State: "none"}, nil
}

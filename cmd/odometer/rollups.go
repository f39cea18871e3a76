package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// startRollups starts the maintainer of the store's usage rollups, if the
// store keeps them and they are on, and its metrics; when they are off, it
// drops the rollups the store has, so that appends stop adding to them.
// stop ends the maintainer and waits, so that the store is never closed
// under a backfill step.
func startRollups(ctx context.Context, store odometer.Store, on bool, log *slog.Logger, reg prometheus.Registerer) (mt *usage.Maintainer, stop func(), err error) {
	rs, ok := store.(odometer.RollupStore)
	if !ok {
		return nil, func() {}, nil
	}
	if !on {
		list, err := rs.Rollups(ctx, "")
		if err != nil {
			return nil, nil, err
		}
		for _, r := range list {
			if err := rs.DropRollup(ctx, r.ID); err != nil {
				return nil, nil, err
			}
		}
		if len(list) > 0 {
			log.Info("usage rollups dropped (--usage-rollups=false)", "rollups", len(list))
		}
		return nil, func() {}, nil
	}
	mt = &usage.Maintainer{Store: rs, Meters: store, Log: log.With("component", "rollups")}
	for _, g := range []struct {
		name, help string
		value      func(usage.MaintainerStats) float64
	}{
		{"odometer_usage_rollups", "Usage rollups kept (one per distinct meter definition).",
			func(s usage.MaintainerStats) float64 { return float64(s.Rollups) }},
		{"odometer_usage_rollup_backfill_pending_events", "Events stored before their rollup existed that its backfill has yet to read; queries read them from events meanwhile.",
			func(s usage.MaintainerStats) float64 { return float64(s.Pending) }},
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
			func() float64 { return g.value(mt.Stats()) }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "odometer_usage_rollup_backfilled_events_total",
		Help: "Events read by rollup backfills since start."},
		func() float64 { return float64(mt.Stats().Backfilled) }))
	rctx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	running.Go(func() { mt.Run(rctx) })
	return mt, func() { cancel(); running.Wait() }, nil
}

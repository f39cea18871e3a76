package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/eventlog"
	"github.com/odometerhq/odometer/sqlite"
)

// Event stores of the embedded default. docs/storage.md explains the choice.
const (
	eventLogPebble = "pebble" // events in <data>/events (Pebble); the default
	eventLogSQLite = "sqlite" // events in <data>/odometer.db with everything else
)

// splitStore keeps events in the Pebble log and everything else in SQLite.
// Events and meters are never written together, so no transaction needs to
// span the two.
type splitStore struct {
	odometer.EventStore
	odometer.MeterStore
	events *eventlog.Log
	meters *sqlite.Store
}

func (s *splitStore) Ping(ctx context.Context) error {
	return errors.Join(s.meters.Ping(ctx), s.events.Ping(ctx))
}

func (s *splitStore) Close() error {
	return errors.Join(s.events.Close(), s.meters.Close())
}

// openStore opens the embedded store in dir with the chosen event store.
// A data directory keeps its events in one event store for its whole life:
// opening it with the other one is an error that says how to start instead,
// never a silent empty view of the events.
func openStore(ctx context.Context, dir, eventLog string) (odometer.Store, error) {
	meters, err := sqlite.Open(dir)
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(dir, eventlog.DirName)
	_, statErr := os.Stat(logDir)
	logExists := statErr == nil
	switch eventLog {
	case eventLogSQLite:
		if logExists {
			meters.Close()
			return nil, fmt.Errorf("data directory %s keeps its events in %s (Pebble); start with --event-log %s", dir, logDir, eventLogPebble)
		}
		return meters, nil
	case eventLogPebble:
		if !logExists {
			has, err := meters.HasEvents(ctx)
			if err != nil {
				meters.Close()
				return nil, err
			}
			if has {
				meters.Close()
				return nil, fmt.Errorf("data directory %s keeps its events in %s (SQLite); start with --event-log %s", dir, sqlite.FileName, eventLogSQLite)
			}
		}
		events, err := eventlog.Open(logDir)
		if err != nil {
			meters.Close()
			return nil, err
		}
		return &splitStore{EventStore: events, MeterStore: meters, events: events, meters: meters}, nil
	}
	meters.Close()
	return nil, fmt.Errorf("unknown event log %q (want %s or %s)", eventLog, eventLogPebble, eventLogSQLite)
}

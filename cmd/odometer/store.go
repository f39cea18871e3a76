package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/eventlog"
	"github.com/odometerhq/odometer/postgres"
	"github.com/odometerhq/odometer/sqlite"
)

// Event stores of the embedded default. docs/storage.md explains the choice.
const (
	eventLogPebble = "pebble" // events in <data>/events (Pebble); the default
	eventLogSQLite = "sqlite" // events in <data>/odometer.db with everything else
)

// splitStore keeps events in the Pebble log and everything else (meters,
// credits, exports, API keys) in SQLite. Events and the rest are never
// written together, so no transaction needs to span the two.
type splitStore struct {
	*eventlog.Log // events and their usage rollups
	odometer.MeterStore
	odometer.CreditStore
	odometer.ExportStore
	odometer.KeyStore
	events *eventlog.Log
	meters *sqlite.Store
}

var _ odometer.RollupStore = (*splitStore)(nil)

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
	return openStoreOptions(ctx, dir, eventLog, eventlog.Options{})
}

// openStoreOptions is openStore with the event log's options.
func openStoreOptions(ctx context.Context, dir, eventLog string, logOptions eventlog.Options) (odometer.Store, error) {
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
		events, err := eventlog.OpenOptions(logDir, logOptions)
		if err != nil {
			meters.Close()
			return nil, err
		}
		return &splitStore{Log: events, MeterStore: meters, CreditStore: meters, ExportStore: meters, KeyStore: meters, events: events, meters: meters}, nil
	}
	meters.Close()
	return nil, fmt.Errorf("unknown event log %q (want %s or %s)", eventLog, eventLogPebble, eventLogSQLite)
}

// openConfiguredStore opens PostgreSQL when --postgres is set, else the
// embedded store under --data.
func openConfiguredStore(ctx context.Context, cfg *serveConfig, log *slog.Logger) (odometer.Store, error) {
	if cfg.Postgres == "" {
		return openStoreOptions(ctx, cfg.Data, cfg.EventLog, eventlog.Options{FilterBytes: int64(cfg.IdentityFilterBytes)})
	}
	return postgres.Open(ctx, cfg.Postgres, postgres.Options{
		MaxConns:  int32(cfg.PostgresMaxConns),
		NoMigrate: cfg.NoMigrate,
		Logger:    log,
	})
}

// storeSummary describes the store for the log, without credentials.
func storeSummary(cfg *serveConfig) string {
	if cfg.Postgres == "" {
		return fmt.Sprintf("embedded in %s (events in %s)", cfg.Data, cfg.EventLog)
	}
	return "postgres " + redactURL(cfg.Postgres)
}

// redactURL returns a PostgreSQL URL or keyword/value string without its
// password, for logs and error messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	// keyword=value form: drop the password's value.
	return passwordKV.ReplaceAllString(s, "${1}xxxxx")
}

var passwordKV = regexp.MustCompile(`(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

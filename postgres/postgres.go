// Package postgres implements odometer.Store on PostgreSQL
// (github.com/jackc/pgx/v5), the store of Odometer nodes that share one
// database. Every node runs the same code against the same tables; nothing
// is coordinated between nodes except through the database.
//
// # Durability
//
// AppendEvents returns only after its transaction's COMMIT succeeded. With
// the server's default synchronous_commit (on), the commit record is then
// flushed to the write-ahead log, so an acknowledged event survives a crash
// of the server. On any error nothing of the call is acknowledged.
//
// # Deduplication
//
// The primary key of the events table is the identity (namespace, source,
// id). One INSERT … ON CONFLICT DO NOTHING RETURNING per call stores the
// identities that are new and names them; every other event of the call is
// a duplicate. The unique index is the only check, so calls on different
// nodes cannot both accept an identity: the second waits for the first's
// transaction and then skips the row (or inserts it, if the first rolled
// back). Repeats within one call are settled in Go before the insert, so
// that the first in input order is the one accepted.
//
// # Ordering and deadlocks
//
// Calls that insert the same new identities wait for each other's
// transactions. If two calls inserted them in different orders, each could
// hold a key the other waits for: a deadlock, which PostgreSQL breaks by
// aborting one of them after deadlock_timeout (1 s). Every call therefore
// inserts its rows sorted by identity, so that waits only ever go from
// smaller to larger keys and cannot form a cycle. The append sequence that
// orders ties in ListEvents is still drawn in input order.
//
// # Retries and unknown commits
//
// A transaction commits only when its COMMIT is processed. Every failure
// before COMMIT is sent therefore leaves nothing behind, and the transient
// ones — no connection, a connection lost or terminated, a deadlock or
// serialization failure — are retried on a fresh connection with capped
// exponential backoff and jitter until the caller's context ends. Once
// COMMIT is sent, only an ERROR answer (the server rolled back) is retried.
// Any other failure — the connection broke, the server went down — leaves
// the outcome unknown: AppendEvents then returns EUNAVAILABLE and does not
// retry, because a retry would report the events that the lost commit
// stored as duplicates, and the caller would never learn that this call
// accepted them. The client retries the request instead, and gets
// duplicates for whatever was stored, which keeps counts exact.
//
// Reads retry transient failures as long as they have delivered nothing;
// meter writes, which are single statements, only when they failed before
// reaching the server.
//
// # Schema
//
// The migrations in migrations/ are embedded and applied by Open (unless
// Options.NoMigrate) or Migrate, each in its own transaction, under a
// session-level advisory lock, so that nodes that start together apply each
// exactly once. A database migrated by a newer Odometer is refused.
package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/odometerhq/odometer"
)

// defaultMaxConns is the pool size when neither Options nor the URL's
// pool_max_conns sets one. Appends hold a connection for one insert and one
// commit, so a handful serve a node's ingestion; the rest serve queries.
const defaultMaxConns = 16

// Options for Open. The zero value gives the defaults.
type Options struct {
	// MaxConns is the most connections the store opens. 0 means the URL's
	// pool_max_conns if it has one, else 16.
	MaxConns int32
	// NoMigrate makes Open check the schema instead of migrating it: Open
	// fails unless the database has every migration this program knows.
	// For deployments that run `odometer migrate` as a separate step, with
	// a user that cannot change the schema.
	NoMigrate bool
	// Logger receives retries and applied migrations. nil means
	// slog.Default().
	Logger *slog.Logger

	noFold bool // tests: no background fold (export_test.go)
}

// Store is an odometer.Store on PostgreSQL. It is safe for concurrent use,
// and any number of Stores, in any number of processes, may share a
// database.
type Store struct {
	pool   *pgxpool.Pool
	log    *slog.Logger
	closed atomic.Bool
	late   odometer.LateMarks // the late watermarks AppendEvents writes

	rollupCache rollupCache
	stopFold    context.CancelFunc // ends the background fold
	// noFold: this Store runs no fold, so its appends do not wait for
	// folds (awaitFolds); tests only.
	noFold  bool
	folding sync.WaitGroup
}

var _ odometer.Store = (*Store)(nil)

// errClosed is returned by every method called after Close.
var errClosed = odometer.Errorf(odometer.EUNAVAILABLE, "the PostgreSQL store is closed")

// Open connects to the database at url (a postgres:// URL or a
// keyword=value connection string, as libpq accepts), applies the
// migrations it lacks (see Options.NoMigrate) and returns a Store backed by
// a connection pool. It fails if the database cannot be reached, uses an
// encoding other than UTF8, or has a schema newer than this program's. The
// Store must be closed with Close.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	switch {
	case opts.MaxConns > 0:
		cfg.MaxConns = opts.MaxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		// Names the sessions in pg_stat_activity, for operators.
		cfg.ConnConfig.RuntimeParams["application_name"] = "odometer"
	}
	conn, err := connect(ctx, cfg.ConnConfig, log)
	if err != nil {
		return nil, storeError("open postgres store", err)
	}
	if opts.NoMigrate {
		err = checkSchema(ctx, conn)
	} else {
		_, err = migrate(ctx, conn, log)
	}
	closeConn(conn)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	foldCtx, stopFold := context.WithCancel(context.Background())
	s := &Store{pool: pool, log: log, stopFold: stopFold, noFold: opts.noFold}
	if !opts.noFold {
		s.folding.Go(func() { s.runFold(foldCtx) })
	}
	return s, nil
}

// Close closes the pool's connections, waiting for the queries that use
// them to finish. Methods called afterwards fail with EUNAVAILABLE.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.stopFold()
	s.folding.Wait()
	s.pool.Close()
	return nil
}

// Ping checks that a connection to the database works (a pooled one that
// answers, or a new one), within ctx.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("ping postgres: %w", errClosed)
	}
	return storeError("ping postgres", s.pool.Ping(ctx))
}

// Package sqlite implements odometer.Store on an embedded SQLite database
// (github.com/mattn/go-sqlite3), the default store of a single-node Odometer.
//
// The database is one file, odometer.db, in the data directory, in WAL mode
// with synchronous=FULL: a successful write has been fsynced before it
// returns. Writes go through a single connection so that they never contend
// for SQLite's one write lock inside the process; reads use a separate pool
// so that queries run while ingestion commits.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"github.com/mattn/go-sqlite3"

	"github.com/odometerhq/odometer"
)

// FileName is the name of the database file inside the data directory.
const FileName = "odometer.db"

// busyTimeoutMS bounds how long a connection waits for a lock held by
// another process (e.g. `odometer ingest` run next to a server) before a
// statement fails with SQLITE_BUSY.
const busyTimeoutMS = 5000

// Pragmas applied to every connection. Most are per connection in SQLite,
// so they cannot be set once at Open.
var (
	commonPragmas = []string{
		fmt.Sprintf("busy_timeout = %d", busyTimeoutMS), // first: the others may need a lock
		"foreign_keys = ON",
		"cache_size = -65536", // KiB, i.e. 64 MiB of page cache per connection
		"temp_store = MEMORY",
	}
	writePragmas = slices.Concat(commonPragmas, []string{
		// WAL lets readers run during a commit; FULL fsyncs the WAL on every
		// commit, which is what makes an acknowledged event durable.
		"journal_mode = WAL",
		"synchronous = FULL",
	})
	readPragmas = slices.Concat(commonPragmas, []string{
		// query_only rather than mode=ro: a read-only open cannot create the
		// WAL index (-shm) or recover a WAL left by a crash.
		"query_only = ON",
	})
)

// Store is an odometer.Store on SQLite. It is safe for concurrent use.
type Store struct {
	path  string
	write *sql.DB // exactly one connection; transactions BEGIN IMMEDIATE
	read  *sql.DB // query_only connections

	insertEventStmt *sql.Stmt // on write
	rollupGenStmt   *sql.Stmt // on write
	insertDeltaStmt *sql.Stmt // on write
	getCellStmt     *sql.Stmt // on write
	putCellStmt     *sql.Stmt // on write
	scanAllStmt     *sql.Stmt // on read
	scanSubjectStmt *sql.Stmt // on read

	late odometer.LateMarks // the late watermarks AppendEvents writes

	// stmts caches the read pool's statements by SQL text: preparing a
	// statement anew was a third of a credit check's time.
	stmtsMu sync.Mutex
	stmts   map[string]*sql.Stmt

	exporter sync.Mutex // TryLockExporter's lock

	rollupCache rollupCache
	log         *slog.Logger
	stopFold    context.CancelFunc
	folding     sync.WaitGroup
}

// maxCachedStmts bounds stmts; the read queries' distinct texts (one per
// combination of optional filters) number a few dozen.
const maxCachedStmts = 256

// readStmt returns the prepared read statement for query.
func (s *Store) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	s.stmtsMu.Lock()
	defer s.stmtsMu.Unlock()
	if st := s.stmts[query]; st != nil {
		return st, nil
	}
	st, err := s.read.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if s.stmts == nil {
		s.stmts = map[string]*sql.Stmt{}
	}
	if len(s.stmts) >= maxCachedStmts {
		// Closing a statement that another query still uses is safe:
		// database/sql closes it when that query is done.
		for q, old := range s.stmts {
			old.Close()
			delete(s.stmts, q)
		}
	}
	s.stmts[query] = st
	return st, nil
}

// query runs a read query through a cached prepared statement.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow is QueryRowContext through a cached prepared statement.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		// sql.Row carries no error of its own making; the unprepared
		// query fails (or succeeds) the same way.
		return s.read.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

var _ odometer.Store = (*Store)(nil)

// Open opens (creating if needed) the database in dir, creating dir too,
// and applies any migrations it has not seen yet. The returned Store must be
// closed with Close.
func Open(dir string) (*Store, error) { return openDir(dir, true) }

// openDir is Open, with the background fold of rollup cells or without
// (tests fold by calling FoldRollups).
func openDir(dir string, fold bool) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	path, err := filepath.Abs(filepath.Join(dir, FileName))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	s := &Store{path: path, log: slog.Default()}
	if err := s.open(); err != nil {
		s.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if fold {
		ctx, cancel := context.WithCancel(context.Background())
		s.stopFold = cancel
		s.folding.Go(func() { s.runFold(ctx) })
	}
	return s, nil
}

func (s *Store) open() error {
	ctx := context.Background()
	s.write = openDB(s.path, "immediate", writePragmas)
	// One writer: SQLite has one write lock per database anyway, and a
	// single connection keeps prepared statements and the page cache warm.
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxLifetime(0)
	s.write.SetConnMaxIdleTime(0)

	var mode string
	if err := s.write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal (is the file system local?)", mode)
	}
	if err := migrate(ctx, s.write); err != nil {
		return err
	}

	s.read = openDB(s.path, "deferred", readPragmas)
	n := max(4, runtime.GOMAXPROCS(0))
	s.read.SetMaxOpenConns(n)
	s.read.SetMaxIdleConns(n)

	var err error
	prepare := func(db *sql.DB, query string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = db.PrepareContext(ctx, query)
		if err != nil {
			err = fmt.Errorf("prepare %q: %w", query, err)
		}
		return st
	}
	s.insertEventStmt = prepare(s.write, insertEventSQL)
	s.rollupGenStmt = prepare(s.write, rollupGenSQL)
	s.insertDeltaStmt = prepare(s.write, `INSERT INTO usage_cell_deltas (cells) VALUES (?)`)
	s.getCellStmt = prepare(s.write, getCellSQL)
	s.putCellStmt = prepare(s.write, putCellSQL)
	s.scanAllStmt = prepare(s.read, scanEventsSQL)
	s.scanSubjectStmt = prepare(s.read, scanSubjectSQL)
	return err
}

// Close closes the database. It waits for running queries to finish.
func (s *Store) Close() error {
	if s.stopFold != nil {
		s.stopFold()
		s.folding.Wait()
	}
	var errs []error
	s.stmtsMu.Lock()
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	s.stmts = nil
	s.stmtsMu.Unlock()
	for _, st := range []*sql.Stmt{s.insertEventStmt, s.rollupGenStmt, s.insertDeltaStmt, s.getCellStmt, s.putCellStmt,
		s.scanAllStmt, s.scanSubjectStmt} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.read != nil {
		errs = append(errs, s.read.Close())
	}
	if s.write != nil {
		// Keeps the planner's statistics current, as SQLite recommends
		// before closing a long-lived connection. Best effort.
		_, _ = s.write.Exec("PRAGMA optimize")
		errs = append(errs, s.write.Close())
	}
	return errors.Join(errs...)
}

// Ping runs a query on the read pool: it fails if the database file cannot
// be read or every read connection is stuck.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.read.QueryRowContext(ctx, "SELECT 1 FROM schema_migrations LIMIT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// openDB returns a pool whose connections run pragmas when they connect.
// A Connector instead of sql.Register keeps the hook private to this
// package and lets the write and read pools differ.
func openDB(path, txlock string, pragmas []string) *sql.DB {
	// A file: URI with an escaped path, so that '?' or '#' in a directory
	// name cannot be taken for URI parameters.
	dsn := "file:" + (&url.URL{Path: filepath.ToSlash(path)}).EscapedPath() + "?_txlock=" + txlock
	drv := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		for _, p := range pragmas {
			if _, err := c.Exec("PRAGMA "+p, nil); err != nil {
				return fmt.Errorf("PRAGMA %s: %w", p, err)
			}
		}
		return nil
	}}
	return sql.OpenDB(connector{drv: drv, dsn: dsn})
}

type connector struct {
	drv *sqlite3.SQLiteDriver
	dsn string
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.drv }

package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the session-level advisory lock that serializes
// migrations between processes: "odometer" in ASCII. Advisory locks are per
// database, so servers that hold several Odometer databases migrate them
// independently.
const migrationLockKey int64 = 0x6f646f6d65746572

type migration struct {
	version int
	name    string // file name, e.g. 0001_init.sql
	sql     string
}

// migrations returns the embedded migrations in version order. File names
// are NNNN_description.sql; versions start at 1 and have no gaps, so that a
// missing file cannot go unnoticed.
var migrations = sync.OnceValues(func() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %q: name must be NNNN_description.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration file %q: version %d, want %d (versions must run 1, 2, 3, … without gaps or repeats)", m.name, m.version, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations embedded")
	}
	return ms, nil
})

// Migrate applies the migrations that the database at url lacks, each in
// its own transaction, and returns the names of those it applied (none if
// the schema was current). Concurrent calls, from any number of processes,
// apply each migration once: they take turns on an advisory lock, and a
// later one finds the migrations applied. It refuses a database whose
// schema is newer than this program's, and one whose encoding is not UTF8.
// log (nil for slog.Default()) receives a record per applied migration.
func Migrate(ctx context.Context, url string, log *slog.Logger) (applied []string, err error) {
	if log == nil {
		log = slog.Default()
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	conn, err := connect(ctx, cfg, log)
	if err != nil {
		return nil, storeError("migrate", err)
	}
	defer closeConn(conn)
	return migrate(ctx, conn, log)
}

// migrate applies the missing migrations on conn; see Migrate.
func migrate(ctx context.Context, conn *pgx.Conn, log *slog.Logger) (applied []string, err error) {
	ms, err := migrations()
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	// The common case, a current schema, needs neither the lock nor DDL:
	// nodes restart without queueing, and a user without the privilege to
	// create tables can still open a migrated database. A missing table
	// takes the long way.
	if done, err := appliedVersions(ctx, conn); err == nil {
		if err := refuseNewer(done, ms); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		if len(missing(done, ms)) == 0 {
			return nil, nil
		}
	}

	// Session-level, not transaction-level: the lock must span the checks
	// and every migration's transaction. Closing the connection releases it
	// too, should this process die half-way.
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", migrationLockKey).Scan(&locked); err != nil {
		return nil, storeError("migrate: take the migration lock", err)
	}
	if !locked {
		log.Info("postgres: another process is migrating the schema; waiting for it")
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
			return nil, storeError("migrate: wait for the migration lock", err)
		}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", migrationLockKey)
	}()

	// Under the lock: concurrent CREATE TABLE IF NOT EXISTS can fail on a
	// unique violation in the catalog.
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer     PRIMARY KEY,
		name       text        NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, storeError("migrate: create schema_migrations", err)
	}
	done, err := appliedVersions(ctx, conn)
	if err != nil {
		return nil, storeError("migrate", err)
	}
	if err := refuseNewer(done, ms); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		start := time.Now()
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		}); err != nil {
			return applied, storeError("migrate: apply "+m.name, err)
		}
		log.Info("postgres: applied migration", "migration", m.name, "duration", time.Since(start))
		applied = append(applied, m.name)
	}
	return applied, nil
}

// checkSchema fails unless the database has every migration this program
// knows, and none that it does not.
func checkSchema(ctx context.Context, conn *pgx.Conn) error {
	ms, err := migrations()
	if err != nil {
		return fmt.Errorf("check schema: %w", err)
	}
	done, err := appliedVersions(ctx, conn)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return errors.New("check schema: the database has no Odometer schema (no schema_migrations table); " +
			"apply the migrations first (odometer migrate), or open without NoMigrate")
	}
	if err != nil {
		return storeError("check schema", err)
	}
	if err := refuseNewer(done, ms); err != nil {
		return fmt.Errorf("check schema: %w", err)
	}
	if names := missing(done, ms); len(names) > 0 {
		return fmt.Errorf("check schema: the database lacks migrations %s; apply them first (odometer migrate), or open without NoMigrate",
			strings.Join(names, ", "))
	}
	return nil
}

// missing returns the names of the migrations that done lacks.
func missing(done map[int]bool, ms []migration) []string {
	var names []string
	for _, m := range ms {
		if !done[m.version] {
			names = append(names, m.name)
		}
	}
	return names
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]bool, error) {
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, err
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	done := map[int]bool{}
	for _, v := range versions {
		done[int(v)] = true
	}
	return done, nil
}

// refuseNewer fails if the database has a migration this program does not
// know: its schema may hold data that this version would misread or lose.
func refuseNewer(done map[int]bool, ms []migration) error {
	known := ms[len(ms)-1].version
	newest := 0
	for v := range done {
		newest = max(newest, v)
	}
	if newest > known {
		return fmt.Errorf("the database schema (version %d) is newer than this program's (version %d); run a newer Odometer", newest, known)
	}
	return nil
}

// connect opens a single connection for schema work (an advisory lock is
// held by a session, which a pool would not keep) and checks the settings
// that the store's guarantees rest on.
func connect(ctx context.Context, cfg *pgx.ConnConfig, log *slog.Logger) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var encoding, syncCommit, fsync string
	err = conn.QueryRow(ctx, "SELECT current_setting('server_encoding'), current_setting('synchronous_commit'), current_setting('fsync')").
		Scan(&encoding, &syncCommit, &fsync)
	if err != nil {
		closeConn(conn)
		return nil, err
	}
	// The store sends and returns UTF-8; a database in another encoding
	// would refuse or alter some events.
	if encoding != "UTF8" {
		closeConn(conn)
		return nil, fmt.Errorf("database %q uses encoding %s; Odometer needs UTF8 (CREATE DATABASE … ENCODING 'UTF8')", cfg.Database, encoding)
	}
	// Not refused: an operator may trade durability for speed on purpose.
	// But acknowledging an event promises that it is stored, so say it.
	if syncCommit == "off" || fsync == "off" {
		log.Warn("postgres: the server may lose committed transactions in a crash, and with them events that Odometer acknowledged",
			"synchronous_commit", syncCommit, "fsync", fsync)
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/postgres"
	"github.com/odometerhq/odometer/postgres/pgtest"
	"github.com/odometerhq/odometer/storetest"
)

// open opens a store on url and closes it at t's cleanup. Its log is
// discarded unless opts has a Logger.
func open(t testing.TB, url string, opts postgres.Options) *postgres.Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := postgres.Open(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawConn connects to url directly, for checks and faults below the Store
// interface.
func rawConn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryInt(t testing.TB, conn *pgx.Conn, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// logBuffer is a slog handler's output that tests read while stores write.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns the number of records whose text contains s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestConformance(t *testing.T) {
	pgtest.Require(t)
	storetest.Run(t, func(t *testing.T) odometer.Store {
		return open(t, pgtest.NewDatabase(t), postgres.Options{})
	})
}

// event returns a minimal valid event.
func event(ns, source, id string) odometer.Event {
	return odometer.Event{Namespace: ns, Source: source, ID: id, SpecVersion: "1.0", Type: "t", Subject: "c",
		Time:       time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		IngestedAt: time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC),
		Data:       []byte(`{"v":1}`)}
}

// TestConcurrentMigrate opens a new database from several goroutines at
// once, as nodes that start together do, half of them through Migrate:
// every call succeeds and each migration is applied exactly once.
func TestConcurrentMigrate(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const n = 8
	var logs logBuffer
	var wg sync.WaitGroup
	errs := make([]error, n)
	applied := make([][]string, n)
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				applied[i], errs[i] = postgres.Migrate(t.Context(), url, logs.logger())
				return
			}
			s, err := postgres.Open(t.Context(), url, postgres.Options{Logger: logs.logger()})
			if err == nil {
				_, err = s.AppendEvents(t.Context(), []odometer.Event{event("ns", "src", fmt.Sprint(i))})
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}

	conn := rawConn(t, url)
	rows, _ := conn.Query(t.Context(), "SELECT name FROM schema_migrations ORDER BY version")
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 || names[0] != "0001_init.sql" {
		t.Fatalf("schema_migrations holds %v, want 0001_init.sql first", names)
	}
	// Each migration is logged once, by whichever call applied it; the
	// Migrate calls that applied some say so.
	for _, name := range names {
		if got := logs.count("migration=" + name); got != 1 {
			t.Errorf("migration %s applied %d times, want once; log:\n%s", name, got, logs.buf.String())
		}
	}
	var reported []string
	for _, a := range applied {
		reported = append(reported, a...)
	}
	for _, name := range reported {
		if !slices.Contains(names, name) {
			t.Errorf("Migrate reported %s applied, which schema_migrations does not hold", name)
		}
	}
	if got := queryInt(t, conn, "SELECT count(*) FROM events"); got != n/2 {
		t.Errorf("%d events stored by the stores opened concurrently, want %d", got, n/2)
	}

	t.Logf("%d of %d calls waited for another's migration", logs.count("another process is migrating"), n)

	// Once current, Migrate applies nothing.
	if again, err := postgres.Migrate(t.Context(), url, nil); err != nil || len(again) != 0 {
		t.Errorf("Migrate on a current schema = %v, %v; want nothing applied", again, err)
	}
}

// TestNoMigrate checks that a store opened with NoMigrate refuses a
// database without the current schema, with an error that says what to do,
// and accepts it once migrated.
func TestNoMigrate(t *testing.T) {
	url := pgtest.NewDatabase(t)
	_, err := postgres.Open(t.Context(), url, postgres.Options{NoMigrate: true})
	if err == nil || !strings.Contains(err.Error(), "odometer migrate") {
		t.Fatalf("Open(NoMigrate) on an empty database: %v; want an error that says to migrate", err)
	}
	applied, err := postgres.Migrate(t.Context(), url, nil)
	if err != nil || len(applied) == 0 {
		t.Fatalf("Migrate = %v, %v; want migrations applied", applied, err)
	}
	// A database that lacks the latest migration is refused too.
	conn := rawConn(t, url)
	latest := queryInt(t, conn, "SELECT max(version) FROM schema_migrations")
	if _, err := conn.Exec(t.Context(), "DELETE FROM schema_migrations WHERE version = $1", latest); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(t.Context(), url, postgres.Options{NoMigrate: true})
	if err == nil || !strings.Contains(err.Error(), applied[len(applied)-1]) {
		t.Fatalf("Open(NoMigrate) without the latest migration: %v; want an error that names it", err)
	}
	if _, err := conn.Exec(t.Context(), "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", latest, applied[len(applied)-1]); err != nil {
		t.Fatal(err)
	}
	s := open(t, url, postgres.Options{NoMigrate: true})
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// TestOpenWithoutDDLPrivilege checks that a user who may read and write
// the tables but not create any can open a migrated database without
// NoMigrate: a current schema needs no DDL.
func TestOpenWithoutDDLPrivilege(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if _, err := postgres.Migrate(t.Context(), url, nil); err != nil {
		t.Fatal(err)
	}
	admin := rawConn(t, url)
	role := "odometer_app_" + strings.ToLower(rand.Text()[:10])
	if _, err := admin.Exec(t.Context(), `CREATE ROLE `+role+` LOGIN;
		REVOKE CREATE ON SCHEMA public FROM PUBLIC;
		GRANT SELECT, INSERT, UPDATE, DELETE ON events, late_marks, meters, schema_migrations,
			usage_rollups, usage_cells, usage_cell_deltas TO `+role+`;
		GRANT USAGE ON SEQUENCE events_seq TO `+role); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Before the database goes: the grants in it depend on the role.
		ctx := context.Background()
		if _, err := admin.Exec(ctx, "DROP OWNED BY "+role+"; DROP ROLE "+role); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatalf("this test needs ODOMETER_TEST_POSTGRES as a URL: %v", err)
	}
	u.User = neturl.User(role)
	s := open(t, u.String(), postgres.Options{})
	if out, err := s.AppendEvents(t.Context(), []odometer.Event{event("ns", "src", "1")}); err != nil || out[0] != odometer.Accepted {
		t.Fatalf("AppendEvents as %s = %v, %v", role, out, err)
	}
}

// TestNewerSchema checks that a database migrated by a newer program is
// refused rather than misread, however it is opened.
func TestNewerSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	if _, err := postgres.Migrate(t.Context(), url, nil); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, url)
	if _, err := conn.Exec(t.Context(), "INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')"); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []postgres.Options{{}, {NoMigrate: true}} {
		if s, err := postgres.Open(t.Context(), url, opts); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded on a database with a newer schema", opts)
		} else if !strings.Contains(err.Error(), "newer") || !strings.Contains(err.Error(), "9999") {
			t.Errorf("Open(%+v): %v; want an error about the newer schema version 9999", opts, err)
		}
	}
	if _, err := postgres.Migrate(t.Context(), url, nil); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Migrate: %v; want an error about the newer schema", err)
	}
}

// TestReopen checks that events and meters outlive the store, and that
// another store sees them.
func TestReopen(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := event("ns", "s", "1")
	if _, err := s.AppendEvents(t.Context(), []odometer.Event{e}); err != nil {
		t.Fatal(err)
	}
	m := &odometer.Meter{ID: odometer.NewID(time.Now()), Namespace: "ns", Slug: "m", Name: "m",
		Aggregation: odometer.Count, EventType: "t"}
	if err := s.CreateMeter(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.AppendEvents(t.Context(), []odometer.Event{e}); odometer.ErrorCode(err) != odometer.EUNAVAILABLE {
		t.Errorf("AppendEvents after Close: %v; want an EUNAVAILABLE error", err)
	}

	s = open(t, url, postgres.Options{})
	out, err := s.AppendEvents(t.Context(), []odometer.Event{e})
	if err != nil || out[0] != odometer.Duplicate {
		t.Fatalf("append after reopen: %v, %v; want duplicate", out, err)
	}
	if _, err := s.FindMeter(t.Context(), "ns", "m"); err != nil {
		t.Fatalf("FindMeter after reopen: %v", err)
	}
}

// TestAppendRefusesWhatPostgresCannotStore checks that text PostgreSQL
// cannot hold fails the call with EINVALID naming the event and field,
// before anything is stored.
func TestAppendRefusesWhatPostgresCannotStore(t *testing.T) {
	s := open(t, pgtest.NewDatabase(t), postgres.Options{})
	tests := []struct {
		field  string
		modify func(*odometer.Event)
	}{
		{"subject", func(e *odometer.Event) { e.Subject = "a\x00b" }},
		{"id", func(e *odometer.Event) { e.ID = "\xff" }},
		{"data", func(e *odometer.Event) { e.Data = []byte(`{"a":"` + "\xc3" + `"}`) }},
		{"data", func(e *odometer.Event) { e.Data = []byte(`{"a":`) }},
	}
	for _, tt := range tests {
		bad := event("ns", "src", "bad")
		tt.modify(&bad)
		_, err := s.AppendEvents(t.Context(), []odometer.Event{event("ns", "src", "ok"), bad})
		if odometer.ErrorCode(err) != odometer.EINVALID {
			t.Errorf("%s: AppendEvents: %v; want EINVALID", tt.field, err)
			continue
		}
		if f := odometer.ErrorFields(err); len(f) != 1 || f[0].Index != 1 || f[0].Field != tt.field {
			t.Errorf("%s: field errors %+v; want event 1's %s", tt.field, f, tt.field)
		}
	}
	got, err := s.ListEvents(t.Context(), odometer.EventFilter{Namespace: "ns", Limit: 10})
	if err != nil || len(got) != 0 {
		t.Errorf("after refused appends, ListEvents = %v, %v; want nothing stored", got, err)
	}
}

// TestQueryPlans checks that the hot queries use their indexes, so that a
// schema change cannot silently turn them into table scans or sorts.
func TestQueryPlans(t *testing.T) {
	url := pgtest.NewDatabase(t)
	open(t, url, postgres.Options{})
	conn := rawConn(t, url)
	// Enough rows, spread like real ones, for the planner's statistics to
	// matter: 20 namespaces, 5 types, 200 subjects.
	if _, err := conn.Exec(t.Context(), `INSERT INTO events
		(namespace, source, id, type, subject, time, ingested_at, specversion)
		SELECT 'n' || i % 20, 's', i::text, 't' || i % 5, 'c' || i % 200,
			now() - i * interval '1 second', now(), '1.0'
		FROM generate_series(1, 20000) AS i;
		ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ query, want string }{
		{`SELECT * FROM events WHERE namespace = 'n1' AND type = 't1' AND time >= now() - interval '1 hour' AND time < now() AND subject = ANY('{c1,c21}')`,
			"events_scan"},
		{`SELECT * FROM events WHERE namespace = 'n1' AND time >= now() - interval '1 hour' AND strpos(id, '1') > 0 ORDER BY time DESC, seq DESC LIMIT 10`,
			"Index Scan Backward using events_time"},
	}
	for _, tt := range tests {
		rows, _ := conn.Query(t.Context(), "EXPLAIN "+tt.query)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		if !strings.Contains(plan, tt.want) || strings.Contains(plan, "Sort") {
			t.Errorf("%s\nplan:\n%s\nwant %s and no sort", tt.query, plan, tt.want)
		}
	}
}

// BenchmarkAppendEvents appends 1,000-event batches of new, random ids over
// 10,000 subjects, one commit per batch: the figure compares with the other
// stores' (docs/storage.md).
func BenchmarkAppendEvents(b *testing.B) {
	storetest.BenchmarkAppendEvents(b, open(b, pgtest.NewDatabase(b), postgres.Options{}))
}

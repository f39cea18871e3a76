package sqlite_test

import (
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/sqlite"
	"github.com/odometerhq/odometer/storetest"
)

func open(t testing.TB, dir string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(dir)
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) odometer.Store { return open(t, t.TempDir()) })
}

// TestReopen checks that events and meters survive closing the store, and
// that opening again does not apply migrations twice.
func TestReopen(t *testing.T) {
	// A directory that does not exist yet, with URI-special characters.
	dir := filepath.Join(t.TempDir(), "data?x=1#y", "nested")
	s, err := sqlite.Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	e := odometer.Event{Namespace: "ns", ID: "1", Source: "s", SpecVersion: "1.0", Type: "t", Subject: "c",
		Time: time.Date(2025, 1, 1, 0, 0, 0, 1000, time.UTC), IngestedAt: time.Date(2025, 1, 1, 0, 0, 1, 0, time.UTC),
		Data: []byte(`{"v":1}`)}
	if _, err := s.AppendEvents(t.Context(), []odometer.Event{e}); err != nil {
		t.Fatal(err)
	}
	m := &odometer.Meter{ID: odometer.NewID(time.Now()), Namespace: "ns", Slug: "m", Name: "m",
		Aggregation: odometer.Count, EventType: "t"}
	if err := s.CreateMeter(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqlite.FileName)); err != nil {
		t.Fatalf("database file not where expected: %v", err)
	}

	for range 2 {
		s = open(t, dir)
		out, err := s.AppendEvents(t.Context(), []odometer.Event{e})
		if err != nil || out[0] != odometer.Duplicate {
			t.Fatalf("append after reopen: %v, %v; want duplicate", out, err)
		}
		if _, err := s.FindMeter(t.Context(), "ns", "m"); err != nil {
			t.Fatalf("FindMeter after reopen: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	db := rawDB(t, dir)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	if n != len(files) {
		t.Errorf("schema_migrations has %d rows after three opens, want %d (one per migration)", n, len(files))
	}
}

// TestNewerSchema checks that a database migrated by a newer program is
// refused rather than misread.
func TestNewerSchema(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, dir)
	if _, err := db.Exec("INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err = sqlite.Open(dir); err == nil {
		s.Close()
		t.Fatal("Open succeeded on a database with a newer schema")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open: %v; want an error about the newer schema", err)
	}
}

// TestSettings checks the connection settings that durability rests on.
func TestSettings(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	db := rawDB(t, dir)
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

// TestQueryPlans checks that the hot queries use their indexes, so that a
// schema change cannot silently turn them into table scans.
func TestQueryPlans(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	db := rawDB(t, dir)
	tests := []struct{ query, index string }{
		{`SELECT * FROM events WHERE namespace = 'n' AND type = 't' AND time >= 0 AND time < 9 AND subject = 's'`, "events_scan"},
		{`SELECT * FROM events WHERE namespace = 'n' AND time >= 0 ORDER BY time DESC, seq DESC LIMIT 10`, "events_time"},
		{`SELECT * FROM grants WHERE namespace = 'n' AND ledger_id = 'l' AND voided_at IS NULL AND effective_at >= 0
			ORDER BY effective_at, created_at, id`, "grants_ledger"},
		{`SELECT max(effective_at) FROM resets WHERE namespace = 'n' AND ledger_id = 'l'`, "resets_ledger"},
		{`SELECT * FROM resets WHERE namespace = 'n' AND ledger_id = 'l' ORDER BY effective_at`, "resets_ledger"},
		{`SELECT * FROM export_records WHERE namespace = 'n' AND destination = 'd' AND hour >= 0 AND hour < 9
			ORDER BY hour, subject, dimension LIMIT 10`, "export_records_hour"},
		{`SELECT * FROM export_records WHERE namespace = 'n' AND destination = 'd' AND status = 'pending'
			AND next_attempt_at <= 9`, "export_records_due"},
		// Every request's key, whatever id it sends, and the key listing.
		{`SELECT * FROM api_keys WHERE id = 'k'`, "PRIMARY KEY"},
		{`SELECT * FROM api_keys WHERE namespace = 'n' ORDER BY created_at, id`, "api_keys_namespace"},
	}
	for _, tt := range tests {
		rows, err := db.Query("EXPLAIN QUERY PLAN " + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, tt.index) || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%s\nplan: %s\nwant index %s and no sorting", tt.query, p, tt.index)
		}
	}
}

// rawDB opens the store's database file directly, for checks below the
// Store interface.
func rawDB(t testing.TB, dir string) *sql.DB {
	t.Helper()
	path := filepath.ToSlash(filepath.Join(dir, sqlite.FileName))
	db, err := sql.Open("sqlite3", "file:"+(&url.URL{Path: path}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkAppendEvents appends 1,000-event batches of new, random ids over
// 10,000 subjects: the write path of ingestion, one fsync per batch.
func BenchmarkAppendEvents(b *testing.B) {
	storetest.BenchmarkAppendEvents(b, open(b, b.TempDir()))
}

package postgres_test

import (
	"testing"
	"time"

	"github.com/odometerhq/odometer/postgres"
	"github.com/odometerhq/odometer/postgres/pgtest"
)

// TestExporterLock checks the exporter's advisory lock between two stores
// on one database, as between two nodes: one holds it at a time; a session
// that ends (a failover, an administrator) releases it; and the unlock of a
// session that ended neither fails nor leaves the pool a broken connection.
func TestExporterLock(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := t.Context()
	a := open(t, url, postgres.Options{MaxConns: 2})
	b := open(t, url, postgres.Options{MaxConns: 2})
	admin := rawConn(t, url)
	held := func() int {
		return queryInt(t, admin, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted`+thisDatabase)
	}

	unlockA, ok, err := a.TryLockExporter(ctx)
	if err != nil || !ok {
		t.Fatalf("a: TryLockExporter = %v, %v; want the lock", ok, err)
	}
	if _, ok, err := b.TryLockExporter(ctx); err != nil || ok {
		t.Fatalf("b: TryLockExporter while a holds the lock = %v, %v; want ok false", ok, err)
	}
	if n := held(); n != 1 {
		t.Errorf("%d advisory locks held, want 1", n)
	}
	// The lock keeps one of a's two connections; the other still serves.
	if _, err := a.ListExportDestinations(ctx, ""); err != nil {
		t.Errorf("a: ListExportDestinations while holding the lock: %v", err)
	}
	unlockA()
	if n := held(); n != 0 {
		t.Errorf("%d advisory locks held after unlock, want 0", n)
	}

	unlockB, ok, err := b.TryLockExporter(ctx)
	if err != nil || !ok {
		t.Fatalf("b: TryLockExporter after a's unlock = %v, %v; want the lock", ok, err)
	}
	if n := queryInt(t, admin, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted`+thisDatabase); n != 1 {
		t.Fatalf("terminated %d sessions holding the lock, want 1", n)
	}
	// The session ends shortly after the signal.
	var unlockA2 func()
	for deadline := time.Now().Add(10 * time.Second); unlockA2 == nil; {
		u, ok, err := a.TryLockExporter(ctx)
		if err != nil {
			t.Fatalf("a: TryLockExporter after b's session ended: %v", err)
		}
		if ok {
			unlockA2 = u
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a: the lock of b's terminated session was not released within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	unlockB() // its session is gone: nothing to release, nothing to return to the pool
	for i := range 3 {
		if _, err := b.ListExportDestinations(ctx, ""); err != nil {
			t.Errorf("b: query %d after unlocking a terminated session: %v", i, err)
		}
	}
	if _, ok, err := b.TryLockExporter(ctx); err != nil || ok {
		t.Errorf("b: TryLockExporter while a holds the lock again = %v, %v; want ok false", ok, err)
	}
	unlockA2()
	if n := held(); n != 0 {
		t.Errorf("%d advisory locks held at the end, want 0", n)
	}
}

// thisDatabase keeps, of pg_locks, the locks taken in the test's own
// database: other tests on the same server (migrations, exporters) hold
// advisory locks of their own, which these tests must neither count nor
// end.
const thisDatabase = ` AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`

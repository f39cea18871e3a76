package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/postgres"
	"github.com/odometerhq/odometer/postgres/pgtest"
)

// retryRecord is what the store logs for each retry.
const retryRecord = "failed; retrying"

// storedIDs returns the ids of namespace ns's stored events.
func storedIDs(t testing.TB, conn *pgx.Conn, ns string) map[string]bool {
	t.Helper()
	rows, _ := conn.Query(t.Context(), "SELECT id FROM events WHERE namespace = $1", ns)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// waitNoSessions waits until only conn is connected to its database, so
// that the others have ended and flushed their statistics.
func waitNoSessions(t testing.TB, conn *pgx.Conn) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		n := queryInt(t, conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still connected after the stores closed", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoNodes appends overlapping batches — the same identities in
// different orders, with repeats — from many goroutines through two
// stores with their own pools, as two nodes would. Every identity must be
// accepted exactly once across all calls and stored once, no call may
// fail, and no transaction may deadlock (the sorted insert prevents it;
// retries would only hide it).
func TestTwoNodes(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var logs logBuffer
	nodes := []*postgres.Store{
		open(t, url, postgres.Options{MaxConns: 8, Logger: logs.logger()}),
		open(t, url, postgres.Options{MaxConns: 8, Logger: logs.logger()}),
	}
	const (
		writers = 16
		rounds  = 6
		batch   = 400
		space   = 2000
	)
	var (
		mu       sync.Mutex
		touched  = map[string]bool{}
		accepted = map[string]int{}
		start    = make(chan struct{})
		wg       sync.WaitGroup
	)
	// Unsorted inserts make this workload deadlock again on nearly every
	// retry; a bound turns that into errors that say so.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for w := range writers {
		s := nodes[w%len(nodes)]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			<-start
			for r := range rounds {
				// A window of the id space, which other writers' windows
				// overlap, drawn in this writer's own order and with
				// repeats.
				off := rng.IntN(space - batch)
				b := make([]odometer.Event, batch)
				for i := range b {
					b[i] = event("ns", "src", fmt.Sprintf("id-%04d", off+rng.IntN(batch)))
				}
				out, err := s.AppendEvents(ctx, b)
				if err != nil {
					t.Errorf("writer %d round %d: %v", w, r, err)
					return
				}
				mu.Lock()
				for i, o := range out {
					touched[b[i].ID] = true
					if o == odometer.Accepted {
						accepted[b[i].ID]++
					}
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()

	for id := range touched {
		if n := accepted[id]; n != 1 {
			t.Errorf("identity %s accepted %d times, want once", id, n)
		}
	}
	conn := rawConn(t, url)
	stored := storedIDs(t, conn, "ns")
	if len(stored) != len(touched) {
		t.Errorf("%d identities stored, want the %d appended", len(stored), len(touched))
	}
	for id := range stored {
		if !touched[id] {
			t.Errorf("identity %s stored but never appended", id)
		}
	}
	if n := queryInt(t, conn, "SELECT count(*) FROM events"); n != len(stored) {
		t.Errorf("%d rows for %d identities", n, len(stored))
	}

	for _, s := range nodes {
		s.Close()
	}
	waitNoSessions(t, conn)
	if n := queryInt(t, conn, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"); n != 0 {
		t.Errorf("%d deadlocks between the appends, want none", n)
	}
	if n := logs.count(retryRecord); n != 0 {
		t.Errorf("%d appends retried without faults, want none; log:\n%s", n, logs.buf.String())
	}
}

// TestTerminatedBackends kills the store's sessions again and again
// (pg_terminate_backend, as an administrator or a failover would) while
// goroutines append overlapping batches. Every call must return outcomes
// or an EUNAVAILABLE error; whatever was acknowledged must be stored, and
// nothing that was not appended; the store must recover by itself; and
// re-appending everything afterwards must find exactly the stored events
// as duplicates.
func TestTerminatedBackends(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var logs logBuffer
	s := open(t, url, postgres.Options{MaxConns: 8, Logger: logs.logger()})
	killer := rawConn(t, url)
	const (
		writers  = 6
		batch    = 50
		space    = 3000
		faultFor = 3 * time.Second
	)
	var (
		mu        sync.Mutex
		attempted = map[string]bool{}
		acked     = map[string]bool{} // in a call that returned outcomes: stored
		accepted  = map[string]int{}
		calls     int
		failures  = map[string]int{} // by error code
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for {
				select {
				case <-stop:
					return
				default:
				}
				b := make([]odometer.Event, batch)
				for i := range b {
					b[i] = event("ns", "src", fmt.Sprintf("id-%04d", rng.IntN(space)))
				}
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				out, err := s.AppendEvents(ctx, b)
				cancel()
				mu.Lock()
				calls++
				for _, e := range b {
					attempted[e.ID] = true
				}
				switch {
				case err != nil:
					code := odometer.ErrorCode(err)
					failures[code]++
					if code != odometer.EUNAVAILABLE {
						t.Errorf("AppendEvents during faults: %v (code %s), want an EUNAVAILABLE error", err, code)
					}
				case len(out) != len(b):
					t.Errorf("AppendEvents returned %d outcomes for %d events", len(out), len(b))
				default:
					for i, o := range out {
						acked[b[i].ID] = true
						if o == odometer.Accepted {
							accepted[b[i].ID]++
						}
					}
				}
				mu.Unlock()
			}
		})
	}

	killed := 0
	for deadline := time.Now().Add(faultFor); time.Now().Before(deadline); {
		killed += queryInt(t, killer, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
		time.Sleep(time.Duration(5+rand.IntN(30)) * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	retries := logs.count(retryRecord)
	t.Logf("%d sessions terminated; %d calls, %d failed %v; %d retries", killed, calls, failures[odometer.EUNAVAILABLE], failures, retries)
	if killed == 0 || retries == 0 {
		t.Fatalf("%d sessions terminated and %d retries: the faults did not hit the appends", killed, retries)
	}

	// The pool recovers without reopening the store.
	var fresh []odometer.Event
	for i := range batch {
		fresh = append(fresh, event("ns", "src", fmt.Sprint("fresh-", i)))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	out, err := s.AppendEvents(ctx, fresh)
	if err != nil {
		t.Fatalf("AppendEvents after the faults: %v", err)
	}
	if slices.ContainsFunc(out, func(o odometer.Outcome) bool { return o != odometer.Accepted }) {
		t.Fatalf("AppendEvents of new events after the faults: %v, want all accepted", out)
	}

	stored := storedIDs(t, killer, "ns")
	for id := range acked {
		if !stored[id] {
			t.Errorf("identity %s was acknowledged but is not stored", id)
		}
	}
	for id := range stored {
		if !attempted[id] && !strings.HasPrefix(id, "fresh-") {
			t.Errorf("identity %s is stored but was never appended", id)
		}
	}
	for id, n := range accepted {
		if n != 1 {
			t.Errorf("identity %s accepted %d times", id, n)
		}
	}

	// Re-appending everything finds exactly the stored events.
	all := slices.Sorted(func(yield func(string) bool) {
		for id := range attempted {
			if !yield(id) {
				return
			}
		}
	})
	for chunk := range slices.Chunk(all, 500) {
		b := make([]odometer.Event, len(chunk))
		for i, id := range chunk {
			b[i] = event("ns", "src", id)
		}
		out, err := s.AppendEvents(t.Context(), b)
		if err != nil {
			t.Fatalf("re-append: %v", err)
		}
		for i, o := range out {
			want := odometer.Accepted
			if stored[chunk[i]] {
				want = odometer.Duplicate
			}
			if o != want {
				t.Errorf("re-append of %s (stored: %v): %v, want %v", chunk[i], stored[chunk[i]], o, want)
			}
		}
	}
}

// TestCommitFailures injects failures into the transaction of an append
// with triggers, and checks which the store retries: a failure that the
// server answered with an ERROR, before or at COMMIT, rolled the
// transaction back and is retried if transient; a connection lost during
// COMMIT leaves the outcome unknown and must be reported, not retried.
func TestCommitFailures(t *testing.T) {
	pgtest.Require(t)
	atCommit, beforeCommit, sleepAtCommit := failTriggers("events")
	tests := []struct {
		name        string
		trigger     string
		kill        bool // terminate the session while it sleeps in COMMIT
		wantCode    string
		wantMessage string
		wantRetries int
	}{
		{name: "deadlock before commit", trigger: raiseSQL("deadlock_detected", true) + beforeCommit, wantRetries: 1},
		{name: "serialization failure at commit", trigger: raiseSQL("serialization_failure", true) + atCommit, wantRetries: 1},
		{name: "other error at commit", trigger: raiseSQL("check_violation", false) + atCommit,
			wantCode: odometer.EINTERNAL, wantMessage: "injected"},
		{name: "connection lost during commit", trigger: sleepAtCommit, kill: true,
			wantCode: odometer.EUNAVAILABLE, wantMessage: "did not confirm the commit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := pgtest.NewDatabase(t)
			var logs logBuffer
			s := open(t, url, postgres.Options{Logger: logs.logger()})
			conn := rawConn(t, url)
			if _, err := conn.Exec(t.Context(), tt.trigger); err != nil {
				t.Fatalf("trigger: %v", err)
			}
			killerDone := killSleeper(t, url, tt.kill)
			e := event("ns", "src", "e1")
			start := time.Now()
			out, err := s.AppendEvents(t.Context(), []odometer.Event{e})
			<-killerDone
			if code := odometer.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("AppendEvents = %v, %v (code %q); want code %q", out, err, code, tt.wantCode)
			}
			if err != nil && !strings.Contains(odometer.ErrorMessage(err)+err.Error(), tt.wantMessage) {
				t.Errorf("error %q does not say %q", err, tt.wantMessage)
			}
			if tt.kill && time.Since(start) > 30*time.Second {
				t.Errorf("AppendEvents took %s: it waited for the sleep instead of the lost connection", time.Since(start))
			}
			if n := logs.count(retryRecord); n != tt.wantRetries {
				t.Errorf("%d retries, want %d; log:\n%s", n, tt.wantRetries, logs.buf.String())
			}
			wantStored := tt.wantCode == ""
			if stored := storedIDs(t, conn, "ns"); stored["e1"] != wantStored {
				t.Errorf("event stored: %v, want %v", stored["e1"], wantStored)
			}
			if !wantStored {
				// Whatever failed left nothing behind: the event is new.
				if _, err := conn.Exec(t.Context(), "DROP TRIGGER fail ON events"); err != nil {
					t.Fatal(err)
				}
				if out, err := s.AppendEvents(t.Context(), []odometer.Event{e}); err != nil || out[0] != odometer.Accepted {
					t.Errorf("append after the failure = %v, %v; want accepted", out, err)
				}
			}
		})
	}
}

// TestOutage cuts the network between the store and the server (through a
// proxy): calls fail with EUNAVAILABLE once their context ends, an append
// that outlasts the outage succeeds, and the store recovers by itself.
func TestOutage(t *testing.T) {
	p, url := newProxy(t, pgtest.NewDatabase(t))
	var logs logBuffer
	s := open(t, url, postgres.Options{Logger: logs.logger()})
	if _, err := s.AppendEvents(t.Context(), []odometer.Event{event("ns", "src", "before")}); err != nil {
		t.Fatal(err)
	}

	p.cut()
	within := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		t.Cleanup(cancel)
		return ctx
	}
	wantUnavailable := func(what string, err error) {
		t.Helper()
		if code := odometer.ErrorCode(err); code != odometer.EUNAVAILABLE {
			t.Errorf("%s during the outage: %v (code %q), want EUNAVAILABLE", what, err, code)
		}
	}
	wantUnavailable("Ping", s.Ping(within(time.Second)))
	_, err := s.AppendEvents(within(500*time.Millisecond), []odometer.Event{event("ns", "src", "during")})
	wantUnavailable("AppendEvents", err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("AppendEvents during the outage: %v; want it to wrap the context's error", err)
	}
	_, err = s.ListEvents(within(300*time.Millisecond), odometer.EventFilter{Namespace: "ns", Limit: 10})
	wantUnavailable("ListEvents", err)
	_, err = s.FindMeter(within(300*time.Millisecond), "ns", "m")
	wantUnavailable("FindMeter", err)

	type result struct {
		out []odometer.Outcome
		err error
	}
	done := make(chan result)
	go func() {
		out, err := s.AppendEvents(within(30*time.Second), []odometer.Event{event("ns", "src", "across")})
		done <- result{out, err}
	}()
	time.Sleep(time.Second)
	p.restore()
	if r := <-done; r.err != nil || r.out[0] != odometer.Accepted {
		t.Fatalf("AppendEvents across the outage = %v, %v; want accepted", r.out, r.err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping after the outage: %v", err)
	}
	got, err := s.ListEvents(t.Context(), odometer.EventFilter{Namespace: "ns", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if !slices.Equal(ids, []string{"across", "before"}) {
		t.Errorf("stored %v, want [across before]: an append that failed before its commit stored nothing", ids)
	}
	if logs.count(retryRecord) == 0 {
		t.Error("no retry logged during the outage")
	}
}

// killSleeper, when kill is set, terminates the first session of url's
// database that waits in pg_sleep (a trigger's stand-in for a slow COMMIT),
// from a connection of its own. The channel is closed when it is done.
func killSleeper(t *testing.T, url string, kill bool) <-chan struct{} {
	done := make(chan struct{})
	if !kill {
		close(done)
		return done
	}
	killer := rawConn(t, url)
	go func() {
		defer close(done)
		for t.Context().Err() == nil {
			var n int
			err := killer.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event = 'PgSleep'`).Scan(&n)
			if err != nil || n > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return done
}

// raiseSQL defines fail(), a trigger function that raises the given
// condition, on its first call only if once (a sequence counts calls even
// in aborted transactions).
func raiseSQL(condition string, once bool) string {
	test := "true"
	if once {
		test = "nextval('calls') = 1"
	}
	return `CREATE SEQUENCE calls;
		CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF ` + test + ` THEN RAISE EXCEPTION 'injected' USING ERRCODE = '` + condition + `'; END IF;
			RETURN NULL;
		END $$;`
}

// failTriggers returns SQL that calls fail() after each insert into table:
// deferred to COMMIT, at once, or (sleepAtCommit, which defines fail() too)
// sleeping in COMMIT for a minute, for killSleeper to cut short.
func failTriggers(table string) (atCommit, beforeCommit, sleepAtCommit string) {
	atCommit = ` CREATE CONSTRAINT TRIGGER fail AFTER INSERT ON ` + table + ` DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail()`
	beforeCommit = ` CREATE TRIGGER fail AFTER INSERT ON ` + table + ` FOR EACH ROW EXECUTE FUNCTION fail()`
	sleepAtCommit = `CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$;` + atCommit
	return atCommit, beforeCommit, sleepAtCommit
}

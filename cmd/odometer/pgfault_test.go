package main

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/odometerhq/odometer/postgres/pgtest"
)

// ownPostgres is a PostgreSQL server that the test starts (and restarts) by
// itself with scripts/postgres.sh, because restarting the shared test server
// would disturb the other tests.
type ownPostgres struct {
	dir string
	url string
}

func (p *ownPostgres) script(t *testing.T, cmd string) string {
	t.Helper()
	out, err := exec.Command("../../scripts/postgres.sh", cmd, p.dir).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("scripts/postgres.sh %s: %v\n%s", cmd, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// startOwnPostgres starts a throwaway server. It needs the PostgreSQL
// binaries, which ODOMETER_TEST_POSTGRES promises.
func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	pgtest.Require(t)
	// Not t.TempDir: the server may run as the postgres user, who cannot
	// enter the test's private temporary directories.
	dir, err := os.MkdirTemp("", "odometer-pgfault-")
	if err != nil {
		t.Fatal(err)
	}
	p := &ownPostgres{dir: dir}
	t.Cleanup(func() {
		exec.Command("../../scripts/postgres.sh", "stop", dir).Run()
		os.RemoveAll(dir)
	})
	p.url = p.script(t, "start")
	return p
}

// readyStatus returns a node's /readyz status code, or 0 if it did not
// answer.
func readyStatus(client *http.Client, url string) int {
	resp, err := client.Get(url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady waits until every node's /readyz answers want.
func waitReady(t *testing.T, client *http.Client, nodes []*serverProcess, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, n := range nodes {
		for {
			got := readyStatus(client, n.url)
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz = %d after %s, want %d; log:\n%s", n.url, got, within, want, n.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestPostgresFaults ingests from four clients into two nodes while the
// test kills the nodes' PostgreSQL backends (pg_terminate_backend) and then
// restarts PostgreSQL itself. Clients resend what was not acknowledged, as
// real clients do. The nodes must never acknowledge an event that was not
// committed, must report not-ready while the database is down, and must
// recover without a restart; at the end the usage equals the exact sum of
// all events, each counted once.
func TestPostgresFaults(t *testing.T) {
	t.Parallel()
	pg := startOwnPostgres(t)
	config := unitsConfig(t)
	nodes := []*serverProcess{
		startProcess(t, t.TempDir(), "--postgres", pg.url, "--config", config, "--postgres-max-conns", "4"),
		startProcess(t, t.TempDir(), "--postgres", pg.url, "--config", config, "--postgres-max-conns", "4"),
	}

	set := newEventSet("fault", 10000, 25, rand.New(rand.NewPCG(3, 4)))
	const batchSize = 50
	var batches [][]unitEvent
	for i := 0; i < len(set.events); i += batchSize {
		batches = append(batches, set.events[i:min(i+batchSize, len(set.events))])
	}
	client := &http.Client{Timeout: 15 * time.Second}

	var acked, refused, accepted atomic.Int64
	// The outage is [down, up]; overlapping counts the requests in flight
	// during it, which either failed or waited for the database.
	var down, up atomic.Int64
	var overlapping atomic.Int64
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	work := make(chan int)
	var wg sync.WaitGroup
	var unsent atomic.Int64
	for c := range 4 {
		wg.Go(func() {
			for b := range work {
				body := batchBody(batches[b])
				for try := 0; ; try++ {
					if ctx.Err() != nil {
						unsent.Add(1)
						break
					}
					// Resends go to the other node, as a load balancer would.
					start := time.Now().UnixNano()
					code, res, err := postBatch(client, nodes[(b+try+c)%len(nodes)].url, body)
					if d, u := down.Load(), up.Load(); d != 0 && start < u && time.Now().UnixNano() > d {
						overlapping.Add(1)
					}
					if err == nil && code == http.StatusOK {
						acked.Add(1)
						accepted.Add(int64(res.Accepted))
						break
					}
					refused.Add(1)
					time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
				}
			}
		})
	}
	feed := make(chan struct{})
	go func() {
		defer close(feed)
		for b := range batches {
			// Pace the load so that the faults below hit it mid-stream.
			time.Sleep(40 * time.Millisecond)
			select {
			case work <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	waitAcked := func(n int64) {
		t.Helper()
		for acked.Load() < n {
			if ctx.Err() != nil {
				t.Fatalf("only %d batches acknowledged", acked.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// Fault 1: kill every backend the nodes hold, several times.
	waitAcked(20)
	conn, err := pgx.Connect(ctx, pg.url)
	if err != nil {
		t.Fatal(err)
	}
	var killed int
	for range 5 {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n)
		if err != nil {
			t.Fatalf("pg_terminate_backend: %v", err)
		}
		killed += n
		time.Sleep(150 * time.Millisecond)
	}
	conn.Close(ctx)
	if killed == 0 {
		t.Fatal("no backend was terminated: the nodes held no connections")
	}

	// Fault 2: stop PostgreSQL, check that the nodes say they are not
	// ready, start it again and check that they recover by themselves.
	waitAcked(acked.Load() + 20)
	up.Store(math.MaxInt64)
	down.Store(time.Now().UnixNano())
	pg.script(t, "stop")
	waitReady(t, client, nodes, http.StatusServiceUnavailable, 15*time.Second)
	time.Sleep(time.Second)
	pg.script(t, "start")
	up.Store(time.Now().UnixNano())
	waitReady(t, client, nodes, http.StatusOK, 30*time.Second)

	<-feed
	close(work)
	wg.Wait()
	if unsent.Load() > 0 || int(acked.Load()) != len(batches) {
		t.Fatalf("%d of %d batches acknowledged (%d given up)", acked.Load(), len(batches), unsent.Load())
	}
	if overlapping.Load() == 0 {
		t.Error("no request was in flight while PostgreSQL was down: the outage did not hit the load")
	}
	if accepted.Load() > int64(len(set.events)) {
		t.Errorf("%d events accepted, more than the %d distinct ones", accepted.Load(), len(set.events))
	}
	for _, n := range nodes {
		checkUsage(t, client, n.url, set)
		if n.cmd.ProcessState != nil {
			t.Errorf("node %s exited: %v", n.url, n.cmd.ProcessState)
		}
	}
	t.Logf("%d backends terminated; %d requests in flight during the outage; %d refused or failed and resent; %d of %d events reported accepted (the rest as duplicates of commits whose answer was lost)",
		killed, overlapping.Load(), refused.Load(), accepted.Load(), len(set.events))
}

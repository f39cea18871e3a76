package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/postgres/pgtest"
)

// The tests in this file run real odometer processes on a real PostgreSQL
// server (ODOMETER_TEST_POSTGRES; pgtest says how to set it).

// unitsConfig writes a config file that declares the meter the PostgreSQL
// tests query: the sum of $.v per subject.
func unitsConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "odometer.yaml")
	const cfg = "meters:\n  - slug: units\n    eventType: unit\n    aggregation: SUM\n    valueProperty: $.v\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// unitEvent is one event of the units meter.
type unitEvent struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Value   string `json:"-"`
}

// eventSet is a set of distinct events with known values.
type eventSet struct {
	events []unitEvent
	total  odometer.Decimal
	bySubj map[string]odometer.Decimal
}

// newEventSet returns n distinct events over subjects subjects, with
// decimal values of up to three fraction digits.
func newEventSet(prefix string, n, subjects int, rng *rand.Rand) *eventSet {
	s := &eventSet{bySubj: map[string]odometer.Decimal{}}
	for i := range n {
		e := unitEvent{
			ID:      fmt.Sprintf("%s-%06d", prefix, i),
			Subject: fmt.Sprintf("customer-%02d", rng.IntN(subjects)),
			Value:   fmt.Sprintf("%d.%03d", rng.IntN(1000), rng.IntN(1000)),
		}
		d := odometer.MustDecimal(e.Value)
		s.events = append(s.events, e)
		s.total = s.total.Add(d)
		s.bySubj[e.Subject] = s.bySubj[e.Subject].Add(d)
	}
	return s
}

// body encodes events as a CloudEvents batch.
func batchBody(events []unitEvent) []byte {
	out := make([]map[string]any, len(events))
	for i, e := range events {
		out[i] = map[string]any{"specversion": "1.0", "id": e.ID, "source": "multinode", "type": "unit",
			"subject": e.Subject, "time": "2025-06-01T12:00:00Z", "data": map[string]any{"v": json.Number(e.Value)}}
	}
	b, _ := json.Marshal(out)
	return b
}

// ingestResult is the body of a 200 from POST /api/v1/events.
type ingestResult struct {
	Accepted, Duplicate int
}

// postBatch sends a batch and returns the status and, for a 200, the counts.
func postBatch(client *http.Client, url string, body []byte) (int, ingestResult, error) {
	var res ingestResult
	req, err := http.NewRequest("POST", url+"/api/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, res, err
	}
	req.Header.Set("Content-Type", "application/cloudevents-batch+json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, res, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, res, err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &res); err != nil {
			return resp.StatusCode, res, fmt.Errorf("decode %s: %w", b, err)
		}
	} else {
		err = fmt.Errorf("%s: %s", resp.Status, b)
	}
	return resp.StatusCode, res, err
}

// usageBySubject queries the units meter grouped by subject.
func usageBySubject(client *http.Client, url string) (map[string]odometer.Decimal, error) {
	resp, err := client.Get(url + "/api/v1/meters/units/query?groupBy=subject")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("query: %s: %s", resp.Status, b)
	}
	var res odometer.UsageResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, err
	}
	out := map[string]odometer.Decimal{}
	for _, r := range res.Data {
		if r.Subject == nil {
			return nil, fmt.Errorf("row without subject: %+v", r)
		}
		out[*r.Subject] = out[*r.Subject].Add(r.Value)
	}
	return out, nil
}

func sumOf(m map[string]odometer.Decimal) odometer.Decimal {
	var s odometer.Decimal
	for _, v := range m {
		s = s.Add(v)
	}
	return s
}

// checkUsage asserts that a node's usage equals the event set's, subject by
// subject, to the last digit.
func checkUsage(t *testing.T, client *http.Client, url string, want *eventSet) {
	t.Helper()
	got, err := usageBySubject(client, url)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	if len(got) != len(want.bySubj) {
		t.Errorf("%s: usage for %d subjects, want %d", url, len(got), len(want.bySubj))
	}
	for subj, v := range want.bySubj {
		if got[subj].Cmp(v) != 0 {
			t.Errorf("%s: usage of %s = %s, want %s", url, subj, got[subj], v)
		}
	}
	if s := sumOf(got); s.Cmp(want.total) != 0 {
		t.Errorf("%s: total usage %s, want %s", url, s, want.total)
	}
}

// TestMultiNodePostgres runs three odometer processes on one PostgreSQL
// database, started at the same moment (so their migrations race). Every
// batch is sent to two nodes at once, in a different order each time, and
// some events a third time as single-event requests, while a reader
// queries all three nodes. Every valid request must succeed (deadlocks and
// serialization failures are Odometer's to retry), the nodes together must
// report each event accepted exactly once, and every node must answer the
// exact totals.
func TestMultiNodePostgres(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)
	config := unitsConfig(t)

	const nodeCount = 3
	nodes := make([]*serverProcess, nodeCount)
	errs := make([]error, nodeCount)
	var wg sync.WaitGroup
	for i := range nodes {
		dir := t.TempDir()
		wg.Go(func() { nodes[i], errs[i] = spawnServer(t, dir, "--postgres", dbURL, "--config", config) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	set := newEventSet("mn", 12000, 40, rng)
	const batchSize = 200
	var batches [][]unitEvent
	for i := 0; i < len(set.events); i += batchSize {
		batches = append(batches, set.events[i:min(i+batchSize, len(set.events))])
	}
	client := &http.Client{Timeout: 60 * time.Second}

	var accepted, duplicates atomic.Int64
	var failures []string
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	send := func(node int, events []unitEvent) {
		code, res, err := postBatch(client, nodes[node].url, batchBody(events))
		if err != nil || code != http.StatusOK {
			fail("node %d: %d %v", node, code, err)
			return
		}
		accepted.Add(int64(res.Accepted))
		duplicates.Add(int64(res.Duplicate))
	}

	// The reader: answers from any node never go down, and never exceed the
	// final totals.
	stopReading := make(chan struct{})
	readerDone := make(chan int)
	go func() {
		reads := 0
		var last odometer.Decimal
		for i := 0; ; i++ {
			select {
			case <-stopReading:
				readerDone <- reads
				return
			default:
			}
			got, err := usageBySubject(client, nodes[i%nodeCount].url)
			if err != nil {
				fail("reader: %v", err)
				continue
			}
			s := sumOf(got)
			if s.Cmp(last) < 0 || s.Cmp(set.total) > 0 {
				fail("reader: node %d total %s after %s (final %s)", i%nodeCount, s, last, set.total)
			}
			last = s
			reads++
		}
	}()

	work := make(chan int)
	for range 6 {
		wg.Go(func() {
			for b := range work {
				events := batches[b]
				var inner sync.WaitGroup
				for k := range 2 {
					// Each node gets its own shuffle of the batch, so the two
					// transactions meet the same ids in different orders.
					shuffled := append([]unitEvent(nil), events...)
					rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
					inner.Go(func() { send((b+k)%nodeCount, shuffled) })
				}
				// Every 20th event also arrives alone at the third node.
				for i := 0; i < len(events); i += 20 {
					inner.Go(func() { send((b+2)%nodeCount, events[i:i+1]) })
				}
				inner.Wait()
			}
		})
	}
	for b := range batches {
		work <- b
	}
	close(work)
	wg.Wait()
	close(stopReading)
	reads := <-readerDone

	for _, f := range failures[:min(len(failures), 10)] {
		t.Error(f)
	}
	if len(failures) > 0 {
		t.Fatalf("%d requests failed", len(failures))
	}
	if got, want := accepted.Load(), int64(len(set.events)); got != want {
		t.Errorf("nodes accepted %d events in all, want each of the %d exactly once (duplicates %d)", got, want, duplicates.Load())
	}
	for _, n := range nodes {
		checkUsage(t, client, n.url, set)
	}
	t.Logf("%d events, %d accepted, %d duplicates, %d concurrent reads", len(set.events), accepted.Load(), duplicates.Load(), reads)
}

// TestMigrateCommand runs odometer migrate twice on a new database, then
// serve with --no-migrate on it.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t)

	// Not migrated yet: serve --no-migrate refuses to start.
	_, _, err := runCmdEnv(t, map[string]string{"ODOMETER_POSTGRES": dbURL}, "", "serve", "--addr", "127.0.0.1:0", "--no-migrate")
	if err == nil || !strings.Contains(err.Error(), "odometer migrate") {
		t.Fatalf("serve --no-migrate on an empty database: %v; want an error that says to run odometer migrate", err)
	}

	out, _, err := runCmd(t, "", "migrate", "--postgres", dbURL)
	if err != nil || !strings.Contains(out, "applied 0001_init") {
		t.Fatalf("first migrate: %q, %v", out, err)
	}
	out, _, err = runCmdEnv(t, map[string]string{"ODOMETER_POSTGRES": dbURL}, "", "migrate")
	if err != nil || !strings.Contains(out, "nothing to apply") {
		t.Fatalf("second migrate: %q, %v", out, err)
	}
	if _, _, err := runCmd(t, "", "migrate"); err == nil || !strings.Contains(err.Error(), "--postgres") {
		t.Fatalf("migrate without a database: %v", err)
	}

	url, log, stop := startServe(t, "--postgres", dbURL, "--no-migrate")
	if !strings.Contains(log.String(), "store=\"postgres ") {
		t.Errorf("log does not name the store: %s", log)
	}
	resp, err := http.Get(url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db?sslmode=disable":   "postgres://u:xxxxx@h:5432/db?sslmode=disable",
		"postgres://u@h/db":                               "postgres://u@h/db",
		"postgres://h/db?password=secret&sslmode=require": "postgres://h/db?password=xxxxx&sslmode=require",
		"host=h user=u password=secret dbname=db":         "host=h user=u password=xxxxx dbname=db",
		"host=h password='se cret' dbname=db":             "host=h password=xxxxx dbname=db",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(redactURL(in), "secret") {
			t.Errorf("redactURL(%q) leaks the password", in)
		}
	}
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// buildBinary compiles odometer once per test binary run.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "odometer-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "odometer")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// serverProcess is odometer serve running as a real child process.
type serverProcess struct {
	cmd     *exec.Cmd
	url     string
	log     *syncBuffer
	logDone chan struct{} // closed when stderr reached EOF
}

// wait waits for the process to exit. Its stderr must be read to the end
// first: exec.Cmd.Wait closes the pipe.
func (p *serverProcess) wait() error {
	<-p.logDone
	return p.cmd.Wait()
}

func startProcess(t *testing.T, dataDir string, args ...string) *serverProcess {
	t.Helper()
	p, err := spawnServer(t, dataDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// spawnServer starts odometer serve and waits until it listens. Unlike
// startProcess it may be called from any goroutine. The process is killed at
// the end of the test.
func spawnServer(t *testing.T, dataDir string, args ...string) (*serverProcess, error) {
	bin, err := buildOnce()
	if err != nil {
		return nil, err
	}
	p := &serverProcess{log: &syncBuffer{}, logDone: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dataDir}, args...)...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.wait() })
	found := make(chan string, 1)
	go func() {
		defer close(p.logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.log.Write([]byte(line + "\n"))
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case addr := <-found:
		p.url = "http://" + addr
		return p, nil
	case <-p.logDone:
		return nil, fmt.Errorf("server exited before listening; log:\n%s", p.log)
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("server did not start; log:\n%s", p.log)
	}
}

// TestCrashDuringIngestion kills the server with SIGKILL while eight clients
// ingest concurrently, restarts it on the same data directory, and checks
// that every acknowledged event is stored exactly once. The clients then
// retry what was not acknowledged, as a real client would, and the usage
// total must equal the sum of all events, each counted once.
func TestCrashDuringIngestion(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	config := filepath.Join(t.TempDir(), "meters.yaml")
	if err := os.WriteFile(config, []byte("meters:\n  - slug: units\n    eventType: unit\n    aggregation: SUM\n    valueProperty: $.v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, dataDir, "--config", config)

	const clients, batchSize = 8, 50
	type batch struct {
		body []byte
		ids  []string
		sum  odometer.Decimal
	}
	makeBatch := func(c, n int) batch {
		var b batch
		var evs []map[string]any
		for i := range batchSize {
			id := fmt.Sprintf("c%d-b%d-e%d", c, n, i)
			v := fmt.Sprintf("%d.%02d", i%7, (c+n+i)%100)
			b.ids = append(b.ids, id)
			b.sum = b.sum.Add(odometer.MustDecimal(v))
			evs = append(evs, map[string]any{"specversion": "1.0", "id": id, "source": "crash", "type": "unit",
				"subject": fmt.Sprint("cust-", i%10), "time": "2024-05-01T00:00:00Z", "data": map[string]any{"v": json.Number(v)}})
		}
		b.body, _ = json.Marshal(evs)
		return b
	}
	post := func(url string, body []byte) (int, error) {
		req, _ := http.NewRequest("POST", url+"/api/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	var mu sync.Mutex
	var acked, unacked []batch
	// Clients post until the server is gone: each ends with a batch the
	// kill cut off, or one posted to the dead server, both unacknowledged.
	// (Stopping them on a signal instead could end every client between
	// two batches when one group commit had just answered them all.)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				b := makeBatch(c, n)
				code, err := post(p.url, b.body)
				mu.Lock()
				if err == nil && code == http.StatusOK {
					acked = append(acked, b)
				} else {
					unacked = append(unacked, b)
				}
				mu.Unlock()
				if err != nil {
					return // the server is gone
				}
			}
		}()
	}
	// Let load build up, then kill the server mid-stream.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait()
	wg.Wait()
	if len(acked) == 0 || len(unacked) == 0 {
		t.Fatalf("want acknowledged and cut-off batches, got %d and %d", len(acked), len(unacked))
	}
	t.Logf("killed with %d batches acknowledged and %d cut off", len(acked), len(unacked))

	// Restart on the same directory and retry every unacknowledged batch.
	p = startProcess(t, dataDir, "--config", config)
	total := odometer.Decimal{}
	want := map[string]bool{}
	for _, b := range append(acked, unacked...) {
		total = total.Add(b.sum)
		for _, id := range b.ids {
			want[id] = true
		}
	}
	for _, b := range unacked {
		if code, err := post(p.url, b.body); err != nil || code != http.StatusOK {
			t.Fatalf("retry after restart: %d %v", code, err)
		}
	}
	// Every acknowledged batch resent is entirely duplicate.
	for _, b := range acked[:min(len(acked), 20)] {
		req, _ := http.NewRequest("POST", p.url+"/api/v1/events", bytes.NewReader(b.body))
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var res struct{ Accepted, Duplicate int }
		json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if res.Accepted != 0 || res.Duplicate != batchSize {
			t.Fatalf("acknowledged batch resent after crash: accepted=%d duplicate=%d", res.Accepted, res.Duplicate)
		}
	}

	resp, err := http.Get(p.url + "/api/v1/meters/units/query")
	if err != nil {
		t.Fatal(err)
	}
	var usage odometer.UsageResult
	if err := json.NewDecoder(resp.Body).Decode(&usage); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(usage.Data) != 1 || usage.Data[0].Value.Cmp(total) != 0 {
		t.Fatalf("usage after crash and retries = %+v, want %s", usage.Data, total)
	}

	// Stop the server and count every stored identity directly.
	// The recovered server also shuts down cleanly: SIGTERM ends it with
	// exit status 0 after it closed the event log.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(); err != nil {
		t.Fatalf("restarted server did not shut down cleanly: %v; log:\n%s", err, p.log)
	}
	s, err := openStore(t.Context(), dataDir, eventLogPebble)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stored, err := s.ListEvents(t.Context(), odometer.EventFilter{Namespace: "default", Limit: len(want) + 1000})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range stored {
		seen[e.ID]++
	}
	for _, b := range acked {
		for _, id := range b.ids {
			if seen[id] != 1 {
				t.Fatalf("acknowledged event %s stored %d times", id, seen[id])
			}
		}
	}
	if len(stored) != len(want) {
		t.Fatalf("stored %d events, want %d distinct", len(stored), len(want))
	}
}

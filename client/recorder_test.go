package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/api/apitest"
	"github.com/odometerhq/odometer/client"
)

// outageServer is the real API behind a switch: while down, it drops
// connections, answers 503 (as a restarting server or its proxy does), or
// handles a request and then loses the answer.
type outageServer struct {
	*client.Client
	url  string
	down atomic.Bool
	// hard makes down mean down: no request reaches the API.
	hard atomic.Bool
}

func newOutageServer(t *testing.T) *outageServer {
	t.Helper()
	h, stop := apitest.Handler(t, t.TempDir(), api.Limits{})
	t.Cleanup(stop)
	s := &outageServer{}
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			k := n.Add(1) % 3
			if k == 1 && s.hard.Load() {
				k = 0
			}
			switch k {
			case 1:
				// The request is handled (events committed) but the answer
				// is lost.
				h.ServeHTTP(httptest.NewRecorder(), r)
				if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
					conn.Close()
				}
				return
			case 2:
				w.Header().Set("Retry-After", "0")
				http.Error(w, "restarting", http.StatusServiceUnavailable)
				return
			}
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.Client = client.New(srv.URL, client.WithHTTPClient(srv.Client()))
	s.url = srv.URL
	return s
}

func newRecorder(t *testing.T, c *client.Client, dir string) *client.Recorder {
	t.Helper()
	r, err := client.NewRecorder(c, client.RecorderConfig{Dir: dir, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// total returns the tokens meter's sum for all of time and the number of
// stored events.
func total(t *testing.T, c *client.Client) (string, int) {
	t.Helper()
	res, err := c.QueryMeter(t.Context(), "tokens", client.Query{})
	if err != nil {
		t.Fatal(err)
	}
	sum := "0"
	if len(res.Data) == 1 {
		sum = res.Data[0].Value.String()
	}
	count, err := c.QueryMeter(t.Context(), "calls", client.Query{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if len(count.Data) == 1 {
		fmt.Sscan(count.Data[0].Value.String(), &n)
	}
	return sum, n
}

func setupMeters(t *testing.T, c *client.Client) {
	t.Helper()
	createTokensMeter(t, c)
	if _, err := c.CreateMeter(t.Context(), client.MeterCreate{Slug: "calls", EventType: "prompt", Aggregation: "COUNT"}); err != nil {
		t.Fatal(err)
	}
}

// recordMany records n events of 0.1 tokens from 8 goroutines, one or a few
// per call.
func recordMany(t *testing.T, r *client.Recorder, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; {
				k := min(1+i%3, (n-i+7)/8)
				var batch []client.Event
				for range k {
					if i >= n {
						break
					}
					batch = append(batch, client.Event{Type: "prompt", Subject: "acme", Data: json.RawMessage(`{"tokens":"0.1","model":"m"}`)})
					i += 8
				}
				if err := r.Record(t.Context(), batch...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Everything recorded arrives once, also when the server is down for a
// while and when the application restarts before it is back.
func TestRecorderThroughOutagesAndRestarts(t *testing.T) {
	t.Parallel()
	s := newOutageServer(t)
	setupMeters(t, s.Client)
	dir := t.TempDir()

	r := newRecorder(t, s.Client, dir)
	recordMany(t, r, 300)
	s.down.Store(true)
	recordMany(t, r, 200)
	// The application stops while the server is down: Close gives up at
	// its deadline and the rest stays in the spool.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	err := r.Close(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close during the outage: %v, want the deadline", err)
	}

	r = newRecorder(t, s.Client, dir)
	recordMany(t, r, 100)
	time.Sleep(50 * time.Millisecond) // a few failed attempts
	s.down.Store(false)
	recordMany(t, r, 100)
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if sum, n := total(t, s.Client); sum != "70" || n != 700 {
		t.Fatalf("the server counted %s tokens in %d events; want 70 in 700", sum, n)
	}
	if err := r.Record(t.Context(), client.Event{Type: "prompt", Subject: "acme"}); err == nil {
		t.Fatal("Record after Close succeeded")
	}
}

// An event the server rejects goes to the dead-letter file with the
// reason; the rest of its batch is delivered.
func TestRecorderDeadLetter(t *testing.T) {
	t.Parallel()
	s := newOutageServer(t)
	setupMeters(t, s.Client)
	dir := t.TempDir()
	s.down.Store(true) // so that the bad event shares a batch with good ones
	r := newRecorder(t, s.Client, dir)
	good := client.Event{Type: "prompt", Subject: "acme", Data: json.RawMessage(`{"tokens":"2","model":"m"}`)}
	bad := client.Event{ID: "bad-1", Type: "prompt", Subject: "", Data: json.RawMessage(`{"tokens":"5"}`)}
	if err := r.Record(t.Context(), good, good, bad, good); err != nil {
		t.Fatal(err)
	}
	s.down.Store(false)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if sum, n := total(t, s.Client); sum != "6" || n != 3 {
		t.Fatalf("the server counted %s tokens in %d events; want 6 in 3", sum, n)
	}
	f, err := os.Open(filepath.Join(dir, client.DeadLetterFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 1 {
		t.Fatalf("dead letters: %q, want one", lines)
	}
	var dl struct {
		Event  client.Event `json:"event"`
		Status int          `json:"status"`
		Reason string       `json:"reason"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Event.ID != "bad-1" || dl.Status != http.StatusBadRequest || !strings.Contains(dl.Reason, "subject") {
		t.Fatalf("dead letter %s: want event bad-1, status 400 and a reason naming subject", lines[0])
	}
}

// A full spool refuses a Record with ErrSpoolFull; nothing is dropped
// silently.
func TestRecorderSpoolFull(t *testing.T) {
	t.Parallel()
	s := newOutageServer(t)
	s.down.Store(true)
	r, err := client.NewRecorder(s.Client, client.RecorderConfig{Dir: t.TempDir(), MaxSpoolBytes: 4096,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		r.Close(ctx)
	}()
	e := client.Event{Type: "prompt", Subject: "acme", Data: json.RawMessage(`{"tokens":"1"}`)}
	var recorded int
	for ; recorded < 1000; recorded++ {
		err := r.Record(t.Context(), e)
		if errors.Is(err, client.ErrSpoolFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if recorded == 0 || recorded == 1000 {
		t.Fatalf("recorded %d events into a 4 KiB spool before it was full", recorded)
	}
}

// The server process's part stopped and started again on the same address
// and database while the application records: nothing is lost or counted
// twice.
func TestRecorderServerRestart(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	var addr string
	var stop func()
	start := func() {
		h, stopAPI := apitest.Handler(t, dataDir, api.Limits{})
		network := "127.0.0.1:0"
		if addr != "" {
			network = addr
		}
		var ln net.Listener
		var err error
		for range 100 { // the port can take a moment to be free again
			if ln, err = net.Listen("tcp", network); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		stop = func() {
			srv.Close()
			stopAPI()
		}
	}
	start()
	c := client.New("http://" + addr)
	setupMeters(t, c)
	r := newRecorder(t, c, t.TempDir())
	// Record in rounds of 50 while the server is restarted twice, a few
	// rounds apart, and for a few rounds after.
	restarted := make(chan struct{})
	var wg sync.WaitGroup
	var rounds atomic.Int64
	wg.Go(func() {
		for {
			recordMany(t, r, 50)
			rounds.Add(1)
			select {
			case <-restarted:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	waitRounds := func(n int64) {
		deadline := time.Now().Add(30 * time.Second)
		for rounds.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d rounds recorded in 30 s", rounds.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range int64(2) {
		waitRounds(3*i + 3)
		stop()
		time.Sleep(30 * time.Millisecond)
		start()
	}
	waitRounds(10)
	close(restarted)
	wg.Wait()
	t.Cleanup(func() { stop() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := 50 * int(rounds.Load())
	if sum, n := total(t, c); sum != fmt.Sprint(want/10) || n != want {
		t.Fatalf("the server counted %s tokens in %d events; want %d in %d", sum, n, want/10, want)
	}
}

// An event too large for the server's body limit, even alone, goes to the
// dead-letter file instead of blocking the spool; its batch-mates are
// delivered.
func TestRecorderTooLarge(t *testing.T) {
	t.Parallel()
	h, stop := apitest.Handler(t, t.TempDir(), api.Limits{MaxBodyBytes: 2048})
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); stop() })
	c := client.New(srv.URL)
	setupMeters(t, c)
	dir := t.TempDir()
	r := newRecorder(t, c, dir)
	small := client.Event{Type: "prompt", Subject: "acme", Data: json.RawMessage(`{"tokens":"1","model":"m"}`)}
	big := client.Event{ID: "big", Type: "prompt", Subject: "acme",
		Data: json.RawMessage(`{"tokens":"100","model":"` + strings.Repeat("x", 4000) + `"}`)}
	if err := r.Record(t.Context(), small, big, small, small); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if sum, n := total(t, c); sum != "3" || n != 3 {
		t.Fatalf("the server counted %s tokens in %d events; want 3 in 3", sum, n)
	}
	b, err := os.ReadFile(filepath.Join(dir, client.DeadLetterFile))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 1 ||
		!strings.Contains(lines[0], `"id":"big"`) || !strings.Contains(lines[0], `"status":413`) {
		t.Fatalf("dead letters: %s; want the big event with status 413", b)
	}
}

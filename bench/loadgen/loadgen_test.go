package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type wireEvent struct {
	SpecVersion string         `json:"specversion"`
	ID          string         `json:"id"`
	Source      string         `json:"source"`
	Type        string         `json:"type"`
	Subject     string         `json:"subject"`
	Time        time.Time      `json:"time"`
	Data        map[string]any `json:"data"`
}

func testConfig(t *testing.T, args ...string) *config {
	t.Helper()
	c, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBodies(t *testing.T) {
	t.Parallel()
	c := testConfig(t, "--events", "10007", "--batch", "100", "--dup-rate", "0.1", "--subjects", "50", "--clients", "1")
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	g := newGenerator(c, now)
	bodies, unique := g.bodies(c.Events, c.Batch, true)
	if len(bodies) != 101 {
		t.Fatalf("got %d bodies, want 101", len(bodies))
	}
	byID := map[string]string{}
	var total int
	for _, b := range bodies {
		var evs []json.RawMessage
		if err := json.Unmarshal(b, &evs); err != nil {
			t.Fatalf("body is not a JSON array: %v\n%.200s", err, b)
		}
		total += len(evs)
		for _, raw := range evs {
			var e wireEvent
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("bad event %s: %v", raw, err)
			}
			if prev, ok := byID[e.ID]; ok && prev != string(raw) {
				t.Fatalf("id %s resent with different bytes:\n%s\n%s", e.ID, prev, raw)
			}
			byID[e.ID] = string(raw)
			if len(e.ID) != 36 || e.ID[14] != '4' || e.Source != "loadgen" || e.SpecVersion != "1.0" ||
				!strings.HasPrefix(e.Subject, "customer-000") || len(e.Subject) != 14 {
				t.Fatalf("unexpected event %s", raw)
			}
			if e.Time.After(now) || e.Time.Before(now.Add(-c.Span)) {
				t.Fatalf("time %s outside the span", e.Time)
			}
			if _, ok := e.Data["model"]; !ok {
				t.Fatalf("no model in %s", raw)
			}
		}
	}
	if total != c.Events {
		t.Fatalf("got %d events, want %d", total, c.Events)
	}
	if int64(len(byID)) != unique {
		t.Fatalf("unique = %d, but %d distinct ids", unique, len(byID))
	}
	if d := float64(c.Events-len(byID)) / float64(c.Events); d < 0.08 || d > 0.12 {
		t.Fatalf("resend fraction %.3f, want about 0.1", d)
	}
	again, _ := newGenerator(c, now).bodies(c.Events, c.Batch, true)
	for i := range bodies {
		if !bytes.Equal(bodies[i], again[i]) {
			t.Fatal("same seed gave different bodies")
		}
	}
}

// fakeIngest is a server that dedups ids and answers like Odometer, with
// a 503 for every seventh request.
func fakeIngest(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	seen := map[string]bool{}
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/meters" {
			w.WriteHeader(http.StatusCreated)
			return
		}
		if r.Header.Get("Content-Type") != ctBatch {
			http.Error(w, "bad content type", http.StatusUnsupportedMediaType)
			return
		}
		var evs []wireEvent
		if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls%7 == 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var a, d int
		for _, e := range evs {
			if seen[e.Source+"\x00"+e.ID] {
				d++
			} else {
				seen[e.Source+"\x00"+e.ID] = true
				a++
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"accepted": a, "duplicate": d, "events": []string{}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func runReport(t *testing.T, args ...string) *report {
	t.Helper()
	var out bytes.Buffer
	if err := run(t.Context(), append(args, "--json"), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

// TestIngestAgainstFake runs batch mode against fakeIngest.
func TestIngestAgainstFake(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		args := []string{"--url", fakeIngest(t).URL, "--setup-meters", "--events", "5000", "--batch", "250",
			"--clients", "4", "--dup-rate", "0.05"}
		if stream {
			args = append(args, "--stream")
		}
		rep := runReport(t, args...)
		if rep.DedupCheck != "ok" || rep.Events != 5000 || rep.Requests != 20 || rep.Retries == 0 || rep.Errors["503"] == 0 {
			t.Fatalf("stream %v: unexpected report %+v", stream, rep)
		}
	}
}

// TestStreamDuration stops a --stream run by --duration, long before
// --events, and still checks the server's counts.
func TestStreamDuration(t *testing.T) {
	t.Parallel()
	rep := runReport(t, "--url", fakeIngest(t).URL, "--stream", "--events", "1000000000", "--batch", "100",
		"--clients", "4", "--dup-rate", "0.05", "--duration", "300ms")
	if rep.DedupCheck != "ok" || rep.Events == 0 || rep.Events >= 1e9 || rep.Accepted != rep.UniqueEvents || rep.Duplicate == 0 {
		t.Fatalf("unexpected report %+v", rep)
	}
}

func TestQueryWindow(t *testing.T) {
	t.Parallel()
	loc, _ := time.LoadLocation("Asia/Kolkata")
	from, to := queryWindow(time.Date(2026, 3, 10, 20, 0, 0, 0, time.UTC), 30*24*time.Hour, loc)
	if got, want := from.Format(time.RFC3339), "2026-02-09T00:00:00+05:30"; got != want {
		t.Errorf("from = %s, want %s", got, want)
	}
	if got, want := to.Format(time.RFC3339), "2026-03-12T00:00:00+05:30"; got != want {
		t.Errorf("to = %s, want %s", got, want)
	}
}

// TestQueryAgainstFake runs query mode against a server that checks the
// query's parameters.
func TestQueryAgainstFake(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		// The first query of a subject is slow, as an uncached one is.
		mu.Lock()
		first := !seen[q.Get("subject")]
		seen[q.Get("subject")] = true
		mu.Unlock()
		if first {
			time.Sleep(20 * time.Millisecond)
		}
		if r.URL.Path != "/api/v1/meters/tokens/query" || q.Get("windowSize") != "DAY" || q.Get("groupBy") != "model" ||
			q.Get("windowTimeZone") != "UTC" || !strings.HasPrefix(q.Get("subject"), "customer-") || q.Get("from") == "" || q.Get("to") == "" {
			http.Error(w, "unexpected query "+r.URL.String(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"windowSize":"DAY","data":[{"value":1,"windowStart":"x"},{"value":2,"windowStart":"y"}]}`)
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := run(t.Context(), []string{"--url", srv.URL, "--mode", "query", "--clients", "2", "--duration", "300ms",
		"--subjects", "5", "--json"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || rep.AvgRows != 2 || rep.EmptyResults != 0 || len(rep.Errors) != 0 {
		t.Fatalf("unexpected report %s", out.Bytes())
	}
	if rep.FirstQueries != int64(len(seen)) || rep.FirstP50Ms < 20 || rep.Requests <= rep.FirstQueries {
		t.Fatalf("first queries: %d (%.3f ms median), %d requests; the server saw %d subjects",
			rep.FirstQueries, rep.FirstP50Ms, rep.Requests, len(seen))
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]time.Duration{
		"":    100 * time.Millisecond,
		"0":   10 * time.Millisecond,
		"2":   2 * time.Second,
		"600": 10 * time.Second,
		"x":   100 * time.Millisecond,
	} {
		if got := retryAfter(h); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", h, got, want)
		}
	}
}

func TestCountField(t *testing.T) {
	t.Parallel()
	body := []byte(`{"accepted": 998,"duplicate":2,"events":[{"status":"accepted"}]}`)
	if v, ok := countField(body, `"accepted":`); !ok || v != 998 {
		t.Errorf("accepted = %d, %v", v, ok)
	}
	if v, ok := countField(body, `"duplicate":`); !ok || v != 2 {
		t.Errorf("duplicate = %d, %v", v, ok)
	}
	if _, ok := countField([]byte(`{}`), `"accepted":`); ok {
		t.Error("found a missing field")
	}
}

// TestIngestSeveralURLs gives two URLs of one store (a node and a proxy in
// front of it): the ingestion clients take them in turn, and the counts
// stay exact.
func TestIngestSeveralURLs(t *testing.T) {
	t.Parallel()
	node := fakeIngest(t)
	target, err := url.Parse(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	var viaProxy atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/events" {
			viaProxy.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	rep := runReport(t, "--url", node.URL+","+proxy.URL+"/", "--setup-meters", "--events", "4000", "--batch", "250",
		"--clients", "4", "--dup-rate", "0.05")
	if rep.DedupCheck != "ok" || rep.Events != 4000 {
		t.Fatalf("unexpected report %+v", rep)
	}
	if n := viaProxy.Load(); n == 0 || n >= rep.Requests+rep.Retries {
		t.Fatalf("%d of %d requests went through the second URL, want some but not all", n, rep.Requests+rep.Retries)
	}
}

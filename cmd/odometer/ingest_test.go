package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// TestIngestRetries checks that overload answers are retried until the
// server takes the batch, and that nothing is counted twice.
func TestIngestRetries(t *testing.T) {
	t.Parallel()
	var calls, overloaded atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/api/v1/events" || r.Header.Get("Content-Type") != "application/cloudevents-batch+json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var events []json.RawMessage
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &events); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Every other request is refused as overloaded.
		if calls.Load()%2 == 1 {
			overloaded.Add(1)
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"title":"Service Unavailable","status":503,"detail":"ingestion queue is full"}`)
			return
		}
		if calls.Load() == 4 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprintf(w, `{"accepted":%d,"duplicate":0,"events":[]}`, len(events))
	}))
	defer srv.Close()
	stdout, stderr, err := runCmd(t, "", "ingest", "--server", srv.URL, "--batch", "3", "--concurrency", "1", "testdata/events.ndjson")
	if err != nil || stdout != "accepted=7 duplicate=0 rejected=0\n" {
		t.Fatalf("ingest: %v\nstdout %q\nstderr %q", err, stdout, stderr)
	}
	if overloaded.Load() < 3 {
		t.Errorf("server refused %d requests; the test wants at least 3", overloaded.Load())
	}
}

// TestIngestUnreachable checks that a server that never answers fails the
// command after the retries, naming what was not sent.
func TestIngestUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	stdout, stderr, err := runCmd(t, "", "ingest", "--server", "http://"+addr, "--retries", "1", "--batch", "4", "-")
	if err != nil || stdout != "accepted=0 duplicate=0 rejected=0\n" {
		t.Errorf("empty input: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	stdout, stderr, err = runCmd(t, readFile(t, "testdata/events.ndjson"), "ingest", "--server", "http://"+addr, "--retries", "1", "--batch", "4", "-")
	if err == nil || !strings.Contains(err.Error(), "7 events not sent") {
		t.Errorf("err = %v; want 7 events not sent", err)
	}
	if stdout != "accepted=0 duplicate=0 rejected=0 failed=7\n" {
		t.Errorf("stdout %q", stdout)
	}
	for _, want := range []string{"lines 1–4: not sent: ingest: ", "lines 6–8: not sent: ingest: ", "connection refused"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q does not contain %q", stderr, want)
		}
	}
}

func TestReadArray(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in      string
		emitted []int
		reject  []string
		err     string
	}{
		{in: `[]`},
		{in: `[{"id":"a"}, 3, {"id":"b"}, "x"]`, emitted: []int{0, 2}, reject: []string{"1: not a JSON object", "3: not a JSON object"}},
		{in: `[{"id":"a"}, {oops}]`, emitted: []int{0}, err: "index 1: invalid character"},
		{in: `[{"id":"a"}] {}`, emitted: []int{0}, err: "unexpected data after the JSON array"},
		{in: `[{"id":"a"}`, emitted: []int{0}, err: "EOF"},
	} {
		var emitted []int
		var reject []string
		err := readArray(strings.NewReader(tt.in),
			func(pos int, reason string) { reject = append(reject, fmt.Sprintf("%d: %s", pos, reason)) },
			func(_ json.RawMessage, pos int) bool { emitted = append(emitted, pos); return true })
		if fmt.Sprint(emitted) != fmt.Sprint(tt.emitted) || fmt.Sprint(reject) != fmt.Sprint(tt.reject) {
			t.Errorf("%s: emitted %v, rejected %q; want %v, %q", tt.in, emitted, reject, tt.emitted, tt.reject)
		}
		if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: err = %v; want %q", tt.in, err, tt.err)
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

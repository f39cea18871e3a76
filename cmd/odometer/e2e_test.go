package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that the server's goroutines and the test can
// use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServe runs "odometer serve" in-process on a free port and returns its
// URL, its log, and a function that stops it and returns serve's error.
func startServe(t *testing.T, args ...string) (url string, log *syncBuffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	log = &syncBuffer{}
	done := make(chan error, 1)
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...)
	go func() {
		done <- run(ctx, args, mapEnv(nil), strings.NewReader(""), &bytes.Buffer{}, log)
	}()
	stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatalf("serve did not stop; log:\n%s", log)
			return nil
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := listeningRE.FindStringSubmatch(log.String()); m != nil {
			return "http://" + m[1], log, stop
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before listening; log:\n%s", err, log)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not log its address; log:\n%s", log)
		}
	}
}

// runCmd runs a client subcommand and returns its stdout, stderr and
// error.
func runCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	return runCmdEnv(t, nil, stdin, args...)
}

// runCmdEnv runs a subcommand with the environment env.
func runCmdEnv(t *testing.T, env map[string]string, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, mapEnv(env), strings.NewReader(stdin), &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// mustRun runs a client subcommand that must succeed and returns its
// stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, err := runCmd(t, "", args...)
	if err != nil {
		t.Fatalf("odometer %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	url, log, stop := startServe(t, "--config", "testdata/meters.yaml")
	server := "--server=" + url

	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %s", resp.Status)
	}

	if got, want := mustRun(t, "meters", server), ""+
		"SLUG      AGGREGATION  EVENT_TYPE  VALUE_PROPERTY  GROUP_BY\n"+
		"requests  COUNT        prompt      -               -\n"+
		"tokens    SUM          prompt      $.tokens        model=$.model\n"; got != want {
		t.Errorf("meters:\n%s\nwant:\n%s", got, want)
	}

	if got, want := mustRun(t, "ingest", server, "--batch", "3", "testdata/events.ndjson"), "accepted=7 duplicate=0 rejected=0\n"; got != want {
		t.Errorf("ingest: %q; want %q", got, want)
	}
	// Sending the same events again counts nothing twice.
	if got, want := mustRun(t, "ingest", server, "--batch", "2", "--concurrency", "2", "testdata/events.ndjson"), "accepted=0 duplicate=7 rejected=0\n"; got != want {
		t.Errorf("re-ingest: %q; want %q", got, want)
	}

	// A batch with a bad event is rejected whole, with input line numbers;
	// the other batches still go, and the command fails.
	stdout, stderr, err := runCmd(t, "", "ingest", server, "--batch", "2", "testdata/rejected.ndjson")
	if err == nil || !strings.Contains(err.Error(), "3 events rejected") {
		t.Errorf("ingest rejected.ndjson: err = %v; want 3 events rejected", err)
	}
	if want := "accepted=2 duplicate=0 rejected=3\n"; stdout != want {
		t.Errorf("ingest rejected.ndjson: stdout %q; want %q", stdout, want)
	}
	for _, want := range []string{
		"line 3: not valid JSON\n",
		"lines 1–2: batch of 2 events rejected, none stored (400 Bad Request):\n",
		"  line 2: id: required\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("ingest rejected.ndjson: stderr %q does not contain %q", stderr, want)
		}
	}
	// A JSON array on standard input; errors name array indexes.
	stdout, stderr, err = runCmd(t, `  [{"id":"a1","source":"arr","type":"other","subject":"s"},
		{"id":"a2","source":"arr","type":"other"}]`, "ingest", server, "-")
	if err == nil || stdout != "accepted=0 duplicate=0 rejected=2\n" || !strings.Contains(stderr, "  index 1: subject: required\n") {
		t.Errorf("ingest array: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}

	if got, want := mustRun(t, "query", server, "tokens", "--from", "2024-03-01", "--to", "2024-03-03",
		"--window", "day", "--group-by", "subject", "--group-by", "model"), ""+
		"WINDOW_START          WINDOW_END            SUBJECT  MODEL  VALUE\n"+
		"2024-03-01T00:00:00Z  2024-03-02T00:00:00Z  acme     gpt-4  0.3\n"+
		"2024-03-01T00:00:00Z  2024-03-02T00:00:00Z  acme     small  1.5\n"+
		"2024-03-01T00:00:00Z  2024-03-02T00:00:00Z  zeta     gpt-4  100\n"+
		"2024-03-02T00:00:00Z  2024-03-03T00:00:00Z  acme     gpt-4  0.7\n"+
		"2024-03-02T00:00:00Z  2024-03-03T00:00:00Z  zeta     small  12345678901234567890.123456789000000001\n"; got != want {
		t.Errorf("query table:\n%s\nwant:\n%s", got, want)
	}
	// Days in Kolkata (+05:30): e3 (23:59:59.999999Z) falls on March 2nd.
	if got, want := mustRun(t, "query", server, "tokens", "--from", "2024-03-01", "--to", "2024-03-03",
		"--window", "DAY", "--tz", "Asia/Kolkata", "--subject", "acme"), ""+
		"WINDOW_START               WINDOW_END                 SUBJECT  VALUE\n"+
		"2024-03-01T00:00:00+05:30  2024-03-02T00:00:00+05:30  acme     0.3\n"+
		"2024-03-02T00:00:00+05:30  2024-03-03T00:00:00+05:30  acme     2.2\n"; got != want {
		t.Errorf("query table in Asia/Kolkata:\n%s\nwant:\n%s", got, want)
	}
	if got, want := mustRun(t, "query", server, "tokens", "--from", "2024-03-01T00:00:00Z", "--to", "2024-03-03T00:00:00Z",
		"--window", "DAY", "--format", "csv"), ""+
		"window_start,window_end,subject,value\n"+
		"2024-03-01T00:00:00Z,2024-03-02T00:00:00Z,,101.8\n"+
		"2024-03-02T00:00:00Z,2024-03-03T00:00:00Z,,12345678901234567890.823456789000000001\n"; got != want {
		t.Errorf("query csv:\n%s\nwant:\n%s", got, want)
	}
	if got, want := mustRun(t, "query", server, "requests", "--to", "2024-03-03T00:00:00Z", "--filter", "subject=zeta", "--format", "json"), `{
  "to": "2024-03-03T00:00:00Z",
  "data": [
    {
      "value": 3,
      "windowStart": "2024-03-01T12:00:00Z",
      "windowEnd": "2024-03-03T00:00:00Z",
      "subject": null,
      "groupBy": {}
    }
  ]
}
`; got != want {
		t.Errorf("query json:\n%s\nwant:\n%s", got, want)
	}
	_, _, err = runCmd(t, "", "query", server, "tokens", "--group-by", "colour")
	if err == nil || !strings.Contains(err.Error(), `400 Bad Request`) || !strings.Contains(err.Error(), `groupBy: meter "tokens" has no group-by key "colour"`) {
		t.Errorf("query with an unknown group-by: err = %v", err)
	}

	if err := stop(); err != nil {
		t.Fatalf("serve returned %v; log:\n%s", err, log)
	}
	for _, want := range []string{"msg=\"meter created from config\" meter=tokens", "msg=\"shutting down\"", "msg=stopped"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log does not contain %q:\n%s", want, log)
		}
	}
}

// TestServeRestart checks that events and meters survive a clean shutdown,
// and that a restart without the config keeps the meters.
func TestServeRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	url, log, stop := startServe(t, "--data", dir, "--config", "testdata/meters.yaml")
	mustRun(t, "ingest", "--server", url, "testdata/events.ndjson")
	if err := stop(); err != nil {
		t.Fatalf("serve: %v\n%s", err, log)
	}
	url, log, stop = startServe(t, "--data", dir)
	if got, want := mustRun(t, "query", "--server", url, "requests", "--from", "2024-03-01", "--to", "2024-03-03"), ""+
		"WINDOW_START          WINDOW_END            SUBJECT  VALUE\n"+
		"2024-03-01T00:00:00Z  2024-03-03T00:00:00Z  -        7\n"; got != want {
		t.Errorf("after restart:\n%s\nwant:\n%s", got, want)
	}
	if got := mustRun(t, "ingest", "--server", url, "testdata/events.ndjson"); got != "accepted=0 duplicate=7 rejected=0\n" {
		t.Errorf("re-ingest after restart: %q", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v\n%s", err, log)
	}
}

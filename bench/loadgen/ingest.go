package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Content types of the two ingestion modes.
const (
	ctBatch  = "application/cloudevents-batch+json"
	ctSingle = "application/cloudevents+json"
)

// setupMeters creates the meter of each generated event type. A meter that
// already exists (409) is fine.
func setupMeters(ctx context.Context, hc *http.Client, c *config) error {
	for _, et := range eventTypes[:c.Types] {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/api/v1/meters", bytes.NewBufferString(et.meter))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return fmt.Errorf("create meter %q: %w", et.name, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK, http.StatusCreated, http.StatusConflict:
		default:
			return fmt.Errorf("create meter %q: %s: %s", et.name, resp.Status, bytes.TrimSpace(body))
		}
	}
	return nil
}

// clientStats is what one load client observed.
type clientStats struct {
	latencies []time.Duration // of acknowledged (2xx) requests
	requests  int64           // acknowledged requests
	events    int64           // events in acknowledged requests
	bytes     int64           // body bytes of acknowledged requests
	accepted  int64           // sum of the responses' "accepted"
	duplicate int64           // sum of the responses' "duplicate"
	counted   int64           // acknowledged requests whose response had both counts
	unique    int64           // --stream: original (not resent) events in acknowledged requests
	failed    int64           // events in requests that were given up on
	retries   int64           // resends after 429/503
	errors    map[string]int64
	empty     int64 // query mode: responses with no rows
	rows      int64 // query mode: rows in all responses
	// first holds the latencies of query mode's first query of each
	// subject in the run; latencies holds them too.
	first []time.Duration
}

func (s *clientStats) fail(key string) {
	if s.errors == nil {
		s.errors = map[string]int64{}
	}
	s.errors[key]++
}

// errorLog prints the first few error responses, to say why they failed.
type errorLog struct {
	n      atomic.Int32
	mu     sync.Mutex
	stderr io.Writer
}

func (l *errorLog) print(format string, args ...any) {
	if l.n.Add(1) > 5 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.stderr, "loadgen: "+format+"\n", args...)
}

func runIngest(ctx context.Context, hc *http.Client, c *config, stderr io.Writer) (*report, error) {
	g := newGenerator(c, time.Now())
	n := (c.Events + c.Batch - 1) / c.Batch
	var bodies [][]byte
	var unique int64
	if !c.Stream {
		t0 := time.Now()
		bodies, unique = g.bodies(c.Events, c.Batch, c.Mode == "batch")
		var size int64
		for _, b := range bodies {
			size += int64(len(b))
		}
		fmt.Fprintf(stderr, "loadgen: generated %d requests (%d events, %d unique, %.1f MB) in %s\n",
			len(bodies), c.Events, unique, float64(size)/1e6, time.Since(t0).Round(time.Millisecond))
	}

	ct := ctBatch
	if c.Mode == "single" {
		ct = ctSingle
	}
	elog := &errorLog{stderr: stderr}
	var next atomic.Int64
	stats := make([]clientStats, c.Clients)
	var deadline time.Time
	start := time.Now()
	if c.Duration > 0 {
		deadline = start.Add(c.Duration)
	}
	var wg sync.WaitGroup
	for i := range stats {
		st := &stats[i]
		if !c.Stream {
			st.latencies = make([]time.Duration, 0, n/c.Clients+1)
		}
		rng := rand.New(rand.NewPCG(c.Seed, uint64(i)+1<<32))
		url := c.URLs[i%len(c.URLs)] + "/api/v1/events"
		wg.Go(func() {
			var buf bytes.Buffer
			var body []byte // --stream: this client's body, reused
			for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				events := c.Batch
				if k == n-1 {
					events = c.Events - k*c.Batch
				}
				if !c.Stream {
					sendEvents(ctx, hc, c, url, ct, bodies[k], events, st, &buf, rng, elog)
					continue
				}
				var u int64
				body, u = g.body(body[:0], k, c.Events, c.Batch, c.Mode == "batch")
				acked := st.requests
				sendEvents(ctx, hc, c, url, ct, body, events, st, &buf, rng, elog)
				if st.requests > acked {
					st.unique += u
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	rep := newReport(c, elapsed, stats)
	if c.Stream {
		for i := range stats {
			unique += stats[i].unique
		}
	}
	rep.UniqueEvents = unique
	rep.Accepted, rep.Duplicate = -1, -1
	rep.DedupCheck = "n/a"
	var counted int64
	for i := range stats {
		counted += stats[i].counted
	}
	if counted > 0 && counted == rep.Requests {
		rep.Accepted, rep.Duplicate = 0, 0
		for i := range stats {
			rep.Accepted += stats[i].accepted
			rep.Duplicate += stats[i].duplicate
		}
		// Every event sent must have been acknowledged for the counts to
		// add up: all of them, or with --stream (which counts the unique
		// events of the acknowledged requests) all that were sent before
		// the run stopped. A resend's original is always in an earlier
		// request, which was sent too.
		if rep.Events == int64(c.Events) || (c.Stream && rep.FailedEvents == 0) {
			rep.DedupCheck = "ok"
			if rep.Accepted != unique || rep.Accepted+rep.Duplicate != rep.Events {
				rep.DedupCheck = "mismatch"
			}
		}
	}
	return rep, rep.err()
}

// sendEvents posts one body until it is acknowledged, resending it after
// 429/503 as the server's Retry-After says.
func sendEvents(ctx context.Context, hc *http.Client, c *config, url, ct string, body []byte, n int,
	st *clientStats, buf *bytes.Buffer, rng *rand.Rand, elog *errorLog) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			panic(err) // the URL was valid for setup; cannot happen
		}
		req.Header.Set("Content-Type", ct)
		if c.Minimal {
			req.Header.Set("Prefer", "return=minimal")
		}
		t := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				st.fail("transport")
				elog.print("POST %s: %v", url, err)
			}
			st.failed += int64(n)
			return
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		lat := time.Since(t)
		switch code := resp.StatusCode; {
		case err != nil:
			st.fail("transport")
			elog.print("POST %s: reading response: %v", url, err)
			st.failed += int64(n)
			return
		case code >= 200 && code < 300:
			st.latencies = append(st.latencies, lat)
			st.requests++
			st.events += int64(n)
			st.bytes += int64(len(body))
			a, okA := countField(buf.Bytes(), `"accepted":`)
			d, okD := countField(buf.Bytes(), `"duplicate":`)
			if okA && okD {
				st.accepted += a
				st.duplicate += d
				st.counted++
			}
			return
		case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
			st.fail(strconv.Itoa(code))
			if attempt >= c.MaxRetries {
				elog.print("POST %s: %s after %d resends; giving up on %d events", url, resp.Status, attempt, n)
				st.failed += int64(n)
				return
			}
			st.retries++
			d := retryAfter(resp.Header.Get("Retry-After"))
			d += time.Duration(rng.Int64N(int64(d)/5 + 1)) // jitter, so clients do not return together
			select {
			case <-ctx.Done():
				st.failed += int64(n)
				return
			case <-time.After(d):
			}
		default:
			st.fail(strconv.Itoa(code))
			elog.print("POST %s: %s: %.300s", url, resp.Status, bytes.TrimSpace(buf.Bytes()))
			st.failed += int64(n)
			return
		}
	}
}

// retryAfter reads a Retry-After header (seconds or an HTTP date); without
// one it waits 100ms. It waits at most 10s.
func retryAfter(h string) time.Duration {
	d := 100 * time.Millisecond
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = time.Until(t)
	}
	return max(10*time.Millisecond, min(d, 10*time.Second))
}

// countField finds key (e.g. `"accepted":`) in a JSON body and parses the
// non-negative integer after it. It avoids decoding per-event statuses.
func countField(body []byte, key string) (int64, bool) {
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(body[i+len(key):], " \t\r\n")
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v, err == nil
}

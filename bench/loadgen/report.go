package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// report is the result of one loadgen run. Latencies cover acknowledged
// (2xx, or 200 in query mode) requests only, measured from sending the
// request to reading the whole response; rejected and failed requests are
// counted in Errors by status code ("transport" for connection errors).
type report struct {
	Mode           string  `json:"mode"`
	URL            string  `json:"url"`
	Clients        int     `json:"clients"`
	Batch          int     `json:"batch"`
	Seconds        float64 `json:"seconds"`
	Requests       int64   `json:"requests"`
	RequestsPerSec float64 `json:"requests_per_sec"`
	Events         int64   `json:"events"`
	EventsPerSec   float64 `json:"events_per_sec"`
	MBPerSec       float64 `json:"mb_per_sec"`
	P50Ms          float64 `json:"p50_ms"`
	P90Ms          float64 `json:"p90_ms"`
	P99Ms          float64 `json:"p99_ms"`
	MaxMs          float64 `json:"max_ms"`
	// UniqueEvents is how many distinct events were sent (ingestion modes).
	UniqueEvents int64 `json:"unique_events"`
	// Accepted and Duplicate sum the server's per-request counts; -1 when
	// the server did not report them (e.g. 204 responses).
	Accepted  int64 `json:"accepted"`
	Duplicate int64 `json:"duplicate"`
	// DedupCheck is "ok" when accepted equals the unique events sent and
	// accepted+duplicate the events sent, "mismatch" otherwise, and "n/a"
	// when it could not be checked.
	DedupCheck   string `json:"dedup_check"`
	FailedEvents int64  `json:"failed_events"`
	Retries      int64  `json:"retries"`
	// EmptyResults counts query responses without rows; AvgRows is the mean
	// number of rows per query response.
	EmptyResults int64   `json:"empty_results"`
	AvgRows      float64 `json:"avg_rows"`
	// FirstQueries counts query mode's first queries of a subject in the
	// run; FirstP50Ms and RepeatP50Ms split the median between those and
	// the later ones, which the server's usage cache may answer.
	FirstQueries int64            `json:"first_queries"`
	FirstP50Ms   float64          `json:"first_p50_ms"`
	RepeatP50Ms  float64          `json:"repeat_p50_ms"`
	Errors       map[string]int64 `json:"errors"`
}

func newReport(c *config, elapsed time.Duration, stats []clientStats) *report {
	r := &report{Mode: c.Mode, URL: strings.Join(c.URLs, ","), Clients: c.Clients, Batch: c.Batch,
		Seconds: elapsed.Seconds(), Errors: map[string]int64{}, DedupCheck: "n/a"}
	if c.Mode == "query" {
		r.Batch = 0
	}
	var lat, first []time.Duration
	var size int64
	for i := range stats {
		s := &stats[i]
		lat = append(lat, s.latencies...)
		first = append(first, s.first...)
		r.Requests += s.requests
		r.Events += s.events
		size += s.bytes
		r.FailedEvents += s.failed
		r.Retries += s.retries
		r.EmptyResults += s.empty
		r.AvgRows += float64(s.rows)
		for k, v := range s.errors {
			r.Errors[k] += v
		}
	}
	if r.Requests > 0 {
		r.AvgRows /= float64(r.Requests)
	}
	secs := max(elapsed.Seconds(), 1e-9)
	r.RequestsPerSec = float64(r.Requests) / secs
	r.EventsPerSec = float64(r.Events) / secs
	r.MBPerSec = float64(size) / 1e6 / secs
	slices.Sort(lat)
	r.P50Ms = ms(percentile(lat, 0.50))
	r.P90Ms = ms(percentile(lat, 0.90))
	r.P99Ms = ms(percentile(lat, 0.99))
	r.MaxMs = ms(percentile(lat, 1))
	if c.Mode == "query" {
		r.FirstQueries = int64(len(first))
		slices.Sort(first)
		r.FirstP50Ms = ms(percentile(first, 0.50))
		repeat := make([]time.Duration, 0, len(lat))
		// Remove the first queries from the sorted whole, one match each.
		j := 0
		for _, d := range lat {
			if j < len(first) && first[j] == d {
				j++
				continue
			}
			repeat = append(repeat, d)
		}
		r.RepeatP50Ms = ms(percentile(repeat, 0.50))
	}
	return r
}

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// err says why the run must not be trusted: requests given up on, a
// dedup mismatch, or failed queries. 429/503 answers that a resend got
// through are not errors.
func (r *report) err() error {
	var errs []error
	if r.FailedEvents > 0 {
		errs = append(errs, fmt.Errorf("%d events were not acknowledged", r.FailedEvents))
	}
	if r.Mode == "query" {
		var n int64
		for _, v := range r.Errors {
			n += v
		}
		if n > 0 {
			errs = append(errs, fmt.Errorf("%d queries failed", n))
		}
		if r.Requests == 0 {
			errs = append(errs, errors.New("no query succeeded"))
		}
	}
	if r.DedupCheck == "mismatch" {
		errs = append(errs, fmt.Errorf("server counted %d accepted + %d duplicate, but %d of the %d events sent were unique "+
			"(a store that already held events from the same --seed also gives this)",
			r.Accepted, r.Duplicate, r.UniqueEvents, r.Events))
	}
	return errors.Join(errs...)
}

func (r *report) writeJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "mode %s, %d clients", r.Mode, r.Clients)
	if r.Mode != "query" {
		fmt.Fprintf(w, ", %d events per request", r.Batch)
	}
	fmt.Fprintf(w, ", %s, %.2fs\n", r.URL, r.Seconds)
	if r.Mode != "query" {
		fmt.Fprintf(w, "  events:    %d acknowledged (%d unique sent), %.0f events/s, %.1f MB/s\n",
			r.Events, r.UniqueEvents, r.EventsPerSec, r.MBPerSec)
	}
	fmt.Fprintf(w, "  requests:  %d, %.1f requests/s\n", r.Requests, r.RequestsPerSec)
	fmt.Fprintf(w, "  latency:   p50 %.3fms  p90 %.3fms  p99 %.3fms  max %.3fms\n", r.P50Ms, r.P90Ms, r.P99Ms, r.MaxMs)
	if r.Mode == "query" {
		fmt.Fprintf(w, "  rows:      %.1f per response, %d empty responses\n", r.AvgRows, r.EmptyResults)
	} else if r.Accepted >= 0 {
		fmt.Fprintf(w, "  server:    %d accepted, %d duplicate (dedup check: %s)\n", r.Accepted, r.Duplicate, r.DedupCheck)
	} else {
		fmt.Fprintf(w, "  server:    no accepted/duplicate counts in responses (dedup check: n/a)\n")
	}
	if r.Retries > 0 || r.FailedEvents > 0 {
		fmt.Fprintf(w, "  retries:   %d resends after 429/503, %d events not acknowledged\n", r.Retries, r.FailedEvents)
	}
	if len(r.Errors) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			parts = append(parts, fmt.Sprintf("%s×%d", k, r.Errors[k]))
		}
		fmt.Fprintf(w, "  errors:    %s\n", strings.Join(parts, ", "))
	}
}

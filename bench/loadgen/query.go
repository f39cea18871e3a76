package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// queryWindow returns the days the query benchmark asks about: from the
// midnight (in loc) before now-span to the midnight after now, which covers
// every generated event time.
func queryWindow(now time.Time, span time.Duration, loc *time.Location) (from, to time.Time) {
	day := func(t time.Time) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	}
	return day(now.Add(-span)), day(now).AddDate(0, 0, 1)
}

// runQueries has each client ask, until the duration is over, for the
// usage over the span (about a month) of --shape: one random subject's by
// day, grouped by model; every subject's by day, grouped by model; or
// every subject's total.
func runQueries(ctx context.Context, hc *http.Client, c *config, stderr io.Writer) (*report, error) {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("--tz: %w", err)
	}
	from, to := queryWindow(time.Now(), c.Span, loc)
	q := url.Values{}
	q.Set("from", from.Format(time.RFC3339))
	q.Set("to", to.Format(time.RFC3339))
	if c.Shape == "per-subject" {
		q.Set("groupBy", "subject")
	} else {
		q.Set("windowSize", "DAY")
		q.Set("windowTimeZone", c.TimeZone)
		q.Set("groupBy", "model")
	}
	base := c.URL + "/api/v1/meters/" + url.PathEscape(c.Meter) + "/query?" + q.Encode()
	perSubject := c.Shape == "subject"
	if perSubject {
		base += "&subject="
		fmt.Fprintf(stderr, "loadgen: querying %s<customer> for %s\n", base, c.Duration)
	} else {
		fmt.Fprintf(stderr, "loadgen: querying %s for %s\n", base, c.Duration)
	}

	elog := &errorLog{stderr: stderr}
	stats := make([]clientStats, c.Clients)
	start := time.Now()
	deadline := start.Add(c.Duration)
	asked := make([]atomic.Bool, c.Subjects)
	var wg sync.WaitGroup
	for i := range stats {
		st := &stats[i]
		rng := rand.New(rand.NewPCG(c.Seed, uint64(i)+2<<32))
		wg.Go(func() {
			var buf bytes.Buffer
			u := make([]byte, 0, len(base)+16)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				u = append(u[:0], base...)
				s := uint64(0)
				if perSubject {
					u = append(u, "customer-"...)
					s = rng.Uint64N(uint64(c.Subjects))
					for d := uint64(10000); d > 1 && s < d; d /= 10 {
						u = append(u, '0')
					}
					u = strconv.AppendUint(u, s, 10)
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, string(u), nil)
				if err != nil {
					panic(err) // built from a valid base URL
				}
				req.Header.Set("Accept", "application/json")
				t := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						st.fail("transport")
						elog.print("GET %s: %v", u, err)
					}
					continue
				}
				buf.Reset()
				_, err = buf.ReadFrom(resp.Body)
				resp.Body.Close()
				lat := time.Since(t)
				if err != nil || resp.StatusCode != http.StatusOK {
					st.fail(strconv.Itoa(resp.StatusCode))
					elog.print("GET %s: %s: %.300s", u, resp.Status, bytes.TrimSpace(buf.Bytes()))
					continue
				}
				st.latencies = append(st.latencies, lat)
				if !asked[s].Swap(true) {
					st.first = append(st.first, lat)
				}
				st.requests++
				rows := int64(bytes.Count(buf.Bytes(), []byte(`"windowStart"`)))
				st.rows += rows
				if rows == 0 {
					st.empty++
				}
			}
		})
	}
	wg.Wait()
	rep := newReport(c, time.Since(start), stats)
	return rep, rep.err()
}

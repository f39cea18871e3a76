package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeUsageRollups checks the rollups through `odometer serve`: a
// meter created after its events is backfilled in the background, the API,
// /metrics and the answers say so, and the answers equal the events' at
// every step; --usage-rollups=false drops the rollups on the next start.
func TestServeUsageRollups(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	url, log, stop := startServe(t, "--data", dir)
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// 3,000 events over 30 days, then the meter.
	base := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var want int64
	for b := range 3 {
		var buf bytes.Buffer
		buf.WriteString("[")
		for i := range 1000 {
			k := b*1000 + i
			if i > 0 {
				buf.WriteString(",")
			}
			want += int64(k % 13)
			fmt.Fprintf(&buf, `{"specversion":"1.0","id":"e%d","source":"t","type":"tokens","subject":"c%d","time":%q,"data":{"n":%d,"model":"m%d"}}`,
				k, k%50, base.Add(time.Duration(k)*14*time.Minute).Format(time.RFC3339), k%13, k%3)
		}
		buf.WriteString("]")
		req, _ := http.NewRequest("POST", url+"/api/v1/events", &buf)
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST events: %s", resp.Status)
		}
	}
	if code, body := do("POST", "/api/v1/meters", `{"slug":"tokens","aggregation":"SUM","eventType":"tokens","valueProperty":"$.n","groupBy":{"model":"$.model"}}`); code != 201 {
		t.Fatalf("create meter: %d %s", code, body)
	}
	query := "/api/v1/meters/tokens/query?from=2026-04-01T00:00:00Z&to=2026-06-15T00:00:00Z&windowSize=DAY&groupBy=model"
	total := func() int64 {
		t.Helper()
		code, body := do("GET", query, "")
		if code != 200 {
			t.Fatalf("query: %d %s", code, body)
		}
		var res struct{ Data []struct{ Value json.Number } }
		if err := json.Unmarshal([]byte(body), &res); err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, r := range res.Data {
			v, _ := r.Value.Int64()
			n += v
		}
		return n
	}
	var state string
	for deadline := time.Now().Add(30 * time.Second); ; {
		if got := total(); got != want {
			t.Fatalf("usage total %d with the rollup %q, want %d", got, state, want)
		}
		_, body := do("GET", "/api/v1/meters/tokens", "")
		var m struct{ UsageRollup struct{ State string } }
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		if state = m.UsageRollup.State; state == "ready" {
			break
		}
		if state != "backfilling" && state != "none" || time.Now().After(deadline) {
			t.Fatalf("rollup state %q (%s); log:\n%s", state, body, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, body := do("GET", "/metrics", ""); !strings.Contains(body, "odometer_usage_rollups 1\n") ||
		!strings.Contains(body, "odometer_usage_rollup_backfill_pending_events 0\n") {
		t.Errorf("/metrics lacks the rollup gauges:\n%s", body)
	}
	// A changed meter has a rollup of its own, and answers the same.
	if code, body := do("PUT", "/api/v1/meters/tokens", `{"name":"tokens","groupBy":{"model":"$.model","subject2":"$.model"}}`); code != 200 {
		t.Fatalf("update meter: %d %s", code, body)
	}
	if got := total(); got != want {
		t.Fatalf("usage total %d after the change, want %d", got, want)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	url, log, stop = startServe(t, "--data", dir, "--usage-rollups=false")
	defer stop()
	if !strings.Contains(log.String(), "usage rollups dropped") {
		t.Errorf("no drop logged:\n%s", log)
	}
	_, body := do("GET", "/api/v1/meters/tokens", "")
	if !strings.Contains(body, `"usageRollup":{"state":"none"`) {
		t.Errorf("meter with rollups off: %s", body)
	}
	if got := total(); got != want {
		t.Fatalf("usage total %d with rollups off, want %d", got, want)
	}
}

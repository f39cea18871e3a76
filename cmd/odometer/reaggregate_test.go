package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
)

// TestMeterAfterEventsAndGroupByChange drives the real server over HTTP:
// events arrive before any meter exists; a meter created afterwards reports
// them; changing its groupBy regroups all of history; ingestion going on in
// between is counted too.
func TestMeterAfterEventsAndGroupByChange(t *testing.T) {
	t.Parallel()
	url, _, stop := startServe(t)
	defer stop()

	call := func(method, path, contentType, body string, want int) []byte {
		t.Helper()
		req, err := http.NewRequest(method, url+path, bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		return b
	}
	ingest := func(from, to int) {
		t.Helper()
		var evs []string
		for i := from; i < to; i++ {
			model, region := []string{"small", "large"}[i%2], []string{"eu", "us", "ap"}[i%3]
			evs = append(evs, fmt.Sprintf(`{"id":"e%d","source":"app","type":"prompt","subject":"acme","time":"2024-04-0%dT10:00:00Z","data":{"tokens":"%d.5","model":"%s","region":"%s"}}`,
				i, 1+i%3, i, model, region))
		}
		body := "[" + strings.Join(evs, ",") + "]"
		call("POST", "/api/v1/events", "application/cloudevents-batch+json", body, 200)
	}
	query := func(params string) map[string]string {
		t.Helper()
		var res struct {
			Data []struct {
				Value   json.Number        `json:"value"`
				GroupBy map[string]*string `json:"groupBy"`
			} `json:"data"`
		}
		if err := json.Unmarshal(call("GET", "/api/v1/meters/tokens/query?from=2024-04-01T00:00:00Z&to=2024-05-01T00:00:00Z"+params, "", "", 200), &res); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, r := range res.Data {
			key := ""
			for _, k := range []string{"model", "region"} {
				if v, ok := r.GroupBy[k]; ok && v != nil {
					key += k + "=" + *v + " "
				}
			}
			out[key] = r.Value.String()
		}
		return out
	}
	// sum of i + 0.5 over a set of i
	sum := func(pred func(i int) bool, n int) string {
		var whole, halves int
		for i := range n {
			if pred(i) {
				whole += i
				halves++
			}
		}
		if halves%2 == 0 {
			return fmt.Sprint(whole + halves/2)
		}
		return fmt.Sprintf("%d.5", whole+halves/2)
	}

	ingest(0, 30) // no meter exists yet
	call("POST", "/api/v1/meters", "application/json",
		`{"slug":"tokens","eventType":"prompt","aggregation":"SUM","valueProperty":"$.tokens","groupBy":{"model":"$.model"}}`, 201)
	all := func(int) bool { return true }
	if got, want := query(""), map[string]string{"": sum(all, 30)}; !maps.Equal(got, want) {
		t.Fatalf("meter created after its events: %v, want %v", got, want)
	}
	if got, want := query("&groupBy=model"), map[string]string{
		"model=small ": sum(func(i int) bool { return i%2 == 0 }, 30),
		"model=large ": sum(func(i int) bool { return i%2 == 1 }, 30),
	}; !maps.Equal(got, want) {
		t.Fatalf("group by model: %v, want %v", got, want)
	}

	ingest(30, 60) // ingestion goes on
	// Change the groupBy: all of history regroups by region.
	call("PUT", "/api/v1/meters/tokens", "application/json", `{"name":"Tokens","groupBy":{"region":"$.region"}}`, 200)
	if got, want := query("&groupBy=region"), map[string]string{
		"region=eu ": sum(func(i int) bool { return i%3 == 0 }, 60),
		"region=us ": sum(func(i int) bool { return i%3 == 1 }, 60),
		"region=ap ": sum(func(i int) bool { return i%3 == 2 }, 60),
	}; !maps.Equal(got, want) {
		t.Fatalf("after groupBy change: %v, want %v", got, want)
	}
	// The old key is gone from the meter.
	call("GET", "/api/v1/meters/tokens/query?groupBy=model", "", "", 400)
	if got, want := query(""), map[string]string{"": sum(all, 60)}; !maps.Equal(got, want) {
		t.Fatalf("total after more ingestion: %v, want %v", got, want)
	}
}

package api_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
)

// Ingestion runs concurrently with meter changes; -race checks the meter
// cache.
func TestConcurrentIngestAndMeterChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				resp, b := e.do("POST", "/api/v1/events", event(fmt.Sprintf("g%d-%d", g, i), "s", "2024-06-10T10:00:00Z", `{"n":1}`))
				if resp.StatusCode != 200 {
					t.Errorf("ingest: %d %s", resp.StatusCode, b)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 10 {
			slug := fmt.Sprintf("m%d", i)
			if resp, b := e.do("POST", "/api/v1/meters", `{"slug":"`+slug+`","aggregation":"SUM","eventType":"prompt","valueProperty":"$.n"}`); resp.StatusCode != 201 {
				t.Errorf("create: %d %s", resp.StatusCode, b)
			}
			if resp, b := e.do("DELETE", "/api/v1/meters/"+slug, nil); resp.StatusCode != 204 {
				t.Errorf("delete: %d %s", resp.StatusCode, b)
			}
		}
	})
	wg.Wait()
	var evs []json.RawMessage
	e.ok(200, "GET", "/api/v1/events?limit=1000", nil, &evs)
	if len(evs) != 160 {
		t.Fatalf("stored %d events, want 160", len(evs))
	}
}

// Meters changed behind the handler's back (by another node) are seen
// within about a second.
func TestMeterCacheRefreshes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(200, "POST", "/api/v1/events", event("warm", "s", "2024-06-10T10:00:00Z", `{}`), nil)
	m := &odometer.Meter{ID: odometer.NewID(testNow), Namespace: "default", Slug: "n", Aggregation: odometer.Sum,
		EventType: "prompt", ValueProperty: "$.n", CreatedAt: testNow, UpdatedAt: testNow}
	if err := e.store.CreateMeter(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		resp, _ := e.do("POST", "/api/v1/events", event(fmt.Sprintf("e%d", i), "s", "2024-06-10T10:00:00Z", `{"n":"x"}`))
		if resp.StatusCode == 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the meter created in the store is still not checked after 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// FuzzIngest: no body makes the ingestion handler fail with a 5xx, and a
// 200 accounts for every event.
func FuzzIngest(f *testing.F) {
	e := newEnv(f, func(c *api.Config) { c.Limits.MaxBodyBytes = 1 << 16 })
	for _, s := range []string{
		event("a", "s", "2024-06-10T10:00:00Z", `{"n":1}`),
		"[" + event("a", "s", "2024-06-10T10:00:00Z", `{}`) + "," + event("b", "s", "", `null`) + "]",
		`[{"id":1}]`, `{"id":"x","source":"s","type":"t","subject":"s","time":"9999-12-31T23:59:59Z"}`,
		`[]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, b := e.with(t).do("POST", "/api/v1/events", body)
		switch resp.StatusCode {
		case 200:
			var r ingestResult
			if err := json.Unmarshal(b, &r); err != nil || r.Accepted+r.Duplicate != len(r.Events) {
				t.Fatalf("200 with %s (%v)", b, err)
			}
		case 400, 413:
		default:
			t.Fatalf("status %d for %q: %s", resp.StatusCode, body, b)
		}
	})
}

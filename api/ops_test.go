package api_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
)

// unreadyStore is a store whose Ping fails.
type unreadyStore struct{ odometer.Store }

func (unreadyStore) Ping(context.Context) error { return errors.New("database file is gone") }

func TestHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		_, b := e.do("GET", path, nil)
		if strings.TrimSpace(string(b)) != `{"status":"ok"}` {
			t.Errorf("GET %s = %s", path, b)
		}
		e.ok(200, "GET", path, nil, nil)
	}

	down := newEnv(t, func(c *api.Config) { c.Store = unreadyStore{c.Store} })
	down.ok(200, "GET", "/healthz", nil, nil)
	p := down.problem(503, "GET", "/readyz", nil)
	if strings.Contains(p.Detail, "gone") {
		t.Errorf("readyz leaks the store error: %q", p.Detail)
	}
	resp, _ := down.do("GET", "/readyz", nil)
	if resp.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(200, "POST", "/api/v1/events", "["+event("a", "s", "2024-06-10T10:00:00Z", `{}`)+","+
		event("a", "s", "2024-06-10T10:00:00Z", `{}`)+"]", nil)
	e.problem(400, "POST", "/api/v1/events", "["+event("b", "s", "bad", `{}`)+","+event("c", "s", "2024-06-10T10:00:00Z", `{}`)+"]")
	e.problem(404, "GET", "/nowhere", nil)
	_, b := e.do("GET", "/metrics", nil)
	text := string(b)
	for _, want := range []string{
		`odometer_ingest_events_total{outcome="accepted"} 1`,
		`odometer_ingest_events_total{outcome="duplicate"} 1`,
		`odometer_ingest_events_total{outcome="rejected"} 2`,
		`odometer_http_requests_total{code="200",route="POST /api/v1/events"} 1`,
		`odometer_http_requests_total{code="400",route="POST /api/v1/events"} 1`,
		`odometer_http_requests_total{code="404",route="unmatched"} 1`,
		`odometer_http_request_duration_seconds_bucket{route="POST /api/v1/events",le="+Inf"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

func TestOpenAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, b := e.do("GET", "/api/v1/openapi.yaml", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /api/v1/openapi.yaml: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI  string                    `yaml:"openapi"`
		Security []map[string]any          `yaml:"security"`
		Paths    map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi: %q", doc.OpenAPI)
	}
	// Every route is documented, with the scope it needs: public routes
	// override the global bearer security with none.
	if len(doc.Security) != 1 || doc.Security[0]["bearerAuth"] == nil {
		t.Errorf("global security = %v, want bearerAuth", doc.Security)
	}
	for _, route := range api.Routes() {
		method, path, _ := strings.Cut(route.Pattern, " ")
		op, _ := doc.Paths[path][strings.ToLower(method)].(map[string]any)
		if op == nil || op["responses"] == nil {
			t.Errorf("openapi.yaml does not document %s", route.Pattern)
			continue
		}
		sec, public := op["security"].([]any)
		switch {
		case route.Scope == "public" && (!public || len(sec) != 0):
			t.Errorf("%s: public but not security: [] in openapi.yaml", route.Pattern)
		case route.Scope != "public" && (op["security"] != nil || op["x-odometer-scope"] != route.Scope):
			t.Errorf("%s: x-odometer-scope %v, security %v; want scope %s and the global security", route.Pattern,
				op["x-odometer-scope"], op["security"], route.Scope)
		}
	}
	if string(api.OpenAPI()) != string(b) {
		t.Error("api.OpenAPI() differs from what is served")
	}
}

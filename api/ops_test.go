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
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi: %q", doc.OpenAPI)
	}
	// Every route is documented.
	for _, route := range []string{
		"POST /api/v1/events", "GET /api/v1/events",
		"GET /api/v1/meters", "POST /api/v1/meters",
		"GET /api/v1/meters/{meterIdOrSlug}", "PUT /api/v1/meters/{meterIdOrSlug}", "DELETE /api/v1/meters/{meterIdOrSlug}",
		"GET /api/v1/meters/{meterIdOrSlug}/query", "POST /api/v1/meters/{meterIdOrSlug}/query",
		"GET /api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values",
		"POST /api/v1/features", "GET /api/v1/features",
		"GET /api/v1/features/{featureIdOrKey}", "DELETE /api/v1/features/{featureIdOrKey}",
		"POST /api/v1/features/{featureId}/archive",
		"POST /api/v1/ledgers", "GET /api/v1/ledgers", "GET /api/v1/ledgers/{ledgerId}",
		"POST /api/v1/ledgers/{ledgerId}/grants", "GET /api/v1/ledgers/{ledgerId}/grants",
		"GET /api/v1/ledgers/{ledgerId}/grants/{grantId}", "POST /api/v1/ledgers/{ledgerId}/grants/{grantId}/void",
		"GET /api/v1/ledgers/{ledgerId}/balance", "GET /api/v1/ledgers/{ledgerId}/history",
		"POST /api/v1/ledgers/{ledgerId}/reset", "GET /api/v1/ledgers/{ledgerId}/access",
		"GET /api/v1/openapi.yaml", "GET /healthz", "GET /readyz", "GET /metrics",
	} {
		method, path, _ := strings.Cut(route, " ")
		op, _ := doc.Paths[path][strings.ToLower(method)].(map[string]any)
		if op == nil || op["responses"] == nil {
			t.Errorf("openapi.yaml does not document %s", route)
		}
	}
	if string(api.OpenAPI()) != string(b) {
		t.Error("api.OpenAPI() differs from what is served")
	}
}

package api_test

import (
	"strings"
	"testing"
	"time"
)

type meterDoc struct {
	ID            string              `json:"id"`
	Slug          string              `json:"slug"`
	Name          string              `json:"name"`
	Description   string              `json:"description"`
	Metadata      map[string]string   `json:"metadata"`
	Aggregation   string              `json:"aggregation"`
	EventType     string              `json:"eventType"`
	EventFrom     *time.Time          `json:"eventFrom"`
	ValueProperty string              `json:"valueProperty"`
	GroupBy       map[string]string   `json:"groupBy"`
	Filters       map[string][]string `json:"filters"`
	CreatedAt     time.Time           `json:"createdAt"`
	UpdatedAt     time.Time           `json:"updatedAt"`
	DeletedAt     *time.Time          `json:"deletedAt"`
}

func TestMetersCRUD(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var list []meterDoc
	e.ok(200, "GET", "/api/v1/meters", nil, &list)
	if list == nil || len(list) != 0 {
		t.Fatalf("empty list = %#v, want []", list)
	}

	var m meterDoc
	resp := e.ok(201, "POST", "/api/v1/meters", `{
		"slug": "tokens_total", "description": "AI tokens", "metadata": {"team": "ml"},
		"aggregation": "SUM", "eventType": "prompt", "valueProperty": "$.tokens",
		"groupBy": {"model": "$.model"}, "filters": {"$.region": ["eu", "us"]}}`, &m)
	if len(m.ID) != 26 || m.Slug != "tokens_total" || m.Name != "tokens_total" || m.Description != "AI tokens" ||
		m.Metadata["team"] != "ml" || m.Aggregation != "SUM" || m.EventType != "prompt" || m.ValueProperty != "$.tokens" ||
		m.GroupBy["model"] != "$.model" || strings.Join(m.Filters["$.region"], ",") != "eu,us" ||
		!m.CreatedAt.Equal(testNow) || !m.UpdatedAt.Equal(testNow) || m.DeletedAt != nil || m.EventFrom != nil {
		t.Fatalf("created %+v", m)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/v1/meters/"+m.ID {
		t.Errorf("Location %q", loc)
	}
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"call","eventFrom":"2024-01-01T00:00:00Z"}`, nil)

	// Conflict on the slug.
	p := e.problem(409, "POST", "/api/v1/meters", `{"slug":"tokens_total","aggregation":"COUNT","eventType":"x"}`)
	if !strings.Contains(p.Detail, "tokens_total") {
		t.Errorf("409 detail %q", p.Detail)
	}

	// Get by slug and by id; list ordered by slug.
	var got meterDoc
	e.ok(200, "GET", "/api/v1/meters/tokens_total", nil, &got)
	if got.ID != m.ID || got.Filters["$.region"][1] != "us" {
		t.Fatalf("get by slug %+v", got)
	}
	e.ok(200, "GET", "/api/v1/meters/"+m.ID, nil, &got)
	if got.Slug != "tokens_total" {
		t.Fatalf("get by id %+v", got)
	}
	e.ok(200, "GET", "/api/v1/meters", nil, &list)
	if len(list) != 2 || list[0].Slug != "calls" || list[1].Slug != "tokens_total" {
		t.Fatalf("list %+v", list)
	}
	e.ok(200, "GET", "/api/v1/meters?orderBy=key&order=DESC&page=1&pageSize=1", nil, &list)
	if len(list) != 1 || list[0].Slug != "tokens_total" {
		t.Fatalf("paged list %+v", list)
	}
	wantFields(t, e.problem(400, "GET", "/api/v1/meters?orderBy=size", nil), "orderBy")
	wantFields(t, e.problem(400, "GET", "/api/v1/meters?includeDeleted=true", nil), "includeDeleted")

	// Update: the mutable fields are replaced; filters stay when absent.
	var up meterDoc
	e.ok(200, "PUT", "/api/v1/meters/tokens_total", `{"name":"Tokens","groupBy":{"model":"$.model","kind":"$.kind"}}`, &up)
	if up.ID != m.ID || up.Name != "Tokens" || up.Description != "" || up.Metadata != nil || len(up.GroupBy) != 2 ||
		len(up.Filters) != 1 || !up.CreatedAt.Equal(testNow) {
		t.Fatalf("updated %+v", up)
	}
	// A fetched meter can be sent back as it is (read-only and unchanged
	// immutable fields are accepted); filters: null clears them.
	e.ok(200, "PUT", "/api/v1/meters/"+m.ID, `{"id":"whatever","slug":"tokens_total","aggregation":"SUM","eventType":"prompt",
		"valueProperty":"$.tokens","createdAt":"2020-01-01T00:00:00Z","updatedAt":"x","name":"Tokens","filters":null}`, &up)
	if up.Filters != nil || up.GroupBy != nil {
		t.Fatalf("updated %+v", up)
	}
	e.ok(200, "GET", "/api/v1/meters/tokens_total", nil, &got)
	if got.Name != "Tokens" || got.Filters != nil {
		t.Fatalf("after update %+v", got)
	}
	// Immutable fields.
	for body, field := range map[string]string{
		`{"slug":"other"}`:                          "slug",
		`{"aggregation":"MAX"}`:                     "aggregation",
		`{"eventType":"x"}`:                         "eventType",
		`{"valueProperty":"$.other"}`:               "valueProperty",
		`{"eventFrom":"2024-01-01T00:00:00Z"}`:      "eventFrom",
		`{"name":"ok","groupBy":{"subject":"$.s"}}`: "groupBy.subject",
	} {
		wantFields(t, e.problem(400, "PUT", "/api/v1/meters/tokens_total", body), field)
	}
	// COUNT meters ignore valueProperty; their eventFrom may be resent.
	e.ok(200, "PUT", "/api/v1/meters/calls", `{"valueProperty":"$.x","eventFrom":"2024-01-01T00:00:00.000Z"}`, nil)
	e.problem(404, "PUT", "/api/v1/meters/nope", `{"name":"x"}`)

	// Delete.
	e.ok(204, "DELETE", "/api/v1/meters/tokens_total", nil, nil)
	e.problem(404, "GET", "/api/v1/meters/tokens_total", nil)
	e.problem(404, "GET", "/api/v1/meters/"+m.ID, nil)
	e.problem(404, "DELETE", "/api/v1/meters/tokens_total", nil)
	// The slug is free again.
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"tokens_total","aggregation":"COUNT","eventType":"prompt"}`, nil)
}

func TestMeterBodyErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		body   string
		fields []string
	}{
		{`{"slug":"a","aggregation":"SUM","eventType":"p","valueProperty":"$.v","colour":"red"}`, []string{"colour"}},
		{`{"slug":"a","aggregation":"SUM","eventType":"p","valueProperty":"$.v","filters":{"$.x":"eu"}}`, []string{"filters.$.x"}},
		{`{"slug":"a","aggregation":"SUM","eventType":"p","valueProperty":"$.v","filters":{"$.x":[]}}`, []string{"filters.$.x"}},
		{`{"slug":"a","aggregation":"SUM","eventType":"p","valueProperty":"$.v","metadata":{"n":1}}`, []string{"metadata.n"}},
		{`{"slug":"a","aggregation":"SUM","eventType":"p","valueProperty":"$.v","eventFrom":"soon"}`, []string{"eventFrom"}},
		{`{"slug":"a","aggregation":"SUM","eventType":"p","valueProperty":"$.v"} {}`, []string{"body"}},
		{`{"slug":"a",}`, []string{"body"}},
		{`{"slug":5}`, []string{"slug"}},
		{`[]`, []string{"body"}},
		{``, []string{"body"}},
		{`{"slug":"no spaces","aggregation":"SUMMARY","eventType":""}`, []string{"slug", "aggregation", "eventType"}},
		{`{"slug":"a","aggregation":"SUM","eventType":"p"}`, []string{"valueProperty"}},
		// Decoding and validation problems come in one answer.
		{`{"slug":"a b","aggregation":"SUM","eventType":"p","valueProperty":"$.v","metadata":{"n":1},"eventFrom":"now"}`,
			[]string{"metadata.n", "eventFrom", "slug"}},
	} {
		p := e.problem(400, "POST", "/api/v1/meters", tc.body)
		wantFields(t, p, tc.fields...)
	}
	p := e.problem(400, "POST", "/api/v1/meters", `{"slug":"a",}`)
	if !strings.Contains(p.Errors[0].Reason, "offset 13") {
		t.Errorf("syntax error reason %q does not give the offset", p.Errors[0].Reason)
	}
	e.problem(415, "POST", "/api/v1/meters", `{}`, "Content-Type", "text/plain")
	e.problem(400, "GET", "/api/v1/meters/x?verbose=1", nil)
}

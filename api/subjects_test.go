package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

type subjectsDoc struct {
	Subjects []string `json:"subjects"`
	Next     *string  `json:"next"`
}

// subjects lists subjects with the query string and returns the page as
// "a,b,c" and its next ("-" when absent).
func (e *env) subjects(query string, hdr ...string) (string, string) {
	e.t.Helper()
	resp, b := e.do("GET", "/api/v1/event-subjects"+query, nil, hdr...)
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET /api/v1/event-subjects%s: %d %s", query, resp.StatusCode, b)
	}
	var doc subjectsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		e.t.Fatal(err)
	}
	if doc.Subjects == nil {
		e.t.Fatalf("GET /api/v1/event-subjects%s: subjects is %s, want an array", query, b)
	}
	next := "-"
	if doc.Next != nil {
		next = *doc.Next
	}
	return strings.Join(doc.Subjects, ","), next
}

func TestListSubjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if got, next := e.subjects(""); got != "" || next != "-" {
		t.Fatalf("no events: %q, next %q", got, next)
	}
	var evs []string
	for i, subj := range []string{"customer-1", "customer-2", "customer-10", "Customer-1", "customer_x", "other", "customer-1"} {
		evs = append(evs, event(fmt.Sprint("e", i), subj, "2024-06-10T10:00:00Z", `{}`))
	}
	// The same subjects in another event type count once.
	evs = append(evs, `{"id":"o1","source":"test","type":"other","subject":"customer-2"}`,
		`{"id":"o2","source":"test","type":"other","subject":"zeta"}`)
	e.ok(200, "POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]", nil)

	for _, tc := range []struct{ query, want, next string }{
		{"", "Customer-1,customer-1,customer-10,customer-2,customer_x,other,zeta", "-"},
		{"?prefix=customer", "customer-1,customer-10,customer-2,customer_x", "-"},
		{"?prefix=customer_", "customer_x", "-"}, // no wildcards
		{"?prefix=Customer", "Customer-1", "-"},  // case-sensitive
		{"?prefix=customer%25", "", "-"},
		{"?prefix=customer-1", "customer-1,customer-10", "-"},
		{"?after=customer-10", "customer-2,customer_x,other,zeta", "-"},
		{"?after=customer-1&prefix=customer-1", "customer-10", "-"},
		// Paging: next is the last subject of a full page.
		{"?limit=3", "Customer-1,customer-1,customer-10", "customer-10"},
		{"?limit=3&after=customer-10", "customer-2,customer_x,other", "other"},
		{"?limit=3&after=other", "zeta", "-"},
		// A full last page has a next too, whose page is empty.
		{"?limit=7", "Customer-1,customer-1,customer-10,customer-2,customer_x,other,zeta", "zeta"},
		{"?limit=7&after=zeta", "", "-"},
		{"?prefix=" + url.QueryEscape("é"), "", "-"},
	} {
		got, next := e.subjects(tc.query)
		if got != tc.want || next != tc.next {
			t.Errorf("GET /api/v1/event-subjects%s = %q, next %q; want %q, next %q", tc.query, got, next, tc.want, tc.next)
		}
	}
	for _, tc := range []struct{ query, field string }{
		{"?limit=0", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=ten", "limit"},
		{"?prefix=a&prefix=b", "prefix"},
		{"?after=a&after=b", "after"},
		{"?subject=a", "subject"},
	} {
		wantFields(t, e.problem(400, "GET", "/api/v1/event-subjects"+tc.query, nil), tc.field)
	}
	// The default page is 100, the largest 1000.
	evs = evs[:0]
	for i := range 1200 {
		evs = append(evs, event(fmt.Sprint("bulk-", i), fmt.Sprintf("s%04d", i), "2024-06-10T10:00:00Z", `{}`))
	}
	e.ok(200, "POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]", nil)
	if got, next := e.subjects("?prefix=s"); strings.Count(got, ",") != 99 || next != "s0099" {
		t.Errorf("default page: %d subjects, next %q", strings.Count(got, ",")+1, next)
	}
	if got, next := e.subjects("?prefix=s&limit=1000"); strings.Count(got, ",") != 999 || next != "s0999" {
		t.Errorf("largest page: %d subjects, next %q", strings.Count(got, ",")+1, next)
	}
}

// Each key lists its own namespace's subjects only.
func TestListSubjectsNamespaces(t *testing.T) {
	t.Parallel()
	e := closedEnv(t)
	alpha, beta := e.key("alpha", "ingest"), e.key("beta", "ingest")
	alphaRead, betaRead := e.key("alpha", "read"), e.key("beta", "read")
	e.ok(200, "POST", "/api/v1/events", event("a1", "shared", "2024-06-10T10:00:00Z", `{}`), nil, bearer(alpha)...)
	e.ok(200, "POST", "/api/v1/events", event("a2", "alpha-only", "2024-06-10T10:00:00Z", `{}`), nil, bearer(alpha)...)
	e.ok(200, "POST", "/api/v1/events", event("b1", "shared", "2024-06-10T10:00:00Z", `{}`), nil, bearer(beta)...)
	e.ok(200, "POST", "/api/v1/events", event("b2", "beta-only", "2024-06-10T10:00:00Z", `{}`), nil, bearer(beta)...)
	if got, _ := e.subjects("", bearer(alphaRead)...); got != "alpha-only,shared" {
		t.Errorf("alpha lists %q", got)
	}
	if got, _ := e.subjects("", bearer(betaRead)...); got != "beta-only,shared" {
		t.Errorf("beta lists %q", got)
	}
	e.problem(403, "GET", "/api/v1/event-subjects", nil, bearer(alpha)...) // an ingest key may not read
}

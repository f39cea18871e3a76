package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
)

// created is when the suite's meters are created: microsecond precision,
// as the stores keep it.
var created = time.Date(2025, 2, 1, 8, 30, 0, 123456000, time.UTC)

// fullMeter returns a SUM meter with every optional field set.
func fullMeter(ns, slug string) *odometer.Meter {
	from := time.Date(2025, 1, 1, 0, 0, 0, 1000, time.UTC)
	return &odometer.Meter{
		ID:            odometer.NewID(created),
		Namespace:     ns,
		Slug:          slug,
		Name:          "Tokens used",
		Description:   "LLM tokens, by model and region",
		Metadata:      map[string]string{"team": "billing", "unit": "token"},
		Aggregation:   odometer.Sum,
		EventType:     "tokens",
		EventFrom:     &from,
		ValueProperty: "$.tokens",
		GroupBy:       map[string]string{"model": "$.model", "region": "$['meta']['region']"},
		Filters:       map[string][]string{"$.env": {"prod", "staging"}},
		CreatedAt:     created,
		UpdatedAt:     created,
	}
}

// minimalMeter returns a COUNT meter with every optional field empty: nil
// maps must come back nil.
func minimalMeter(ns, slug string) *odometer.Meter {
	return &odometer.Meter{
		ID:          odometer.NewID(created),
		Namespace:   ns,
		Slug:        slug,
		Name:        slug,
		Aggregation: odometer.Count,
		EventType:   "requests",
		CreatedAt:   created,
		UpdatedAt:   created,
	}
}

func mustCreate(t *testing.T, s odometer.Store, m *odometer.Meter) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("test meter %q is invalid: %v", m.Slug, err)
	}
	if err := s.CreateMeter(t.Context(), m); err != nil {
		t.Fatalf("CreateMeter(%q): %v", m.Slug, err)
	}
}

// wantMeter checks that idOrSlug finds a meter equal to want.
func wantMeter(t *testing.T, s odometer.Store, ns, idOrSlug string, want *odometer.Meter) {
	t.Helper()
	got, err := s.FindMeter(t.Context(), ns, idOrSlug)
	if err != nil {
		t.Fatalf("FindMeter(%q, %q): %v", ns, idOrSlug, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FindMeter(%q, %q) (-want +got):\n%s", ns, idOrSlug, diff)
	}
}

// wantNotFound checks that idOrSlug finds nothing, with an ENOTFOUND error
// that names it.
func wantNotFound(t *testing.T, s odometer.Store, ns, idOrSlug string) {
	t.Helper()
	m, err := s.FindMeter(t.Context(), ns, idOrSlug)
	wantCode(t, "FindMeter("+ns+", "+idOrSlug+")", err, odometer.ENOTFOUND)
	if m != nil {
		t.Errorf("FindMeter(%q, %q) returned a meter with its error: %+v", ns, idOrSlug, m)
	}
	if msg := odometer.ErrorMessage(err); !strings.Contains(msg, idOrSlug) {
		t.Errorf("FindMeter(%q, %q): message %q does not name what was not found", ns, idOrSlug, msg)
	}
}

// wantList checks the slugs ListMeters returns, in order, and that each
// listed meter equals the one found by its ID.
func wantList(t *testing.T, s odometer.Store, ns string, slugs ...string) []*odometer.Meter {
	t.Helper()
	ms, err := s.ListMeters(t.Context(), ns)
	if err != nil {
		t.Fatalf("ListMeters(%q): %v", ns, err)
	}
	got := []string{}
	for _, m := range ms {
		got = append(got, m.Slug)
	}
	if slugs == nil {
		slugs = []string{}
	}
	if diff := cmp.Diff(slugs, got); diff != "" {
		t.Fatalf("ListMeters(%q) slugs (-want +got):\n%s", ns, diff)
	}
	for _, m := range ms {
		wantMeter(t, s, ns, m.ID, m)
	}
	return ms
}

func testMeterLifecycle(t *testing.T, s odometer.Store) {
	wantList(t, s, "ns")
	full := fullMeter("ns", "tokens")
	minimal := minimalMeter("ns", "api_calls")
	mustCreate(t, s, full)
	mustCreate(t, s, minimal)

	wantMeter(t, s, "ns", full.ID, full)
	wantMeter(t, s, "ns", "tokens", full)
	wantMeter(t, s, "ns", minimal.ID, minimal)
	wantMeter(t, s, "ns", "api_calls", minimal)
	ms := wantList(t, s, "ns", "api_calls", "tokens")
	if diff := cmp.Diff([]*odometer.Meter{minimal, full}, ms); diff != "" {
		t.Errorf("ListMeters (-want +got):\n%s", diff)
	}

	taken := minimalMeter("ns", "tokens")
	wantCode(t, "CreateMeter with a taken slug", s.CreateMeter(t.Context(), taken), odometer.ECONFLICT)
	wantList(t, s, "ns", "api_calls", "tokens")
	wantMeter(t, s, "ns", "tokens", full)

	wantNotFound(t, s, "ns", "nope")
	wantNotFound(t, s, "ns", odometer.NewID(created))
	wantNotFound(t, s, "ns", "")
}

func testMeterUpdate(t *testing.T, s odometer.Store) {
	m := fullMeter("ns", "tokens")
	other := minimalMeter("ns", "api_calls")
	mustCreate(t, s, m)
	mustCreate(t, s, other)

	// Every field but the key changes, including optional ones to nil.
	u := *m
	u.Slug = "tokens-v2"
	u.Name = "Tokens (v2)"
	u.Description = ""
	u.Metadata = map[string]string{"team": "growth"}
	u.Aggregation = odometer.Max
	u.EventType = "tokens.v2"
	u.EventFrom = nil
	u.ValueProperty = "$.usage.total"
	u.GroupBy = map[string]string{"tier": "$.tier"}
	u.Filters = nil
	u.UpdatedAt = created.Add(36*time.Hour + time.Microsecond)
	if err := s.UpdateMeter(t.Context(), &u); err != nil {
		t.Fatalf("UpdateMeter: %v", err)
	}
	wantMeter(t, s, "ns", m.ID, &u)
	wantMeter(t, s, "ns", "tokens-v2", &u)
	wantNotFound(t, s, "ns", "tokens")
	wantList(t, s, "ns", "api_calls", "tokens-v2")

	// The old slug is free again; another meter's slug is not.
	back := u
	back.Slug = "tokens"
	if err := s.UpdateMeter(t.Context(), &back); err != nil {
		t.Fatalf("UpdateMeter back to the old slug: %v", err)
	}
	clash := back
	clash.Slug = "api_calls"
	wantCode(t, "UpdateMeter to a taken slug", s.UpdateMeter(t.Context(), &clash), odometer.ECONFLICT)
	wantMeter(t, s, "ns", m.ID, &back)
	wantMeter(t, s, "ns", "api_calls", other)

	missing := minimalMeter("ns", "missing")
	wantCode(t, "UpdateMeter of an unknown id", s.UpdateMeter(t.Context(), missing), odometer.ENOTFOUND)
	wantNotFound(t, s, "ns", "missing")
}

func testMeterDelete(t *testing.T, s odometer.Store) {
	m := fullMeter("ns", "tokens")
	keep := minimalMeter("ns", "api_calls")
	mustCreate(t, s, m)
	mustCreate(t, s, keep)

	if err := s.DeleteMeter(t.Context(), "ns", m.ID, created.Add(time.Hour)); err != nil {
		t.Fatalf("DeleteMeter: %v", err)
	}
	wantNotFound(t, s, "ns", m.ID)
	wantNotFound(t, s, "ns", "tokens")
	wantList(t, s, "ns", "api_calls")
	wantCode(t, "DeleteMeter twice", s.DeleteMeter(t.Context(), "ns", m.ID, created.Add(2*time.Hour)), odometer.ENOTFOUND)
	wantCode(t, "UpdateMeter of a deleted meter", s.UpdateMeter(t.Context(), m), odometer.ENOTFOUND)
	wantCode(t, "DeleteMeter of an unknown id", s.DeleteMeter(t.Context(), "ns", "nope", created), odometer.ENOTFOUND)

	// The slug is free for a new meter, and the deleted one stays gone.
	again := minimalMeter("ns", "tokens")
	mustCreate(t, s, again)
	wantMeter(t, s, "ns", "tokens", again)
	wantNotFound(t, s, "ns", m.ID)
	wantList(t, s, "ns", "api_calls", "tokens")
	wantMeter(t, s, "ns", "api_calls", keep)
}

func testMeterNamespaces(t *testing.T, s odometer.Store) {
	a := fullMeter("ns-a", "tokens")
	mustCreate(t, s, a)
	// The same slug in another namespace is no conflict.
	b := fullMeter("ns-b", "tokens")
	mustCreate(t, s, b)
	wantMeter(t, s, "ns-a", "tokens", a)
	wantMeter(t, s, "ns-b", "tokens", b)
	wantAll(t, s, "ns-a/tokens", "ns-b/tokens")

	// Another namespace's meter cannot be found, changed or deleted by ID.
	wantNotFound(t, s, "ns-c", a.ID)
	wantNotFound(t, s, "ns-b", a.ID)
	moved := *a
	moved.Namespace = "ns-c"
	wantCode(t, "UpdateMeter in another namespace", s.UpdateMeter(t.Context(), &moved), odometer.ENOTFOUND)
	wantCode(t, "DeleteMeter in another namespace", s.DeleteMeter(t.Context(), "ns-b", a.ID, created), odometer.ENOTFOUND)
	wantMeter(t, s, "ns-a", a.ID, a)
	wantList(t, s, "ns-c")

	if err := s.DeleteMeter(t.Context(), "ns-a", a.ID, created); err != nil {
		t.Fatalf("DeleteMeter: %v", err)
	}
	wantMeter(t, s, "ns-b", "tokens", b)
	wantList(t, s, "ns-a")
	wantList(t, s, "ns-b", "tokens")
	wantAll(t, s, "ns-b/tokens")
}

// wantAll checks the namespace/slug of the meters ListMeters(ctx, "")
// returns, in order.
func wantAll(t *testing.T, s odometer.Store, want ...string) {
	t.Helper()
	ms, err := s.ListMeters(t.Context(), "")
	if err != nil {
		t.Fatalf("ListMeters(\"\"): %v", err)
	}
	got := []string{}
	for _, m := range ms {
		got = append(got, m.Namespace+"/"+m.Slug)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListMeters(\"\") (-want +got):\n%s", diff)
	}
}

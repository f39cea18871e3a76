package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

func TestRegisterRefusesRouteWithoutScope(t *testing.T) {
	t.Parallel()
	ok := func(http.ResponseWriter, *http.Request) error { return nil }
	for _, scope := range []string{"", "write", "Admin"} {
		h := &handler{mux: http.NewServeMux()}
		err := h.register([]route{{"GET /api/v1/x", scope, rateNone, ok}})
		if err == nil || !strings.Contains(err.Error(), "GET /api/v1/x") {
			t.Errorf("scope %q: err %v; want a refusal naming the route", scope, err)
		}
	}
	h := &handler{mux: http.NewServeMux()}
	if err := h.register([]route{{"GET /api/v1/x", scopeRead, rateNone, ok}, {"GET /y", scopePublic, rateNone, ok}}); err != nil {
		t.Fatal(err)
	}
}

func TestLimiter(t *testing.T) {
	t.Parallel()
	if l := newLimiter(0, 10); l != nil {
		t.Fatal("rate 0 makes a limiter")
	}
	if _, ok := (*limiter)(nil).take("k", time.Now()); !ok {
		t.Fatal("the nil limiter refuses")
	}
	if l := newLimiter(0.5, 0); l.burst != 1 {
		t.Errorf("rate 0.5: burst %g, want 1", l.burst)
	}
	if l := newLimiter(20, 0); l.burst != 20 {
		t.Errorf("rate 20: burst %g, want 20", l.burst)
	}

	t0 := time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)
	l := newLimiter(2, 3) // 2 per second, bursts of 3
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	for i := range 3 {
		if _, ok := l.take("a", at(0)); !ok {
			t.Fatalf("burst request %d refused", i)
		}
	}
	wait, ok := l.take("a", at(0))
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("4th request: ok %v, wait %v; want refused, 500ms", ok, wait)
	}
	if _, ok := l.take("b", at(0)); !ok {
		t.Fatal("another key shares the bucket")
	}
	if wait, ok := l.take("a", at(250*time.Millisecond)); ok || wait != 250*time.Millisecond {
		t.Fatalf("after 250ms: ok %v, wait %v", ok, wait)
	}
	if _, ok := l.take("a", at(500*time.Millisecond)); !ok {
		t.Fatal("after 500ms: refused")
	}
	// A clock that goes back does not add tokens.
	if _, ok := l.take("a", at(-time.Hour)); ok {
		t.Fatal("a clock going back refilled the bucket")
	}
	// Buckets that filled up again are dropped on the next sweep, a minute
	// after the last; the others stay.
	for range 3 {
		l.take("c", at(sweepEvery-100*time.Millisecond))
	}
	l.take("d", at(sweepEvery-50*time.Millisecond))
	if len(l.buckets) != 4 {
		t.Fatalf("%d buckets before the sweep; want 4", len(l.buckets))
	}
	l.take("e", at(sweepEvery+100*time.Millisecond))
	if len(l.buckets) != 3 || l.buckets["a"] != nil || l.buckets["b"] != nil {
		t.Fatalf("after the sweep: %v; want c, d and e", l.buckets)
	}
}

func TestCheckWindows(t *testing.T) {
	t.Parallel()
	tm := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to string
		ws       odometer.WindowSize
		loc      *time.Location
		want     int64 // windows
	}{
		{"2024-06-01T00:00:00Z", "2024-06-01T00:01:00Z", odometer.Minute, nil, 1},
		{"2024-06-01T00:00:30Z", "2024-06-01T00:01:00.000001Z", odometer.Minute, nil, 2},
		{"2024-06-01T00:00:00Z", "2024-06-08T00:00:00Z", odometer.Minute, nil, 10080},
		{"2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z", odometer.Hour, nil, 24},
		{"2024-06-01T00:00:00Z", "2024-06-02T00:00:00Z", odometer.Hour, kolkata, 25}, // hours start at :30 UTC
		{"2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z", odometer.Day, ny, 1},        // the 23-hour day
		{"2024-03-10T05:00:00Z", "2024-03-11T04:00:01Z", odometer.Day, ny, 2},
		{"2024-01-31T23:00:00Z", "2024-02-01T01:00:00Z", odometer.Day, nil, 2},
		{"2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", odometer.Month, nil, 12},
		{"2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", odometer.Month, ny, 13}, // 2023-12-31 19:00 local
		{"0001-01-02T00:00:00Z", "9999-01-01T00:00:00Z", odometer.Minute, nil, 5258437920},
	} {
		from, to := tm(tc.from), tm(tc.to)
		// At the count the query passes; one below, it does not.
		if f := checkWindows(nil, from, to, tc.ws, tc.loc, int(tc.want)); len(f) != 0 {
			t.Errorf("%s %s..%s in %v with limit %d: %v", tc.ws, tc.from, tc.to, tc.loc, tc.want, f)
		}
		f := checkWindows(nil, from, to, tc.ws, tc.loc, int(tc.want-1))
		if len(f) != 1 || f[0].Field != "windowSize" || !strings.Contains(f[0].Reason, fmt.Sprint(tc.want)) {
			t.Errorf("%s %s..%s in %v with limit %d: %v", tc.ws, tc.from, tc.to, tc.loc, tc.want-1, f)
		}
	}
	// No windowSize, no from, or an empty range: nothing to count.
	for _, f := range [][]odometer.FieldError{
		checkWindows(nil, tm("2000-01-01T00:00:00Z"), tm("2024-01-01T00:00:00Z"), "", nil, 1),
		checkWindows(nil, time.Time{}, tm("2024-01-01T00:00:00Z"), odometer.Minute, nil, 1),
		checkWindows(nil, tm("2024-01-01T00:00:00Z"), tm("2000-01-01T00:00:00Z"), odometer.Minute, nil, 1),
	} {
		if len(f) != 0 {
			t.Errorf("refused: %v", f)
		}
	}
}

// countingKeys is a KeyStore that counts its lookups and knows one key.
type countingKeys struct {
	odometer.KeyStore
	key     *odometer.APIKey
	lookups int
}

func (s *countingKeys) FindAPIKey(_ context.Context, id string) (*odometer.APIKey, error) {
	s.lookups++
	if s.key != nil && id == s.key.ID {
		k := *s.key
		return &k, nil
	}
	return nil, odometer.Errorf(odometer.ENOTFOUND, "API key %q not found", id)
}

func TestKeyCache(t *testing.T) {
	t.Parallel()
	_, k, err := odometer.NewAPIKey("ns", "n", []string{"read"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	store := &countingKeys{key: k}
	c := newKeyCache(store, time.Hour)
	for range 3 {
		if got, err := c.find(t.Context(), k.ID); err != nil || got == nil || got.ID != k.ID {
			t.Fatalf("find: %v %v", got, err)
		}
		if got, err := c.find(t.Context(), "missing"); err != nil || got != nil {
			t.Fatalf("find missing: %v %v", got, err)
		}
	}
	if store.lookups != 2 {
		t.Fatalf("%d lookups; want 2, then answers from the cache", store.lookups)
	}
	c.forget(k.ID)
	c.find(t.Context(), k.ID)
	if store.lookups != 3 {
		t.Fatalf("forget: %d lookups", store.lookups)
	}
	// Unknown ids cannot grow the cache without bound.
	for i := range maxCachedKeys + 10 {
		c.find(t.Context(), fmt.Sprint("unknown-", i))
	}
	if n := len(c.entries); n > maxCachedKeys {
		t.Fatalf("%d entries; the bound is %d", n, maxCachedKeys)
	}
	// Entries expire after the TTL.
	short := newKeyCache(store, time.Millisecond)
	short.find(t.Context(), k.ID)
	time.Sleep(5 * time.Millisecond)
	before := store.lookups
	short.find(t.Context(), k.ID)
	if store.lookups != before+1 {
		t.Fatal("an expired entry was used")
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tok, _, err := odometer.NewAPIKey("ns", "n", []string{"read"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{tok, "/api/v1/keys/" + tok, `meter "` + tok + `" not found`, tok + "," + tok} {
		if got := redact(s); strings.Contains(got, tok[len(tok)-20:]) || !strings.Contains(got, "odo_<redacted>") {
			t.Errorf("redact(%q) = %q", s, got)
		}
	}
	for _, s := range []string{"", "odo_", "/api/v1/meters/odometer", "odo_short_x"} {
		if got := redact(s); got != s {
			t.Errorf("redact(%q) = %q; want it unchanged", s, got)
		}
	}
}

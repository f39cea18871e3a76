package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
)

type outcomesDoc struct {
	ID     string        `json:"id"`
	Stored []listedEvent `json:"stored"`
	Recent []struct {
		Source     string    `json:"source"`
		ID         string    `json:"id"`
		Truncated  bool      `json:"truncated"`
		Outcome    string    `json:"outcome"`
		ReceivedAt time.Time `json:"receivedAt"`
		Reasons    []struct {
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"reasons"`
	} `json:"recent"`
}

// outcomes looks up id (and source, unless "").
func (e *env) outcomes(id, source string, hdr ...string) outcomesDoc {
	e.t.Helper()
	q := url.Values{"id": {id}}
	if source != "" {
		q.Set("source", source)
	}
	var doc outcomesDoc
	e.ok(200, "GET", "/api/v1/events/outcomes?"+q.Encode(), nil, &doc, hdr...)
	if doc.ID != id || doc.Stored == nil || doc.Recent == nil {
		e.t.Fatalf("outcomes of %q: %+v; want the id and arrays", id, doc)
	}
	for _, r := range doc.Recent {
		if r.Reasons == nil {
			e.t.Fatalf("outcomes of %q: reasons null, want an array", id)
		}
	}
	return doc
}

// summary is "outcome:source:field=reason|field=reason;…" for each recent
// entry, newest first, with "stored:source" for each stored event first.
func (d outcomesDoc) summary() string {
	var parts []string
	for _, s := range d.Stored {
		parts = append(parts, "stored:"+s.Event.Source)
	}
	for _, r := range d.Recent {
		var reasons []string
		for _, x := range r.Reasons {
			reasons = append(reasons, x.Field)
		}
		parts = append(parts, r.Outcome+":"+r.Source+":"+strings.Join(reasons, "|"))
	}
	return strings.Join(parts, ";")
}

func TestOutcomesRejectedBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	batch := "[" +
		event("bad-time", "s", "yesterday", `{}`) + "," +
		event("good", "s", "2024-06-10T10:00:00Z", `{}`) + "," +
		`{"id":"no-subject","source":"test","type":"prompt","time":"2024-06-10T10:00:00Z"}` + "," +
		`{"source":"test","type":"prompt","subject":"s"}` + "," + // no id: nothing to look up
		`{"id":"two-problems","type":"prompt","subject":"s","time":"later"}` + "," +
		`{"id":7,"source":"test","type":"prompt","subject":"s"}` + "]"
	p := e.problem(400, "POST", "/api/v1/events", batch)
	wantFields(t, p, "0:time", "2:subject", "3:id", "4:source", "4:time", "5:id")

	d := e.outcomes("bad-time", "")
	if d.summary() != "rejected:test:time" || !strings.Contains(d.Recent[0].Reasons[0].Reason, "yesterday") ||
		!d.Recent[0].ReceivedAt.Equal(testNow) || d.Recent[0].ID != "bad-time" {
		t.Errorf("bad-time: %+v", d)
	}
	d = e.outcomes("good", "")
	if d.summary() != "rejected:test:batch" {
		t.Fatalf("good: %+v", d)
	}
	if r := d.Recent[0].Reasons[0].Reason; !strings.Contains(r, "events 0, 2 and 3 more") || !strings.Contains(r, "all or nothing") {
		t.Errorf("good's reason %q does not name the invalid events", r)
	}
	if d := e.outcomes("no-subject", ""); d.summary() != "rejected:test:subject" {
		t.Errorf("no-subject: %+v", d)
	}
	if d := e.outcomes("two-problems", ""); d.summary() != "rejected::source|time" {
		t.Errorf("two-problems: %+v", d)
	}
	if d := e.outcomes("7", ""); d.summary() != "" {
		t.Errorf("an id that is not a string: %+v", d)
	}
	// A single event, and events a meter cannot count.
	e.problem(400, "POST", "/api/v1/events", event("alone", "s", "soon", `{}`), "Content-Type", "application/cloudevents+json")
	if d := e.outcomes("alone", ""); d.summary() != "rejected:test:time" {
		t.Errorf("alone: %+v", d)
	}
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"tokens","aggregation":"SUM","eventType":"prompt","valueProperty":"$.tokens"}`, nil)
	e.problem(400, "POST", "/api/v1/events", "["+event("ok", "s", "2024-06-10T10:00:00Z", `{"tokens":1}`)+","+
		event("nan", "s", "2024-06-10T10:00:00Z", `{"tokens":"many"}`)+"]")
	if d := e.outcomes("nan", ""); d.summary() != "rejected:test:data.tokens" || !strings.Contains(d.Recent[0].Reasons[0].Reason, `"tokens"`) {
		t.Errorf("nan: %+v", d)
	}
	d = e.outcomes("ok", "")
	if d.summary() != "rejected:test:batch" || !strings.Contains(d.Recent[0].Reasons[0].Reason, "its event 1 is invalid") {
		t.Errorf("ok: %+v", d)
	}
	// Refusals of the whole body name no event and record nothing.
	e.problem(400, "POST", "/api/v1/events", `[{"id":"malformed",`)
	e.problem(400, "POST", "/api/v1/events", "["+event("shape", "s", "2024-06-10T10:00:00Z", `{}`)+"]",
		"Content-Type", "application/cloudevents+json")
	for _, id := range []string{"malformed", "shape"} {
		if d := e.outcomes(id, ""); d.summary() != "" {
			t.Errorf("%s: %+v", id, d)
		}
	}
	if got := e.listIDs(since); got != "" {
		t.Fatalf("stored %q", got)
	}
	// The same id again, later: newest first.
	e.ok(200, "POST", "/api/v1/events", event("bad-time", "s", "2024-06-10T10:00:00Z", `{"tokens":1}`), nil)
	e.ok(200, "POST", "/api/v1/events", event("bad-time", "s", "2024-06-10T10:00:00Z", `{"tokens":1}`), nil)
	if d := e.outcomes("bad-time", ""); d.summary() != "stored:test;duplicate:test:;rejected:test:time" {
		t.Errorf("bad-time at last: %q", d.summary())
	}
}

func TestOutcomesDuplicatesAndStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(200, "POST", "/api/v1/events", "["+event("a", "s", "2024-06-10T10:00:00Z", `{"n":1}`)+","+
		event("a", "s", "2024-06-10T10:00:01Z", `{"n":2}`)+","+event("ab", "s", "2024-06-10T10:00:00Z", `{}`)+","+
		`{"id":"a","source":"other","type":"prompt","subject":"s","time":"2024-06-10T09:00:00Z"}`+"]", nil)
	// An accepted event is stored, exactly as GET /api/v1/events shows it;
	// "ab" contains "a" but is another id.
	d := e.outcomes("a", "")
	if d.summary() != "stored:test;stored:other;duplicate:test:" {
		t.Fatalf("a: %q", d.summary())
	}
	var raw struct{ Stored []json.RawMessage }
	e.ok(200, "GET", "/api/v1/events/outcomes?id=a&source=test", nil, &raw)
	var listed []json.RawMessage
	e.ok(200, "GET", "/api/v1/events?id=a", nil, &listed)
	if len(raw.Stored) != 1 || !slices.ContainsFunc(listed, func(l json.RawMessage) bool { return string(l) == string(raw.Stored[0]) }) {
		t.Errorf("stored %s is not as GET /api/v1/events lists it: %s", raw.Stored, listed)
	}
	if string(d.Stored[0].Event.Data) != `{"n":1}` {
		t.Errorf("the stored version is the first: %s", d.Stored[0].Event.Data)
	}
	if d := e.outcomes("a", "other"); d.summary() != "stored:other" {
		t.Errorf("a from other: %q", d.summary())
	}
	if d := e.outcomes("ab", ""); d.summary() != "stored:test" {
		t.Errorf("ab: %q", d.summary())
	}
	if d := e.outcomes("b", ""); d.summary() != "" {
		t.Errorf("b: %q", d.summary())
	}
	// A retry reports duplicates; the look-up shows each, newest first.
	e.ok(200, "POST", "/api/v1/events", event("ab", "s", "2024-06-10T10:00:00Z", `{}`), nil)
	if d := e.outcomes("ab", "test"); d.summary() != "stored:test;duplicate:test:" || d.Recent[0].Outcome != "duplicate" {
		t.Errorf("ab after a retry: %q", d.summary())
	}
	// Prefer: return=minimal records duplicates too.
	e.do("POST", "/api/v1/events", event("ab", "s", "2024-06-10T10:00:00Z", `{}`), "Prefer", "return=minimal")
	if d := e.outcomes("ab", ""); d.summary() != "stored:test;duplicate:test:;duplicate:test:" {
		t.Errorf("ab after two retries: %q", d.summary())
	}

	for _, tc := range []struct{ query, field string }{
		{"", "id"},
		{"?id=", "id"},
		{"?source=test", "id"},
		{"?id=a&id=b", "id"},
		{"?id=a&subject=s", "subject"},
	} {
		wantFields(t, e.problem(400, "GET", "/api/v1/events/outcomes"+tc.query, nil), tc.field)
	}
}

// The stored events are found by exact id however many other ids contain
// the one looked up, or are newer.
func TestOutcomesStoredAmongSimilarIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var evs []string
	base := time.Date(2024, 6, 10, 10, 0, 0, 0, time.UTC)
	for i := range 2500 {
		// Newer than the exact match, in twos at the same time.
		evs = append(evs, event(fmt.Sprint("x-", i), "s", base.Add(time.Duration(i/2)*time.Second).Format(time.RFC3339), `{}`))
	}
	evs = append(evs, event("x", "s", base.Add(-time.Hour).Format(time.RFC3339), `{}`))
	e.ok(200, "POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]", nil)
	if d := e.outcomes("x", ""); d.summary() != "stored:test" || d.Stored[0].Event.ID != "x" {
		t.Errorf("x: %q", d.summary())
	}
	if d := e.outcomes("x-1", ""); d.summary() != "stored:test" || d.Stored[0].Event.ID != "x-1" {
		t.Errorf("x-1: %q", d.summary())
	}
}

// Another namespace's outcomes are never shown.
func TestOutcomesNamespaces(t *testing.T) {
	t.Parallel()
	e := closedEnv(t)
	alpha, beta := e.key("alpha", "ingest", "read"), e.key("beta", "ingest", "read")
	e.problem(400, "POST", "/api/v1/events", event("x", "s", "bad", `{}`), bearer(alpha)...)
	e.ok(200, "POST", "/api/v1/events", event("y", "s", "2024-06-10T10:00:00Z", `{}`), nil, bearer(alpha)...)
	e.ok(200, "POST", "/api/v1/events", event("y", "s", "2024-06-10T10:00:00Z", `{}`), nil, bearer(alpha)...)
	if d := e.outcomes("x", "", bearer(alpha)...); d.summary() != "rejected:test:time" {
		t.Errorf("alpha's x: %q", d.summary())
	}
	if d := e.outcomes("y", "", bearer(alpha)...); d.summary() != "stored:test;duplicate:test:" {
		t.Errorf("alpha's y: %q", d.summary())
	}
	for _, id := range []string{"x", "y"} {
		if d := e.outcomes(id, "", bearer(beta)...); d.summary() != "" {
			t.Errorf("beta sees alpha's %s: %q", id, d.summary())
		}
	}
	ingestOnly := e.key("alpha", "ingest")
	e.problem(403, "GET", "/api/v1/events/outcomes?id=x", nil, bearer(ingestOnly)...)
}

// The log keeps the last OutcomeLogSize entries; a negative size keeps
// none; ids longer than the ingestion limit are kept cut.
func TestOutcomeLogBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.OutcomeLogSize = 3 })
	for i := range 5 {
		e.problem(400, "POST", "/api/v1/events", event(fmt.Sprint("r", i), "s", "bad", `{}`))
	}
	for i := range 5 {
		want := ""
		if i >= 2 {
			want = "rejected:test:time"
		}
		if d := e.outcomes(fmt.Sprint("r", i), ""); d.summary() != want {
			t.Errorf("r%d: %q, want %q", i, d.summary(), want)
		}
	}
	// A batch larger than the log leaves its last events.
	var evs []string
	for i := range 5 {
		evs = append(evs, event(fmt.Sprint("b", i), "s", "bad", `{}`))
	}
	e.problem(400, "POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]")
	for i := range 5 {
		want := ""
		if i >= 2 {
			want = "rejected:test:time"
		}
		if d := e.outcomes(fmt.Sprint("b", i), ""); d.summary() != want {
			t.Errorf("b%d: %q, want %q", i, d.summary(), want)
		}
	}
	for _, id := range []string{"r2", "r3", "r4"} {
		if d := e.outcomes(id, ""); d.summary() != "" {
			t.Errorf("%s outlived the log: %q", id, d.summary())
		}
	}

	// A long id is kept cut; the look-up by the whole id finds it.
	long := strings.Repeat("é", 200) // 400 bytes
	e.problem(400, "POST", "/api/v1/events", event(long, "s", "2024-06-10T10:00:00Z", `{}`))
	d := e.outcomes(long, "")
	if d.summary() != "rejected:test:id" || !d.Recent[0].Truncated || len(d.Recent[0].ID) != 256 || !strings.HasPrefix(long, d.Recent[0].ID) {
		t.Errorf("long id: %+v", d.Recent)
	}
	if d := e.outcomes(long[:256], ""); d.summary() != "" {
		t.Errorf("the cut id itself finds %q", d.summary())
	}

	off := newEnv(t, func(c *api.Config) { c.OutcomeLogSize = -1 })
	off.problem(400, "POST", "/api/v1/events", event("r", "s", "bad", `{}`))
	off.ok(200, "POST", "/api/v1/events", event("d", "s", "2024-06-10T10:00:00Z", `{}`), nil)
	off.ok(200, "POST", "/api/v1/events", event("d", "s", "2024-06-10T10:00:00Z", `{}`), nil)
	if d := off.outcomes("r", ""); d.summary() != "" {
		t.Errorf("log off: r %q", d.summary())
	}
	if d := off.outcomes("d", ""); d.summary() != "stored:test" {
		t.Errorf("log off: d %q", d.summary())
	}
}

// Rejections, duplicates and look-ups at once: -race checks the log, and
// the log holds what was sent, within its bound.
func TestOutcomeLogConcurrent(t *testing.T) {
	t.Parallel()
	const size = 50
	e := newEnv(t, func(c *api.Config) { c.OutcomeLogSize = size })
	e.ok(200, "POST", "/api/v1/events", event("dup", "s", "2024-06-10T10:00:00Z", `{}`), nil)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				resp, b := e.do("POST", "/api/v1/events", "["+event(fmt.Sprintf("g%d-%d", g, i), "s", "bad", `{}`)+","+
					event("dup", "s", "2024-06-10T10:00:00Z", `{}`)+"]")
				if resp.StatusCode != 400 {
					t.Errorf("rejected batch: %d %s", resp.StatusCode, b)
				}
				if resp, b := e.do("POST", "/api/v1/events", event("dup", "s", "2024-06-10T10:00:00Z", `{}`)); resp.StatusCode != 200 {
					t.Errorf("duplicate: %d %s", resp.StatusCode, b)
				}
			}
		})
		wg.Go(func() {
			for i := range 25 {
				resp, b := e.do("GET", "/api/v1/events/outcomes?id="+[]string{"dup", fmt.Sprintf("g%d-%d", g, i)}[i%2], nil)
				if resp.StatusCode != 200 {
					t.Errorf("look-up: %d %s", resp.StatusCode, b)
				}
			}
		})
	}
	wg.Wait()
	// The last 50 entries: all entries of the last requests. Every
	// duplicate and every batch-rejected copy of dup is an entry of id dup.
	d := e.outcomes("dup", "")
	if len(d.Stored) != 1 || len(d.Recent) == 0 || len(d.Recent) > size {
		t.Fatalf("dup: %d stored, %d recent", len(d.Stored), len(d.Recent))
	}
	for i := 1; i < len(d.Recent); i++ {
		if d.Recent[i].ReceivedAt.After(d.Recent[i-1].ReceivedAt) {
			t.Fatalf("recent not newest first: %+v", d.Recent)
		}
	}
}

// lookupOnly is a store whose ListEvents fails: the look-up must find the
// stored events by identity, never by listing events. lookupErr, when
// set, is what LookupEvents returns.
type lookupOnly struct {
	odometer.Store
	lookupErr error
}

func (lookupOnly) ListEvents(context.Context, odometer.EventFilter) ([]odometer.Event, error) {
	return nil, errors.New("the look-up listed events")
}

func (s lookupOnly) LookupEvents(ctx context.Context, namespace, id, source string) ([]odometer.Event, error) {
	if s.lookupErr != nil {
		return nil, s.lookupErr
	}
	return s.Store.LookupEvents(ctx, namespace, id, source)
}

// The stored events come from LookupEvents, newest first whatever the
// order of their sources; the store's refusal to look an id up in every
// source is the client's to fix.
func TestOutcomesStoredLookup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.Store = lookupOnly{Store: c.Store} })
	ev := func(source, ts string) string {
		return fmt.Sprintf(`{"id":"a","source":%q,"specversion":"1.0","type":"prompt","subject":"s","time":%q}`, source, ts)
	}
	e.ok(200, "POST", "/api/v1/events", "["+ev("b", "2024-06-10T09:00:00Z")+","+ev("c", "2024-06-10T11:00:00Z")+","+
		ev("a", "2024-06-10T10:00:00Z")+","+ev("d", "2024-06-10T10:00:00Z")+"]", nil)
	if d := e.outcomes("a", ""); d.summary() != "stored:c;stored:a;stored:d;stored:b" {
		t.Errorf("a: %q, want newest first, ties by source", d.summary())
	}
	if d := e.outcomes("a", "d"); d.summary() != "stored:d" {
		t.Errorf("a from d: %q", d.summary())
	}

	refused := newEnv(t, func(c *api.Config) {
		c.Store = lookupOnly{Store: c.Store, lookupErr: fmt.Errorf("look up events: %w", odometer.FieldErrorf("source",
			"required for this namespace: it has more than 100000 distinct sources, too many to look an id up in each"))}
	})
	p := refused.problem(400, "GET", "/api/v1/events/outcomes?id=a", nil)
	wantFields(t, p, "source")
	if !strings.Contains(p.Detail, "required") {
		t.Errorf("detail %q does not say that a source is required", p.Detail)
	}
}

package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
)

// groupsEnv has a COUNT meter "calls" grouped by model, with a limit of 3
// groups per query and the rollup cache, and events of subjects a and b
// on two days: a has models m1, m2, m3 on both days, b has m1 and m4. The
// clock runs a year ahead of the real one and the events were received on
// time, so that the stores take their receive times (not the stores'
// clocks) for late marks and the cache serves their days. It returns the
// query parameters of the two days and the cache.
func groupsEnv(t *testing.T) (e *env, days string, rollups *odometer.Rollups) {
	base := time.Now().UTC().AddDate(1, 0, 0).Truncate(24 * time.Hour)
	rollups = odometer.NewRollups(0)
	e = newEnv(t, func(c *api.Config) {
		c.MaxQueryGroups = 3
		c.Rollups = rollups
		c.Now = func() time.Time { return base }
	})
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"prompt","groupBy":{"model":"$.model"}}`, nil)
	var evs []odometer.Event
	add := func(subject string, day int, model string) {
		at := base.AddDate(0, 0, day-3).Add(10 * time.Hour)
		evs = append(evs, odometer.Event{Namespace: "default", ID: fmt.Sprint("e", len(evs)), Source: "test", SpecVersion: "1.0",
			Type: "prompt", Subject: subject, Time: at, IngestedAt: at.Add(time.Minute), Data: json.RawMessage(`{"model":"` + model + `"}`)})
	}
	for day := range 2 {
		for _, m := range []string{"m1", "m2", "m3"} {
			add("a", day, m)
		}
	}
	add("b", 0, "m1")
	add("b", 1, "m4")
	if _, err := e.store.AppendEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	days = "from=" + base.AddDate(0, 0, -3).Format(time.RFC3339) + "&to=" + base.AddDate(0, 0, -1).Format(time.RFC3339)
	return e, days, rollups
}

func TestMaxQueryGroups(t *testing.T) {
	t.Parallel()
	e, days, rollups := groupsEnv(t)
	q := func(params string) string { return "/api/v1/meters/calls/query?" + days + "&" + params }

	tooMany := func(p problemDoc, field string) {
		t.Helper()
		wantFields(t, p, field)
		if r := p.Errors[0].Reason; !strings.Contains(r, "more than 3 groups") || !strings.Contains(r, "the limit is 3") ||
			!strings.Contains(r, "filterGroupBy") {
			t.Errorf("reason %q does not give the count, the limit and what to do", r)
		}
	}
	// Exactly the limit: a's three models, over two DAY windows (six rows,
	// three groups), with and without windows, from events and then from
	// the rollup cache.
	for range 2 {
		var u usageDoc
		e.ok(200, "GET", q("subject=a&groupBy=model&windowSize=DAY"), nil, &u)
		if len(u.Data) != 6 {
			t.Fatalf("a by model and day:\n%s", u.rows())
		}
		e.ok(200, "GET", q("subject=a&groupBy=model"), nil, &u)
		if len(u.Data) != 3 {
			t.Fatalf("a by model:\n%s", u.rows())
		}
	}
	e.ok(200, "GET", q("subject=b&groupBy=model&windowSize=DAY"), nil, nil) // b's days into the cache too
	hits := rollups.Stats().Hits
	// Four models, or a and b by model (five combinations): one too many;
	// also when the group over the limit comes from the cache.
	for _, params := range []string{"groupBy=model", "groupBy=model&windowSize=DAY", "groupBy=model&windowSize=HOUR",
		"groupBy=subject&groupBy=model", "subject=a&subject=b&groupBy=model&windowSize=DAY", "subject=a&subject=b&groupBy=model"} {
		tooMany(e.problem(400, "GET", q(params), nil), "groupBy")
		tooMany(e.problem(400, "GET", q(params), nil, "Accept", "text/csv"), "groupBy")
	}
	if rollups.Stats().Hits == hits {
		t.Error("no query over the limit read the rollup cache")
	}
	tooMany(e.problem(400, "POST", "/api/v1/meters/calls/query", `{"groupBy":["model"]}`), "groupBy")
	tooMany(e.problem(400, "POST", "/api/v1/meters/calls/query", `{"groupBy":["model"]}`, "Accept", "text/csv"), "groupBy")
	// Filters narrow the groups to what is allowed.
	e.ok(200, "GET", q("groupBy=model&filterGroupBy[model]=m1&filterGroupBy[model]=m2&filterGroupBy[model]=m4"), nil, nil)
	e.ok(200, "POST", "/api/v1/meters/calls/query", `{"groupBy":["subject","model"],"filterGroupBy":{"model":["m1"]}}`, nil)
	resp, b := e.do("GET", q("groupBy=subject&groupBy=model&filterGroupBy[subject]=b"), nil, "Accept", "text/csv")
	if resp.StatusCode != 200 || strings.Count(string(b), "\n") != 3 {
		t.Errorf("b by model, CSV: %d\n%s", resp.StatusCode, b)
	}
	// Without groupBy, rows split by subject are the groups.
	e.ok(200, "GET", q("subject=a&subject=b&windowSize=DAY"), nil, nil)
	small := newEnv(t, func(c *api.Config) { c.MaxQueryGroups = 1 })
	small.ok(201, "POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"prompt"}`, nil)
	small.ok(200, "POST", "/api/v1/events", "["+event("x1", "a", "2024-06-01T10:00:00Z", `{}`)+","+
		event("x2", "b", "2024-06-01T10:00:00Z", `{}`)+"]", nil)
	small.ok(200, "GET", "/api/v1/meters/calls/query?from=2024-06-01T00:00:00Z", nil, nil)
	wantFields(t, small.problem(400, "GET", "/api/v1/meters/calls/query?from=2024-06-01T00:00:00Z&subject=a&subject=b", nil), "subject")
}

// TestMaxQueryGroupsDefault checks that a zero Config.MaxQueryGroups is
// the default of 10,000 groups.
func TestMaxQueryGroupsDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"prompt"}`, nil)
	events := make([]odometer.Event, api.DefaultMaxQueryGroups+1)
	for i := range events {
		events[i] = odometer.Event{Namespace: "default", ID: fmt.Sprint(i), Source: "test", SpecVersion: "1.0", Type: "prompt",
			Subject: fmt.Sprintf("s%05d", i), Time: testNow.AddDate(0, 0, -1), IngestedAt: testNow, Data: json.RawMessage(`{}`)}
	}
	if _, err := e.store.AppendEvents(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	p := e.problem(400, "GET", "/api/v1/meters/calls/query?groupBy=subject", nil)
	wantFields(t, p, "groupBy")
	if !strings.Contains(p.Errors[0].Reason, "more than 10000 groups") {
		t.Errorf("reason %q", p.Errors[0].Reason)
	}
	var u usageDoc
	e.ok(200, "GET", "/api/v1/meters/calls/query?groupBy=subject&filterGroupBy[subject]=s00001&filterGroupBy[subject]=s10000", nil, &u)
	if len(u.Data) != 2 {
		t.Errorf("two subjects:\n%s", u.rows())
	}
}

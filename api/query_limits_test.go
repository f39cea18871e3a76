package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/usage"
)

// groupsEnv has a COUNT meter "calls" grouped by model, with a limit of 3
// groups per query and the rollup cache, and events of subjects a and b
// on two days: a has models m1, m2, m3 on both days, b has m1 and m4. The
// clock runs a year ahead of the real one and the events were received on
// time, so that the stores take their receive times (not the stores'
// clocks) for late marks and the cache serves their days. It returns the
// query parameters of the two days and the cache.
func groupsEnv(t *testing.T) (e *env, days string, rollups *usage.Rollups) {
	base := time.Now().UTC().AddDate(1, 0, 0).Truncate(24 * time.Hour)
	rollups = usage.NewRollups(0)
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

// valuesPage fetches one page of values and returns them with the URL of
// the next page ("" if none).
func (e *env) valuesPage(path string) (values []string, next string) {
	e.t.Helper()
	resp := e.ok(200, "GET", path, nil, &values)
	link := resp.Header.Get("Link")
	if link == "" {
		return values, ""
	}
	ref, ok := strings.CutSuffix(link, `>; rel="next"`)
	if !ok || !strings.HasPrefix(ref, "<") {
		e.t.Fatalf("GET %s: Link %q", path, link)
	}
	return values, ref[1:]
}

func TestGroupByValuesPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"prompt","groupBy":{"model":"$.model"},
		"filters":{"$.billable":["yes"]}}`, nil)
	// 25 models (one empty, some with characters a URL must escape), each
	// in several events; a model outside the range and one of an event
	// the meter does not count.
	var models []string
	for i := range 22 {
		models = append(models, fmt.Sprintf("m%02d", i))
	}
	models = append(models, "", "a b&c=d", "z>,;\"")
	var evs []string
	for i, m := range models {
		for j := range 3 {
			data, _ := json.Marshal(map[string]string{"model": m, "billable": "yes"})
			evs = append(evs, event(fmt.Sprintf("e%d-%d", i, j), fmt.Sprint("s", j), fmt.Sprintf("2024-06-0%dT10:00:00Z", j+1), string(data)))
		}
	}
	evs = append(evs, event("old", "s", "2024-05-01T10:00:00Z", `{"model":"aaa-old","billable":"yes"}`),
		event("free", "s", "2024-06-01T10:00:00Z", `{"model":"aaa-free","billable":"no"}`))
	e.ok(200, "POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]", nil)
	want := slices.Clone(models)
	slices.Sort(want)

	for _, limit := range []int{1, 4, 5, 25, 26, 1000} {
		var got []string
		pages := 0
		next := fmt.Sprintf("/api/v1/meters/calls/group-by/model/values?from=2024-06-01T00:00:00Z&limit=%d", limit)
		for next != "" {
			var page []string
			page, next = e.valuesPage(next)
			if len(page) > limit || (next != "" && len(page) != limit) {
				t.Fatalf("limit %d: page %q, next %q", limit, page, next)
			}
			if next != "" && !strings.Contains(next, "limit="+fmt.Sprint(limit)) {
				t.Fatalf("next %q does not keep the limit", next)
			}
			got = append(got, page...)
			if pages++; pages > len(want)+1 {
				t.Fatalf("limit %d: more pages than values", limit)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: values\n%q\nwant\n%q", limit, got, want)
		}
		if wantPages := max(1, (len(want)+limit-1)/limit); pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
	}

	// The next page keeps to, and pins from when it defaulted (24 hours
	// before now), so that every page lists the same range.
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"recent","aggregation":"COUNT","eventType":"recent","groupBy":{"model":"$.model"}}`, nil)
	evs = nil
	for i, ts := range []string{"2024-06-09T11:59:59Z", "2024-06-09T12:00:00Z", "2024-06-10T11:00:00Z", "2024-06-10T11:30:00Z", "2024-06-10T11:59:59Z"} {
		evs = append(evs, strings.Replace(event(fmt.Sprint("r", i), "s", ts, fmt.Sprintf(`{"model":"r%d"}`, i)), `"prompt"`, `"recent"`, 1))
	}
	e.ok(200, "POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]", nil)
	page, next := e.valuesPage("/api/v1/meters/recent/group-by/model/values?to=2024-06-10T11:59:00Z&limit=2")
	u, err := url.Parse(next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(page, []string{"r1", "r2"}) || u.Path != "/api/v1/meters/recent/group-by/model/values" ||
		u.Query().Get("from") != "2024-06-09T12:00:00Z" || u.Query().Get("to") != "2024-06-10T11:59:00Z" ||
		u.Query().Get("after") != "r2" || u.Query().Get("limit") != "2" {
		t.Errorf("page %q, next %q", page, next)
	}
	if page, next := e.valuesPage(next); !slices.Equal(page, []string{"r3"}) || next != "" {
		t.Errorf("page 2: %q, next %q", page, next)
	}

	// after: strictly after the value, which need not be one of them; an
	// empty after is after the empty value.
	for after, wantVals := range map[string][]string{"m20": {"m21", "z>,;\""}, "m": want[2:], "": want[1:], "zz": {}} {
		page, next := e.valuesPage("/api/v1/meters/calls/group-by/model/values?from=2024-06-01T00:00:00Z&after=" + url.QueryEscape(after))
		if !slices.Equal(page, wantVals) || next != "" {
			t.Errorf("after %q: %q (next %q), want %q", after, page, next, wantVals)
		}
	}
	// Subjects page too.
	page, next = e.valuesPage("/api/v1/meters/calls/group-by/subject/values?from=2024-06-01T00:00:00Z&limit=2")
	if !slices.Equal(page, []string{"s0", "s1"}) || next == "" {
		t.Errorf("subjects: %q, next %q", page, next)
	}
	if page, next = e.valuesPage(next); !slices.Equal(page, []string{"s2"}) || next != "" {
		t.Errorf("subjects, page 2: %q, next %q", page, next)
	}

	for _, params := range []string{"limit=0", "limit=10001", "limit=-1", "limit=x", "limit=1&limit=2"} {
		wantFields(t, e.problem(400, "GET", "/api/v1/meters/calls/group-by/model/values?"+params, nil), "limit")
	}
	wantFields(t, e.problem(400, "GET", "/api/v1/meters/calls/group-by/model/values?after=a&after=b&limit=0", nil), "limit", "after")
	e.ok(200, "GET", "/api/v1/meters/calls/group-by/model/values?limit=10000", nil, nil)
}

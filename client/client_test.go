package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer/api/apitest"
	"github.com/odometerhq/odometer/client"
)

// newServer starts the real API on a real SQLite store and returns a client
// for it.
func newServer(t testing.TB) *client.Client {
	t.Helper()
	srv := apitest.Server(t)
	return client.New(srv.URL+"/", client.WithHTTPClient(srv.Client()))
}

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

func event(id, subject, data string, at time.Time) client.Event {
	return client.Event{ID: id, Source: "test", Type: "prompt", Subject: subject, Time: at, Data: json.RawMessage(data)}
}

func createTokensMeter(t *testing.T, c *client.Client) *client.Meter {
	t.Helper()
	m, err := c.CreateMeter(t.Context(), client.MeterCreate{
		Slug: "tokens", EventType: "prompt", Aggregation: "SUM",
		ValueProperty: "$.tokens", GroupBy: map[string]string{"model": "$.model"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIngest(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	events := []client.Event{
		event("1", "acme", `{"tokens": 10, "model": "a"}`, t0),
		event("2", "acme", `{"tokens": "2.5", "model": "b"}`, t0.Add(time.Minute)),
		{ID: "3", Source: "test", Type: "prompt", Subject: "zeta"}, // no time, no data
	}
	res, err := c.Ingest(t.Context(), events)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 3 || res.Duplicate != 0 || len(res.Events) != 3 {
		t.Fatalf("first ingest = %+v; want 3 accepted", res)
	}
	for i, e := range res.Events {
		if e.ID != events[i].ID || e.Source != "test" || e.Status != client.StatusAccepted {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	// A retry is deduplicated by (source, id), whatever else changed.
	events[0].Data = json.RawMessage(`{"tokens": 999}`)
	res, err = c.Ingest(t.Context(), events)
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 0 || res.Duplicate != 3 || res.Events[1].Status != client.StatusDuplicate {
		t.Fatalf("second ingest = %+v; want 3 duplicates", res)
	}
}

func TestIngestRaw(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	res, err := c.IngestRaw(t.Context(), []json.RawMessage{
		json.RawMessage(`{"id":"r1","source":"s","specversion":"1.0","type":"t","subject":"x"}`),
	})
	if err != nil || res.Accepted != 1 {
		t.Fatalf("IngestRaw = %+v, %v", res, err)
	}
	if _, err := c.IngestRaw(t.Context(), []json.RawMessage{json.RawMessage(`{oops`)}); err == nil {
		t.Fatal("IngestRaw accepted invalid JSON")
	}
}

func TestIngestProblem(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	_, err := c.Ingest(t.Context(), []client.Event{
		event("1", "acme", `{}`, t0),
		{Source: "test", Type: "prompt", Subject: "acme"}, // no id
		event("3", "", `{}`, t0),                          // no subject
	})
	var p *client.Problem
	if !errors.As(err, &p) {
		t.Fatalf("err = %v (%T); want a *client.Problem", err, err)
	}
	if p.Status != http.StatusBadRequest || p.Title != "Bad Request" || p.Detail == "" {
		t.Errorf("problem = %+v", p)
	}
	want := []client.FieldError{{Index: 1, Field: "id", Reason: "required"}, {Index: 2, Field: "subject", Reason: "required"}}
	if !slices.Equal(p.Errors, want) {
		t.Errorf("field errors = %+v; want %+v", p.Errors, want)
	}
	for _, s := range []string{"400 Bad Request", p.Detail, "event 1: id: required", "event 2: subject: required"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if n := strings.Count(err.Error(), "event 1: id: required"); n != 1 {
		t.Errorf("error %q states a field error %d times", err, n)
	}
	if p.Temporary() {
		t.Error("a 400 is not temporary")
	}
	// Nothing of the rejected batch was stored.
	res, err := c.Ingest(t.Context(), []client.Event{event("1", "acme", `{}`, t0)})
	if err != nil || res.Accepted != 1 {
		t.Fatalf("event 1 after rejected batch: %+v, %v; want accepted", res, err)
	}
}

func TestMeters(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	created := createTokensMeter(t, c)
	if created.ID == "" || created.Slug != "tokens" || created.Name != "tokens" || created.CreatedAt.IsZero() {
		t.Errorf("created = %+v", created)
	}
	if _, err := c.CreateMeter(t.Context(), client.MeterCreate{Slug: "n", EventType: "prompt", Aggregation: "COUNT"}); err != nil {
		t.Fatal(err)
	}
	ms, err := c.ListMeters(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Slug != "n" || ms[1].Slug != "tokens" || ms[1].GroupBy["model"] != "$.model" {
		t.Errorf("ListMeters = %+v", ms)
	}
	for _, key := range []string{created.ID, "tokens"} {
		m, err := c.GetMeter(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if m.ID != created.ID || m.ValueProperty != "$.tokens" || m.Aggregation != "SUM" {
			t.Errorf("GetMeter(%q) = %+v", key, m)
		}
	}
	_, err = c.GetMeter(t.Context(), "missing/slug")
	if p := client.AsProblem(err); p == nil || p.Status != http.StatusNotFound {
		t.Errorf("GetMeter(missing) err = %v; want a 404 problem", err)
	}
	_, err = c.CreateMeter(t.Context(), client.MeterCreate{Slug: "bad slug", EventType: "prompt", Aggregation: "SUM"})
	p := client.AsProblem(err)
	if p == nil || p.Status != http.StatusBadRequest || len(p.Errors) != 2 {
		t.Fatalf("CreateMeter(invalid) err = %v; want 400 naming slug and valueProperty", err)
	}
	if p.Errors[0].Field != "slug" || p.Errors[0].Index != -1 || p.Errors[1].Field != "valueProperty" {
		t.Errorf("field errors = %+v", p.Errors)
	}
}

func TestQueryMeter(t *testing.T) {
	t.Parallel()
	c := newServer(t)
	createTokensMeter(t, c)
	var events []client.Event
	for i := range 30 {
		model := "a"
		if i%3 == 0 {
			model = "b"
		}
		events = append(events, event(fmt.Sprint(i), "acme", fmt.Sprintf(`{"tokens": 0.1, "model": %q}`, model), t0.Add(time.Duration(i)*time.Hour)))
	}
	events = append(events, event("big", "zeta", `{"tokens": "123456789012345678.000000000000000001", "model": "a"}`, t0))
	if _, err := c.Ingest(t.Context(), events); err != nil {
		t.Fatal(err)
	}

	res, err := c.QueryMeter(t.Context(), "tokens", client.Query{
		From: t0, To: t0.Add(48 * time.Hour), WindowSize: "DAY", GroupBy: []string{"subject"},
	})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		start   time.Time
		subject string
		value   json.Number
	}
	var got []row
	for _, r := range res.Data {
		got = append(got, row{r.WindowStart, *r.Subject, r.Value})
	}
	day2 := time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)
	want := []row{
		{t0, "acme", "1.4"}, // 14 events on March 1st from 10:00; window clipped to from
		{t0, "zeta", "123456789012345678.000000000000000001"},
		{day2, "acme", "1.6"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("rows = %+v\nwant %+v", got, want)
	}
	if res.WindowSize != "DAY" || res.From == nil || !res.From.Equal(t0) {
		t.Errorf("result header = %+v %v %v", res.WindowSize, res.From, res.To)
	}

	// Exactly 3 (not 3.0000000000000004) for thirty tenths, and filters.
	res, err = c.QueryMeter(t.Context(), "tokens", client.Query{
		Subjects: []string{"acme"}, GroupBy: []string{"model"},
		FilterGroupBy: map[string][]string{"model": {"a", "b"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 2 || res.Data[0].Value != "2" || *res.Data[0].GroupBy["model"] != "a" || res.Data[1].Value != "1" {
		t.Errorf("by model = %+v", res.Data)
	}
	res, err = c.QueryMeter(t.Context(), "tokens", client.Query{Subjects: []string{"acme"}})
	if err != nil || len(res.Data) != 1 || res.Data[0].Value != "3" {
		t.Fatalf("total = %+v, %v; want 3", res, err)
	}

	csv, err := c.QueryMeterCSV(t.Context(), "tokens", client.Query{From: t0, To: t0.Add(time.Hour), GroupBy: []string{"model"}})
	if err != nil {
		t.Fatal(err)
	}
	wantCSV := "window_start,window_end,subject,model,value\n" +
		"2024-03-01T10:00:00Z,2024-03-01T11:00:00Z,,a,123456789012345678.000000000000000001\n" +
		"2024-03-01T10:00:00Z,2024-03-01T11:00:00Z,,b,0.1\n"
	if string(csv) != wantCSV {
		t.Errorf("CSV =\n%s\nwant\n%s", csv, wantCSV)
	}

	_, err = c.QueryMeter(t.Context(), "tokens", client.Query{GroupBy: []string{"nope"}})
	if p := client.AsProblem(err); p == nil || p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Field != "groupBy" {
		t.Errorf("bad group-by: err = %v", err)
	}
}

// TestProblemNotJSON checks errors from something that is not Odometer,
// such as a proxy, and the Retry-After header.
func TestProblemNotJSON(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "upstream is down", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := client.New(srv.URL).ListMeters(t.Context())
	p := client.AsProblem(err)
	if p == nil || p.Status != 502 || p.Title != "Bad Gateway" || p.Detail != "upstream is down" || p.RetryAfter != 7*time.Second || !p.Temporary() {
		t.Fatalf("problem = %#v (err %v)", p, err)
	}
	if want := "list meters: 502 Bad Gateway: upstream is down"; err.Error() != want {
		t.Errorf("Error() = %q; want %q", err, want)
	}
}

func TestEventMarshal(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(client.Event{ID: "1", Source: "s", Type: "t", Subject: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"1","source":"s","specversion":"1.0","type":"t","subject":"x"}`; string(b) != want {
		t.Errorf("got %s; want %s", b, want)
	}
	at := time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.FixedZone("x", 3600))
	b, _ = json.Marshal(client.Event{ID: "1", Source: "s", SpecVersion: "1.0", Type: "t", Subject: "x", Time: at, Data: json.RawMessage(`{"a":1}`)})
	if want := `{"id":"1","source":"s","specversion":"1.0","type":"t","subject":"x","time":"2024-01-02T03:04:05.123456+01:00","data":{"a":1}}`; string(b) != want {
		t.Errorf("got %s; want %s", b, want)
	}
}

package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/sqlite"
)

// testNow is the server's clock in tests.
var testNow = time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)

// storeIngester commits straight to the store, standing in for
// ingest.Batcher.
type storeIngester struct{ store odometer.EventStore }

func (i storeIngester) Append(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error) {
	return i.store.AppendEvents(ctx, events)
}

// failingIngester refuses every batch with err.
type failingIngester struct{ err error }

func (i failingIngester) Append(context.Context, []odometer.Event) ([]odometer.Outcome, error) {
	return nil, i.err
}

// env is a running API server on a real SQLite store.
type env struct {
	t     testing.TB
	url   string
	store *sqlite.Store
}

// newEnv starts a server; opts adjust its Config. It serves Open (no API
// keys) unless an option sets Open to false.
func newEnv(t testing.TB, opts ...func(*api.Config)) *env {
	t.Helper()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cfg := api.Config{
		Store:    store,
		Ingester: storeIngester{store},
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry: prometheus.NewRegistry(),
		Now:      func() time.Time { return testNow },
		Open:     true,
	}
	for _, o := range opts {
		o(&cfg)
	}
	h, err := api.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, store: store}
}

// with returns e reporting to t, for use inside a fuzz target.
func (e *env) with(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// do sends a request. body is nil, a string or []byte; hdr holds header
// name/value pairs. A body without a Content-Type is sent as JSON.
func (e *env) do(method, path string, body any, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		e.t.Fatalf("do: body of type %T", body)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

// ok sends a request and fails the test unless the answer has status want;
// it decodes a JSON answer into out when out is not nil.
func (e *env) ok(want int, method, path string, body any, out any, hdr ...string) *http.Response {
	e.t.Helper()
	resp, b := e.do(method, path, body, hdr...)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		reflect.ValueOf(out).Elem().SetZero() // no merging with an earlier answer
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
	return resp
}

type problemDoc struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
	Errors   []struct {
		Index  *int   `json:"index"`
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

// fields returns "index:field" (or "field" without index) per error.
func (p problemDoc) fields() []string {
	var out []string
	for _, f := range p.Errors {
		if f.Index != nil {
			out = append(out, fmt.Sprintf("%d:%s", *f.Index, f.Field))
		} else {
			out = append(out, f.Field)
		}
	}
	return out
}

// problem sends a request that must fail with status and returns the
// problem document.
func (e *env) problem(status int, method, path string, body any, hdr ...string) problemDoc {
	e.t.Helper()
	resp, b := e.do(method, path, body, hdr...)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		e.t.Fatalf("%s %s: Content-Type %q, want application/problem+json", method, path, ct)
	}
	var p problemDoc
	if err := json.Unmarshal(b, &p); err != nil {
		e.t.Fatalf("decode problem %s: %v", b, err)
	}
	if p.Type != "about:blank" || p.Status != status || p.Title != http.StatusText(status) ||
		!strings.HasPrefix(p.Instance, "urn:request:") || p.Detail == "" {
		e.t.Fatalf("%s %s: malformed problem %s", method, path, b)
	}
	if p.Instance != "urn:request:"+resp.Header.Get("X-Request-Id") {
		e.t.Errorf("instance %q does not name X-Request-Id %q", p.Instance, resp.Header.Get("X-Request-Id"))
	}
	return p
}

// wantFields fails unless the problem lists exactly these fields, in order.
func wantFields(t *testing.T, p problemDoc, want ...string) {
	t.Helper()
	got := p.fields()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("problem fields = %q, want %q (detail %q, errors %+v)", got, want, p.Detail, p.Errors)
	}
	for _, f := range p.Errors {
		if f.Reason == "" {
			t.Fatalf("field %s has no reason", f.Field)
		}
	}
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// event returns a CloudEvent JSON object.
func event(id, subject, ts, data string) string {
	return fmt.Sprintf(`{"id":%q,"source":"test","specversion":"1.0","type":"prompt","subject":%q,"time":%q,"data":%s}`, id, subject, ts, data)
}

type ingestResult struct {
	Accepted  int `json:"accepted"`
	Duplicate int `json:"duplicate"`
	Events    []struct {
		ID     string `json:"id"`
		Source string `json:"source"`
		Status string `json:"status"`
	} `json:"events"`
}

func (r ingestResult) statuses() string {
	var s []string
	for _, e := range r.Events {
		s = append(s, e.ID+"="+e.Status)
	}
	return strings.Join(s, " ")
}

type listedEvent struct {
	Event struct {
		ID      string          `json:"id"`
		Source  string          `json:"source"`
		Type    string          `json:"type"`
		Subject string          `json:"subject"`
		Time    time.Time       `json:"time"`
		Data    json.RawMessage `json:"data"`
		Spec    string          `json:"specversion"`
	} `json:"event"`
	IngestedAt time.Time `json:"ingestedAt"`
	StoredAt   time.Time `json:"storedAt"`
}

// listIDs lists events with the query string and returns their ids.
func (e *env) listIDs(query string) string {
	e.t.Helper()
	var evs []listedEvent
	e.ok(200, "GET", "/api/v1/events"+query, nil, &evs)
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.Event.ID)
	}
	return strings.Join(ids, ",")
}

const since = "?from=2000-01-01T00:00:00Z"

func TestIngestSingleEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var res ingestResult
	e.ok(200, "POST", "/api/v1/events", event("e1", "cust-1", "2024-06-10T11:00:00.123456Z", `{"tokens": 12}`), &res,
		"Content-Type", "application/cloudevents+json")
	if res.Accepted != 1 || res.Duplicate != 0 || res.statuses() != "e1=accepted" || res.Events[0].Source != "test" {
		t.Fatalf("result %+v", res)
	}
	var evs []listedEvent
	e.ok(200, "GET", "/api/v1/events", nil, &evs)
	if len(evs) != 1 {
		t.Fatalf("listed %d events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Event.ID != "e1" || ev.Event.Subject != "cust-1" || ev.Event.Type != "prompt" || ev.Event.Spec != "1.0" ||
		!ev.Event.Time.Equal(time.Date(2024, 6, 10, 11, 0, 0, 123456000, time.UTC)) ||
		string(ev.Event.Data) != `{"tokens":12}` || !ev.IngestedAt.Equal(testNow) || !ev.StoredAt.Equal(testNow) {
		t.Fatalf("listed %+v", ev)
	}
}

func TestIngestBatchAndDuplicates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	batch := "[" + event("a", "s", "2024-06-10T10:00:00Z", `{}`) + "," + event("b", "s", "2024-06-10T10:00:00Z", `{}`) +
		"," + event("a", "s", "2024-06-10T10:00:01Z", `{"other":1}`) + "]"
	var res ingestResult
	e.ok(200, "POST", "/api/v1/events", batch, &res, "Content-Type", "application/cloudevents-batch+json")
	if res.Accepted != 2 || res.Duplicate != 1 || res.statuses() != "a=accepted b=accepted a=duplicate" {
		t.Fatalf("first batch: %+v", res)
	}
	e.ok(200, "POST", "/api/v1/events", batch, &res, "Content-Type", "application/cloudevents-batch+json")
	if res.Accepted != 0 || res.Duplicate != 3 || res.statuses() != "a=duplicate b=duplicate a=duplicate" {
		t.Fatalf("second batch: %+v", res)
	}
	if got := e.listIDs(""); got != "b,a" && got != "a,b" {
		t.Fatalf("stored %q", got)
	}
}

func TestIngestContentTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var res ingestResult
	// application/json takes an object or an array; parameters are allowed.
	e.ok(200, "POST", "/api/v1/events", event("obj", "s", "2024-06-10T10:00:00Z", `{}`), &res, "Content-Type", "application/json; charset=utf-8")
	if res.statuses() != "obj=accepted" {
		t.Fatalf("object: %+v", res)
	}
	e.ok(200, "POST", "/api/v1/events", "["+event("arr1", "s", "2024-06-10T10:00:00Z", `{}`)+","+event("arr2", "s", "2024-06-10T10:00:00Z", `{}`)+"]", &res)
	if res.statuses() != "arr1=accepted arr2=accepted" {
		t.Fatalf("array: %+v", res)
	}
	// gzip bodies.
	e.ok(200, "POST", "/api/v1/events", gzipped(t, "["+event("gz", "s", "2024-06-10T10:00:00Z", `{}`)+"]"), &res,
		"Content-Type", "application/cloudevents-batch+json", "Content-Encoding", "gzip")
	if res.statuses() != "gz=accepted" {
		t.Fatalf("gzip: %+v", res)
	}
	p := e.problem(400, "POST", "/api/v1/events", "not gzip", "Content-Encoding", "gzip")
	wantFields(t, p, "body")
	// Prefer: return=minimal answers 204 like OpenMeter.
	resp, b := e.do("POST", "/api/v1/events", event("min", "s", "2024-06-10T10:00:00Z", `{}`), "Prefer", "return=minimal")
	if resp.StatusCode != 204 || len(b) != 0 || resp.Header.Get("Preference-Applied") != "return=minimal" {
		t.Fatalf("minimal: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	// The structured types insist on their shape.
	wantFields(t, e.problem(400, "POST", "/api/v1/events", "["+event("x", "s", "2024-06-10T10:00:00Z", `{}`)+"]",
		"Content-Type", "application/cloudevents+json"), "body")
	wantFields(t, e.problem(400, "POST", "/api/v1/events", event("x", "s", "2024-06-10T10:00:00Z", `{}`),
		"Content-Type", "application/cloudevents-batch+json"), "body")
	// Anything else is 415.
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml"} {
		p := e.problem(415, "POST", "/api/v1/events", event("x", "s", "2024-06-10T10:00:00Z", `{}`), "Content-Type", ct)
		if !strings.Contains(p.Detail, "application/cloudevents+json") {
			t.Errorf("415 detail %q does not say what is accepted", p.Detail)
		}
	}
	e.problem(415, "POST", "/api/v1/events", event("x", "s", "2024-06-10T10:00:00Z", `{}`), "Content-Encoding", "br")
	ids := strings.Split(e.listIDs(""), ",")
	slices.Sort(ids)
	if got := strings.Join(ids, ","); got != "arr1,arr2,gz,min,obj" {
		t.Fatalf("stored %q", got)
	}
}

func TestIngestInvalidBatchStoresNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	batch := "[" +
		event("bad-time", "s", "yesterday", `{}`) + "," +
		event("good", "s", "2024-06-10T10:00:00Z", `{}`) + "," +
		`{"id":"no-subject","source":"test","type":"prompt","time":"2024-06-10T10:00:00Z"}` + "]"
	p := e.problem(400, "POST", "/api/v1/events", batch, "Content-Type", "application/cloudevents-batch+json")
	wantFields(t, p, "0:time", "2:subject")
	if !strings.Contains(p.Errors[0].Reason, "yesterday") || !strings.Contains(p.Detail, "nothing was stored") {
		t.Fatalf("problem %+v", p)
	}
	if got := e.listIDs(since); got != "" {
		t.Fatalf("stored %q after a rejected batch", got)
	}
	// Malformed JSON is a 400 too.
	wantFields(t, e.problem(400, "POST", "/api/v1/events", `[{"id":`), "body")
	wantFields(t, e.problem(400, "POST", "/api/v1/events", ``), "body")
}

func TestIngestCheckedAgainstMeters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Load the meter cache before the meter exists: creating it must
	// invalidate the cache.
	e.ok(200, "POST", "/api/v1/events", event("before", "s", "2024-06-10T10:00:00Z", `{"tokens":"many"}`), nil)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"tokens","aggregation":"SUM","eventType":"prompt","valueProperty":"$.tokens"}`, nil)
	batch := "[" + event("ok", "s", "2024-06-10T10:00:00Z", `{"tokens":"1.5"}`) + "," +
		event("nan", "s", "2024-06-10T10:00:00Z", `{"tokens":"many"}`) + "," +
		event("missing", "s", "2024-06-10T10:00:00Z", `{}`) + "]"
	p := e.problem(400, "POST", "/api/v1/events", batch)
	wantFields(t, p, "1:data.tokens", "2:data.tokens")
	if !strings.Contains(p.Errors[0].Reason, `"tokens"`) {
		t.Fatalf("reason %q does not name the meter", p.Errors[0].Reason)
	}
	if got := e.listIDs(""); got != "before" {
		t.Fatalf("stored %q", got)
	}
	// Other event types are not checked.
	e.ok(200, "POST", "/api/v1/events", `{"id":"x","source":"s","type":"other","subject":"s","data":{"tokens":"many"}}`, nil)
	// Once the meter is deleted, nothing checks tokens any more.
	e.ok(204, "DELETE", "/api/v1/meters/tokens", nil, nil)
	e.ok(200, "POST", "/api/v1/events", event("after", "s", "2024-06-10T10:00:00Z", `{"tokens":"many"}`), nil)
}

func TestIngestLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) {
		c.Limits.MaxBodyBytes = 2048
		c.Limits.MaxEvents = 2
		c.Limits.FutureSkew = time.Minute
	})
	big := event("big", "s", "2024-06-10T10:00:00Z", `{"pad":"`+strings.Repeat("x", 4096)+`"}`)
	p := e.problem(413, "POST", "/api/v1/events", big)
	wantFields(t, p, "body")
	// The limit applies after decompression.
	e.problem(413, "POST", "/api/v1/events", gzipped(t, big), "Content-Encoding", "gzip")
	// Too many events.
	three := "[" + event("1", "s", "2024-06-10T10:00:00Z", `{}`) + "," + event("2", "s", "2024-06-10T10:00:00Z", `{}`) + "," +
		event("3", "s", "2024-06-10T10:00:00Z", `{}`) + "]"
	p = e.problem(413, "POST", "/api/v1/events", three)
	if !strings.Contains(p.Detail, "limit is 2") {
		t.Fatalf("detail %q", p.Detail)
	}
	// Events from the future beyond the skew.
	wantFields(t, e.problem(400, "POST", "/api/v1/events", event("f", "s", "2024-06-10T12:05:00Z", `{}`)), "0:time")
	if got := e.listIDs(since); got != "" {
		t.Fatalf("stored %q", got)
	}
}

func TestIngestUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) {
		c.Ingester = failingIngester{odometer.Errorf(odometer.EUNAVAILABLE, "the ingest queue is full")}
	})
	resp, b := e.do("POST", "/api/v1/events", event("x", "s", "2024-06-10T10:00:00Z", `{}`))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(b), "queue is full") {
		t.Fatalf("got %d %v %s", resp.StatusCode, resp.Header, b)
	}
	e.problem(503, "POST", "/api/v1/events", event("x", "s", "2024-06-10T10:00:00Z", `{}`))
}

func TestInternalErrorsAreNotLeaked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) {
		c.Ingester = failingIngester{errors.New("disk /secret/path is on fire")}
	})
	p := e.problem(500, "POST", "/api/v1/events", event("x", "s", "2024-06-10T10:00:00Z", `{}`))
	if strings.Contains(p.Detail, "secret") || len(p.Errors) != 0 {
		t.Fatalf("internal error leaked: %+v", p)
	}
}

func TestListEventsFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	batch := "[" +
		event("ord-1", "cust-a", "2024-06-10T09:00:00Z", `{}`) + "," +
		event("ord-2", "cust-b", "2024-06-10T10:00:00Z", `{}`) + "," +
		event("inv-1", "cust-a", "2024-06-10T11:00:00Z", `{}`) + "," +
		event("old-1", "cust-a", "2024-06-01T11:00:00Z", `{}`) + "]"
	e.ok(200, "POST", "/api/v1/events", batch, nil)
	for _, tc := range []struct{ query, want string }{
		{"", "inv-1,ord-2,ord-1"}, // from defaults to 72 h ago
		{since, "inv-1,ord-2,ord-1,old-1"},
		{"?from=2024-06-10T09:00:00Z&to=2024-06-10T11:00:00Z", "ord-2,ord-1"}, // half-open
		{"?id=ord", "ord-2,ord-1"},
		{"?subject=st-a&from=2024-01-01T00:00:00Z", "inv-1,ord-1,old-1"},
		{"?limit=2", "inv-1,ord-2"},
		{"?ingestedAtFrom=2024-06-10T12:00:00Z", "inv-1,ord-2,ord-1,old-1"}, // no default from then
		{"?ingestedAtFrom=2024-06-10T11:00:00Z&ingestedAtTo=2024-06-10T12:00:00Z", ""},
		{"?clientId=abc", "inv-1,ord-2,ord-1"},
	} {
		if got := e.listIDs(tc.query); got != tc.want {
			t.Errorf("GET /api/v1/events%s = %q, want %q", tc.query, got, tc.want)
		}
	}
	for _, tc := range []struct{ query, field string }{
		{"?limit=0", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=ten", "limit"},
		{"?from=yesterday", "from"},
		{"?ingestedAtTo=2024", "ingestedAtTo"},
		{"?from=2024-06-10T00:00:00Z&to=2024-06-09T00:00:00Z", "from"},
		{"?bogus=1", "bogus"},
		{"?customerId=c", "customerId"},
		{"?limit=1&limit=2", "limit"},
	} {
		wantFields(t, e.problem(400, "GET", "/api/v1/events"+tc.query, nil), tc.field)
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.problem(404, "GET", "/api/v1/nothing", nil)
	e.problem(404, "GET", "/", nil)
	resp, _ := e.do("DELETE", "/api/v1/events", nil)
	if resp.StatusCode != 405 || !strings.Contains(resp.Header.Get("Allow"), "POST") {
		t.Fatalf("DELETE /api/v1/events: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	e.problem(405, "PATCH", "/api/v1/meters/x", nil)
}

func TestNewHandlerConfig(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := api.NewHandler(api.Config{Ingester: storeIngester{store}}); err == nil {
		t.Error("no Store: no error")
	}
	if _, err := api.NewHandler(api.Config{Store: store}); err == nil {
		t.Error("no Ingester: no error")
	}
	reg := prometheus.NewRegistry()
	if _, err := api.NewHandler(api.Config{Store: store, Ingester: storeIngester{store}, Registry: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.NewHandler(api.Config{Store: store, Ingester: storeIngester{store}, Registry: reg}); err == nil {
		t.Error("collectors registered twice: no error")
	}
}

// panickingIngester panics, as a bug would.
type panickingIngester struct{}

func (panickingIngester) Append(context.Context, []odometer.Event) ([]odometer.Outcome, error) {
	panic("bug")
}

func TestPanicIsA500Problem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.Ingester = panickingIngester{} })
	p := e.problem(500, "POST", "/api/v1/events", event("x", "s", "2024-06-10T10:00:00Z", `{}`))
	if strings.Contains(p.Detail, "bug") {
		t.Fatalf("panic value leaked: %q", p.Detail)
	}
	e.ok(200, "GET", "/healthz", nil, nil) // the server goes on
}

func TestProblemDetailSummarisesFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var evs []string
	for i := range 7 {
		evs = append(evs, event(fmt.Sprint(i), "s", "bad", `{}`))
	}
	p := e.problem(400, "POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]")
	if len(p.Errors) != 7 || !strings.Contains(p.Detail, "event 4: time") || strings.Contains(p.Detail, "event 5") ||
		!strings.HasSuffix(p.Detail, "and 2 more (see errors)") {
		t.Fatalf("detail %q with %d errors", p.Detail, len(p.Errors))
	}
}

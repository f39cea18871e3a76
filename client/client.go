// Package client is a typed Go client for Odometer's HTTP API (OpenMeter v1
// compatible): ingest events, manage meters and query usage.
//
// It depends on the standard library only, never on the server's packages,
// so that applications can import it without pulling in storage drivers or
// metrics libraries; deps_test.go keeps it so. Its types mirror the wire
// format: usage values are json.Number holding the server's exact decimal
// text, never float64.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Client calls one Odometer server. It is safe for concurrent use.
type Client struct {
	baseURL string
	http    *http.Client
	apiKey  string // sent as a bearer token; "" sends none
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient makes the Client send its requests with hc instead of
// http.DefaultClient (for timeouts, transports, authentication).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) { c.http = hc }
}

// WithAPIKey makes the Client send token (odo_<id>_<secret>) as
// "Authorization: Bearer <token>" on every request to the server, the
// Recorder's included. The header goes only to baseURL's scheme and host,
// never to another host a redirect points to. Without it the Client sends
// no key, which only a server without keys (Open mode) accepts.
func WithAPIKey(token string) Option {
	return func(c *Client) { c.apiKey = token }
}

// New returns a client for the server at baseURL, e.g.
// "http://127.0.0.1:8888". A path in baseURL is kept as a prefix of every
// request path.
func New(baseURL string, opts ...Option) *Client {
	c := &Client{baseURL: strings.TrimRight(baseURL, "/"), http: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	if c.apiKey != "" {
		// The key is added by the transport, so that every request of the
		// Client carries it, whichever method builds it.
		hc := *c.http
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		origin := ""
		if u, err := url.Parse(c.baseURL); err == nil {
			origin = u.Scheme + "://" + u.Host
		}
		hc.Transport = &bearerTransport{base: base, origin: origin, header: "Bearer " + c.apiKey}
		c.http = &hc
	}
	return c
}

// bearerTransport adds the Authorization header to the requests it sends
// to origin, and only to those.
type bearerTransport struct {
	base   http.RoundTripper
	origin string // scheme://host[:port] of the server
	header string // "Bearer <token>"
}

// RoundTrip sends r, with the key if it goes to the server and carries no
// Authorization header of its own. r itself is left unchanged, as
// http.RoundTripper requires.
func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.origin == "" || !strings.EqualFold(r.URL.Scheme+"://"+r.URL.Host, t.origin) || r.Header.Get("Authorization") != "" {
		return t.base.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", t.header)
	return t.base.RoundTrip(r2)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// wrapped transport.
func (t *bearerTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Event is a usage event: a CloudEvents 1.0 object. Its identity is
// (Source, ID): the server counts an identity once, whatever the other
// fields say, so resending an event is always safe.
type Event struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	SpecVersion string `json:"specversion"` // "1.0" when empty
	Type        string `json:"type"`
	// Subject is the customer the usage is attributed to.
	Subject string `json:"subject"`
	// Time is when the usage happened; the zero time means "when the server
	// receives it".
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"` // a JSON object
}

// MarshalJSON writes e as a CloudEvent, with specversion "1.0" when unset.
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event
	if e.SpecVersion == "" {
		e.SpecVersion = "1.0"
	}
	return json.Marshal(plain(e))
}

// Event statuses in an IngestResult.
const (
	StatusAccepted  = "accepted"  // new, now stored durably
	StatusDuplicate = "duplicate" // its identity was stored before; ignored
)

// IngestResult is the server's acknowledgement of a batch: every event in it
// is stored durably (Accepted) or was already (Duplicate).
type IngestResult struct {
	Accepted  int           `json:"accepted"`
	Duplicate int           `json:"duplicate"`
	Events    []EventStatus `json:"events"`
}

// EventStatus is the outcome of one event of a batch, in input order.
type EventStatus struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Status string `json:"status"` // StatusAccepted or StatusDuplicate
}

// Meter defines how events of one type become usage.
type Meter struct {
	ID            string              `json:"id"`
	Slug          string              `json:"slug"`
	Name          string              `json:"name,omitempty"`
	Description   string              `json:"description,omitempty"`
	Metadata      map[string]string   `json:"metadata,omitempty"`
	Aggregation   string              `json:"aggregation"` // SUM, COUNT, UNIQUE_COUNT, AVG, MIN, MAX, LATEST
	EventType     string              `json:"eventType"`
	EventFrom     *time.Time          `json:"eventFrom,omitempty"`
	ValueProperty string              `json:"valueProperty,omitempty"` // JSONPath into data, e.g. "$.tokens"
	GroupBy       map[string]string   `json:"groupBy,omitempty"`       // name → JSONPath
	Filters       map[string][]string `json:"filters,omitempty"`       // JSONPath → allowed values
	CreatedAt     time.Time           `json:"createdAt"`
	UpdatedAt     time.Time           `json:"updatedAt"`
	DeletedAt     *time.Time          `json:"deletedAt,omitempty"`
}

// MeterCreate is the definition of a new meter.
type MeterCreate struct {
	Slug          string              `json:"slug"`
	Name          string              `json:"name,omitempty"`
	Description   string              `json:"description,omitempty"`
	Metadata      map[string]string   `json:"metadata,omitempty"`
	Aggregation   string              `json:"aggregation"`
	EventType     string              `json:"eventType"`
	EventFrom     *time.Time          `json:"eventFrom,omitempty"`
	ValueProperty string              `json:"valueProperty,omitempty"`
	GroupBy       map[string]string   `json:"groupBy,omitempty"`
	Filters       map[string][]string `json:"filters,omitempty"`
}

// Query asks a meter for usage over [From, To).
type Query struct {
	From, To time.Time // zero From: from the first event; zero To: now
	// WindowSize is MINUTE, HOUR, DAY or MONTH; empty means one row per group
	// for the whole range.
	WindowSize string
	// WindowTimeZone is an IANA zone name for DAY and MONTH windows; empty
	// means UTC.
	WindowTimeZone string
	// Subjects keeps only these subjects (rows are then split by subject).
	Subjects []string
	// GroupBy splits rows by these group-by keys ("subject" splits by
	// subject).
	GroupBy []string
	// FilterGroupBy keeps only events whose group-by value for a key is one
	// of the listed values.
	FilterGroupBy map[string][]string
}

// values encodes q as query parameters.
func (q Query) values() url.Values {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.WindowSize != "" {
		v.Set("windowSize", q.WindowSize)
	}
	if q.WindowTimeZone != "" {
		v.Set("windowTimeZone", q.WindowTimeZone)
	}
	for _, s := range q.Subjects {
		v.Add("subject", s)
	}
	for _, g := range q.GroupBy {
		v.Add("groupBy", g)
	}
	keys := make([]string, 0, len(q.FilterGroupBy))
	for k := range q.FilterGroupBy {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, val := range q.FilterGroupBy[k] {
			v.Add("filterGroupBy["+k+"]", val)
		}
	}
	return v
}

// UsageResult is a meter's usage: one row per window and group.
type UsageResult struct {
	From       *time.Time `json:"from,omitempty"`
	To         *time.Time `json:"to,omitempty"`
	WindowSize string     `json:"windowSize,omitempty"`
	Data       []UsageRow `json:"data"`
}

// UsageRow is one aggregated value over [WindowStart, WindowEnd).
type UsageRow struct {
	// Value is the exact decimal text the server sent, e.g. "100000" or
	// "0.3". Convert it with a decimal library, or Float64 when rounding is
	// acceptable.
	Value       json.Number `json:"value"`
	WindowStart time.Time   `json:"windowStart"`
	WindowEnd   time.Time   `json:"windowEnd"`
	// Subject is set when the query split rows by subject.
	Subject *string `json:"subject"`
	// GroupBy holds the row's value of each requested group-by key; nil
	// when the events had no value for it.
	GroupBy map[string]*string `json:"groupBy"`
}

// Ingest sends events as one batch and returns once the server stored them
// durably. The batch is all or nothing: if any event is invalid the server
// stores none and Ingest returns a *Problem with one FieldError per problem.
// Resending a batch is always safe: events already stored come back as
// duplicates.
func (c *Client) Ingest(ctx context.Context, events []Event) (*IngestResult, error) {
	body, err := json.Marshal(events)
	if err != nil {
		return nil, fmt.Errorf("encode events: %w", err)
	}
	return c.ingest(ctx, body)
}

// IngestRaw is Ingest for events that are already JSON (for instance read
// from a file): each must be a JSON object, and is sent as it is, so that the
// server validates it and names what is wrong.
func (c *Client) IngestRaw(ctx context.Context, events []json.RawMessage) (*IngestResult, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range events {
		if !json.Valid(e) {
			return nil, fmt.Errorf("event %d is not valid JSON", i)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e)
	}
	b.WriteByte(']')
	return c.ingest(ctx, b.Bytes())
}

func (c *Client) ingest(ctx context.Context, body []byte) (*IngestResult, error) {
	var res IngestResult
	if err := c.do(ctx, http.MethodPost, "/api/v1/events", nil, "application/cloudevents-batch+json", body, "application/json", &res); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return &res, nil
}

// ListMeters returns the meters, ordered by slug.
func (c *Client) ListMeters(ctx context.Context) ([]Meter, error) {
	var ms []Meter
	if err := c.do(ctx, http.MethodGet, "/api/v1/meters", nil, "", nil, "application/json", &ms); err != nil {
		return nil, fmt.Errorf("list meters: %w", err)
	}
	return ms, nil
}

// GetMeter returns the meter with this id or slug, or a *Problem with
// status 404.
func (c *Client) GetMeter(ctx context.Context, idOrSlug string) (*Meter, error) {
	var m Meter
	if err := c.do(ctx, http.MethodGet, "/api/v1/meters/"+url.PathEscape(idOrSlug), nil, "", nil, "application/json", &m); err != nil {
		return nil, fmt.Errorf("get meter %q: %w", idOrSlug, err)
	}
	return &m, nil
}

// CreateMeter creates a meter and returns it as stored. A meter counts the
// events that arrived before it too.
func (c *Client) CreateMeter(ctx context.Context, m MeterCreate) (*Meter, error) {
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("create meter %q: %w", m.Slug, err)
	}
	var out Meter
	if err := c.do(ctx, http.MethodPost, "/api/v1/meters", nil, "application/json", body, "application/json", &out); err != nil {
		return nil, fmt.Errorf("create meter %q: %w", m.Slug, err)
	}
	return &out, nil
}

// QueryMeter returns the usage of the meter with this id or slug.
func (c *Client) QueryMeter(ctx context.Context, idOrSlug string, q Query) (*UsageResult, error) {
	var res UsageResult
	if err := c.do(ctx, http.MethodGet, "/api/v1/meters/"+url.PathEscape(idOrSlug)+"/query", q.values(), "", nil, "application/json", &res); err != nil {
		return nil, fmt.Errorf("query meter %q: %w", idOrSlug, err)
	}
	return &res, nil
}

// QueryMeterCSV returns the usage as CSV, as the server renders it.
func (c *Client) QueryMeterCSV(ctx context.Context, idOrSlug string, q Query) ([]byte, error) {
	var b bytes.Buffer
	if err := c.do(ctx, http.MethodGet, "/api/v1/meters/"+url.PathEscape(idOrSlug)+"/query", q.values(), "", nil, "text/csv", &b); err != nil {
		return nil, fmt.Errorf("query meter %q: %w", idOrSlug, err)
	}
	return b.Bytes(), nil
}

// do sends one request. A 2xx response body is decoded into out (or copied
// when out is a *bytes.Buffer); any other status becomes a *Problem.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte, accept string, out any) error {
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", accept+", application/problem+json")
	req.Header.Set("User-Agent", "odometer-go-client")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeProblem(resp)
	}
	if b, ok := out.(*bytes.Buffer); ok {
		if _, err := b.ReadFrom(resp.Body); err != nil {
			return fmt.Errorf("read response: %w", err)
		}
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %d response: %w", resp.StatusCode, err)
	}
	return nil
}

// Problem is an error response (RFC 9457 application/problem+json).
type Problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Errors names each rejected field; for a batch of events, Index is the
	// event's position in the batch.
	Errors []FieldError `json:"errors,omitempty"`
	// RetryAfter is the server's Retry-After header (429, 503), or zero.
	RetryAfter time.Duration `json:"-"`
}

// FieldError names one rejected field and why. Index is the position of the
// event in a batch, or -1 when the error is not about one element (the wire
// format then omits it).
type FieldError struct {
	Index  int    `json:"index"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// UnmarshalJSON reads a field error; an absent index means -1.
func (f *FieldError) UnmarshalJSON(b []byte) error {
	var w struct {
		Index  *int   `json:"index"`
		Field  string `json:"field"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = FieldError{Index: -1, Field: w.Field, Reason: w.Reason}
	if w.Index != nil {
		f.Index = *w.Index
	}
	return nil
}

// MarshalJSON writes a field error as the server does: without index when
// it is negative.
func (f FieldError) MarshalJSON() ([]byte, error) {
	w := struct {
		Index  *int   `json:"index,omitempty"`
		Field  string `json:"field"`
		Reason string `json:"reason"`
	}{Field: f.Field, Reason: f.Reason}
	if f.Index >= 0 {
		w.Index = &f.Index
	}
	return json.Marshal(w)
}

// String returns "event I: FIELD: REASON", or "FIELD: REASON" without an
// index.
func (f FieldError) String() string {
	if f.Index >= 0 {
		return fmt.Sprintf("event %d: %s: %s", f.Index, f.Field, f.Reason)
	}
	return fmt.Sprintf("%s: %s", f.Field, f.Reason)
}

// Error returns the status, title, detail and every field error that the
// detail does not already state.
func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", p.Status, p.Title)
	if p.Detail != "" && p.Detail != p.Title {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	sep := ": "
	for _, f := range p.Errors {
		// The server's detail often spells out the first field errors.
		if s := f.String(); !strings.Contains(p.Detail, s) {
			b.WriteString(sep)
			b.WriteString(s)
			sep = "; "
		}
	}
	return b.String()
}

// Temporary reports whether the request may succeed if sent again later:
// the server was overloaded, shutting down or unreachable behind a proxy.
func (p *Problem) Temporary() bool {
	switch p.Status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// AsProblem returns the *Problem in err's chain, or nil.
func AsProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	return nil
}

// maxProblemBytes bounds how much of an error body is read.
const maxProblemBytes = 1 << 20

func decodeProblem(resp *http.Response) *Problem {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemBytes))
	p := &Problem{}
	if json.Unmarshal(body, p) != nil || p.Status == 0 && p.Title == "" {
		// Not problem+json (a proxy's page, for instance): keep a little of
		// the body as the detail.
		p = &Problem{Detail: strings.TrimSpace(string(body))}
		if len(p.Detail) > 512 {
			p.Detail = p.Detail[:512] + "…"
		}
	}
	p.Status = resp.StatusCode
	if p.Title == "" {
		p.Title = http.StatusText(resp.StatusCode)
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			p.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			p.RetryAfter = max(time.Until(t), 0)
		}
	}
	return p
}

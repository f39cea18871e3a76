package api

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// DefaultMaxQueryGroups is the default of Config.MaxQueryGroups.
const DefaultMaxQueryGroups = 10000

// queryRequest is OpenMeter's MeterQueryRequest, the body of
// POST /api/v1/meters/{meterIdOrSlug}/query and the decoded parameters of
// the GET form.
type queryRequest struct {
	ClientID                    *string         `json:"clientId"`
	From                        *string         `json:"from"`
	To                          *string         `json:"to"`
	WindowSize                  *string         `json:"windowSize"`
	WindowTimeZone              *string         `json:"windowTimeZone"`
	Subject                     []string        `json:"subject"`
	GroupBy                     []string        `json:"groupBy"`
	FilterGroupBy               json.RawMessage `json:"filterGroupBy"`
	FilterCustomerID            []string        `json:"filterCustomerId"`
	AdvancedMeterGroupByFilters json.RawMessage `json:"advancedMeterGroupByFilters"`
}

// queryParams are the parameters of GET /api/v1/meters/{meterIdOrSlug}/query.
var queryParams = []string{"from", "to", "windowSize", "windowTimeZone", "subject", "groupBy", "filterGroupBy[", "clientId"}

// queryMeter handles GET /api/v1/meters/{meterIdOrSlug}/query.
func (h *handler) queryMeter(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, queryParams, "filterCustomerId", "advancedMeterGroupByFilters")
	var req queryRequest
	opt := func(name string) *string {
		if !p.values.Has(name) {
			return nil
		}
		s := p.one(name)
		return &s
	}
	req.From, req.To = opt("from"), opt("to")
	req.WindowSize, req.WindowTimeZone = opt("windowSize"), opt("windowTimeZone")
	req.ClientID = opt("clientId")
	req.Subject = p.values["subject"]
	req.GroupBy = p.values["groupBy"]
	var filter map[string][]string
	for name, vs := range p.values {
		if k, ok := strings.CutPrefix(name, "filterGroupBy["); ok && strings.HasSuffix(k, "]") {
			if filter == nil {
				filter = map[string][]string{}
			}
			k = strings.TrimSuffix(k, "]")
			filter[k] = append(filter[k], vs...)
		}
	}
	return h.query(w, r, req, filter, p.fields)
}

// queryMeterPost handles POST /api/v1/meters/{meterIdOrSlug}/query, for
// queries too long for a URL.
func (h *handler) queryMeterPost(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	var req queryRequest
	if err := h.readJSON(w, r, &req); err != nil {
		return err
	}
	var fields []odometer.FieldError
	if len(req.FilterCustomerID) > 0 {
		fields = append(fields, odometer.FieldError{Index: -1, Field: "filterCustomerId", Reason: "not supported by Odometer"})
	}
	if len(req.AdvancedMeterGroupByFilters) > 0 && string(req.AdvancedMeterGroupByFilters) != "null" {
		fields = append(fields, odometer.FieldError{Index: -1, Field: "advancedMeterGroupByFilters", Reason: "not supported by Odometer; use filterGroupBy"})
	}
	filter := decodeMap[[]string](req.FilterGroupBy, "filterGroupBy", "an array of strings", &fields)
	return h.query(w, r, req, filter, fields)
}

// query validates req (with filterGroupBy decoded as filter), runs it and
// writes JSON or CSV. fields holds problems found while reading the request.
func (h *handler) query(w http.ResponseWriter, r *http.Request, req queryRequest, filter map[string][]string, fields []odometer.FieldError) error {
	bad := func(field, format string, args ...any) {
		fields = append(fields, odometer.FieldError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	var q odometer.UsageQuery
	parse := func(name string, s *string) time.Time {
		if s == nil || *s == "" {
			return time.Time{}
		}
		t, err := parseTime(*s)
		if err != nil {
			bad(name, "%v", err)
		}
		return t
	}
	q.From, q.To = parse("from", req.From), parse("to", req.To)
	fields = checkRange(fields, "from", q.From, "to", q.To)
	if req.WindowSize != nil {
		ws, err := odometer.ParseWindowSize(*req.WindowSize)
		if err != nil {
			bad("windowSize", "%v", err)
		}
		q.WindowSize = ws
	}
	if req.WindowTimeZone != nil && *req.WindowTimeZone != "" {
		loc, err := odometer.LoadTimeZone(*req.WindowTimeZone)
		if err != nil {
			bad("windowTimeZone", "%v", err)
		}
		q.TimeZone = loc
	}
	for _, s := range req.Subject {
		if s == "" {
			bad("subject", "must not be empty")
		}
	}
	q.Subjects = req.Subject
	for _, k := range req.GroupBy {
		if k == "" {
			bad("groupBy", "must not be empty")
		}
	}
	q.GroupBy = req.GroupBy
	for _, k := range slices.Sorted(maps.Keys(filter)) {
		if vs := filter[k]; len(vs) == 0 {
			bad("filterGroupBy["+k+"]", "list at least one value")
		}
	}
	q.FilterGroupBy = filter
	q.MaxGroups = h.maxGroups
	// The query cost limit: a range too long for its windows.
	to := q.To
	if to.IsZero() {
		to = h.clock()
	}
	fields = checkWindows(fields, q.From, to, q.WindowSize, q.TimeZone, h.maxWindows)
	if err := fieldsError("invalid usage query", fields); err != nil {
		return err
	}

	m, err := h.findMeter(r)
	if err != nil {
		return err
	}
	cm, err := m.Compile()
	if err != nil {
		return fmt.Errorf("compile stored meter %q: %w", m.Slug, err)
	}
	res, err := h.rollups.View(h.store, h.clock()).Query(r.Context(), cm, q)
	if err != nil {
		return err
	}
	if wantsCSV(r.Header.Get("Accept")) {
		return writeUsageCSV(w, m.Slug, q.GroupBy, res)
	}
	b, err := appendUsageJSON(make([]byte, 0, 64+160*len(res.Data)), res)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	writeJSONBytes(w, http.StatusOK, b)
	return nil
}

// appendUsageJSON appends res as json.Marshal writes it, byte for byte
// (TestUsageJSON and FuzzAppendJSONString check this), without reflection:
// a month of daily rows per group is hundreds of rows, on which
// encoding/json spent about 2 µs each (time and decimal marshalers whose
// output it re-validates, a sorted map per row), more than reading the
// events that make up a row.
func appendUsageJSON(b []byte, res *odometer.UsageResult) ([]byte, error) {
	var err error
	b = append(b, '{')
	if res.From != nil {
		b = append(b, `"from":`...)
		if b, err = appendJSONTime(b, *res.From); err != nil {
			return nil, err
		}
		b = append(b, ',')
	}
	if res.To != nil {
		b = append(b, `"to":`...)
		if b, err = appendJSONTime(b, *res.To); err != nil {
			return nil, err
		}
		b = append(b, ',')
	}
	if res.WindowSize != nil {
		b = append(b, `"windowSize":`...)
		b = appendJSONString(b, string(*res.WindowSize))
		b = append(b, ',')
	}
	b = append(b, `"data":`...)
	if res.Data == nil {
		return append(b, "null}"...), nil
	}
	b = append(b, '[')
	var keys []string
	for i, row := range res.Data {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"value":`...)
		b = append(b, row.Value.String()...)
		b = append(b, `,"windowStart":`...)
		if b, err = appendJSONTime(b, row.WindowStart); err != nil {
			return nil, err
		}
		b = append(b, `,"windowEnd":`...)
		if b, err = appendJSONTime(b, row.WindowEnd); err != nil {
			return nil, err
		}
		b = append(b, `,"subject":`...)
		b = appendJSONOptString(b, row.Subject)
		b = append(b, `,"groupBy":`...)
		if row.GroupBy == nil {
			b = append(b, "null"...)
		} else {
			// encoding/json writes map members sorted by key.
			keys = keys[:0]
			for k := range row.GroupBy {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			b = append(b, '{')
			for j, k := range keys {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, k)
				b = append(b, ':')
				b = appendJSONOptString(b, row.GroupBy[k])
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}

// appendJSONTime appends t as time.Time's MarshalJSON writes it.
func appendJSONTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

func appendJSONOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

// appendJSONString appends s as json.Marshal quotes it. Printable ASCII
// that encoding/json does not escape (it escapes '<', '>' and '&' for
// HTML) is copied; any other string is left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// wantsCSV reports whether the Accept header prefers text/csv to
// application/json. The most specific range matching each type gives its
// quality; on a tie the type whose range comes first wins. JSON is the
// answer when the header is absent or accepts neither.
func wantsCSV(accept string) bool {
	type pref struct {
		q    float64
		spec int // 2 exact, 1 type/*, 0 */*, -1 no match
		pos  int
	}
	js, cs := pref{spec: -1}, pref{spec: -1}
	for i, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(s, 64); err == nil {
				q = f
			}
		}
		for _, c := range []struct {
			typ, major string
			p          *pref
		}{{"application/json", "application/*", &js}, {"text/csv", "text/*", &cs}} {
			spec := -1
			switch mt {
			case c.typ:
				spec = 2
			case c.major:
				spec = 1
			case "*/*":
				spec = 0
			}
			if spec > c.p.spec {
				*c.p = pref{q: q, spec: spec, pos: i}
			}
		}
	}
	if cs.spec < 0 || cs.q <= 0 {
		return false
	}
	if js.spec < 0 || cs.q != js.q {
		return js.spec < 0 || cs.q > js.q
	}
	return cs.pos < js.pos || (cs.pos == js.pos && cs.spec > js.spec)
}

// writeUsageCSV writes a usage result as CSV: window_start, window_end,
// subject, one column per requested group-by key in request order, value.
// Null subjects and group values are empty cells; times are RFC 3339 UTC;
// values are exact decimal text. Subjects and group values come from
// events, so they go through odometer.CSVText: a spreadsheet must not run
// a value such as =HYPERLINK(…) that an ingest key planted.
func writeUsageCSV(w http.ResponseWriter, slug string, groupBy []string, res *odometer.UsageResult) error {
	var keys []string
	for _, k := range groupBy {
		if k != "subject" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", slug+".csv"))
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	header := append(append([]string{"window_start", "window_end", "subject"}, keys...), "value")
	_ = cw.Write(header)
	row := make([]string, len(header))
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for _, d := range res.Data {
		row[0] = d.WindowStart.UTC().Format(time.RFC3339Nano)
		row[1] = d.WindowEnd.UTC().Format(time.RFC3339Nano)
		row[2] = odometer.CSVText(str(d.Subject))
		for i, k := range keys {
			row[3+i] = odometer.CSVText(str(d.GroupBy[k]))
		}
		row[len(row)-1] = d.Value.String()
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	return nil
}

// groupByValuesHorizon is how far back group-by values are listed by
// default.
const groupByValuesHorizon = 24 * time.Hour

// Page sizes of the group-by values route.
const (
	defaultValuesLimit = 1000
	maxValuesLimit     = 10000
)

// listGroupByValues handles
// GET /api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values: a page
// of the distinct values in byte order, as OpenMeter's plain JSON array of
// strings. When more follow, a Link header (RFC 8288) with rel="next"
// gives the next page's URL: the same parameters, from pinned to the
// range's start so that every page lists the same range, and after set to
// the page's last value.
func (h *handler) listGroupByValues(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"from", "to", "after", "limit"})
	from, to := p.time("from"), p.time("to")
	p.fields = checkRange(p.fields, "from", from, "to", to)
	q := odometer.GroupByValuesQuery{Key: r.PathValue("groupByKey"), To: to,
		Limit: p.int("limit", defaultValuesLimit, 1, maxValuesLimit)}
	if p.values.Has("after") {
		after := p.one("after")
		q.After = &after // after= (empty) is after the empty value
	}
	if err := p.err(); err != nil {
		return err
	}
	m, err := h.findMeter(r)
	if err != nil {
		return err
	}
	cm, err := m.Compile()
	if err != nil {
		return fmt.Errorf("compile stored meter %q: %w", m.Slug, err)
	}
	if from.IsZero() {
		from = h.clock().Add(-groupByValuesHorizon)
	}
	q.From = from
	values, more, err := usage.GroupByValues(r.Context(), h.store, cm, q)
	if err != nil {
		return err
	}
	if values == nil {
		values = []string{}
	}
	if more {
		next := url.Values{}
		next.Set("from", from.Format(time.RFC3339Nano))
		if !to.IsZero() {
			next.Set("to", to.Format(time.RFC3339Nano))
		}
		next.Set("after", values[len(values)-1])
		next.Set("limit", strconv.Itoa(q.Limit))
		w.Header().Set("Link", "<"+r.URL.EscapedPath()+"?"+next.Encode()+`>; rel="next"`)
	}
	return writeJSON(w, http.StatusOK, values)
}

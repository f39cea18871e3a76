package odometer

import (
	"fmt"
	"strings"
	"time"
)

// WindowSize is the width of usage windows.
type WindowSize string

// Window sizes. DAY and MONTH follow the query's time zone, including DST.
const (
	Minute WindowSize = "MINUTE"
	Hour   WindowSize = "HOUR"
	Day    WindowSize = "DAY"
	Month  WindowSize = "MONTH"
)

// ParseWindowSize accepts the four sizes; "" means no windowing.
func ParseWindowSize(s string) (WindowSize, error) {
	switch w := WindowSize(s); w {
	case "", Minute, Hour, Day, Month:
		return w, nil
	}
	return "", fmt.Errorf("must be MINUTE, HOUR, DAY or MONTH; got %q", s)
}

// LoadTimeZone resolves an IANA time zone name; "" is UTC. "Local" is
// refused: the server's zone means nothing to a client, and would make
// windows and schedules depend on the server's settings.
func LoadTimeZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("%q is not an IANA time zone name", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown IANA time zone %q", name)
	}
	return loc, nil
}

// Window returns the window of size w in loc that contains t: [start, end).
// MINUTE and HOUR windows are aligned to the zone's UTC offset at t (so
// Asia/Kolkata hours start at :30 UTC); DAY and MONTH windows run from local
// midnight to local midnight, so they last 23 or 25 hours across DST changes.
func (w WindowSize) Window(t time.Time, loc *time.Location) (start, end time.Time) {
	lt := t.In(loc)
	switch w {
	case Minute, Hour:
		size := int64(60)
		if w == Hour {
			size = 3600
		}
		_, off := lt.Zone()
		s := t.Unix() + int64(off)
		s -= ((s % size) + size) % size
		start = time.Unix(s-int64(off), 0).UTC()
		return start, start.Add(time.Duration(size) * time.Second)
	case Day:
		y, m, d := lt.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, loc).UTC(), time.Date(y, m, d+1, 0, 0, 0, 0, loc).UTC()
	case Month:
		y, m, _ := lt.Date()
		return time.Date(y, m, 1, 0, 0, 0, 0, loc).UTC(), time.Date(y, m+1, 1, 0, 0, 0, 0, loc).UTC()
	}
	panic("odometer: Window on empty WindowSize")
}

// UsageQuery asks a meter for usage. Times are half-open: [From, To).
type UsageQuery struct {
	From, To   time.Time      // zero From: from the first event; zero To: now
	WindowSize WindowSize     // "" = one row per group for the whole range
	TimeZone   *time.Location // nil = UTC
	// Subjects keeps only these subjects; when set, rows are split by subject.
	Subjects []string
	// GroupBy lists meter group-by keys to split rows by; "subject" splits by
	// subject.
	GroupBy []string
	// FilterGroupBy keeps only events whose group-by value is one of the
	// listed values.
	FilterGroupBy map[string][]string
	// MaxGroups, when positive, bounds the groups of the result: the
	// distinct combinations of subject (when rows are split by subject) and
	// group-by values, whatever the windows. A query that finds more is
	// refused with an EINVALID *Error naming "groupBy" (or "subject" when
	// the rows are split by subject alone), as soon as it finds the first
	// group over the limit: the oversized result is never built. Zero or
	// negative: no limit.
	MaxGroups int
}

// UsageRow is one aggregated value.
type UsageRow struct {
	Value       Decimal            `json:"value"`
	WindowStart time.Time          `json:"windowStart"`
	WindowEnd   time.Time          `json:"windowEnd"`
	Subject     *string            `json:"subject"`
	GroupBy     map[string]*string `json:"groupBy"`
}

// UsageResult is the answer to a UsageQuery, in OpenMeter's shape.
type UsageResult struct {
	From       *time.Time  `json:"from,omitempty"`
	To         *time.Time  `json:"to,omitempty"`
	WindowSize *WindowSize `json:"windowSize,omitempty"`
	Data       []UsageRow  `json:"data"`
}

// Validate checks q against the meter: known group-by keys, From before To.
func (q *UsageQuery) Validate(m *CompiledMeter) error {
	var fields []FieldError
	bad := func(field, format string, args ...any) {
		fields = append(fields, FieldError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		bad("from", "must be before to")
	}
	for _, k := range q.GroupBy {
		if k != "subject" && !m.HasGroupKey(k) {
			bad("groupBy", "meter %q has no group-by key %q (it has: %s)", m.Slug, k, keyList(m))
		}
	}
	for _, k := range sortedKeys(q.FilterGroupBy) {
		if k != "subject" && !m.HasGroupKey(k) {
			bad("filterGroupBy["+k+"]", "meter %q has no group-by key %q (it has: %s)", m.Slug, k, keyList(m))
		}
	}
	for _, s := range q.Subjects {
		if s == "" {
			bad("subject", "must not be empty")
		}
	}
	if len(fields) > 0 {
		return &Error{Code: EINVALID, Message: "invalid usage query", Fields: fields}
	}
	return nil
}

func keyList(m *CompiledMeter) string {
	if len(m.groupKeys) == 0 {
		return "none"
	}
	return strings.Join(m.groupKeys, ", ")
}

// GroupByValuesQuery selects a page of the distinct values of a meter's
// group-by key. To page through them, pass the last value of a page that
// had more as the next page's After.
type GroupByValuesQuery struct {
	Key      string    // a group-by key of the meter, or "subject"
	From, To time.Time // event time [From, To); zero = unbounded (before the meter's eventFrom: from it)
	After    *string   // only values greater than *After, in byte order; nil = from the first
	Limit    int       // at most this many; must be > 0
}

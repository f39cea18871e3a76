package odometer

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"
)

// Aggregation is how a meter folds event values into one number.
type Aggregation string

// The aggregations, as named in OpenMeter's API.
const (
	Sum         Aggregation = "SUM"
	Count       Aggregation = "COUNT"
	UniqueCount Aggregation = "UNIQUE_COUNT"
	Avg         Aggregation = "AVG"
	Min         Aggregation = "MIN"
	Max         Aggregation = "MAX"
	Latest      Aggregation = "LATEST"
)

// Aggregations lists every aggregation.
var Aggregations = []Aggregation{Sum, Count, UniqueCount, Avg, Min, Max, Latest}

// Meter turns events of one type into usage. Meters are computed from the
// stored events at query time, so a meter created or changed after its
// events arrived reports all of history.
type Meter struct {
	ID          string            `json:"id"`
	Namespace   string            `json:"-"`
	Slug        string            `json:"slug"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Aggregation Aggregation       `json:"aggregation"`
	EventType   string            `json:"eventType"`
	// EventFrom, when set, excludes events before it.
	EventFrom *time.Time `json:"eventFrom,omitempty"`
	// ValueProperty is a JSONPath into data; empty for COUNT.
	ValueProperty string `json:"valueProperty,omitempty"`
	// GroupBy names JSONPaths into data whose values split usage.
	GroupBy map[string]string `json:"groupBy,omitempty"`
	// Filters keeps only events whose value at each JSONPath key is one of
	// the listed values (an Odometer extension of OpenMeter's meter).
	Filters   map[string][]string `json:"filters,omitempty"`
	CreatedAt time.Time           `json:"createdAt"`
	UpdatedAt time.Time           `json:"updatedAt"`
	DeletedAt *time.Time          `json:"deletedAt,omitempty"`
}

var (
	slugRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)
	groupByKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)
)

// Validate checks m and normalises it (name defaults to the slug; COUNT
// meters drop their value property). It returns an EINVALID *Error naming
// every bad field.
func (m *Meter) Validate() error {
	var fields []FieldError
	bad := func(field, format string, args ...any) {
		fields = append(fields, FieldError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if !slugRE.MatchString(m.Slug) {
		bad("slug", "must be 1–63 letters, digits, '_' or '-', starting with a letter or digit")
	}
	if m.Name == "" {
		m.Name = m.Slug
	}
	if len(m.Name) > 256 {
		bad("name", "longer than 256 characters")
	}
	if len(m.Description) > 1024 {
		bad("description", "longer than 1024 characters")
	}
	if !slices.Contains(Aggregations, m.Aggregation) {
		bad("aggregation", "must be one of SUM, COUNT, UNIQUE_COUNT, AVG, MIN, MAX, LATEST; got %q", m.Aggregation)
	}
	if m.EventType == "" {
		bad("eventType", "required")
	} else if len(m.EventType) > MaxTypeLength {
		bad("eventType", "longer than %d bytes", MaxTypeLength)
	}
	if m.Aggregation == Count {
		m.ValueProperty = ""
	} else if m.ValueProperty == "" {
		if m.Aggregation != "" && slices.Contains(Aggregations, m.Aggregation) {
			bad("valueProperty", "required for %s meters", m.Aggregation)
		}
	} else if _, err := CompilePath(m.ValueProperty); err != nil {
		bad("valueProperty", "%v", err)
	}
	for _, k := range sortedKeys(m.GroupBy) {
		switch {
		case k == "subject":
			bad("groupBy.subject", "\"subject\" is reserved: it is always available as a group-by")
		case !groupByKeyRE.MatchString(k):
			bad("groupBy."+k, "key must be letters, digits and '_', starting with a letter or '_'")
		}
		if _, err := CompilePath(m.GroupBy[k]); err != nil {
			bad("groupBy."+k, "%v", err)
		}
	}
	for _, k := range sortedKeys(m.Filters) {
		if _, err := CompilePath(k); err != nil {
			bad("filters."+k, "%v", err)
		}
		if len(m.Filters[k]) == 0 {
			bad("filters."+k, "list at least one allowed value")
		}
	}
	if m.EventFrom != nil {
		t := m.EventFrom.UTC().Truncate(TimePrecision)
		m.EventFrom = &t
	}
	// Stores keep microseconds; truncating here makes a meter read back
	// equal to the one written.
	m.CreatedAt = m.CreatedAt.UTC().Truncate(TimePrecision)
	m.UpdatedAt = m.UpdatedAt.UTC().Truncate(TimePrecision)
	if len(fields) > 0 {
		return &Error{Code: EINVALID, Message: "invalid meter", Fields: fields}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// CompiledMeter is a validated meter with its JSONPaths parsed, ready to
// read events.
type CompiledMeter struct {
	*Meter
	value      Path
	groupKeys  []string // sorted
	groupPaths map[string]Path
	filters    []compiledFilter
}

type compiledFilter struct {
	path    Path
	allowed map[string]bool
}

// Compile validates m and parses its paths.
func (m *Meter) Compile() (*CompiledMeter, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	c := &CompiledMeter{Meter: m, groupPaths: map[string]Path{}}
	if m.ValueProperty != "" {
		c.value, _ = CompilePath(m.ValueProperty)
	}
	c.groupKeys = sortedKeys(m.GroupBy)
	for _, k := range c.groupKeys {
		c.groupPaths[k], _ = CompilePath(m.GroupBy[k])
	}
	for _, k := range sortedKeys(m.Filters) {
		p, _ := CompilePath(k)
		f := compiledFilter{path: p, allowed: map[string]bool{}}
		for _, v := range m.Filters[k] {
			f.allowed[v] = true
		}
		c.filters = append(c.filters, f)
	}
	return c, nil
}

// GroupKeys returns the meter's group-by keys, sorted.
func (c *CompiledMeter) GroupKeys() []string { return c.groupKeys }

// HasGroupKey reports whether k is a group-by key of the meter.
func (c *CompiledMeter) HasGroupKey(k string) bool { _, ok := c.groupPaths[k]; return ok }

// Matches reports whether an event of the meter's type with this data and
// time passes the meter's eventFrom and filters.
func (c *CompiledMeter) Matches(t time.Time, data []byte) bool {
	if c.EventFrom != nil && t.Before(*c.EventFrom) {
		return false
	}
	for _, f := range c.filters {
		v, ok := f.path.Text(data)
		if !ok || !f.allowed[v] {
			return false
		}
	}
	return true
}

// ValuePath returns the compiled valueProperty; the zero Path for COUNT.
func (c *CompiledMeter) ValuePath() Path { return c.value }

// GroupPath returns the compiled path of group-by key k, and whether the
// meter has that key.
func (c *CompiledMeter) GroupPath(k string) (Path, bool) { p, ok := c.groupPaths[k]; return p, ok }

// GroupValue extracts the group-by value for key k from data.
func (c *CompiledMeter) GroupValue(k string, data []byte) (string, bool) {
	p, ok := c.groupPaths[k]
	if !ok {
		return "", false
	}
	return p.Text(data)
}

// CheckEvent reports why an event that this meter would count cannot be
// counted: its value is missing, not a number, or out of range. It returns
// nil for events of other types, events the filters exclude, and COUNT
// meters. Ingestion rejects such events so that usage is never silently
// dropped.
func (c *CompiledMeter) CheckEvent(e *Event) *FieldError {
	if e.Type != c.EventType || c.Aggregation == Count || !c.Matches(e.Time, e.Data) {
		return nil
	}
	field := "data" + c.ValueProperty[1:]
	if c.Aggregation == UniqueCount {
		if _, ok := c.value.Text(e.Data); !ok {
			return &FieldError{Index: -1, Field: field, Reason: fmt.Sprintf("meter %q (UNIQUE_COUNT) needs a value at %s", c.Slug, c.ValueProperty)}
		}
		return nil
	}
	_, ok, err := c.value.Value(e.Data)
	switch {
	case err != nil:
		return &FieldError{Index: -1, Field: field, Reason: fmt.Sprintf("meter %q (%s): %v", c.Slug, c.Aggregation, err)}
	case !ok:
		return &FieldError{Index: -1, Field: field, Reason: fmt.Sprintf("meter %q (%s) needs a decimal number at %s", c.Slug, c.Aggregation, c.ValueProperty)}
	}
	return nil
}

// CheckEvents checks a decoded batch against the namespace's meters (see
// CheckEvent) and returns an EINVALID *Error listing every event that a meter
// could not count, or nil.
func CheckEvents(events []Event, meters []*CompiledMeter) error {
	var fields []FieldError
	bad := 0
	for i := range events {
		n := len(fields)
		for _, m := range meters {
			if fe := m.CheckEvent(&events[i]); fe != nil {
				fe.Index = i
				fields = append(fields, *fe)
			}
		}
		if len(fields) > n {
			bad++
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return &Error{Code: EINVALID,
		Message: fmt.Sprintf("%d of %d events cannot be metered; nothing was stored", bad, len(events)),
		Fields:  fields}
}

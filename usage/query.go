package usage

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/odometerhq/odometer"
)

// QueryUsage runs q against the events in store and aggregates them exactly.
// now is used when q.To is zero. It reads every matching event; a
// UsageView (cache.go) answers the same queries from cached hourly
// rollups where it can.
func QueryUsage(ctx context.Context, store odometer.EventStore, m *odometer.CompiledMeter, q odometer.UsageQuery, now time.Time) (*odometer.UsageResult, error) {
	return (*Rollups)(nil).View(store, now).Query(ctx, m, q)
}

// QueryEvents runs q as QueryUsage does, but reads every matching event,
// never a rollup: the reference that rollup-served answers must equal.
func QueryEvents(ctx context.Context, store odometer.EventStore, m *odometer.CompiledMeter, q odometer.UsageQuery, now time.Time) (*odometer.UsageResult, error) {
	return QueryUsage(ctx, eventsOnly{store}, m, q, now)
}

// eventsOnly hides a store's rollups.
type eventsOnly struct{ odometer.EventStore }

// usageAgg aggregates the rows of one query, from events and from cached
// hourly rollups.
type usageAgg struct {
	m         *odometer.CompiledMeter
	q         *odometer.UsageQuery
	loc       *time.Location
	from, to  time.Time
	bySubject bool
	// groupKeys are the query's group-by keys (without "subject"), sorted;
	// groupIdx[i] is the index of groupKeys[i] among the meter's keys.
	groupKeys     []string
	groupPaths    []odometer.Path
	groupIdx      []int
	subjectFilter map[string]bool

	// Groups are found by a key that encodes the window, the subject and
	// the group values. It is built in a reused buffer and looked up
	// without allocating; only a new group copies it. list holds the groups
	// in the order they were created, which for stores that scan in time
	// order is nearly the order of the result.
	groups map[string]*group
	list   []*group
	first  time.Time
	key    []byte
	// combos holds the distinct (subject, group values) of the groups, the
	// key without its window, when q.MaxGroups limits them and rows are
	// windowed; without windows every group is one.
	combos map[string]struct{}

	// fill, during a scan, holds the rollups being built for hours the
	// cache lacks, by hour (Unix seconds / 3600); nil when none are.
	fill    map[int64]*hourFill
	fillKey []byte
}

func newUsageAgg(m *odometer.CompiledMeter, q *odometer.UsageQuery, now time.Time) *usageAgg {
	a := &usageAgg{m: m, q: q, loc: q.TimeZone, to: q.To, from: q.From, groups: map[string]*group{}}
	if a.loc == nil {
		a.loc = time.UTC
	}
	if a.to.IsZero() {
		a.to = now.UTC().Truncate(odometer.TimePrecision)
	}
	if m.EventFrom != nil && m.EventFrom.After(a.from) {
		a.from = *m.EventFrom
	}
	a.bySubject = len(q.Subjects) > 0 || slices.Contains(q.GroupBy, "subject")
	for _, k := range q.GroupBy {
		if k != "subject" && !slices.Contains(a.groupKeys, k) {
			a.groupKeys = append(a.groupKeys, k)
		}
	}
	slices.Sort(a.groupKeys)
	a.groupPaths = make([]odometer.Path, len(a.groupKeys))
	a.groupIdx = make([]int, len(a.groupKeys))
	for i, k := range a.groupKeys {
		a.groupPaths[i] = groupPath(m, k)
		a.groupIdx[i] = slices.Index(m.GroupKeys(), k)
	}
	if vs := q.FilterGroupBy["subject"]; len(vs) > 0 {
		a.subjectFilter = map[string]bool{}
		for _, s := range vs {
			a.subjectFilter[s] = true
		}
	}
	return a
}

// scan aggregates the events of subjects in [from, to).
func (a *usageAgg) scan(ctx context.Context, store odometer.EventStore, subjects []string, from, to time.Time) error {
	m := a.m
	return store.ScanEvents(ctx, odometer.EventScan{Namespace: m.Namespace, Type: m.EventType, Subjects: subjects, From: from, To: to}, a.event)
}

func (a *usageAgg) event(e *odometer.ScannedEvent) error {
	m := a.m
	if !m.Matches(e.Time, e.Data) {
		return nil
	}
	var fill *hourFill
	if a.fill != nil {
		fill = a.fill[hourIndex(e.Time)]
	}
	if fill == nil && !a.wanted(e) {
		return nil
	}
	// Read the value first: an event a meter cannot read does not count
	// (ingestion rejects such events while the meter exists).
	var val odometer.Decimal
	var text string
	switch m.Aggregation {
	case odometer.Count:
	case odometer.UniqueCount:
		t, ok := m.ValuePath().Text(e.Data)
		if !ok {
			return nil
		}
		text = t
	default:
		v, ok, err := m.ValuePath().Value(e.Data)
		if err != nil || !ok {
			return nil
		}
		val = v
	}
	if fill != nil {
		a.fillKey = fill.add(m, a.fillKey, val, e)
		if !a.wanted(e) {
			return nil
		}
	}
	var ws, we time.Time
	if a.q.WindowSize != "" {
		ws, we = a.q.WindowSize.Window(e.Time, a.loc)
	}
	// Window starts are whole seconds, so their Unix time identifies them.
	key := binary.BigEndian.AppendUint64(a.key[:0], uint64(ws.Unix()))
	if a.bySubject {
		key = append(key, 0)
		key = append(key, e.Subject...)
	}
	for _, p := range a.groupPaths {
		key = append(key, 0)
		n := len(key)
		var ok bool
		if key, ok = p.AppendText(append(key, 1), e.Data); !ok {
			key = key[:n] // null or missing
		}
	}
	a.key = key
	g := a.groups[string(key)]
	if g == nil {
		if err := a.admit(key); err != nil {
			return err
		}
		g = &group{start: ws, end: we, vals: make([]*string, len(a.groupKeys))}
		for i, p := range a.groupPaths {
			if v, ok := p.Text(e.Data); ok {
				g.vals[i] = &v
			}
		}
		if a.bySubject {
			s := e.Subject
			g.subject = &s
		}
		a.groups[string(key)] = g
		a.list = append(a.list, g)
	}
	g.add(m.Aggregation, val, text, e)
	if a.first.IsZero() || e.Time.Before(a.first) {
		a.first = e.Time
	}
	return nil
}

// wanted applies the query's subject and group-by filters to an event.
func (a *usageAgg) wanted(e *odometer.ScannedEvent) bool {
	if a.subjectFilter != nil && !a.subjectFilter[e.Subject] {
		return false
	}
	for k, allowed := range a.q.FilterGroupBy {
		if k == "subject" {
			continue
		}
		v, ok := a.m.GroupValue(k, e.Data)
		if !ok || !slices.Contains(allowed, v) {
			return false
		}
	}
	return true
}

// merge adds a cached group of the meter (values for all of its group-by
// keys) of subject's hour, which lies wholly in the window starting at ws.
// It fails only when the group is one more than q.MaxGroups allows.
func (a *usageAgg) merge(subject string, ws, we time.Time, p *group) error {
	if !a.passes(subject, p.vals) {
		return nil
	}
	key := binary.BigEndian.AppendUint64(a.key[:0], uint64(ws.Unix()))
	if a.bySubject {
		key = append(key, 0)
		key = append(key, subject...)
	}
	for _, i := range a.groupIdx {
		key = append(key, 0)
		if v := p.vals[i]; v != nil {
			key = append(append(key, 1), *v...)
		}
	}
	a.key = key
	g := a.groups[string(key)]
	if g == nil {
		if err := a.admit(key); err != nil {
			return err
		}
		g = &group{start: ws, end: we, vals: make([]*string, len(a.groupKeys))}
		for i, j := range a.groupIdx {
			g.vals[i] = p.vals[j]
		}
		if a.bySubject {
			s := subject
			g.subject = &s
		}
		a.groups[string(key)] = g
		a.list = append(a.list, g)
	}
	g.merge(a.m.Aggregation, p)
	return nil
}

// passes applies the query's subject and group-by filters to an
// aggregate of subject's events with the meter's group-by values vals.
func (a *usageAgg) passes(subject string, vals []*string) bool {
	if a.subjectFilter != nil && !a.subjectFilter[subject] {
		return false
	}
	for k, allowed := range a.q.FilterGroupBy {
		if k == "subject" {
			continue
		}
		v := vals[slices.Index(a.m.GroupKeys(), k)]
		if v == nil || !slices.Contains(allowed, *v) {
			return false
		}
	}
	return true
}

// admit is called before a new row with key (the window's start, then the
// subject and group values) is made. It refuses the row if its group, the
// key without the window, is new and the result holds q.MaxGroups groups
// already. Rows are made only for events that count, so the groups
// counted are exactly those of the result.
func (a *usageAgg) admit(key []byte) error {
	limit := a.q.MaxGroups
	if limit <= 0 {
		return nil
	}
	if a.q.WindowSize == "" {
		if len(a.list) < limit {
			return nil
		}
		return a.tooManyGroups()
	}
	combo := key[8:]
	if _, ok := a.combos[string(combo)]; ok {
		return nil
	}
	if len(a.combos) >= limit {
		return a.tooManyGroups()
	}
	if a.combos == nil {
		a.combos = map[string]struct{}{}
	}
	a.combos[string(combo)] = struct{}{}
	return nil
}

// tooManyGroups is the error of a query whose result would hold more than
// q.MaxGroups groups. The count is not known: the scan stops at the first
// group over the limit.
func (a *usageAgg) tooManyGroups() error {
	limit := a.q.MaxGroups
	field := "groupBy"
	if len(a.q.GroupBy) == 0 {
		field = "subject" // rows split by the subjects asked for
	}
	what := "subject and group-by values"
	switch {
	case len(a.groupKeys) == 0:
		what = "subjects"
	case !a.bySubject:
		what = "group-by values"
	}
	return &odometer.Error{Code: odometer.EINVALID, Message: "usage query result too large", Fields: []odometer.FieldError{{Index: -1, Field: field,
		Reason: fmt.Sprintf("the result has more than %d groups (distinct combinations of %s) and the limit is %d; "+
			"narrow the query with subject or filterGroupBy, group by fewer keys, or have the server's limit (maxQueryGroups) raised",
			limit, what, limit)}}}
}

func (a *usageAgg) result() *odometer.UsageResult {
	q := a.q
	res := &odometer.UsageResult{Data: make([]odometer.UsageRow, 0, len(a.list))}
	if !q.From.IsZero() {
		f := q.From.UTC()
		res.From = &f
	}
	t := a.to.UTC()
	res.To = &t
	if q.WindowSize != "" {
		w := q.WindowSize
		res.WindowSize = &w
	}
	rangeStart := a.from
	if rangeStart.IsZero() {
		rangeStart = a.first
	}
	for _, g := range a.list {
		if q.WindowSize == "" {
			g.start, g.end = rangeStart.UTC(), a.to.UTC()
		} else {
			// Windows are clipped to the queried range.
			g.start, g.end = maxTime(g.start, a.from).UTC(), minTime(g.end, a.to).UTC()
		}
	}
	// Sorted as groups, whose values are a slice, rather than as rows,
	// whose values are in a map.
	slices.SortFunc(a.list, compareGroups)
	for _, g := range a.list {
		row := odometer.UsageRow{Value: g.result(a.m.Aggregation), WindowStart: g.start, WindowEnd: g.end, Subject: g.subject,
			GroupBy: make(map[string]*string, len(a.groupKeys))}
		for i, k := range a.groupKeys {
			row.GroupBy[k] = g.vals[i]
		}
		res.Data = append(res.Data, row)
	}
	return res
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// compareGroups orders rows by window, then subject, then group values in
// the order of the sorted group-by keys (null first), so that results are
// deterministic.
func compareGroups(a, b *group) int {
	if c := a.start.Compare(b.start); c != 0 {
		return c
	}
	if c := compareOpt(a.subject, b.subject); c != 0 {
		return c
	}
	for i := range a.vals {
		if c := compareOpt(a.vals[i], b.vals[i]); c != 0 {
			return c
		}
	}
	return 0
}

// compareOpt orders optional strings, nil first.
func compareOpt(x, y *string) int {
	switch {
	case x == nil && y == nil:
		return 0
	case x == nil:
		return -1
	case y == nil:
		return 1
	}
	return cmp.Compare(*x, *y)
}

// group accumulates one row.
type group struct {
	start, end time.Time // the window; clipped to the query before sorting
	subject    *string
	vals       []*string

	n        int64
	first    time.Time // the earliest event time
	sum      odometer.Decimal
	min, max odometer.Decimal
	unique   map[string]struct{}

	latest                     odometer.Decimal
	latestTime, latestIngested time.Time
	latestSource, latestID     string
}

func (g *group) add(agg odometer.Aggregation, v odometer.Decimal, text string, e *odometer.ScannedEvent) {
	g.n++
	if g.n == 1 || e.Time.Before(g.first) {
		g.first = e.Time
	}
	switch agg {
	case odometer.Sum, odometer.Avg:
		g.sum = g.sum.Add(v)
	case odometer.Min:
		if g.n == 1 || v.Cmp(g.min) < 0 {
			g.min = v
		}
	case odometer.Max:
		if g.n == 1 || v.Cmp(g.max) > 0 {
			g.max = v
		}
	case odometer.UniqueCount:
		if g.unique == nil {
			g.unique = map[string]struct{}{}
		}
		g.unique[text] = struct{}{}
	case odometer.Latest:
		if g.n == 1 || g.before(e.Time, e.IngestedAt, e.Source, e.ID) {
			g.latest = v
			g.latestTime, g.latestIngested = e.Time, e.IngestedAt
			g.latestSource, g.latestID = e.Source, e.ID
		}
	}
}

// before reports whether g's latest event comes before the event with time
// t, receive time ingested, source and id, in the order LATEST uses: by
// event time, then receive time, then source, then id; the greatest wins.
// The order is total, so the result does not depend on the store, the scan
// order or on which hours came from the rollup cache.
func (g *group) before(t, ingested time.Time, source, id string) bool {
	if c := t.Compare(g.latestTime); c != 0 {
		return c > 0
	}
	if c := ingested.Compare(g.latestIngested); c != 0 {
		return c > 0
	}
	if c := cmp.Compare(source, g.latestSource); c != 0 {
		return c > 0
	}
	return id > g.latestID
}

// merge adds the aggregate p (of events g has not seen) to g. UNIQUE_COUNT
// is never merged: its hourly values do not add up.
func (g *group) merge(agg odometer.Aggregation, p *group) {
	if p.n == 0 {
		return
	}
	first := g.n == 0
	g.n += p.n
	if first || p.first.Before(g.first) {
		g.first = p.first
	}
	switch agg {
	case odometer.Sum, odometer.Avg:
		g.sum = g.sum.Add(p.sum)
	case odometer.Min:
		if first || p.min.Cmp(g.min) < 0 {
			g.min = p.min
		}
	case odometer.Max:
		if first || p.max.Cmp(g.max) > 0 {
			g.max = p.max
		}
	case odometer.Latest:
		if first || g.before(p.latestTime, p.latestIngested, p.latestSource, p.latestID) {
			g.latest = p.latest
			g.latestTime, g.latestIngested = p.latestTime, p.latestIngested
			g.latestSource, g.latestID = p.latestSource, p.latestID
		}
	case odometer.UniqueCount:
		panic("odometer: merge of UNIQUE_COUNT groups")
	}
}

func (g *group) result(agg odometer.Aggregation) odometer.Decimal {
	switch agg {
	case odometer.Sum:
		return g.sum
	case odometer.Count:
		return odometer.DecimalFromInt(g.n)
	case odometer.Avg:
		return g.sum.QuoRound(odometer.DecimalFromInt(g.n))
	case odometer.Min:
		return g.min
	case odometer.Max:
		return g.max
	case odometer.UniqueCount:
		return odometer.DecimalFromInt(int64(len(g.unique)))
	case odometer.Latest:
		return g.latest
	}
	return odometer.Decimal{}
}

// GroupByValues returns the distinct values of q.Key among the events in
// [q.From, q.To) that the meter counts, in byte order: the first q.Limit
// of those greater than q.After, and whether more follow. An unknown key
// is an EINVALID error naming "groupByKey". Stores scan events in no
// particular order, so every event in the range is read; but only the
// smallest values found so far are kept, at most 2 × (q.Limit + 1) of
// them, so memory and the answer are bounded by the page, not by the
// number of distinct values.
func GroupByValues(ctx context.Context, store odometer.EventStore, m *odometer.CompiledMeter, q odometer.GroupByValuesQuery) (values []string, more bool, err error) {
	if q.Limit <= 0 {
		return nil, false, odometer.FieldErrorf("limit", "must be positive; got %d", q.Limit)
	}
	key := q.Key
	if key != "subject" && !m.HasGroupKey(key) {
		return nil, false, odometer.FieldErrorf("groupByKey", "meter %q has no group-by key %q (it has: %s)", m.Slug, key, keyList(m))
	}
	from := q.From
	if m.EventFrom != nil && m.EventFrom.After(from) {
		from = *m.EventFrom
	}
	keep := q.Limit + 1 // one more than a page tells whether more follow
	seen := map[string]struct{}{}
	var bound *string // when set, values above it cannot be among the first keep
	add := func(v string) {
		if (q.After != nil && v <= *q.After) || (bound != nil && v > *bound) {
			return
		}
		if _, ok := seen[v]; ok {
			return
		}
		seen[v] = struct{}{}
		if len(seen) < 2*keep {
			return
		}
		// Keep the smallest keep values. Trimming only once the set has
		// doubled makes each value cost O(log keep) on average.
		vs := slices.Sorted(maps.Keys(seen))
		for _, v := range vs[keep:] {
			delete(seen, v)
		}
		b := vs[keep-1]
		bound = &b
	}
	err = store.ScanEvents(ctx, odometer.EventScan{Namespace: m.Namespace, Type: m.EventType, From: from, To: q.To},
		func(e *odometer.ScannedEvent) error {
			if !m.Matches(e.Time, e.Data) {
				return nil
			}
			if key == "subject" {
				add(e.Subject)
			} else if v, ok := m.GroupValue(key, e.Data); ok {
				add(v)
			}
			return nil
		})
	if err != nil {
		return nil, false, fmt.Errorf("group-by values of meter %q: %w", m.Slug, err)
	}
	values = slices.Sorted(maps.Keys(seen))
	if len(values) > q.Limit {
		return values[:q.Limit], true, nil
	}
	return values, false, nil
}

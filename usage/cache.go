package usage

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/odometerhq/odometer"
)

// rollupMargin covers the time between an append's clock reading (the
// receive time, or the store's clock if later) and its commit, clock skew
// between nodes sharing a database, and lateMarkStep. docs/meters.md
// ("Usage rollups") derives the rule it enters.
const rollupMargin = 5 * time.Minute

// DefaultRollupHours is the default capacity of a Rollups cache, in
// (meter, subject, hour) entries.
const DefaultRollupHours = 500_000

// Rollups caches, per meter definition and subject, the aggregate of whole
// UTC days and hours that ended more than LateAfter + rollupMargin ago, so
// that usage queries and credit balances read a few stored aggregates
// instead of every event. A query takes a day's entry where its range and
// windows contain the whole UTC day, and hours elsewhere. It lives in one process's memory and is never shared: events that
// arrive late leave a watermark in the store (see LateMarks), and an entry
// computed before the subject's watermark (plus the margin) is ignored and
// recomputed. A meter whose definition changes gets new entries, because
// the definition is part of the key. UNIQUE_COUNT meters are not cached:
// their hourly values do not add up.
//
// A nil *Rollups caches nothing. Rollups is safe for concurrent use.
type Rollups struct {
	mu    sync.Mutex
	hours map[rollupKey]*hourRollup
	max   int

	hits, misses atomic.Int64
}

type rollupKey struct {
	meter   [sha256.Size]byte // meterFingerprint
	subject string
	hour    int64 // the first hour: Unix seconds / 3600
	day     bool  // 24 hours from a UTC midnight, else one hour
}

// hourRollup is the aggregate of one subject's hour (or day) for one
// meter: a group per distinct combination of the meter's group-by values.
// Immutable once cached.
type hourRollup struct {
	computed time.Time // the clock before the scan that built it
	groups   []*group  // vals: one per meter group-by key; empty when no usage
}

// hourFill builds an hourRollup during a scan.
type hourFill struct {
	key    rollupKey
	groups map[string]*group
	list   []*group
}

// NewRollups returns a cache of at most maxHours entries (0: the default).
// An entry takes about 170 bytes plus 370 per distinct group
// (BenchmarkRollupEntryBytes).
func NewRollups(maxHours int) *Rollups {
	if maxHours <= 0 {
		maxHours = DefaultRollupHours
	}
	return &Rollups{hours: map[rollupKey]*hourRollup{}, max: maxHours}
}

// RollupStats are a cache's counters.
type RollupStats struct {
	Hits, Misses int64 // hours read from the cache; hours computed from events
	Entries      int   // days and hours held
}

// Stats returns the cache's counters.
func (r *Rollups) Stats() RollupStats {
	if r == nil {
		return RollupStats{}
	}
	r.mu.Lock()
	n := len(r.hours)
	r.mu.Unlock()
	return RollupStats{Hits: r.hits.Load(), Misses: r.misses.Load(), Entries: n}
}

// View returns a UsageView at time now on store, using r (which may be nil).
func (r *Rollups) View(store odometer.EventStore, now time.Time) *UsageView {
	return &UsageView{r: r, store: store, now: now}
}

// UsageView answers usage queries at one moment. It reads each subject's
// late watermark once, so it is meant for one request.
type UsageView struct {
	r     *Rollups
	store odometer.EventStore
	now   time.Time
	marks map[lateKey]time.Time
}

// Query runs q, exactly as QueryUsage does, reading whole hours from the
// cache where it can.
func (v *UsageView) Query(ctx context.Context, m *odometer.CompiledMeter, q odometer.UsageQuery) (*odometer.UsageResult, error) {
	if err := q.Validate(m); err != nil {
		return nil, err
	}
	subjects := slices.Clone(q.Subjects)
	slices.Sort(subjects)
	subjects = slices.Compact(subjects)
	a := newUsageAgg(m, &q, v.now)
	var err error
	served := false
	if rs, ok := v.store.(odometer.RollupStore); ok && Rollable(m.Meter) && q.WindowSize != odometer.Minute {
		served, err = queryRollups(ctx, rs, a, subjects)
	}
	if served || err != nil {
		// answered from the store's rollup
	} else if h0, h1, ok := v.cacheable(a, subjects); ok {
		for _, s := range subjects {
			if err = v.querySubject(ctx, a, s, h0, h1); err != nil {
				break
			}
		}
	} else {
		err = a.scan(ctx, v.store, subjects, a.from, a.to)
	}
	if err != nil {
		return nil, fmt.Errorf("query meter %q: %w", m.Slug, err)
	}
	return a.result(), nil
}

// cacheable returns the hours [h0, h1) that the cache may serve for the
// query: whole UTC hours in its range that ended by now − LateAfter −
// rollupMargin.
func (v *UsageView) cacheable(a *usageAgg, subjects []string) (h0, h1 time.Time, ok bool) {
	if v.r == nil || len(subjects) == 0 || a.from.IsZero() ||
		a.m.Aggregation == odometer.UniqueCount || a.q.WindowSize == odometer.Minute {
		return h0, h1, false
	}
	h0 = a.from.Truncate(time.Hour)
	if h0.Before(a.from) {
		h0 = h0.Add(time.Hour)
	}
	h1 = minTime(a.to, v.now.Add(-odometer.LateAfter-rollupMargin)).Truncate(time.Hour)
	return h0, h1, h0.Before(h1)
}

// cachedSpan is a UTC day or hour the query may take from the cache: one
// wholly inside the window [ws, we).
type cachedSpan struct {
	start, end time.Time
	ws, we     time.Time
}

// hours returns the span's length in hours.
func (s *cachedSpan) hours() int64 { return int64(s.end.Sub(s.start) / time.Hour) }

// key returns the span's cache key.
func (s *cachedSpan) key(fp [sha256.Size]byte, subject string) rollupKey {
	return rollupKey{fp, subject, hourIndex(s.start), s.hours() == 24}
}

// querySubject aggregates one subject's events: whole days and hours in
// [h0, h1) from the cache where valid, the rest from the store, caching the
// days and hours it had to read.
func (v *UsageView) querySubject(ctx context.Context, a *usageAgg, subject string, h0, h1 time.Time) error {
	mark, err := v.watermark(ctx, a.m, subject)
	if err != nil {
		return err
	}
	fp := meterFingerprint(a.m.Meter)

	// Scan the stretches between valid cached spans; the cacheable spans
	// among them are filled on the way.
	subjects := []string{subject}
	a.fill = map[int64]*hourFill{}
	defer func() { a.fill = nil }()
	var fills []*hourFill
	var hits, misses int64
	cur := a.from
	for s := range a.spans(h0, h1) {
		k := s.key(fp, subject)
		v.r.mu.Lock()
		e := v.r.hours[k]
		v.r.mu.Unlock()
		if e != nil && !mark.IsZero() && !mark.Before(e.computed.Add(-rollupMargin)) {
			e = nil // computed before the subject's last late event
		}
		if e == nil {
			f := &hourFill{key: k}
			for h := range s.hours() {
				a.fill[f.key.hour+h] = f
			}
			fills = append(fills, f)
			misses += s.hours()
			continue
		}
		if cur.Before(s.start) {
			if err := a.scan(ctx, v.store, subjects, cur, s.start); err != nil {
				return err
			}
		}
		cur = s.end
		for _, g := range e.groups {
			if err := a.merge(subject, s.ws, s.we, g); err != nil {
				return err
			}
		}
		hits += s.hours()
	}
	if cur.Before(a.to) {
		if err := a.scan(ctx, v.store, subjects, cur, a.to); err != nil {
			return err
		}
	}
	v.r.hits.Add(hits)
	v.r.misses.Add(misses)
	v.r.put(v.now, fills)
	return nil
}

// spans lists the UTC days and hours in [h0, h1) that lie wholly inside one
// of the query's windows, in time order: a day wherever one fits, else
// hours. Hours that straddle two windows (in zones whose offset is not a
// whole number of hours) are left out, to be read from events.
func (a *usageAgg) spans(h0, h1 time.Time) iter.Seq[cachedSpan] {
	return func(yield func(cachedSpan) bool) {
		for h := h0; h.Before(h1); {
			ws, we := time.Time{}, h1
			if a.q.WindowSize != "" {
				ws, we = a.q.WindowSize.Window(h, a.loc)
				if ws.After(h) || we.Before(h.Add(time.Hour)) {
					h = h.Add(time.Hour)
					continue
				}
			}
			for end := minTime(we.Truncate(time.Hour), h1); h.Before(end); {
				size := time.Hour
				if hourIndex(h)%24 == 0 && !h.Add(24*time.Hour).After(end) {
					size = 24 * time.Hour
				}
				if !yield(cachedSpan{start: h, end: h.Add(size), ws: ws, we: we}) {
					return
				}
				h = h.Add(size)
			}
		}
	}
}

// watermark returns the subject's late watermark for the meter's event
// type, read once per view.
func (v *UsageView) watermark(ctx context.Context, m *odometer.CompiledMeter, subject string) (time.Time, error) {
	k := lateKey{m.Namespace, m.EventType, subject}
	if t, ok := v.marks[k]; ok {
		return t, nil
	}
	t, err := v.store.LateWatermark(ctx, m.Namespace, m.EventType, subject)
	if err != nil {
		return time.Time{}, fmt.Errorf("read late watermark of subject %q: %w", subject, err)
	}
	if v.marks == nil {
		v.marks = map[lateKey]time.Time{}
	}
	v.marks[k] = t
	return t, nil
}

// put caches filled spans, making room by dropping arbitrary entries.
func (r *Rollups) put(computed time.Time, fills []*hourFill) {
	if len(fills) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.hours)+len(fills) > r.max {
		// Drop an eighth at a time, so that eviction is rare. Go's map
		// order makes the choice arbitrary, which is good enough.
		target := max(0, r.max-r.max/8-len(fills))
		for k := range r.hours {
			if len(r.hours) <= target {
				break
			}
			delete(r.hours, k)
		}
	}
	for _, f := range fills[:min(len(fills), r.max)] {
		r.hours[f.key] = &hourRollup{computed: computed, groups: f.list}
	}
}

// add aggregates an event into the hour's group of its group-by values.
// key is a reused buffer; add returns it.
func (f *hourFill) add(m *odometer.CompiledMeter, key []byte, val odometer.Decimal, e *odometer.ScannedEvent) []byte {
	key = key[:0]
	for _, k := range m.GroupKeys() {
		key = append(key, 0)
		n := len(key)
		var ok bool
		if key, ok = groupPath(m, k).AppendText(append(key, 1), e.Data); !ok {
			key = key[:n]
		}
	}
	g := f.groups[string(key)]
	if g == nil {
		if f.groups == nil {
			f.groups = map[string]*group{} // most hours of most subjects have no events
		}
		g = &group{vals: make([]*string, len(m.GroupKeys()))}
		for i, k := range m.GroupKeys() {
			if v, ok := groupPath(m, k).Text(e.Data); ok {
				g.vals[i] = &v
			}
		}
		f.groups[string(key)] = g
		f.list = append(f.list, g)
	}
	g.add(m.Aggregation, val, "", e)
	return key
}

// hourIndex numbers UTC hours: Unix seconds / 3600, rounded down.
func hourIndex(t time.Time) int64 {
	s := t.Unix()
	h := s / 3600
	if s%3600 < 0 {
		h--
	}
	return h
}

// meterFingerprint identifies everything about a meter that decides which
// events it counts and how: a meter whose definition changes reads none of
// the old definition's rollups.
func meterFingerprint(m *odometer.Meter) [sha256.Size]byte {
	var b []byte
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	str(m.Namespace)
	str(m.EventType)
	str(string(m.Aggregation))
	str(m.ValueProperty)
	if m.EventFrom != nil {
		str(m.EventFrom.UTC().Format(time.RFC3339Nano))
	} else {
		str("")
	}
	keys := sortedKeys(m.GroupBy)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		str(k)
		str(m.GroupBy[k])
	}
	keys = sortedKeys(m.Filters)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		str(k)
		vs := slices.Clone(m.Filters[k])
		slices.Sort(vs)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			str(v)
		}
	}
	return sha256.Sum256(b)
}

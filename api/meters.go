package api

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/usage"
)

// meterFields are the fields of OpenMeter's MeterCreate plus Odometer's
// filters. Times are strings so that a bad one is reported by field name.
type meterFields struct {
	Slug          string          `json:"slug"`
	Name          string          `json:"name"`
	Description   string          `json:"description"`
	Metadata      json.RawMessage `json:"metadata"`
	Aggregation   string          `json:"aggregation"`
	EventType     string          `json:"eventType"`
	EventFrom     *string         `json:"eventFrom"`
	ValueProperty string          `json:"valueProperty"`
	GroupBy       json.RawMessage `json:"groupBy"`
	Filters       json.RawMessage `json:"filters"`

	// Read-only fields of Meter, accepted and ignored so that a meter
	// fetched from the API can be sent back.
	ID          json.RawMessage `json:"id"`
	CreatedAt   json.RawMessage `json:"createdAt"`
	UpdatedAt   json.RawMessage `json:"updatedAt"`
	DeletedAt   json.RawMessage `json:"deletedAt"`
	Annotations json.RawMessage `json:"annotations"`
}

// parsed holds the members of meterFields that need decoding beyond
// encoding/json.
type parsed struct {
	metadata, groupBy map[string]string
	filters           map[string][]string
	filtersSet        bool // false when filters was absent; null clears it
	eventFrom         *time.Time
}

// parse decodes the object members and eventFrom, naming bad entries as
// "groupBy.key"; problems are appended to fields.
func (f *meterFields) parse(fields *[]odometer.FieldError) parsed {
	p := parsed{
		metadata:   decodeMap[string](f.Metadata, "metadata", "a string", fields),
		groupBy:    decodeMap[string](f.GroupBy, "groupBy", "a JSONPath string", fields),
		filters:    decodeMap[[]string](f.Filters, "filters", "an array of strings", fields),
		filtersSet: len(f.Filters) > 0,
	}
	if f.EventFrom != nil {
		if t, err := parseTime(*f.EventFrom); err != nil {
			*fields = append(*fields, odometer.FieldError{Index: -1, Field: "eventFrom", Reason: err.Error()})
		} else {
			p.eventFrom = &t
		}
	}
	return p
}

// validate runs m.Validate and returns every problem found, fields
// (found while decoding) first, as one error.
func validate(m *odometer.Meter, fields []odometer.FieldError) error {
	if err := m.Validate(); err != nil {
		if odometer.ErrorCode(err) != odometer.EINVALID {
			return err
		}
		fields = append(fields, odometer.ErrorFields(err)...)
	}
	return fieldsError("invalid meter", fields)
}

// createMeter handles POST /api/v1/meters.
func (h *handler) createMeter(w http.ResponseWriter, r *http.Request) error {
	ns := namespace(r)
	var in meterFields
	if err := h.readJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	p := in.parse(&fields)
	now := h.clock()
	m := &odometer.Meter{
		ID:            odometer.NewID(now),
		Namespace:     ns,
		Slug:          in.Slug,
		Name:          in.Name,
		Description:   in.Description,
		Metadata:      p.metadata,
		Aggregation:   odometer.Aggregation(in.Aggregation),
		EventType:     in.EventType,
		EventFrom:     p.eventFrom,
		ValueProperty: in.ValueProperty,
		GroupBy:       p.groupBy,
		Filters:       p.filters,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	if err := validate(m, fields); err != nil {
		return err
	}
	if err := h.store.CreateMeter(r.Context(), m); err != nil {
		return fmt.Errorf("create meter %q: %w", m.Slug, err)
	}
	h.meters.invalidate(ns)
	h.maintainer.Changed(r.Context(), ns)
	w.Header().Set("Location", "/api/v1/meters/"+url.PathEscape(m.ID))
	return writeJSON(w, http.StatusCreated, m)
}

// listMeters handles GET /api/v1/meters. Without page or pageSize it
// returns every meter; orderBy defaults to key (the slug), order to ASC.
func (h *handler) listMeters(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"page", "pageSize", "order", "orderBy", "includeDeleted"})
	paged := p.values.Has("page") || p.values.Has("pageSize")
	page := p.int("page", 1, 1, 1<<30)
	pageSize := p.int("pageSize", 100, 1, 1000)
	orderBy := p.one("orderBy")
	less, ok := meterOrders[cmp.Or(orderBy, "key")]
	if !ok {
		p.bad("orderBy", "must be key, name, aggregation, createdAt or updatedAt; got %q", orderBy)
	}
	order := strings.ToUpper(p.one("order"))
	if order != "" && order != "ASC" && order != "DESC" {
		p.bad("order", "must be ASC or DESC; got %q", p.values.Get("order"))
	}
	switch v := p.one("includeDeleted"); v {
	case "", "false":
	case "true":
		p.bad("includeDeleted", "listing deleted meters is not supported by Odometer")
	default:
		p.bad("includeDeleted", "must be true or false; got %q", v)
	}
	if err := p.err(); err != nil {
		return err
	}
	meters, err := h.store.ListMeters(r.Context(), namespace(r))
	if err != nil {
		return fmt.Errorf("list meters: %w", err)
	}
	slices.SortStableFunc(meters, func(a, b *odometer.Meter) int {
		c := less(a, b)
		if c == 0 {
			c = cmp.Compare(a.Slug, b.Slug)
		}
		if order == "DESC" {
			return -c
		}
		return c
	})
	if paged {
		start := min((page-1)*pageSize, len(meters))
		meters = meters[start:min(start+pageSize, len(meters))]
	}
	if meters == nil {
		meters = []*odometer.Meter{}
	}
	return writeJSON(w, http.StatusOK, meters)
}

// meterOrders are the orderBy values of OpenMeter's listMeters.
var meterOrders = map[string]func(a, b *odometer.Meter) int{
	"key":         func(a, b *odometer.Meter) int { return cmp.Compare(a.Slug, b.Slug) },
	"name":        func(a, b *odometer.Meter) int { return cmp.Compare(a.Name, b.Name) },
	"aggregation": func(a, b *odometer.Meter) int { return cmp.Compare(a.Aggregation, b.Aggregation) },
	"createdAt":   func(a, b *odometer.Meter) int { return a.CreatedAt.Compare(b.CreatedAt) },
	"updatedAt":   func(a, b *odometer.Meter) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
}

// getMeter handles GET /api/v1/meters/{meterIdOrSlug}.
func (h *handler) getMeter(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	m, err := h.findMeter(r)
	if err != nil {
		return err
	}
	// An Odometer extension: how the meter's usage is read
	// (docs/rollups.md). OpenMeter's clients ignore the member.
	st, err := usage.MeterStatus(r.Context(), h.store, m)
	if err != nil {
		return fmt.Errorf("rollup of meter %q: %w", m.Slug, err)
	}
	return writeJSON(w, http.StatusOK, struct {
		*odometer.Meter
		UsageRollup usage.Status `json:"usageRollup"`
	}{m, st})
}

// findMeter loads the meter named by the request's path.
func (h *handler) findMeter(r *http.Request) (*odometer.Meter, error) {
	idOrSlug := r.PathValue("meterIdOrSlug")
	m, err := h.store.FindMeter(r.Context(), namespace(r), idOrSlug)
	if err != nil {
		return nil, fmt.Errorf("find meter %q: %w", idOrSlug, err)
	}
	return m, nil
}

// updateMeter handles PUT /api/v1/meters/{meterIdOrSlug}. As in OpenMeter,
// the body replaces name, description, metadata and groupBy (an absent
// member clears it; name defaults to the slug). filters, an Odometer
// extension that OpenMeter's SDKs do not know, is kept when absent and
// cleared by null. slug, aggregation, eventType, valueProperty and eventFrom
// are immutable: sending them is allowed only with their current values.
func (h *handler) updateMeter(w http.ResponseWriter, r *http.Request) error {
	ns := namespace(r)
	cur, err := h.findMeter(r)
	if err != nil {
		return err
	}
	var in struct {
		meterFields
		// Immutable fields: pointers, to tell absent from sent.
		Slug          *string `json:"slug"`
		Aggregation   *string `json:"aggregation"`
		EventType     *string `json:"eventType"`
		ValueProperty *string `json:"valueProperty"`
	}
	if err := h.readJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	p := in.parse(&fields)
	immutable := func(field string, sent *string, current string) {
		if sent != nil && *sent != current {
			fields = append(fields, odometer.FieldError{Index: -1, Field: field,
				Reason: fmt.Sprintf("cannot be changed (it is %q); create a new meter instead", current)})
		}
	}
	immutable("slug", in.Slug, cur.Slug)
	immutable("aggregation", in.Aggregation, string(cur.Aggregation))
	immutable("eventType", in.EventType, cur.EventType)
	if cur.Aggregation != odometer.Count { // COUNT meters ignore valueProperty
		immutable("valueProperty", in.ValueProperty, cur.ValueProperty)
	}
	if p.eventFrom != nil && (cur.EventFrom == nil || !p.eventFrom.Equal(*cur.EventFrom)) {
		fields = append(fields, odometer.FieldError{Index: -1, Field: "eventFrom", Reason: "cannot be changed; create a new meter instead"})
	}
	m := *cur
	m.Namespace = ns
	m.Name = in.Name
	m.Description = in.Description
	m.Metadata = p.metadata
	m.GroupBy = p.groupBy
	if p.filtersSet {
		m.Filters = p.filters
	}
	m.UpdatedAt = h.clock()
	if err := validate(&m, fields); err != nil {
		return err
	}
	if err := h.credits.CheckMeterChange(r.Context(), ns, cur, m.GroupBy, false); err != nil {
		return err
	}
	if err := export.CheckMeterChange(r.Context(), h.store, ns, cur, m.GroupBy, false); err != nil {
		return err
	}
	if err := h.store.UpdateMeter(r.Context(), &m); err != nil {
		return fmt.Errorf("update meter %q: %w", m.Slug, err)
	}
	h.meters.invalidate(ns)
	h.maintainer.Changed(r.Context(), ns)
	return writeJSON(w, http.StatusOK, &m)
}

// deleteMeter handles DELETE /api/v1/meters/{meterIdOrSlug}. Events stay;
// the slug may be reused.
func (h *handler) deleteMeter(w http.ResponseWriter, r *http.Request) error {
	ns := namespace(r)
	m, err := h.findMeter(r)
	if err != nil {
		return err
	}
	if err := h.credits.CheckMeterChange(r.Context(), ns, m, nil, true); err != nil {
		return err
	}
	if err := export.CheckMeterChange(r.Context(), h.store, ns, m, nil, true); err != nil {
		return err
	}
	if err := h.store.DeleteMeter(r.Context(), ns, m.ID, h.clock()); err != nil {
		return fmt.Errorf("delete meter %q: %w", m.Slug, err)
	}
	h.meters.invalidate(ns)
	h.maintainer.Changed(r.Context(), ns)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// meterCacheTTL bounds how stale the compiled meters that ingestion checks
// events against may be when another node changed them.
const meterCacheTTL = time.Second

// meterCache keeps each namespace's compiled meters for ingestion. Changes
// made through this handler invalidate it at once; others show within
// meterCacheTTL.
type meterCache struct {
	store odometer.MeterStore
	log   *slog.Logger

	mu      sync.Mutex
	entries map[string]*meterCacheEntry
}

type meterCacheEntry struct {
	meters []*odometer.CompiledMeter
	loaded time.Time // zero: must reload
	gen    uint64    // bumped by invalidate
}

func newMeterCache(store odometer.MeterStore, log *slog.Logger) *meterCache {
	return &meterCache{store: store, log: log, entries: map[string]*meterCacheEntry{}}
}

// get returns the namespace's compiled meters, loading them when the cached
// ones are missing, invalidated or older than meterCacheTTL.
func (c *meterCache) get(ctx context.Context, ns string) ([]*odometer.CompiledMeter, error) {
	c.mu.Lock()
	e := c.entries[ns]
	if e == nil {
		e = &meterCacheEntry{}
		c.entries[ns] = e
	}
	if !e.loaded.IsZero() && time.Since(e.loaded) < meterCacheTTL {
		meters := e.meters
		c.mu.Unlock()
		return meters, nil
	}
	gen := e.gen
	c.mu.Unlock()

	start := time.Now()
	list, err := c.store.ListMeters(ctx, ns)
	if err != nil {
		return nil, fmt.Errorf("load meters of namespace %q: %w", ns, err)
	}
	meters := make([]*odometer.CompiledMeter, 0, len(list))
	for _, m := range list {
		cm, err := m.Compile()
		if err != nil {
			// A stored meter that no longer validates cannot count events;
			// checking events against it would refuse them for nothing.
			c.log.Warn("api: skipping invalid stored meter", "namespace", ns, "meter", m.Slug, "err", err)
			continue
		}
		meters = append(meters, cm)
	}

	c.mu.Lock()
	if e.gen == gen { // not invalidated while loading
		e.meters, e.loaded = meters, start
	}
	c.mu.Unlock()
	return meters, nil
}

// invalidate makes the next get reload the namespace's meters.
func (c *meterCache) invalidate(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[ns]; e != nil {
		e.gen++
		e.loaded = time.Time{}
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
)

// Event ingestion media types.
const (
	mediaCloudEvent      = "application/cloudevents+json"       // one event
	mediaCloudEventBatch = "application/cloudevents-batch+json" // an array of events
	mediaJSON            = "application/json"                   // either
)

// ingestResponse answers POST /api/v1/events: totals and, in request order,
// what happened to each event.
type ingestResponse struct {
	Accepted  int           `json:"accepted"`
	Duplicate int           `json:"duplicate"`
	Events    []eventStatus `json:"events"`
}

type eventStatus struct {
	ID     string           `json:"id"`
	Source string           `json:"source"`
	Status odometer.Outcome `json:"status"` // "accepted" or "duplicate"
}

// ingestEvents handles POST /api/v1/events. A batch is all or nothing: it is
// decoded, validated and checked against the namespace's meters before
// anything is committed.
func (h *handler) ingestEvents(w http.ResponseWriter, r *http.Request) error {
	ns := namespace(r)
	mt, err := mediaType(r)
	if err != nil {
		return err
	}
	var shape byte // '{' one event, '[' a batch, 0 either
	switch mt {
	case mediaCloudEvent:
		shape = '{'
	case mediaCloudEventBatch:
		shape = '['
	case mediaJSON:
	default:
		return errUnsupportedMediaType("Content-Type must be %s, %s or %s; got %q", mediaCloudEvent, mediaCloudEventBatch, mediaJSON, r.Header.Get("Content-Type"))
	}
	now := h.clock()
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); shape != 0 && len(trimmed) > 0 && trimmed[0] != shape {
		h.metrics.countRejected(countEvents(body))
		if shape == '{' {
			return odometer.FieldErrorf("body", "%s carries one event (a JSON object); send a batch as %s", mediaCloudEvent, mediaCloudEventBatch)
		}
		return odometer.FieldErrorf("body", "%s carries a JSON array of events; send one event as %s", mediaCloudEventBatch, mediaCloudEvent)
	}
	events, err := odometer.DecodeEvents(body, ns, now, h.limits.IngestLimits)
	if err != nil {
		h.metrics.countRejected(countEvents(body))
		h.recordRejected(ns, now, nil, body, err)
		return err
	}
	meters, err := h.meters.get(r.Context(), ns)
	if err != nil {
		h.metrics.countRejected(len(events))
		return err
	}
	if err := odometer.CheckEvents(events, meters); err != nil {
		h.metrics.countRejected(len(events))
		h.recordRejected(ns, now, events, nil, err)
		return err
	}
	outcomes, err := h.ingester.Append(r.Context(), events)
	if err != nil {
		h.metrics.countRejected(len(events))
		h.recordRejected(ns, now, events, nil, err) // a store that refuses an event (EINVALID)
		return fmt.Errorf("ingest %d events: %w", len(events), err)
	}
	if len(outcomes) != len(events) {
		return fmt.Errorf("ingest %d events: ingester returned %d outcomes", len(events), len(outcomes))
	}
	accepted, duplicate := h.metrics.countOutcomes(outcomes)
	if duplicate > 0 {
		h.recordDuplicates(ns, now, events, outcomes)
	}
	if preferMinimal(r) {
		w.Header().Set("Preference-Applied", "return=minimal")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	res := ingestResponse{Accepted: accepted, Duplicate: duplicate, Events: make([]eventStatus, len(events))}
	for i, e := range events {
		res.Events[i] = eventStatus{ID: e.ID, Source: e.Source, Status: outcomes[i]}
	}
	return writeJSON(w, http.StatusOK, res)
}

// countEvents returns how many events a refused body held, for the rejected
// counter: 1 for an object, the length of an array, 0 if it is not JSON.
func countEvents(body []byte) int {
	body = bytes.TrimLeft(body, " \t\r\n")
	if len(body) == 0 {
		return 0
	}
	switch body[0] {
	case '{':
		return 1
	case '[':
		var raws []json.RawMessage
		if json.Unmarshal(body, &raws) == nil {
			return len(raws)
		}
	}
	return 0
}

// preferMinimal reports whether the request asks for no response body
// (RFC 7240 "Prefer: return=minimal"), which is what OpenMeter answers.
func preferMinimal(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for pref := range strings.SplitSeq(v, ",") {
			pref, _, _ = strings.Cut(pref, ";")
			k, val, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if strings.EqualFold(strings.TrimSpace(k), "return") && strings.EqualFold(strings.Trim(strings.TrimSpace(val), `"`), "minimal") {
				return true
			}
		}
	}
	return false
}

// ingestedEvent is OpenMeter's IngestedEvent.
type ingestedEvent struct {
	Event      odometer.Event `json:"event"`
	IngestedAt time.Time      `json:"ingestedAt"`
	StoredAt   time.Time      `json:"storedAt"`
}

// Event listing limits (OpenMeter's).
const (
	defaultListLimit   = 100
	maxListLimit       = 1000
	defaultListHorizon = 72 * time.Hour
)

// listEvents handles GET /api/v1/events: newest first, ranges half-open.
func (h *handler) listEvents(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"from", "to", "ingestedAtFrom", "ingestedAtTo", "id", "subject", "limit", "clientId"}, "customerId")
	f := odometer.EventFilter{
		Namespace:       namespace(r),
		From:            p.time("from"),
		To:              p.time("to"),
		IngestedFrom:    p.time("ingestedAtFrom"),
		IngestedTo:      p.time("ingestedAtTo"),
		IDContains:      p.one("id"),
		SubjectContains: p.one("subject"),
		Limit:           p.int("limit", defaultListLimit, 1, maxListLimit),
	}
	p.one("clientId") // accepted for compatibility; it tracks progress in OpenMeter
	p.fields = checkRange(p.fields, "from", f.From, "to", f.To)
	p.fields = checkRange(p.fields, "ingestedAtFrom", f.IngestedFrom, "ingestedAtTo", f.IngestedTo)
	if err := p.err(); err != nil {
		return err
	}
	if f.From.IsZero() && f.IngestedFrom.IsZero() {
		f.From = h.clock().Add(-defaultListHorizon)
	}
	events, err := h.store.ListEvents(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list events: %w", err)
	}
	return writeJSON(w, http.StatusOK, ingestedEvents(events))
}

// ingestedEvents renders stored events as GET /api/v1/events answers them.
func ingestedEvents(events []odometer.Event) []ingestedEvent {
	out := make([]ingestedEvent, len(events))
	for i, e := range events {
		e.Time = e.Time.UTC()
		e.IngestedAt = e.IngestedAt.UTC()
		out[i] = ingestedEvent{Event: e, IngestedAt: e.IngestedAt, StoredAt: e.IngestedAt}
	}
	return out
}

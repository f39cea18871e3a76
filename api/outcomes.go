package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/odometerhq/odometer"
)

// DefaultOutcomeLogSize is how many recent non-accepted submissions a
// handler remembers by default (Config.OutcomeLogSize).
const DefaultOutcomeLogSize = 10000

// What one entry of the outcome log keeps at most, so that an entry costs
// a bounded amount of memory (about 3 KiB at worst, 200 bytes for a
// typical rejection) whatever the request held. Event data is never kept.
const (
	maxOutcomeText    = 256 // bytes of an id or source (the ingestion limit)
	maxOutcomeField   = 64  // bytes of a reason's field name
	maxOutcomeReason  = 256 // bytes of a reason
	maxOutcomeReasons = 8   // reasons per entry; the last one says how many more
)

// outcomeLog remembers the latest submissions that were not accepted —
// events of rejected requests and duplicates — in a ring of fixed size, so
// that GET /api/v1/events/outcomes can say what happened to an event that
// is not in the store. It is per node and in memory only (docs/ingestion.md
// says why). A nil *outcomeLog records nothing. It is safe for concurrent
// use.
type outcomeLog struct {
	size int

	mu      sync.RWMutex
	entries []outcomeEntry // the ring: grows to size, then wraps
	next    int            // where the next entry goes; the oldest once full
}

// outcomeEntry is one non-accepted event of a request.
type outcomeEntry struct {
	namespace        string
	source, id       string
	sourceCut, idCut bool   // truncated to maxOutcomeText
	outcome          string // outcomeRejected or outcomeDuplicate (metrics.go); accepted events are in the store
	receivedAt       time.Time
	reasons          []outcomeReason
}

// outcomeReason is why an event was rejected: a field and the problem.
type outcomeReason struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// newOutcomeLog returns a log of the last size entries; nil (none kept)
// when size is not positive.
func newOutcomeLog(size int) *outcomeLog {
	if size <= 0 {
		return nil
	}
	return &outcomeLog{size: size}
}

// add records entries, oldest first. Of a batch larger than the ring, only
// its last size entries stay.
func (l *outcomeLog) add(entries []outcomeEntry) {
	if l == nil || len(entries) == 0 {
		return
	}
	if len(entries) > l.size {
		entries = entries[len(entries)-l.size:]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range entries {
		if len(l.entries) < l.size {
			l.entries = append(l.entries, e)
			l.next = len(l.entries) % l.size
			continue
		}
		l.entries[l.next] = e
		l.next = (l.next + 1) % l.size
	}
}

// find returns the entries of namespace ns for events with this exact id
// (and source, unless it is ""), newest first.
func (l *outcomeLog) find(ns, id, source string) []outcomeEntry {
	if l == nil {
		return nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []outcomeEntry
	n := len(l.entries)
	for k := 1; k <= n; k++ {
		e := &l.entries[(l.next-k+2*n)%n]
		if e.namespace == ns && cutEqual(e.id, e.idCut, id) && (source == "" || cutEqual(e.source, e.sourceCut, source)) {
			out = append(out, *e)
		}
	}
	return out
}

// cutEqual reports whether stored, which is truncated to maxOutcomeText
// if cut, keeps want.
func cutEqual(stored string, cut bool, want string) bool {
	if !cut {
		return stored == want
	}
	return len(want) > maxOutcomeText && want[:cutLen(want, maxOutcomeText)] == stored
}

// truncate returns s cut to at most n bytes (see cutLen). The result is a
// copy: an entry never keeps a request's memory alive.
func truncate(s string, n int) string {
	return strings.Clone(s[:cutLen(s, n)])
}

// cutLen returns the length of s cut to at most n bytes, at a UTF-8
// boundary when there is one among the last bytes kept.
func cutLen(s string, n int) int {
	if len(s) <= n {
		return len(s)
	}
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return n
}

// newOutcomeEntry returns the entry of one event, its strings copied and
// bounded.
func newOutcomeEntry(ns, source, id, outcome string, at time.Time, reasons []outcomeReason) outcomeEntry {
	return outcomeEntry{
		namespace:  ns,
		source:     truncate(source, maxOutcomeText),
		id:         truncate(id, maxOutcomeText),
		sourceCut:  len(source) > maxOutcomeText,
		idCut:      len(id) > maxOutcomeText,
		outcome:    outcome,
		receivedAt: at,
		reasons:    reasons,
	}
}

// recordDuplicates records the events answered Duplicate. The accepted
// path never gets here: the handler calls it only when some were.
func (h *handler) recordDuplicates(ns string, at time.Time, events []odometer.Event, outcomes []odometer.Outcome) {
	if h.outcomes == nil {
		return
	}
	var entries []outcomeEntry
	for i, o := range outcomes {
		if o == odometer.Duplicate {
			entries = append(entries, newOutcomeEntry(ns, events[i].Source, events[i].ID, outcomeDuplicate, at, nil))
		}
	}
	h.outcomes.add(entries)
}

// recordRejected records every event that has an id of a request refused
// with per-event problems (err's field errors with an index): the bad
// events with their problems, the others with the reason that the request
// was refused because of the bad ones. events are the decoded events; when
// decoding itself failed they are nil, and the ids and sources are read
// from body. A refusal of the whole body (malformed JSON, too many events)
// names no event and records nothing.
func (h *handler) recordRejected(ns string, at time.Time, events []odometer.Event, body []byte, err error) {
	if h.outcomes == nil || odometer.ErrorCode(err) != odometer.EINVALID {
		return
	}
	problems := map[int][]odometer.FieldError{}
	for _, f := range odometer.ErrorFields(err) {
		if f.Index >= 0 {
			problems[f.Index] = append(problems[f.Index], f)
		}
	}
	if len(problems) == 0 {
		return
	}
	var ids []eventIdentity
	if events != nil {
		ids = make([]eventIdentity, len(events))
		for i, e := range events {
			ids[i] = eventIdentity{source: e.Source, id: e.ID}
		}
	} else {
		ids = bodyIdentities(body)
	}
	batch := []outcomeReason{{Field: "batch", Reason: batchReason(problems)}}
	var entries []outcomeEntry
	for i, ident := range ids {
		if ident.id == "" {
			continue // nothing to look it up by
		}
		reasons := batch
		if fs := problems[i]; len(fs) > 0 {
			reasons = make([]outcomeReason, 0, min(len(fs), maxOutcomeReasons))
			for j, f := range fs {
				if j == maxOutcomeReasons-1 && len(fs) > maxOutcomeReasons {
					reasons = append(reasons, outcomeReason{Field: "event", Reason: fmt.Sprintf("and %d more problems", len(fs)-j)})
					break
				}
				reasons = append(reasons, outcomeReason{Field: truncate(f.Field, maxOutcomeField), Reason: truncate(f.Reason, maxOutcomeReason)})
			}
		}
		entries = append(entries, newOutcomeEntry(ns, ident.source, ident.id, outcomeRejected, at, reasons))
	}
	h.outcomes.add(entries)
}

// batchReason is the reason of the valid events of a refused request:
// which events made it fail.
func batchReason(problems map[int][]odometer.FieldError) string {
	bad := make([]int, 0, len(problems))
	for i := range problems {
		bad = append(bad, i)
	}
	slices.Sort(bad)
	which := fmt.Sprintf("event %d is", bad[0])
	switch {
	case len(bad) == 2:
		which = fmt.Sprintf("events %d and %d are", bad[0], bad[1])
	case len(bad) > 2:
		which = fmt.Sprintf("events %d, %d and %d more are", bad[0], bad[1], len(bad)-2)
	}
	return "not stored: the request was refused because its " + which + " invalid (indexes from 0), and a request is stored all or nothing"
}

// eventIdentity is what a refused request's event is looked up by.
type eventIdentity struct{ source, id string }

// bodyIdentities returns the source and id of each event of a request
// body (a CloudEvent or an array of them) as the reference decoder reads
// them; "" for one that is not a string. nil if the body is not an object
// or an array of JSON values. It parses the body again, which only
// refused requests pay for.
func bodyIdentities(body []byte) []eventIdentity {
	body = bytes.TrimLeft(body, " \t\r\n")
	var raws []json.RawMessage
	switch {
	case len(body) == 0:
		return nil
	case body[0] == '{':
		raws = []json.RawMessage{body}
	case body[0] == '[':
		if json.Unmarshal(body, &raws) != nil {
			return nil
		}
	default:
		return nil
	}
	out := make([]eventIdentity, len(raws))
	for i, raw := range raws {
		var w struct {
			ID     json.RawMessage `json:"id"`
			Source json.RawMessage `json:"source"`
		}
		if json.Unmarshal(raw, &w) != nil {
			continue
		}
		// Each is left "" unless it is a JSON string.
		_ = json.Unmarshal(w.ID, &out[i].id)
		_ = json.Unmarshal(w.Source, &out[i].source)
	}
	return out
}

// outcomesResponse answers GET /api/v1/events/outcomes.
type outcomesResponse struct {
	ID string `json:"id"`
	// Stored are the stored events with this id, as GET /api/v1/events
	// renders them: each was accepted.
	Stored []ingestedEvent `json:"stored"`
	// Recent are this node's remembered non-accepted submissions of the
	// id, newest first.
	Recent []recentOutcome `json:"recent"`
}

type recentOutcome struct {
	Source     string          `json:"source"`
	ID         string          `json:"id"`
	Truncated  bool            `json:"truncated,omitempty"` // source or id cut to 256 bytes
	Outcome    string          `json:"outcome"`             // "rejected" or "duplicate"
	ReceivedAt time.Time       `json:"receivedAt"`
	Reasons    []outcomeReason `json:"reasons"`
}

// eventOutcomes handles GET /api/v1/events/outcomes: what became of the
// events with an id (and source): stored, or remembered by this node as
// rejected or duplicate.
func (h *handler) eventOutcomes(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"id", "source"})
	id, source := p.one("id"), p.one("source")
	if id == "" && len(p.values["id"]) <= 1 {
		p.bad("id", "required: the id of the event to look up")
	}
	if err := p.err(); err != nil {
		return err
	}
	ns := namespace(r)
	stored, err := h.storedEvents(r.Context(), ns, id, source)
	if err != nil {
		return err
	}
	res := outcomesResponse{ID: id, Stored: ingestedEvents(stored), Recent: []recentOutcome{}}
	for _, e := range h.outcomes.find(ns, id, source) {
		reasons := e.reasons
		if reasons == nil {
			reasons = []outcomeReason{}
		}
		res.Recent = append(res.Recent, recentOutcome{Source: e.source, ID: e.id, Truncated: e.sourceCut || e.idCut, Outcome: e.outcome,
			ReceivedAt: e.receivedAt, Reasons: reasons})
	}
	return writeJSON(w, http.StatusOK, res)
}

// storedEvents returns the stored events of namespace ns with exactly this
// id (and source, unless ""), newest first (ties by source). The store
// finds them by identity, without reading other events (LookupEvents).
func (h *handler) storedEvents(ctx context.Context, ns, id, source string) ([]odometer.Event, error) {
	events, err := h.store.LookupEvents(ctx, ns, id, source)
	if err != nil {
		return nil, fmt.Errorf("look up event %q: %w", id, err)
	}
	// LookupEvents orders by source; the answer lists the newest first.
	slices.SortStableFunc(events, func(a, b odometer.Event) int { return b.Time.Compare(a.Time) })
	return events, nil
}

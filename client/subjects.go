package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// SubjectQuery selects the subjects ListSubjects returns.
type SubjectQuery struct {
	Prefix string // only subjects that start with it (exactly: case-sensitive, no wildcards)
	After  string // only subjects that sort after it (byte order): a page's Next
	Limit  int    // at most this many (the server's default, 100, when 0; at most 1000)
}

// SubjectPage is one page of subjects, in byte order. Next, the last
// subject, is set when the page is full: pass it as the next query's
// After. The page after a full one may be empty.
type SubjectPage struct {
	Subjects []string `json:"subjects"`
	Next     string   `json:"next,omitempty"`
}

// ListSubjects returns a page of the subjects that the caller's namespace
// has stored events of (GET /api/v1/event-subjects). It needs a read key.
func (c *Client) ListSubjects(ctx context.Context, q SubjectQuery) (*SubjectPage, error) {
	v := url.Values{}
	if q.Prefix != "" {
		v.Set("prefix", q.Prefix)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var p SubjectPage
	if err := c.do(ctx, http.MethodGet, "/api/v1/event-subjects", v, "", nil, "application/json", &p); err != nil {
		return nil, fmt.Errorf("list subjects: %w", err)
	}
	return &p, nil
}

// Outcomes in a RecentOutcome.
const (
	OutcomeRejected  = "rejected"  // its request was refused: nothing of it was stored
	OutcomeDuplicate = "duplicate" // its identity was stored before; ignored
)

// EventReport says what became of the events with one id.
type EventReport struct {
	ID string `json:"id"`
	// Stored are the stored events with the id, newest first: each was
	// accepted.
	Stored []StoredEvent `json:"stored"`
	// Recent are the submissions of the id that were not accepted and
	// that the server node that answered remembers, newest first. The
	// memory is per node, in memory only and bounded (the latest 10,000
	// by default): an event may have been rejected without being here.
	Recent []RecentOutcome `json:"recent"`
}

// StoredEvent is an event as the server stores it.
type StoredEvent struct {
	Event      Event     `json:"event"`
	IngestedAt time.Time `json:"ingestedAt"` // when the server received it
}

// RecentOutcome is a submission of an event that was not accepted.
type RecentOutcome struct {
	Source     string    `json:"source"`
	ID         string    `json:"id"`
	Truncated  bool      `json:"truncated,omitempty"` // Source or ID is cut to 256 bytes
	Outcome    string    `json:"outcome"`             // OutcomeRejected or OutcomeDuplicate
	ReceivedAt time.Time `json:"receivedAt"`
	// Reasons say why it was rejected: its own problems, or, when it was
	// valid and another event made its request fail, one with Field
	// "batch" naming the invalid events. Empty for duplicates.
	Reasons []OutcomeReason `json:"reasons"`
}

// OutcomeReason is one problem of a rejected event.
type OutcomeReason struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// EventOutcomes says what became of the events with this id (and source,
// unless ""): stored, or remembered by the server as rejected (with the
// reasons) or duplicate (GET /api/v1/events/outcomes). It needs a read key.
func (c *Client) EventOutcomes(ctx context.Context, id, source string) (*EventReport, error) {
	v := url.Values{"id": {id}}
	if source != "" {
		v.Set("source", source)
	}
	var r EventReport
	if err := c.do(ctx, http.MethodGet, "/api/v1/events/outcomes", v, "", nil, "application/json", &r); err != nil {
		return nil, fmt.Errorf("event outcomes of %q: %w", id, err)
	}
	return &r, nil
}

package odometer

import (
	"sync"
	"time"
)

// LateAfter is how far an event's time may lie before its append for the
// event to count as on time. Later arrivals are late: each store records,
// per (namespace, event type, subject), when it last appended a late event
// (its late watermark), and the usage rollup cache (usage/cache.go) treats its
// cached hours of that subject as stale from then on. docs/meters.md has the
// reasoning.
const LateAfter = time.Hour

// lateMarkStep is how much a stored late watermark may lag the true one:
// a store skips rewriting a watermark it wrote less than lateMarkStep ago, so
// that a backfill writes each subject's watermark about once a minute rather
// than once per batch. rollupMargin includes it.
const lateMarkStep = time.Minute

// LateMark says that an event of (Namespace, Type, Subject) was appended
// late; At is the append's time, max(the event's IngestedAt, the store's
// clock).
type LateMark struct {
	Namespace, Type, Subject string
	At                       time.Time
}

type lateKey struct{ namespace, typ, subject string }

// LateMarks decides which late watermarks an append must write. Stores keep
// one and call Due before their commit and Written after it. It is safe for
// concurrent use.
type LateMarks struct {
	mu      sync.Mutex
	written map[lateKey]time.Time // marks committed by this process
}

// maxRememberedMarks bounds LateMarks' memory: when it holds more, it
// forgets them all, which only costs some rewrites.
const maxRememberedMarks = 100_000

// Due returns the marks to write for the events an append accepts
// (outcomes[i] == Accepted), at most one per (namespace, type, subject),
// leaving out those this process committed recently enough. now is the
// store's clock.
func (l *LateMarks) Due(events []Event, outcomes []Outcome, now time.Time) []LateMark {
	var due map[lateKey]time.Time
	for i := range events {
		e := &events[i]
		if outcomes[i] != Accepted {
			continue
		}
		at := now
		if e.IngestedAt.After(at) {
			at = e.IngestedAt
		}
		if !e.Time.Before(at.Add(-LateAfter)) {
			continue
		}
		if due == nil {
			due = map[lateKey]time.Time{}
		}
		k := lateKey{e.Namespace, e.Type, e.Subject}
		if at.After(due[k]) {
			due[k] = at
		}
	}
	if len(due) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	marks := make([]LateMark, 0, len(due))
	for k, at := range due {
		if w, ok := l.written[k]; ok && !w.Before(at.Add(-lateMarkStep)) {
			continue
		}
		marks = append(marks, LateMark{Namespace: k.namespace, Type: k.typ, Subject: k.subject, At: at.UTC()})
	}
	return marks
}

// Written records marks that were committed.
func (l *LateMarks) Written(marks []LateMark) {
	if len(marks) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written == nil || len(l.written) > maxRememberedMarks {
		l.written = map[lateKey]time.Time{}
	}
	for _, m := range marks {
		k := lateKey{m.Namespace, m.Type, m.Subject}
		if m.At.After(l.written[k]) {
			l.written[k] = m.At
		}
	}
}

package odometer

import (
	"slices"
	"testing"
	"time"
)

func TestLateMarksDue(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	e := func(subject string, age time.Duration, ingested time.Time) Event {
		return Event{Namespace: "ns", Type: "calls", Subject: subject, Time: ingested.Add(-age), IngestedAt: ingested}
	}
	subjects := func(ms []LateMark) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Subject+"@"+m.At.Format("15:04"))
		}
		slices.Sort(out)
		return out
	}
	var l LateMarks
	events := []Event{
		e("on-time", 50*time.Minute, now),
		e("late", 2*time.Hour, now.Add(-time.Minute)),         // at: the store's clock, later
		e("late", 3*time.Hour, now.Add(-2*time.Minute)),       // same key: one mark
		e("future", 2*time.Hour, now.Add(10*time.Minute)),     // at: its receive time, later
		e("dup", 5*time.Hour, now),                            // a duplicate: no mark
		e("queued", 30*time.Minute, now.Add(-31*time.Minute)), // received on time, stored late
	}
	out := []Outcome{Accepted, Accepted, Accepted, Accepted, Duplicate, Accepted}
	got := subjects(l.Due(events, out, now))
	want := []string{"future@12:10", "late@12:00", "queued@12:00"}
	if !slices.Equal(got, want) {
		t.Fatalf("Due = %v, want %v", got, want)
	}
	if got := l.Due(events[:1], out[:1], now); got != nil {
		t.Fatalf("Due(on time) = %v, want none", got)
	}

	// Once written, a mark is not rewritten until it lags by lateMarkStep.
	l.Written(l.Due(events, out, now))
	if got := l.Due(events, out, now.Add(lateMarkStep)); len(got) != 0 {
		t.Fatalf("Due one step later = %v, want none", subjects(got))
	}
	got = subjects(l.Due(events, out, now.Add(lateMarkStep+time.Second)))
	want = []string{"late@12:01", "queued@12:01"} // "future" is still ahead
	if !slices.Equal(got, want) {
		t.Fatalf("Due just over a step later = %v, want %v", got, want)
	}
}

package api

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/odometerhq/odometer"
)

func TestOutcomeLogRing(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 6, 10, 12, 0, 0, 0, time.UTC)
	entry := func(ns, id string, n int) outcomeEntry {
		return newOutcomeEntry(ns, "src", id, outcomeRejected, at.Add(time.Duration(n)*time.Second), nil)
	}
	// times returns the seconds of the entries find returns.
	times := func(l *outcomeLog, ns, id string) string {
		var s []string
		for _, e := range l.find(ns, id, "") {
			s = append(s, fmt.Sprint(e.receivedAt.Sub(at).Seconds()))
		}
		return strings.Join(s, ",")
	}
	l := newOutcomeLog(4)
	if got := times(l, "ns", "a"); got != "" {
		t.Fatalf("empty log finds %q", got)
	}
	l.add([]outcomeEntry{entry("ns", "a", 1), entry("ns", "b", 2), entry("other", "a", 3)})
	if got := times(l, "ns", "a"); got != "1" {
		t.Fatalf("before wrapping: %q", got)
	}
	l.add([]outcomeEntry{entry("ns", "a", 4), entry("ns", "a", 5)}) // wraps: 1 goes
	if got := times(l, "ns", "a"); got != "5,4" {
		t.Fatalf("after wrapping: %q", got)
	}
	l.add([]outcomeEntry{entry("ns", "a", 6), entry("ns", "a", 7)}) // b and other's a go
	if got := times(l, "ns", "a"); got != "7,6,5,4" {
		t.Fatalf("after 7: %q", got)
	}
	for i := 8; i < 20; i++ {
		l.add([]outcomeEntry{entry("ns", "a", i)})
		if got, want := times(l, "ns", "a"), fmt.Sprintf("%d,%d,%d,%d", i, i-1, i-2, i-3); got != want {
			t.Fatalf("after %d: %q, want %q", i, got, want)
		}
	}
	// A batch larger than the ring leaves its last entries, in order.
	var batch []outcomeEntry
	for i := 100; i < 110; i++ {
		batch = append(batch, entry("ns", "a", i))
	}
	l.add(batch)
	if got := times(l, "ns", "a"); got != "109,108,107,106" {
		t.Fatalf("after a large batch: %q", got)
	}
	if len(l.entries) != 4 {
		t.Fatalf("%d entries in a ring of 4", len(l.entries))
	}
	// Sources filter.
	l.add([]outcomeEntry{newOutcomeEntry("ns", "other-src", "a", outcomeDuplicate, at, nil)})
	if got := l.find("ns", "a", "other-src"); len(got) != 1 || got[0].outcome != outcomeDuplicate {
		t.Fatalf("by source: %+v", got)
	}
	// Off.
	var off *outcomeLog = newOutcomeLog(0)
	off.add([]outcomeEntry{entry("ns", "a", 1)})
	if got := off.find("ns", "a", ""); got != nil {
		t.Fatalf("a log of size 0 finds %+v", got)
	}
}

func TestOutcomeEntryBounds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"},                  // é is two bytes: not cut in half
		{"日本", 4, "日"},                  // three-byte runes
		{"\xff\xff\xff", 2, "\xff\xff"}, // not UTF-8: cut where asked
	} {
		if got := truncate(tc.s, tc.n); got != tc.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
	long := strings.Repeat("é", 300)
	e := newOutcomeEntry("ns", long, long+"x", outcomeRejected, time.Time{}, nil)
	if !e.sourceCut || !e.idCut || len(e.id) > maxOutcomeText || !utf8.ValidString(e.id) {
		t.Fatalf("entry of long strings: id %d bytes, cut %v %v", len(e.id), e.sourceCut, e.idCut)
	}
	// A cut id matches every id it is the cut of, and nothing shorter.
	for want, id := range map[bool]string{true: long + "x", false: e.id} {
		if got := cutEqual(e.id, e.idCut, id); got != want {
			t.Errorf("cutEqual(cut id, %d-byte id) = %v", len(id), got)
		}
	}
	if cutEqual(e.id, e.idCut, "x"+long) || !cutEqual("x", false, "x") || cutEqual("x", false, "xy") {
		t.Errorf("cutEqual of other ids")
	}

	// Reasons: at most maxOutcomeReasons, each bounded, the last saying how
	// many more there were.
	h := &handler{outcomes: newOutcomeLog(10)}
	var fields []odometer.FieldError
	for i := range 20 {
		fields = append(fields, odometer.FieldError{Index: 0, Field: fmt.Sprint("f", i), Reason: strings.Repeat("r", 1000)})
	}
	h.recordRejected("ns", time.Time{}, []odometer.Event{{ID: "x", Source: "s"}, {ID: "y", Source: "s"}}, nil,
		&odometer.Error{Code: odometer.EINVALID, Message: "bad", Fields: fields})
	got := h.outcomes.find("ns", "x", "")
	if len(got) != 1 || len(got[0].reasons) != maxOutcomeReasons {
		t.Fatalf("reasons of x: %+v", got)
	}
	for _, r := range got[0].reasons {
		if len(r.Reason) > maxOutcomeReason || len(r.Field) > maxOutcomeField {
			t.Errorf("reason not bounded: %d bytes", len(r.Reason))
		}
	}
	if last := got[0].reasons[maxOutcomeReasons-1]; last.Reason != "and 13 more problems" {
		t.Errorf("last reason %+v", last)
	}
	if got := h.outcomes.find("ns", "y", ""); len(got) != 1 || got[0].reasons[0].Field != "batch" ||
		!strings.Contains(got[0].reasons[0].Reason, "its event 0 is invalid") {
		t.Errorf("reasons of y: %+v", got)
	}
	// Errors that name no event record nothing.
	h.recordRejected("ns", time.Time{}, []odometer.Event{{ID: "z"}}, nil, odometer.FieldErrorf("body", "too big"))
	h.recordRejected("ns", time.Time{}, []odometer.Event{{ID: "z"}}, nil, odometer.Errorf(odometer.EUNAVAILABLE, "busy"))
	if got := h.outcomes.find("ns", "z", ""); len(got) != 0 {
		t.Errorf("z: %+v", got)
	}
}

func TestOutcomeLogConcurrentUse(t *testing.T) {
	t.Parallel()
	l := newOutcomeLog(100)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				l.add([]outcomeEntry{newOutcomeEntry("ns", "src", fmt.Sprint(g, "-", i%7), outcomeDuplicate, time.Time{}, nil)})
			}
		})
		wg.Go(func() {
			for i := range 500 {
				for _, e := range l.find("ns", fmt.Sprint(g, "-", i%7), "") {
					if e.id != fmt.Sprint(g, "-", i%7) {
						t.Errorf("found %q", e.id)
					}
				}
			}
		})
	}
	wg.Wait()
	if len(l.entries) != 100 {
		t.Fatalf("%d entries, want 100", len(l.entries))
	}
}

package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
)

func testDedup(t *testing.T, s odometer.Store) {
	first := ev("ns", "src", "a", "tokens", "cust", t0, `{"v":1}`)
	if got := mustAppend(t, s, first); !slices.Equal(got, outcomes(acc)) {
		t.Fatalf("first append: %v, want [accepted]", got)
	}
	if got := mustAppend(t, s, first); !slices.Equal(got, outcomes(dup)) {
		t.Fatalf("second append of the same identity: %v, want [duplicate]", got)
	}

	// Within one call, and mixed with an identity stored before.
	b := ev("ns", "src", "b", "tokens", "cust", t0, "")
	if got := mustAppend(t, s, b, b, first); !slices.Equal(got, outcomes(acc, dup, dup)) {
		t.Fatalf("append [b, b, a]: %v, want [accepted duplicate duplicate]", got)
	}

	// A retry that differs in everything but identity is still a duplicate,
	// and the stored event keeps its first version.
	retry := ev("ns", "src", "a", "other.type", "someone-else", t0.Add(time.Hour), `{"v":2}`)
	retry.IngestedAt = ingested.Add(time.Hour)
	if got := mustAppend(t, s, retry); !slices.Equal(got, outcomes(dup)) {
		t.Fatalf("changed retry: %v, want [duplicate]", got)
	}

	// Identity includes source and namespace.
	otherSource := ev("ns", "src2", "a", "tokens", "cust", t0, "")
	otherNS := ev("ns2", "src", "a", "tokens", "cust", t0, "")
	if got := mustAppend(t, s, otherSource, otherNS); !slices.Equal(got, outcomes(acc, acc)) {
		t.Fatalf("same id, other source / namespace: %v, want [accepted accepted]", got)
	}

	got := listAll(t, s, "ns")
	if diff := cmp.Diff([]string{"a", "b", "a"}, sorted2(got)); diff != "" {
		t.Fatalf("stored ids (-want +got):\n%s", diff)
	}
	for _, e := range got {
		if e.ID == "a" && e.Source == "src" {
			if diff := cmp.Diff(first, e); diff != "" {
				t.Errorf("stored event changed by a duplicate (-first +stored):\n%s", diff)
			}
		}
	}
	if got := ids(listAll(t, s, "ns2")); !slices.Equal(got, []string{"a"}) {
		t.Errorf("namespace ns2 holds %v, want [a]", got)
	}
}

// sorted2 returns "id" for each event, ordered by source then id, to compare
// sets of events whose IDs repeat across sources.
func sorted2(events []odometer.Event) []string {
	events = slices.Clone(events)
	slices.SortFunc(events, func(a, b odometer.Event) int {
		return cmpStrings(a.Source+"\x00"+a.ID, b.Source+"\x00"+b.ID)
	})
	return ids(events)
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func testAllOrNothing(t *testing.T, s odometer.Store) {
	e1 := ev("ns", "src", "e1", "tokens", "cust", t0, `{"v":1}`)
	e2 := ev("ns", "src", "e2", "tokens", "cust", t0, `{"v":2}`)

	if out, err := s.AppendEvents(t.Context(), nil); err != nil || len(out) != 0 {
		t.Fatalf("AppendEvents(nil) = %v, %v; want no outcomes and no error", out, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if out, err := s.AppendEvents(ctx, []odometer.Event{e1, e2}); err == nil {
		t.Fatalf("AppendEvents with a cancelled context succeeded: %v", out)
	}
	if got := ids(listAll(t, s, "ns")); len(got) != 0 {
		t.Fatalf("after a cancelled append, stored %v; want nothing", got)
	}

	// The last event fails; the first must not stay behind.
	bad := ev("ns", "src", "bad", "tokens", "cust", t0, `{"v":`)
	if out, err := s.AppendEvents(t.Context(), []odometer.Event{e1, e2, bad}); err == nil {
		t.Fatalf("AppendEvents with invalid JSON data succeeded: %v", out)
	}
	if got := ids(listAll(t, s, "ns")); len(got) != 0 {
		t.Fatalf("after a failed append, stored %v; want nothing", got)
	}
	// Nor in the dedup index: the events are new.
	if got := mustAppend(t, s, e1, e2); !slices.Equal(got, outcomes(acc, acc)) {
		t.Fatalf("append after a failed append: %v, want [accepted accepted]", got)
	}
}

// testLateWatermark checks the late watermarks that AppendEvents leaves
// (odometer.LateMarks): one per (namespace, type, subject) of an event
// accepted more than odometer.LateAfter after its time, at the append's
// time, committed with the events and only with them. Each case uses its
// own subject: a store may skip rewriting a watermark it wrote less than a
// minute before.
func testLateWatermark(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	watermark := func(ns, typ, subject string) time.Time {
		t.Helper()
		at, err := s.LateWatermark(ctx, ns, typ, subject)
		if err != nil {
			t.Fatalf("LateWatermark(%q, %q, %q): %v", ns, typ, subject, err)
		}
		if !at.IsZero() && at.Location() != time.UTC {
			t.Errorf("LateWatermark(%q, %q, %q) = %v, not in UTC", ns, typ, subject, at)
		}
		return at
	}
	wantNone := func(what, ns, typ, subject string) {
		t.Helper()
		if at := watermark(ns, typ, subject); !at.IsZero() {
			t.Errorf("%s: LateWatermark(%q, %q, %q) = %v, want none (zero time)", what, ns, typ, subject, at)
		}
	}
	now := func() time.Time { return time.Now().UTC().Truncate(odometer.TimePrecision) }
	// event returns an event of type tokens received at ingestedAt, late
	// by age.
	event := func(ns, id, subject string, ingestedAt time.Time, age time.Duration) odometer.Event {
		e := ev(ns, "src", id, "tokens", subject, ingestedAt.Add(-age), `{"v":1}`)
		e.IngestedAt = ingestedAt
		return e
	}

	// (a) Nothing appended.
	wantNone("empty store", "ns", "tokens", "late")

	// (b) On time: no watermark.
	if got := mustAppend(t, s, event("ns", "on-time", "on-time", now(), 0)); !slices.Equal(got, outcomes(acc)) {
		t.Fatalf("append on-time event: %v, want [accepted]", got)
	}
	wantNone("after an on-time event", "ns", "tokens", "on-time")

	// (c) Late: a watermark at the append's time, for exactly that key.
	ingestedAt := now()
	late := event("ns", "late", "late", ingestedAt, 2*time.Hour)
	if got := mustAppend(t, s, late); !slices.Equal(got, outcomes(acc)) {
		t.Fatalf("append late event: %v, want [accepted]", got)
	}
	after := time.Now()
	mark := watermark("ns", "tokens", "late")
	if mark.Before(ingestedAt.Add(-time.Second)) || mark.After(after.Add(time.Second)) {
		t.Errorf("after a late event ingested at %v: watermark %v, want about the append's time (%v .. %v)",
			ingestedAt, mark, ingestedAt, after)
	}
	wantNone("late event of another subject", "ns", "tokens", "other")
	wantNone("late event of another type", "ns", "other.type", "late")
	wantNone("late event in another namespace", "ns2", "tokens", "late")

	// (d) Duplicates leave no watermark: a retry of the late event, received
	// later, does not move it; nor does a late repeat, within one call, of
	// an identity accepted on time.
	retry := late
	retry.IngestedAt = ingestedAt.Add(24 * time.Hour)
	if got := mustAppend(t, s, retry); !slices.Equal(got, outcomes(dup)) {
		t.Fatalf("append retry of the late event: %v, want [duplicate]", got)
	}
	if got := watermark("ns", "tokens", "late"); !got.Equal(mark) {
		t.Errorf("a duplicate moved the watermark from %v to %v", mark, got)
	}
	first := event("ns", "dup-in-call", "dup-in-call", now(), 0)
	repeat := first
	repeat.Time = first.Time.Add(-2 * time.Hour)
	if got := mustAppend(t, s, first, repeat); !slices.Equal(got, outcomes(acc, dup)) {
		t.Fatalf("append [on time, late repeat]: %v, want [accepted duplicate]", got)
	}
	wantNone("a late duplicate within the call", "ns", "tokens", "dup-in-call")

	// (e) A failed append writes no watermark, and does not keep the store
	// from writing it when the events are appended again.
	failed := event("ns", "failed", "failed", now(), 2*time.Hour)
	bad := event("ns", "failed-bad", "failed", now(), 2*time.Hour)
	bad.Data = json.RawMessage(`{"v":`)
	if out, err := s.AppendEvents(ctx, []odometer.Event{failed, bad}); err == nil {
		t.Fatalf("AppendEvents with invalid JSON data succeeded: %v", out)
	}
	wantNone("after a failed append", "ns", "tokens", "failed")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if out, err := s.AppendEvents(cancelled, []odometer.Event{failed}); err == nil {
		t.Fatalf("AppendEvents with a cancelled context succeeded: %v", out)
	}
	wantNone("after a cancelled append", "ns", "tokens", "failed")
	ingestedAt = now()
	failed.IngestedAt = ingestedAt
	if got := mustAppend(t, s, failed); !slices.Equal(got, outcomes(acc)) {
		t.Fatalf("append after the failed append: %v, want [accepted]", got)
	}
	if got := watermark("ns", "tokens", "failed"); got.Before(ingestedAt.Add(-time.Second)) {
		t.Errorf("append after failed appends: watermark %v, want about %v", got, ingestedAt)
	}

	// (f) Received in the future: the watermark is the ingestion time, and
	// a later late event received earlier does not lower it.
	future := now().Add(48 * time.Hour)
	if got := mustAppend(t, s, event("ns", "future", "future", future, 2*time.Hour)); !slices.Equal(got, outcomes(acc)) {
		t.Fatalf("append event received in the future: %v, want [accepted]", got)
	}
	if got := watermark("ns", "tokens", "future"); !got.Equal(future) {
		t.Errorf("late event received at %v: watermark %v, want the ingestion time", future, got)
	}
	if got := mustAppend(t, s, event("ns", "future-2", "future", now(), 2*time.Hour)); !slices.Equal(got, outcomes(acc)) {
		t.Fatalf("append late event: %v, want [accepted]", got)
	}
	if got := watermark("ns", "tokens", "future"); !got.Equal(future) {
		t.Errorf("after an earlier late append: watermark %v, want it kept at %v", got, future)
	}
}

func testRoundTrip(t *testing.T, s odometer.Store) {
	full := odometer.Event{
		Namespace:       "ns",
		ID:              "evt-1",
		Source:          "//service/a",
		SpecVersion:     "1.0",
		Type:            "api.request",
		Subject:         "customer-1",
		Time:            time.Date(2025, 3, 1, 12, 34, 56, 123456000, time.UTC),
		DataContentType: "application/json",
		DataSchema:      "https://example.com/schema.json",
		// Key order, number text and non-ASCII text must survive.
		Data:       []byte(`{"z":1,"a":[1,2.50,"x"],"u":"héllo ✓ \u00e9","n":null,"big":123456789012345678901234567890.000000000000000001}`),
		IngestedAt: time.Date(2025, 3, 1, 12, 35, 0, 654321000, time.UTC),
	}
	minimal := ev("ns", "s", "evt-2", "t", "c", time.Date(2025, 3, 1, 12, 0, 0, 1000, time.UTC), "")
	earliest := ev("ns", "s", "evt-3", "t", "c", time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC), `{}`)
	latest := ev("ns", "s", "evt-4", "t", "c", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), `{"a":{"b":[]}}`)
	// A time in another zone comes back as the same instant in UTC.
	zoned := ev("ns", "s", "evt-5", "t", "c", time.Date(2025, 3, 1, 9, 0, 0, 0, time.FixedZone("X", -3*3600)), "")
	mustAppend(t, s, full, minimal, earliest, latest, zoned)

	got := listAll(t, s, "ns")
	want := []odometer.Event{latest, full, minimal, zoned, earliest}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("ListEvents (-want +got):\n%s", diff)
	}
	for _, e := range got {
		if e.Time.Location() != time.UTC || e.IngestedAt.Location() != time.UTC {
			t.Errorf("event %s: times in %v and %v, want UTC", e.ID, e.Time.Location(), e.IngestedAt.Location())
		}
		if e.ID == "evt-2" && e.Data != nil {
			t.Errorf("event without data returned Data %q, want nil", e.Data)
		}
	}
}

func testListFilters(t *testing.T, s odometer.Store) {
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	ing := func(n int) time.Time { return ingested.Add(time.Duration(n) * time.Second) }
	events := []odometer.Event{
		ev("ns", "src", "a%b", "t", "cust_1", at(0), ""),
		ev("ns", "src", "a_b", "t", "cust%1", at(1), ""),
		ev("ns", "src", "axb", "t", "custx1", at(2), ""),
		ev("ns", "src", "ab", "t", "cust1", at(3), ""),
		// Same time as "ab" but appended later: listed before it.
		ev("ns", "src", "tie", "t", "other", at(3), ""),
	}
	for i := range events {
		events[i].IngestedAt = ing(i)
		mustAppend(t, s, events[i])
	}
	mustAppend(t, s,
		ev("ns2", "src", "a%b", "t", "cust_1", at(0), ""),
		ev("ns2", "src", "zz", "t", "cust_1", at(9), ""))

	tests := []struct {
		name string
		f    odometer.EventFilter
		want []string
	}{
		{"all", odometer.EventFilter{}, []string{"tie", "ab", "axb", "a_b", "a%b"}},
		{"limit", odometer.EventFilter{Limit: 2}, []string{"tie", "ab"}},
		{"from inclusive", odometer.EventFilter{From: at(1)}, []string{"tie", "ab", "axb", "a_b"}},
		{"to exclusive", odometer.EventFilter{To: at(3)}, []string{"axb", "a_b", "a%b"}},
		{"from to", odometer.EventFilter{From: at(1), To: at(2)}, []string{"a_b"}},
		{"empty range", odometer.EventFilter{From: at(2), To: at(2)}, []string{}},
		{"ingested from inclusive", odometer.EventFilter{IngestedFrom: ing(1)}, []string{"tie", "ab", "axb", "a_b"}},
		{"ingested to exclusive", odometer.EventFilter{IngestedTo: ing(1)}, []string{"a%b"}},
		{"ingested range", odometer.EventFilter{IngestedFrom: ing(2), IngestedTo: ing(4)}, []string{"ab", "axb"}},
		{"id percent literal", odometer.EventFilter{IDContains: "%"}, []string{"a%b"}},
		{"id underscore literal", odometer.EventFilter{IDContains: "_"}, []string{"a_b"}},
		{"id prefix with percent", odometer.EventFilter{IDContains: "a%"}, []string{"a%b"}},
		{"id substring", odometer.EventFilter{IDContains: "b"}, []string{"ab", "axb", "a_b", "a%b"}},
		{"id whole", odometer.EventFilter{IDContains: "axb"}, []string{"axb"}},
		{"id no match", odometer.EventFilter{IDContains: "zzz"}, []string{}},
		{"subject underscore literal", odometer.EventFilter{SubjectContains: "_"}, []string{"a%b"}},
		{"subject percent literal", odometer.EventFilter{SubjectContains: "t%1"}, []string{"a_b"}},
		{"subject substring", odometer.EventFilter{SubjectContains: "cust"}, []string{"ab", "axb", "a_b", "a%b"}},
		{"combined", odometer.EventFilter{SubjectContains: "cust", From: at(1), Limit: 2}, []string{"ab", "axb"}},
		{"other namespace", odometer.EventFilter{Namespace: "ns2"}, []string{"zz", "a%b"}},
		{"unknown namespace", odometer.EventFilter{Namespace: "nobody"}, []string{}},
	}
	for _, tt := range tests {
		f := tt.f
		if f.Namespace == "" {
			f.Namespace = "ns"
		}
		if f.Limit == 0 {
			f.Limit = 100
		}
		got, err := s.ListEvents(t.Context(), f)
		if err != nil {
			t.Errorf("%s: ListEvents: %v", tt.name, err)
			continue
		}
		if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
			t.Errorf("%s: ids (-want +got):\n%s", tt.name, diff)
		}
	}

	_, err := s.ListEvents(t.Context(), odometer.EventFilter{Namespace: "ns"})
	wantCode(t, "ListEvents with Limit 0", err, odometer.EINVALID)
}

// testListTieOrder checks the tie order of ListEvents within and across
// calls: events with equal times are listed later-appended first, and
// within one call that is reverse input order, even when the ids are not
// in order (a store may write a call's rows sorted by identity).
func testListTieOrder(t *testing.T, s odometer.Store) {
	batch := func(ids ...string) []odometer.Event {
		var events []odometer.Event
		for _, id := range ids {
			events = append(events, ev("ns", "src", id, "t", "c", t0, ""))
		}
		return events
	}
	mustAppend(t, s, batch("m", "c", "x", "c", "a", "q")...)
	mustAppend(t, s, batch("k", "b", "m")...)
	mustAppend(t, s, ev("ns", "src", "early", "t", "c", t0.Add(-time.Second), ""))
	want := []string{"b", "k", "q", "a", "x", "c", "m", "early"}
	if diff := cmp.Diff(want, ids(listAll(t, s, "ns"))); diff != "" {
		t.Errorf("ListEvents ids (-want +got):\n%s", diff)
	}
}

// scanIDs returns the IDs that ScanEvents delivers for sc, sorted.
func scanIDs(t *testing.T, s odometer.Store, sc odometer.EventScan) []string {
	t.Helper()
	var got []string
	err := s.ScanEvents(t.Context(), sc, func(e *odometer.ScannedEvent) error {
		got = append(got, e.ID)
		return nil
	})
	if err != nil {
		t.Fatalf("ScanEvents(%+v): %v", sc, err)
	}
	return sorted(got)
}

func testScanFilters(t *testing.T, s odometer.Store) {
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	mustAppend(t, s,
		ev("ns", "src", "t1", "tokens", "s1", at(0), `{"v":1}`),
		ev("ns", "src", "t2", "tokens", "s2", at(1), `{"v":2}`),
		ev("ns", "src", "t3", "tokens", "s3", at(2), `{"v":3}`),
		ev("ns", "src", "t4", "tokens", "s1", at(3), `{"v":4}`),
		ev("ns", "src", "r1", "requests", "s1", at(0), ""),
		ev("ns", "src", "r2", "requests", "s2", at(5), ""),
		ev("ns2", "src", "x1", "tokens", "s1", at(0), `{"v":1}`),
	)
	tests := []struct {
		name string
		sc   odometer.EventScan
		want []string
	}{
		{"type", odometer.EventScan{Type: "tokens"}, []string{"t1", "t2", "t3", "t4"}},
		{"other type", odometer.EventScan{Type: "requests"}, []string{"r1", "r2"}},
		{"unknown type", odometer.EventScan{Type: "nothing"}, []string{}},
		{"one subject", odometer.EventScan{Type: "tokens", Subjects: []string{"s1"}}, []string{"t1", "t4"}},
		{"two subjects", odometer.EventScan{Type: "tokens", Subjects: []string{"s3", "s1"}}, []string{"t1", "t3", "t4"}},
		{"repeated subject", odometer.EventScan{Type: "tokens", Subjects: []string{"s1", "s1"}}, []string{"t1", "t4"}},
		{"unknown subject", odometer.EventScan{Type: "tokens", Subjects: []string{"nobody"}}, []string{}},
		{"from inclusive", odometer.EventScan{Type: "tokens", From: at(1)}, []string{"t2", "t3", "t4"}},
		{"to exclusive", odometer.EventScan{Type: "tokens", To: at(3)}, []string{"t1", "t2", "t3"}},
		{"range and subject", odometer.EventScan{Type: "tokens", Subjects: []string{"s1"}, From: at(1), To: at(4)}, []string{"t4"}},
		{"empty range", odometer.EventScan{Type: "tokens", From: at(1), To: at(1)}, []string{}},
		{"other namespace", odometer.EventScan{Namespace: "ns2", Type: "tokens"}, []string{"x1"}},
		{"unknown namespace", odometer.EventScan{Namespace: "nobody", Type: "tokens"}, []string{}},
	}
	for _, tt := range tests {
		sc := tt.sc
		if sc.Namespace == "" {
			sc.Namespace = "ns"
		}
		if diff := cmp.Diff(tt.want, scanIDs(t, s, sc)); diff != "" {
			t.Errorf("%s: ids (-want +got):\n%s", tt.name, diff)
		}
	}
}

func testScanFields(t *testing.T, s odometer.Store) {
	e := ev("ns", "//svc", "id-1", "tokens", "cust", time.Date(2025, 3, 1, 1, 2, 3, 456789000, time.UTC), `{"b":2,"a":1}`)
	e.IngestedAt = time.Date(2025, 3, 1, 1, 2, 4, 1000, time.UTC)
	noData := ev("ns", "//svc", "id-2", "tokens", "cust", t0, "")
	mustAppend(t, s, e, noData)

	got := map[string]odometer.ScannedEvent{}
	err := s.ScanEvents(t.Context(), odometer.EventScan{Namespace: "ns", Type: "tokens"}, func(se *odometer.ScannedEvent) error {
		c := *se
		c.Data = bytes.Clone(se.Data) // only valid during the call
		got[se.ID] = c
		return nil
	})
	if err != nil {
		t.Fatalf("ScanEvents: %v", err)
	}
	want := map[string]odometer.ScannedEvent{
		"id-1": {Subject: "cust", Source: "//svc", ID: "id-1", Time: e.Time, IngestedAt: e.IngestedAt, Data: []byte(`{"b":2,"a":1}`)},
		"id-2": {Subject: "cust", Source: "//svc", ID: "id-2", Time: t0, IngestedAt: ingested},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
		t.Errorf("scanned events (-want +got):\n%s", diff)
	}
}

func testScanEarlyStop(t *testing.T, s odometer.Store) {
	var events []odometer.Event
	for i := range 50 {
		events = append(events, ev("ns", "src", fmt.Sprint("e", i), "tokens", fmt.Sprint("s", i%5), t0.Add(time.Duration(i)*time.Second), ""))
	}
	mustAppend(t, s, events...)
	errStop := errors.New("stop here")
	for _, subjects := range [][]string{nil, {"s1", "s2", "s3"}} {
		calls := 0
		err := s.ScanEvents(t.Context(), odometer.EventScan{Namespace: "ns", Type: "tokens", Subjects: subjects},
			func(*odometer.ScannedEvent) error {
				calls++
				return errStop
			})
		if !errors.Is(err, errStop) {
			t.Errorf("subjects %v: ScanEvents returned %v, want fn's error", subjects, err)
		}
		if calls != 1 {
			t.Errorf("subjects %v: fn called %d times after returning an error, want 1", subjects, calls)
		}
	}
	// A scan that was stopped leaves the store usable.
	if got := scanIDs(t, s, odometer.EventScan{Namespace: "ns", Type: "tokens", Subjects: []string{"s0"}}); len(got) != 10 {
		t.Errorf("scan after a stopped scan: %d events, want 10", len(got))
	}
}

// testConcurrentAppend appends overlapping identities from several
// goroutines while others read, and checks that each identity was accepted
// exactly once and is stored exactly once.
func testConcurrentAppend(t *testing.T, s odometer.Store) {
	const (
		writers = 8
		rounds  = 6
		batch   = 40
		space   = 150 // distinct ids; every batch overlaps others
	)
	var accepted atomic.Int64
	touched := make([][]string, writers)
	var wg sync.WaitGroup
	done := make(chan struct{})
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				var b []odometer.Event
				for k := range batch {
					// Repeats inside a batch too when k wraps.
					id := fmt.Sprint("id-", (w*17+r*31+k*k)%space)
					b = append(b, ev("ns", "src", id, "tokens", "cust", t0.Add(time.Duration(k)*time.Second), `{"v":1}`))
					touched[w] = append(touched[w], id)
				}
				out, err := s.AppendEvents(t.Context(), b)
				if err != nil {
					t.Errorf("writer %d round %d: %v", w, r, err)
					return
				}
				for _, o := range out {
					if o == acc {
						accepted.Add(1)
					}
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.ListEvents(t.Context(), odometer.EventFilter{Namespace: "ns", Limit: 50}); err != nil {
					t.Errorf("concurrent ListEvents: %v", err)
					return
				}
				err := s.ScanEvents(t.Context(), odometer.EventScan{Namespace: "ns", Type: "tokens"},
					func(*odometer.ScannedEvent) error { return nil })
				if err != nil {
					t.Errorf("concurrent ScanEvents: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()

	distinct := map[string]bool{}
	for _, ids := range touched {
		for _, id := range ids {
			distinct[id] = true
		}
	}
	if got := accepted.Load(); got != int64(len(distinct)) {
		t.Errorf("%d events accepted across all calls, want %d (one per distinct identity)", got, len(distinct))
	}
	stored := map[string]int{}
	for _, e := range listAll(t, s, "ns") {
		stored[e.ID]++
	}
	if len(stored) != len(distinct) {
		t.Errorf("%d distinct identities stored, want %d", len(stored), len(distinct))
	}
	for id, n := range stored {
		if n != 1 || !distinct[id] {
			t.Errorf("identity %s stored %d times (appended: %v)", id, n, distinct[id])
		}
	}
}

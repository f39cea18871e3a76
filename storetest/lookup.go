package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
)

// lookupEvents calls LookupEvents and fails the test on an error.
func lookupEvents(t *testing.T, s odometer.Store, ns, id, source string) []odometer.Event {
	t.Helper()
	got, err := s.LookupEvents(t.Context(), ns, id, source)
	if err != nil {
		t.Fatalf("LookupEvents(namespace %+q, id %+q, source %+q): %v", ns, id, source, err)
	}
	if got == nil {
		got = []odometer.Event{}
	}
	for _, e := range got {
		if e.Time.Location() != time.UTC || e.IngestedAt.Location() != time.UTC {
			t.Errorf("LookupEvents(%+q, %+q, %+q): event of source %+q has times in %v and %v, want UTC",
				ns, id, source, e.Source, e.Time.Location(), e.IngestedAt.Location())
		}
	}
	return got
}

// wantLookup is what LookupEvents must return, given every stored event:
// those of ns with exactly id (and source unless ""), ordered by source.
func wantLookup(stored []odometer.Event, ns, id, source string) []odometer.Event {
	out := []odometer.Event{}
	for _, e := range stored {
		if e.Namespace == ns && e.ID == id && (source == "" || e.Source == source) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b odometer.Event) int { return strings.Compare(a.Source, b.Source) })
	return out
}

// testLookupEvents checks LookupEvents against a model of the stored
// events: exact matches of id and source only (no substrings, wildcards
// or case folding), several sources sharing an id, namespaces kept apart,
// the first version of a resent event, every field round-tripped, odd
// bytes; and the bound on the sources probed without a source.
func testLookupEvents(t *testing.T, s odometer.Store) {
	if got := lookupEvents(t, s, "ns", "x", ""); len(got) != 0 {
		t.Fatalf("LookupEvents in an empty store = %v, want none", got)
	}
	if got := lookupEvents(t, s, "ns", "x", "a"); len(got) != 0 {
		t.Fatalf("LookupEvents with a source in an empty store = %v, want none", got)
	}

	full := odometer.Event{
		Namespace:       "ns",
		ID:              "x",
		Source:          "//service/a",
		SpecVersion:     "1.0",
		Type:            "api.request",
		Subject:         "customer-1",
		Time:            time.Date(2025, 3, 1, 12, 34, 56, 123456000, time.UTC),
		DataContentType: "application/json",
		DataSchema:      "https://example.com/schema.json",
		Data:            []byte(`{"z":1,"a":[1,2.50,"x"],"u":"héllo ✓ \u00e9","n":null}`),
		IngestedAt:      time.Date(2025, 3, 1, 12, 35, 0, 654321000, time.UTC),
	}
	stored := []odometer.Event{full}
	add := func(ns, source, id string, minutes int) {
		stored = append(stored, ev(ns, source, id, "tokens", "cust", t0.Add(time.Duration(minutes)*time.Minute), ""))
	}
	// The id x in many sources, with ids that contain it, extend it,
	// differ from it in case only, or hold LIKE wildcards.
	for i, source := range []string{"a", "b", "B", "s%", "s_", "sa", "s", "é", "zz"} {
		add("ns", source, "x", i)
	}
	for i, id := range []string{"xy", "ax", "X", "x ", "x%", "x_", "%", "_", "y"} {
		add("ns", "a", id, 10+i)
		add("ns", "c", id, 20+i) // a source that has no x
	}
	// A source whose only ids sort before and after x.
	add("ns", "d", "w", 30)
	add("ns", "d", "xa", 31)
	// Sources interleaved over many ids, so that the sources probed lie
	// far apart among the identities.
	for i := range 300 {
		source := fmt.Sprintf("bulk-%02d", i%30)
		id := fmt.Sprint("id-", i)
		if i%7 == 0 {
			id = "x"
		}
		if i%7 == 0 && i >= 30 {
			continue // one x per source at most
		}
		add("ns", source, id, 40+i)
	}
	// The same identities in other namespaces, including ones whose names
	// extend "ns" or that "ns" extends.
	for _, ns := range []string{"ns2", "n", "ns-", "NS"} {
		add(ns, "a", "x", 0)
		add(ns, "other", "x", 0)
	}
	mustAppend(t, s, stored...)

	// A resend of an identity with everything else changed is a
	// duplicate: the first version stays.
	resent := full
	resent.Type, resent.Subject, resent.Data = "other.type", "someone-else", []byte(`{"v":2}`)
	resent.Time, resent.IngestedAt = full.Time.Add(time.Hour), full.IngestedAt.Add(time.Hour)
	if got := mustAppend(t, s, resent); !slices.Equal(got, outcomes(dup)) {
		t.Fatalf("resend: %v, want [duplicate]", got)
	}

	// NUL bytes: stores that cannot hold them (PostgreSQL) refuse the
	// whole call with EINVALID; lookups of such strings then find nothing.
	nul := []odometer.Event{
		ev("ns", "a", "x\x00", "tokens", "cust", t0, ""),
		ev("ns", "a\x00", "x", "tokens", "cust", t0, ""),
		ev("ns", "a", "\x00x", "tokens", "cust", t0, ""),
	}
	if _, err := s.AppendEvents(t.Context(), nul); err == nil {
		stored = append(stored, nul...)
	} else if odometer.ErrorCode(err) != odometer.EINVALID {
		t.Fatalf("AppendEvents with NUL in ids and sources: %v; want success or EINVALID", err)
	} else {
		t.Logf("the store refuses NUL in ids and sources (%v); the lookups of them must find nothing", err)
	}

	ids := []string{"x", "X", "xy", "ax", "x ", "x%", "x_", "%", "_", "y", "w", "xa", "id-1", "id-299",
		"", "x\x00", "\x00x", "\x00", "nothing", "\xff", "é"}
	sources := []string{"", "a", "b", "B", "s%", "s_", "sa", "s", "é", "zz", "c", "d", "bulk-00", "bulk-29",
		"a\x00", "\x00", "%", "_", "other", "nobody", "\xff"}
	for _, ns := range []string{"ns", "ns2", "n", "NS", "nobody", ""} {
		for _, id := range ids {
			for _, source := range sources {
				want := wantLookup(stored, ns, id, source)
				got := lookupEvents(t, s, ns, id, source)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("LookupEvents(namespace %+q, id %+q, source %+q) (-want +got):\n%s", ns, id, source, diff)
				}
			}
		}
	}
	// The first version, whatever the model holds.
	if got := lookupEvents(t, s, "ns", "x", "//service/a"); len(got) != 1 || !cmp.Equal(got[0], full) {
		t.Errorf("LookupEvents of the full event = %+v, want its first version %+v", got, full)
	}

	t.Run("ManySources", func(t *testing.T) { testLookupManySources(t, s) })
}

// testLookupManySources checks the bound on the distinct sources that
// LookupEvents probes without a source: 100,000 are looked up, one more
// is refused with EINVALID naming field "source", and a lookup with a
// source still works.
func testLookupManySources(t *testing.T, s odometer.Store) {
	if testing.Short() {
		t.Skip("stores 100,001 events")
	}
	const bound = 100_000
	const ns = "many-sources"
	source := func(i int) string { return fmt.Sprintf("src-%06d", i) }
	events := make([]odometer.Event, bound)
	for i := range events {
		id := "y"
		if i == 0 || i == bound-1 {
			id = "x"
		}
		events[i] = ev(ns, source(i), id, "tokens", "cust", t0, "")
	}
	mustAppend(t, s, events...)
	got := lookupEvents(t, s, ns, "x", "")
	if diff := cmp.Diff([]string{source(0), source(bound - 1)}, sourcesOf(got)); diff != "" {
		t.Fatalf("LookupEvents among %d sources (-want +got):\n%s", bound, diff)
	}

	mustAppend(t, s, ev(ns, source(bound), "x", "tokens", "cust", t0, ""))
	_, err := s.LookupEvents(t.Context(), ns, "x", "")
	wantCode(t, fmt.Sprintf("LookupEvents without a source among %d sources", bound+1), err, odometer.EINVALID)
	if f := odometer.ErrorFields(err); len(f) != 1 || f[0].Field != "source" {
		t.Errorf("LookupEvents without a source among %d sources: fields %+v, want source", bound+1, f)
	}
	if got := lookupEvents(t, s, ns, "x", source(bound)); len(got) != 1 || got[0].Source != source(bound) {
		t.Errorf("LookupEvents with a source among %d sources = %v, want its event", bound+1, got)
	}
	// Other namespaces are not affected.
	if got := lookupEvents(t, s, "ns", "x", ""); len(got) == 0 {
		t.Errorf("LookupEvents in another namespace found nothing")
	}
}

func sourcesOf(events []odometer.Event) []string {
	out := []string{}
	for _, e := range events {
		out = append(out, e.Source)
	}
	return out
}

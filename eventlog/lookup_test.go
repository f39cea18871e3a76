package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
)

// lookupFixture appends, in namespace "ns", the id "x" in every fifth of
// 50 sources among 20 other ids per source, spread over time, and returns
// the log and the events with id "x", ordered by source.
func lookupFixture(t *testing.T, dir string) (*Log, []odometer.Event) {
	t.Helper()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var events, xs []odometer.Event
	for s := range 50 {
		for i := range 20 {
			e := odometer.Event{Namespace: "ns", ID: fmt.Sprint("id-", i), Source: fmt.Sprintf("src-%02d", s),
				SpecVersion: "1.0", Type: []string{"tokens", "calls"}[i%2], Subject: fmt.Sprint("cust-", (s+i)%7),
				Time: t0.Add(time.Duration(s*20+i) * time.Minute), IngestedAt: t0.Add(time.Hour), Data: []byte(`{"n":1}`)}
			if i == 10 && s%5 == 0 {
				e.ID = "x"
				xs = append(xs, e)
			}
			events = append(events, e)
		}
	}
	// The same identities in namespaces next to "ns".
	for _, ns := range []string{"nr", "nt", "ns\x00"} {
		events = append(events, odometer.Event{Namespace: ns, ID: "x", Source: "src-00", Type: "tokens", Subject: "c", Time: t0, IngestedAt: t0})
	}
	if _, err := l.AppendEvents(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	return l, xs
}

// forget empties the 'd' values of the identities of namespace ns for
// which keep returns false, as a log written before they were located.
func forget(t *testing.T, l *Log, ns string, keep func(source, id string) bool) {
	t.Helper()
	prefix := append([]byte{tagDedup}, appendString(nil, ns)...)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixSuccessor(nil, prefix)})
	if err != nil {
		t.Fatal(err)
	}
	b := l.db.NewBatch()
	for ok := it.First(); ok; ok = it.Next() {
		source, rest, err := decodeString(it.Key()[len(prefix):])
		if err != nil {
			t.Fatal(err)
		}
		id, _, err := decodeString(rest)
		if err != nil {
			t.Fatal(err)
		}
		if len(it.Value()) != suffixLen {
			t.Fatalf("dedup key of (%q, %q) holds %x, want the event's time and seq", source, id, it.Value())
		}
		if !keep(source, id) {
			if err := b.Set(it.Key(), nil, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := errors.Join(it.Close(), b.Commit(pebble.Sync), b.Close()); err != nil {
		t.Fatal(err)
	}
}

func lookup(t *testing.T, l *Log, id, source string, maxSources int) ([]odometer.Event, lookupStats) {
	t.Helper()
	got, st, err := l.lookup(t.Context(), "ns", id, source, maxSources)
	if err != nil {
		t.Fatalf("lookup(%q, %q): %v", id, source, err)
	}
	return got, st
}

// TestLookupLocated checks that a located identity costs point reads
// only, that a lookup without a source costs about two seeks per
// distinct source whatever the number of events, and the bound on the
// sources.
func TestLookupLocated(t *testing.T) {
	t.Parallel()
	l, xs := lookupFixture(t, t.TempDir())
	defer l.Close()
	const sources = 50

	got, st := lookup(t, l, "x", "", maxLookupSources)
	if diff := cmp.Diff(xs, got); diff != "" {
		t.Errorf("lookup of x (-want +got):\n%s", diff)
	}
	if st.scanned != 0 || st.seeks > 2*sources+1 {
		t.Errorf("lookup of x: %d seeks and %d index entries read for %d sources; want at most %d seeks and none read",
			st.seeks, st.scanned, sources, 2*sources+1)
	}
	for _, want := range xs {
		got, st := lookup(t, l, "x", want.Source, maxLookupSources)
		if diff := cmp.Diff([]odometer.Event{want}, got); diff != "" {
			t.Errorf("lookup of x in %s (-want +got):\n%s", want.Source, diff)
		}
		if st != (lookupStats{}) {
			t.Errorf("lookup of x in %s: %+v, want point reads only", want.Source, st)
		}
	}
	if got, _ := lookup(t, l, "x", "src-01", maxLookupSources); len(got) != 0 {
		t.Errorf("lookup of x in src-01, which has none: %v", got)
	}
	// An id past every id of each source: the probe lands on the next
	// source, which saves the seek past the source.
	if got, st := lookup(t, l, "zz", "", maxLookupSources); len(got) != 0 || st.seeks > sources+1 {
		t.Errorf("lookup of zz: %d events, %d seeks; want none and at most %d seeks", len(got), st.seeks, sources+1)
	}

	// The bound: the sources are probed up to it, and one more is refused.
	if got, _ := lookup(t, l, "x", "", sources); len(got) != len(xs) {
		t.Errorf("lookup with a bound of exactly %d sources found %d events, want %d", sources, len(got), len(xs))
	}
	_, _, err := l.lookup(t.Context(), "ns", "x", "", sources-1)
	if odometer.ErrorCode(err) != odometer.EINVALID || len(odometer.ErrorFields(err)) != 1 || odometer.ErrorFields(err)[0].Field != "source" {
		t.Errorf("lookup over the bound: %v; want EINVALID about field source", err)
	}
}

// TestLookupUnlocated checks lookups in a log whose 'd' keys hold no
// location, as a log written before they did (or by an older binary after
// a downgrade): such identities are found by reading the time index, the
// others still by point reads, and a reopened log finds them too.
func TestLookupUnlocated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, xs := lookupFixture(t, dir)
	// Every identity of the even sources is unlocated; of the odd ones,
	// only id-3.
	unlocated := func(source, id string) bool {
		n := 0
		fmt.Sscanf(source, "src-%d", &n)
		return n%2 == 0 || id == "id-3"
	}
	forget(t, l, "ns", func(source, id string) bool { return !unlocated(source, id) })

	check := func(l *Log) {
		t.Helper()
		got, st := lookup(t, l, "x", "", maxLookupSources)
		if diff := cmp.Diff(xs, got); diff != "" {
			t.Errorf("lookup of x (-want +got):\n%s", diff)
		}
		// One search for all of them: at most every entry once.
		if st.scanned == 0 || st.scanned > 1000 {
			t.Errorf("lookup of x read %d index entries; want some, at most 1000", st.scanned)
		}
		for _, want := range xs {
			got, _ := lookup(t, l, "x", want.Source, maxLookupSources)
			if diff := cmp.Diff([]odometer.Event{want}, got); diff != "" {
				t.Errorf("lookup of x in %s (-want +got):\n%s", want.Source, diff)
			}
		}
		for _, source := range []string{"src-03", "src-48"} {
			got, st := lookup(t, l, "id-3", source, maxLookupSources)
			if len(got) != 1 || got[0].Source != source || got[0].ID != "id-3" || st.scanned == 0 {
				t.Errorf("unlocated (%s, id-3): %v after %d entries", source, got, st.scanned)
			}
			got, st = lookup(t, l, "id-4", source, maxLookupSources)
			wantScan := source == "src-48"
			if len(got) != 1 || got[0].Source != source || got[0].ID != "id-4" || (st.scanned > 0) != wantScan {
				t.Errorf("(%s, id-4): %v after %d entries; want a search only if unlocated", source, got, st.scanned)
			}
		}
		// Newest first: src-48's last event has only src-49's 20 after it.
		if _, st := lookup(t, l, "id-19", "src-48", maxLookupSources); st.scanned != 21 {
			t.Errorf("the newest unlocated event took %d entries; want 21", st.scanned)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	check(l)

	// New appends locate their identities again.
	e := odometer.Event{Namespace: "ns", ID: "new", Source: "src-00", Type: "t", Subject: "s", Time: xs[0].Time, IngestedAt: xs[0].IngestedAt}
	if _, err := l.AppendEvents(t.Context(), []odometer.Event{e}); err != nil {
		t.Fatal(err)
	}
	if got, st := lookup(t, l, "new", "", maxLookupSources); len(got) != 1 || st.scanned != 0 {
		t.Errorf("a new event: %v after %d entries; want it located", got, st.scanned)
	}

	// The search stops when the context ends.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.LookupEvents(ctx, "ns", "id-0", "src-00"); !errors.Is(err, context.Canceled) {
		t.Errorf("lookup with a cancelled context: %v", err)
	}
}

// TestLookupCorrupt checks that a 'd' key that leads nowhere is an error,
// not a missing event.
func TestLookupCorrupt(t *testing.T) {
	t.Parallel()
	l, _ := lookupFixture(t, t.TempDir())
	defer l.Close()
	for _, tt := range []struct {
		name, id string
		value    []byte
	}{
		{"unlocated without an event", "ghost", nil},
		{"a location of no event", "ghost2", make([]byte, suffixLen)},
		{"a value of the wrong length", "ghost3", []byte{1, 2, 3}},
	} {
		if err := l.db.Set(dedupKey(nil, "ns", "src-07", tt.id), tt.value, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		for _, source := range []string{"", "src-07"} {
			if got, err := l.LookupEvents(t.Context(), "ns", tt.id, source); err == nil {
				t.Errorf("%s (source %q): %v, want an error", tt.name, source, got)
			}
		}
	}
	// Another identity's location.
	v, closer, err := l.db.Get(dedupKey(nil, "ns", "src-07", "id-1"))
	if err != nil {
		t.Fatal(err)
	}
	loc := slices.Clone(v)
	closer.Close()
	if err := l.db.Set(dedupKey(nil, "ns", "src-07", "id-2"), loc, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if got, err := l.LookupEvents(t.Context(), "ns", "id-2", "src-07"); err == nil {
		t.Errorf("a location of another identity's event: %v, want an error", got)
	}
}

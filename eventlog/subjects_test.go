package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// TestListSubjectsSkips checks that listing subjects seeks from subject to
// subject instead of reading events: with ten events per (subject, type),
// a page costs a few seeks per type plus one per (subject, type) it
// takes, whatever the number of events.
func TestListSubjectsSkips(t *testing.T) {
	t.Parallel()
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const subjects, perPair = 2000, 10
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var events []odometer.Event
	pairs := 0
	for s := range subjects {
		for _, typ := range []string{"tokens", "calls", "gpu"} {
			if (typ == "calls" && s%2 != 0) || (typ == "gpu" && s%3 != 0) {
				continue
			}
			pairs++
			for i := range perPair {
				events = append(events, odometer.Event{Namespace: "ns", ID: fmt.Sprint(s, typ, i), Source: "src",
					Type: typ, Subject: fmt.Sprintf("s%04d", s), Time: t0.Add(time.Duration(i) * time.Minute), IngestedAt: t0})
			}
		}
	}
	// Another namespace around it, which must cost nothing.
	for _, ns := range []string{"nr", "nt"} {
		events = append(events, odometer.Event{Namespace: ns, ID: "x", Source: "src", Type: "tokens", Subject: "s0000", Time: t0, IngestedAt: t0})
	}
	if _, err := l.AppendEvents(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	const types = 3
	tests := []struct {
		name      string
		f         odometer.SubjectFilter
		want      []string
		maxSeeks  int
		wantCount int
	}{
		// Each subject taken costs one seek per type that has it (≤ 3).
		{"first page", odometer.SubjectFilter{Limit: 10}, []string{"s0000", "s0001", "s0002"}, 2*types + 1 + 3*10, 10},
		{"after", odometer.SubjectFilter{After: "s0999", Limit: 10}, []string{"s1000", "s1001", "s1002"}, 2*types + 1 + 3*10, 10},
		{"prefix", odometer.SubjectFilter{Prefix: "s12", Limit: 1000}, []string{"s1200", "s1201", "s1202"}, 2*types + 1 + 3*100, 100},
		{"prefix and after", odometer.SubjectFilter{Prefix: "s12", After: "s1297", Limit: 10}, []string{"s1298", "s1299"}, 2*types + 1 + 3*2, 2},
		{"nothing", odometer.SubjectFilter{Prefix: "t", Limit: 10}, nil, 2*types + 1, 0},
		{"all", odometer.SubjectFilter{Limit: subjects}, []string{"s0000", "s0001", "s0002"}, 2*types + 1 + pairs, subjects},
	}
	for _, tt := range tests {
		tt.f.Namespace = "ns"
		got, seeks, err := l.listSubjects(t.Context(), tt.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.wantCount || !slices.Equal(got[:min(len(got), len(tt.want))], tt.want) || !slices.IsSorted(got) {
			t.Errorf("%s: %d subjects starting %q, want %d starting %q", tt.name, len(got), got[:min(len(got), 3)], tt.wantCount, tt.want)
		}
		if seeks > tt.maxSeeks {
			t.Errorf("%s: %d seeks for %d subjects, want at most %d (%d events)", tt.name, seeks, len(got), tt.maxSeeks, len(events))
		}
	}
}

func TestListSubjectsStops(t *testing.T) {
	t.Parallel()
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var events []odometer.Event
	for s := range 3000 {
		events = append(events, odometer.Event{Namespace: "ns", ID: fmt.Sprint(s), Source: "src", Type: "tokens",
			Subject: fmt.Sprint("s", s), Time: time.Unix(0, 0), IngestedAt: time.Unix(0, 0)})
	}
	if _, err := l.AppendEvents(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	// A cancelled context ends a long listing.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.ListSubjects(ctx, odometer.SubjectFilter{Namespace: "ns", Limit: 3000}); !errors.Is(err, context.Canceled) {
		t.Errorf("ListSubjects with a cancelled context: %v, want context.Canceled", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ListSubjects(t.Context(), odometer.SubjectFilter{Namespace: "ns", Limit: 1}); odometer.ErrorCode(err) != odometer.EUNAVAILABLE {
		t.Errorf("ListSubjects after Close: %v, want EUNAVAILABLE", err)
	}
}

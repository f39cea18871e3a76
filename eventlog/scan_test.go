package eventlog

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// TestScanSkipsSubjects checks that a time-bounded scan over all subjects
// does not read the events outside the range: with many events per subject
// and a one-minute range that holds one of them, it moves the iterator a
// few times per subject, not once per event.
func TestScanSkipsSubjects(t *testing.T) {
	t.Parallel()
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const subjects, perSubject = 50, 400
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var events []odometer.Event
	for s := range subjects {
		for i := range perSubject {
			events = append(events, odometer.Event{Namespace: "ns", ID: fmt.Sprint(s, "-", i), Source: "src",
				Type: "tokens", Subject: fmt.Sprint("s", s), Time: t0.Add(time.Duration(i) * time.Minute), IngestedAt: t0})
		}
	}
	if _, err := l.AppendEvents(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		from, to time.Time
		want     int // events
		maxSteps int
	}{
		{"window", t0.Add(100 * time.Minute), t0.Add(101 * time.Minute), subjects, 3*subjects + 1},
		{"from only", t0.Add(399 * time.Minute), time.Time{}, subjects, 3*subjects + 1},
		{"to only", time.Time{}, t0.Add(time.Minute), subjects, 3*subjects + 1},
		{"unbounded", time.Time{}, time.Time{}, subjects * perSubject, subjects*perSubject + 1},
	}
	for _, tt := range tests {
		var got []string
		sc := odometer.EventScan{Namespace: "ns", Type: "tokens", From: tt.from, To: tt.to}
		steps, err := l.scan(t.Context(), sc, func(e *odometer.ScannedEvent) error {
			got = append(got, e.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want {
			t.Errorf("%s: %d events, want %d", tt.name, len(got), tt.want)
		}
		if steps > tt.maxSteps {
			t.Errorf("%s: %d iterator moves for %d events, want at most %d", tt.name, steps, len(got), tt.maxSteps)
		}
		if tt.name == "window" {
			for _, id := range got {
				if !strings.HasSuffix(id, "-100") {
					t.Errorf("scan of minute 100 returned %s", id)
				}
			}
		}
	}
}

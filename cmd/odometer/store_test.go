package main

import (
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// A data directory keeps its events in one event store: opening it with the
// other one fails with a message saying how to start, instead of showing no
// events.
func TestOpenStoreKeepsItsEventLog(t *testing.T) {
	t.Parallel()
	ev := []odometer.Event{{Namespace: "default", ID: "a", Source: "s", SpecVersion: "1.0", Type: "t", Subject: "x",
		Time: time.Unix(1700000000, 0).UTC(), IngestedAt: time.Unix(1700000000, 0).UTC()}}
	for _, tc := range []struct{ first, second string }{
		{eventLogSQLite, eventLogPebble},
		{eventLogPebble, eventLogSQLite},
	} {
		dir := t.TempDir()
		s, err := openStore(t.Context(), dir, tc.first)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendEvents(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := openStore(t.Context(), dir, tc.second); err == nil || !strings.Contains(err.Error(), "start with --event-log "+tc.first) {
			t.Errorf("opening a %s directory with %s: err = %v", tc.first, tc.second, err)
		}
		s, err = openStore(t.Context(), dir, tc.first)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ListEvents(t.Context(), odometer.EventFilter{Namespace: "default", Limit: 10})
		if err != nil || len(got) != 1 {
			t.Errorf("%s: reopened store lists %v, %v", tc.first, got, err)
		}
		s.Close()
	}
	if _, err := openStore(t.Context(), t.TempDir(), "rocksdb"); err == nil {
		t.Error("unknown event log accepted")
	}
}

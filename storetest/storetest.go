// Package storetest is the conformance suite for odometer.Store: every store
// (sqlite, postgres) runs the same tests through Run, so that they behave
// alike wherever the interface's contract leaves no room, and the contract
// is written down as tests rather than only as comments.
//
// Beyond the comments in store.go, the suite pins these behaviours:
//   - times are kept to the microsecond and returned in UTC; callers pass
//     times already truncated to odometer.TimePrecision;
//   - event Data is returned byte for byte as appended, and an event whose
//     Data is not valid JSON fails the whole AppendEvents call;
//   - an AppendEvents call with no events succeeds and stores nothing;
//   - ListEvents substring filters match literally ('%' and '_' are not
//     wildcards), and a Limit of 0 is an EINVALID error;
//   - among events of one AppendEvents call, "later appended" means later
//     in the call's input, whatever order the store writes them in;
//   - ScanEvents delivers each event once even if a subject is listed twice,
//     and returns fn's error so that errors.Is finds it;
//   - meters round-trip every field, nil maps stay nil, and not-found errors
//     name what was looked up.
package storetest

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call; it is called from parallel subtests with their own t, so it
// should register the store's Close with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) odometer.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, odometer.Store)
	}{
		{"AppendEvents/Dedup", testDedup},
		{"AppendEvents/AllOrNothing", testAllOrNothing},
		{"AppendEvents/Concurrent", testConcurrentAppend},
		{"AppendEvents/LateWatermark", testLateWatermark},
		{"Usage/Rollups", testUsageRollups},
		{"Rollups/Exact", testRollupsExact},
		{"Rollups/Concurrent", testRollupsConcurrent},
		{"ListEvents/RoundTrip", testRoundTrip},
		{"ListEvents/Filters", testListFilters},
		{"ListEvents/TieOrder", testListTieOrder},
		{"ScanEvents/Filters", testScanFilters},
		{"ScanEvents/Fields", testScanFields},
		{"ScanEvents/EarlyStop", testScanEarlyStop},
		{"ListSubjects", testListSubjects},
		{"LookupEvents", testLookupEvents},
		{"Meters/Lifecycle", testMeterLifecycle},
		{"Meters/Update", testMeterUpdate},
		{"Meters/Delete", testMeterDelete},
		{"Meters/Namespaces", testMeterNamespaces},
		{"Usage/ExactSum", testUsageExactSum},
		{"Usage/Reaggregate", testUsageReaggregate},
		{"Usage/Windows", testUsageWindows},
		{"Credits/Features", testFeatures},
		{"Credits/FeatureDelete", testFeatureDelete},
		{"Credits/Ledgers", testLedgers},
		{"Credits/LedgerList", testLedgerList},
		{"Credits/Grants", testGrants},
		{"Credits/GrantList", testGrantList},
		{"Credits/Void", testVoid},
		{"Credits/Resets", testResets},
		{"Credits/ResetAtomic", testResetAtomic},
		{"Credits/Namespaces", testCreditNamespaces},
		{"Credits/Concurrent", testCreditsConcurrent},
		{"Exports/Destinations", testExportDestinations},
		{"Exports/Delete", testExportDelete},
		{"Exports/Customers", testExportCustomers},
		{"Exports/Freeze", testExportFreeze},
		{"Exports/FreezeAtomic", testExportFreezeAtomic},
		{"Exports/FreezeConcurrent", testExportFreezeConcurrent},
		{"Exports/Update", testExportUpdate},
		{"Exports/List", testExportList},
		{"Exports/Summarize", testExportSummarize},
		{"Exports/Namespaces", testExportNamespaces},
		{"Exports/Lock", testExportLock},
		{"APIKeys/RoundTrip", testAPIKeyRoundTrip},
		{"APIKeys/Create", testAPIKeyCreate},
		{"APIKeys/List", testAPIKeyList},
		{"APIKeys/Revoke", testAPIKeyRevoke},
		{"APIKeys/Concurrent", testAPIKeyConcurrent},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

func testPing(t *testing.T, s odometer.Store) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// t0 is the base of event times in the suite; ingested is a receive time
// well after every event.
var (
	t0       = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ingested = time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
)

// ev returns an event with the given fields, SpecVersion 1.0, and
// IngestedAt set to ingested. data is JSON text, or "" for no data.
func ev(ns, source, id, typ, subject string, t time.Time, data string) odometer.Event {
	e := odometer.Event{
		Namespace:   ns,
		ID:          id,
		Source:      source,
		SpecVersion: "1.0",
		Type:        typ,
		Subject:     subject,
		Time:        t,
		IngestedAt:  ingested,
	}
	if data != "" {
		e.Data = json.RawMessage(data)
	}
	return e
}

func mustAppend(t *testing.T, s odometer.Store, events ...odometer.Event) []odometer.Outcome {
	t.Helper()
	out, err := s.AppendEvents(t.Context(), events)
	if err != nil {
		t.Fatalf("AppendEvents(%d events): %v", len(events), err)
	}
	if len(out) != len(events) {
		t.Fatalf("AppendEvents(%d events) returned %d outcomes", len(events), len(out))
	}
	return out
}

// listAll returns every event of the namespace, newest first.
func listAll(t *testing.T, s odometer.Store, ns string) []odometer.Event {
	t.Helper()
	events, err := s.ListEvents(t.Context(), odometer.EventFilter{Namespace: ns, Limit: 1 << 30})
	if err != nil {
		t.Fatalf("ListEvents(%q): %v", ns, err)
	}
	return events
}

// ids returns the events' IDs in order, never nil, so that empty results
// compare equal whatever a store returns for "none".
func ids(events []odometer.Event) []string {
	out := []string{}
	for _, e := range events {
		out = append(out, e.ID)
	}
	return out
}

func outcomes(o ...odometer.Outcome) []odometer.Outcome { return o }

const (
	acc = odometer.Accepted
	dup = odometer.Duplicate
)

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := odometer.ErrorCode(err); got != code {
		t.Fatalf("%s: error code %q (err %v), want %q", what, got, err, code)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	if s == nil {
		s = []string{}
	}
	return s
}

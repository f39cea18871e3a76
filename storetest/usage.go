package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// usageEvents returns n "tokens" events of value 0.1, half as a JSON number
// and half as a numeric string, over 10 subjects, 2 models and 2 regions,
// one second apart from t0.
func usageEvents(ns string, n int) []odometer.Event {
	events := make([]odometer.Event, n)
	for i := range events {
		value := `0.1`
		if i%2 == 1 {
			value = `"0.1"`
		}
		data := fmt.Sprintf(`{"value":%s,"model":"%s","region":"%s"}`,
			value, []string{"m-a", "m-b"}[i%2], []string{"eu", "eu", "us", "us"}[i%4])
		events[i] = ev(ns, "src", fmt.Sprint("u-", i), "tokens", fmt.Sprint("c", i%10),
			t0.Add(time.Duration(i)*time.Second), data)
	}
	return events
}

func appendInBatches(t *testing.T, s odometer.Store, events []odometer.Event, size int) {
	t.Helper()
	for len(events) > 0 {
		n := min(size, len(events))
		mustAppend(t, s, events[:n]...)
		events = events[n:]
	}
}

func sumMeter(ns string, groupBy map[string]string) *odometer.Meter {
	return &odometer.Meter{
		ID:            odometer.NewID(created),
		Namespace:     ns,
		Slug:          "tokens",
		Aggregation:   odometer.Sum,
		EventType:     "tokens",
		ValueProperty: "$.value",
		GroupBy:       groupBy,
		CreatedAt:     created,
		UpdatedAt:     created,
	}
}

// queryRows finds the meter in the store, compiles it and runs q, returning
// "subject/group values=value" per row.
func queryRows(t *testing.T, s odometer.Store, ns, slug string, q odometer.UsageQuery) []string {
	t.Helper()
	m, err := s.FindMeter(t.Context(), ns, slug)
	if err != nil {
		t.Fatalf("FindMeter: %v", err)
	}
	cm, err := m.Compile()
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if q.To.IsZero() {
		q.To = t0.Add(24 * time.Hour)
	}
	res, err := usage.QueryUsage(t.Context(), s, cm, q, q.To)
	if err != nil {
		t.Fatalf("QueryUsage(%+v): %v", q, err)
	}
	rows := []string{}
	for _, r := range res.Data {
		key := ""
		if r.Subject != nil {
			key = *r.Subject
		}
		for _, k := range q.GroupBy {
			if v := r.GroupBy[k]; v != nil {
				key += "/" + k + ":" + *v
			}
		}
		rows = append(rows, key+"="+r.Value.String())
	}
	return rows
}

func testUsageExactSum(t *testing.T, s odometer.Store) {
	const n = 10_000
	events := usageEvents("ns", n)
	appendInBatches(t, s, events, 1000)
	mustAppend(t, s, ev("ns2", "src", "u-0", "tokens", "c0", t0, `{"value":5}`))
	mustCreate(t, s, sumMeter("ns", nil))

	// 10,000 × 0.1 is exactly 1000: no binary floating point on the way.
	if diff := cmp.Diff([]string{"=1000"}, queryRows(t, s, "ns", "tokens", odometer.UsageQuery{})); diff != "" {
		t.Errorf("SUM of %d × 0.1 (-want +got):\n%s", n, diff)
	}
	// Retrying a batch counts nothing twice.
	if out := mustAppend(t, s, events[:1000]...); out[0] != dup || out[999] != dup {
		t.Fatalf("retried batch: outcomes %v…, want duplicates", out[:3])
	}
	if diff := cmp.Diff([]string{"=1000"}, queryRows(t, s, "ns", "tokens", odometer.UsageQuery{})); diff != "" {
		t.Errorf("SUM after a retried batch (-want +got):\n%s", diff)
	}
	// Through the subject index, and with a half-open time range: events
	// 0..99 are at t0+0s..t0+99s; [t0+10s, t0+20s) holds 10 of them, one per
	// subject.
	q := odometer.UsageQuery{Subjects: []string{"c3", "c7"}}
	if diff := cmp.Diff([]string{"c3=100", "c7=100"}, queryRows(t, s, "ns", "tokens", q)); diff != "" {
		t.Errorf("SUM by subject (-want +got):\n%s", diff)
	}
	q = odometer.UsageQuery{From: t0.Add(10 * time.Second), To: t0.Add(20 * time.Second)}
	if diff := cmp.Diff([]string{"=1"}, queryRows(t, s, "ns", "tokens", q)); diff != "" {
		t.Errorf("SUM over [10s, 20s) (-want +got):\n%s", diff)
	}
}

func testUsageReaggregate(t *testing.T, s odometer.Store) {
	appendInBatches(t, s, usageEvents("ns", 400), 400)
	m := sumMeter("ns", map[string]string{"model": "$.model"})
	mustCreate(t, s, m)

	q := odometer.UsageQuery{GroupBy: []string{"model"}}
	if diff := cmp.Diff([]string{"/model:m-a=20", "/model:m-b=20"}, queryRows(t, s, "ns", "tokens", q)); diff != "" {
		t.Errorf("SUM by model (-want +got):\n%s", diff)
	}

	// Changing the meter's group-by applies to events stored before.
	u := *m
	u.GroupBy = map[string]string{"region": "$.region"}
	u.UpdatedAt = created.Add(time.Hour)
	if err := s.UpdateMeter(t.Context(), &u); err != nil {
		t.Fatalf("UpdateMeter: %v", err)
	}
	q = odometer.UsageQuery{GroupBy: []string{"region"}}
	if diff := cmp.Diff([]string{"/region:eu=20", "/region:us=20"}, queryRows(t, s, "ns", "tokens", q)); diff != "" {
		t.Errorf("SUM by region after the update (-want +got):\n%s", diff)
	}
	q = odometer.UsageQuery{GroupBy: []string{"subject", "region"}, Subjects: []string{"c1"}}
	if diff := cmp.Diff([]string{"c1/region:eu=2", "c1/region:us=2"}, queryRows(t, s, "ns", "tokens", q)); diff != "" {
		t.Errorf("SUM by subject and region (-want +got):\n%s", diff)
	}
}

// testUsageWindows checks windows in time zones through the store: a DAY of
// 23 hours where Europe/Berlin starts summer time, and Asia/Kolkata's
// half-hour offset, each with events one minute either side of a local
// midnight.
func testUsageWindows(t *testing.T, s odometer.Store) {
	at := func(v string) time.Time {
		tm, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	mustAppend(t, s,
		ev("ns", "src", "b1", "tokens", "berlin", at("2025-03-29T22:59:00Z"), `{"value":1.5}`),   // 29th 23:59 +01
		ev("ns", "src", "b2", "tokens", "berlin", at("2025-03-29T23:00:00Z"), `{"value":2.25}`),  // 30th 00:00 +01
		ev("ns", "src", "b3", "tokens", "berlin", at("2025-03-30T21:59:00Z"), `{"value":3}`),     // 30th 23:59 +02
		ev("ns", "src", "b4", "tokens", "berlin", at("2025-03-30T22:00:00Z"), `{"value":4.125}`), // 31st 00:00 +02
		ev("ns", "src", "k1", "tokens", "kolkata", at("2025-03-29T18:29:00Z"), `{"value":0.1}`),  // 29th 23:59 +05:30
		ev("ns", "src", "k2", "tokens", "kolkata", at("2025-03-29T18:30:00Z"), `{"value":0.2}`),  // 30th 00:00 +05:30
	)
	mustCreate(t, s, sumMeter("ns", nil))
	m, err := s.FindMeter(t.Context(), "ns", "tokens")
	if err != nil {
		t.Fatal(err)
	}
	cm, err := m.Compile()
	if err != nil {
		t.Fatal(err)
	}
	windows := func(zone, subject, from, to string) []string {
		t.Helper()
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		q := odometer.UsageQuery{From: at(from), To: at(to), WindowSize: odometer.Day, TimeZone: loc, Subjects: []string{subject}}
		res, err := usage.QueryUsage(t.Context(), s, cm, q, q.To)
		if err != nil {
			t.Fatalf("QueryUsage(%s): %v", zone, err)
		}
		rows := []string{}
		for _, r := range res.Data {
			rows = append(rows, r.WindowStart.Format(time.RFC3339)+"/"+r.WindowEnd.Format(time.RFC3339)+"="+r.Value.String())
		}
		return rows
	}
	want := []string{
		"2025-03-28T23:00:00Z/2025-03-29T23:00:00Z=1.5",
		"2025-03-29T23:00:00Z/2025-03-30T22:00:00Z=5.25", // 23 hours
		"2025-03-30T22:00:00Z/2025-03-31T22:00:00Z=4.125",
	}
	if diff := cmp.Diff(want, windows("Europe/Berlin", "berlin", "2025-03-28T23:00:00Z", "2025-03-31T22:00:00Z")); diff != "" {
		t.Errorf("DAY windows in Europe/Berlin across the DST change (-want +got):\n%s", diff)
	}
	want = []string{
		"2025-03-28T18:30:00Z/2025-03-29T18:30:00Z=0.1",
		"2025-03-29T18:30:00Z/2025-03-30T18:30:00Z=0.2",
	}
	if diff := cmp.Diff(want, windows("Asia/Kolkata", "kolkata", "2025-03-28T18:30:00Z", "2025-03-30T18:30:00Z")); diff != "" {
		t.Errorf("DAY windows in Asia/Kolkata (-want +got):\n%s", diff)
	}
}

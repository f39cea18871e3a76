package usage_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/sqlite"
	"github.com/odometerhq/odometer/usage"
)

// The usage tests run the aggregation engine over a real SQLite store.

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// e builds an event: id, subject, RFC 3339 time, data; ingested in order.
type e struct {
	id, subject, time, data string
	ingested                string // optional receive time
	source                  string // optional; default "src"
}

func appendAll(t *testing.T, s *sqlite.Store, typ string, evs []e) {
	t.Helper()
	batch := make([]odometer.Event, len(evs))
	for i, x := range evs {
		ing := ts("2024-06-01T00:00:00Z")
		if x.ingested != "" {
			ing = ts(x.ingested)
		}
		src := x.source
		if src == "" {
			src = "src"
		}
		batch[i] = odometer.Event{Namespace: "default", ID: x.id, Source: src, SpecVersion: "1.0", Type: typ,
			Subject: x.subject, Time: ts(x.time), IngestedAt: ing, Data: []byte(x.data)}
	}
	if _, err := s.AppendEvents(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
}

func rowStrings(res *odometer.UsageResult) []string {
	var out []string
	for _, r := range res.Data {
		var b strings.Builder
		fmt.Fprintf(&b, "%s..%s", r.WindowStart.Format(time.RFC3339), r.WindowEnd.Format(time.RFC3339))
		if r.Subject != nil {
			fmt.Fprintf(&b, " subject=%s", *r.Subject)
		}
		for _, k := range sortedMapKeys(r.GroupBy) {
			if v := r.GroupBy[k]; v != nil {
				fmt.Fprintf(&b, " %s=%s", k, *v)
			} else {
				fmt.Fprintf(&b, " %s=null", k)
			}
		}
		fmt.Fprintf(&b, " %s", r.Value)
		out = append(out, b.String())
	}
	return out
}

func sortedMapKeys(m map[string]*string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	for i := range keys {
		for j := i + 1; j < len(keys); j++ {
			if keys[j] < keys[i] {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
	}
	return keys
}

func compile(t *testing.T, m odometer.Meter) *odometer.CompiledMeter {
	t.Helper()
	m.Namespace = "default"
	cm, err := m.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

var usageEvents = []e{
	{id: "1", subject: "alice", time: "2024-03-01T10:00:00Z", data: `{"v":1.5,"model":"a","user":"u1"}`},
	{id: "2", subject: "alice", time: "2024-03-01T10:30:00Z", data: `{"v":"2.25","model":"b","user":"u2"}`},
	{id: "3", subject: "bob", time: "2024-03-01T11:00:00Z", data: `{"v":-1,"model":"a","user":"u1"}`},
	{id: "4", subject: "alice", time: "2024-03-02T09:00:00Z", data: `{"v":10,"user":"u1"}`},
	{id: "5", subject: "bob", time: "2024-03-02T23:59:59.999999Z", data: `{"v":0.1,"model":"a","user":"u3"}`},
	{id: "6", subject: "bob", time: "2024-03-03T00:00:00Z", data: `{"v":0.2,"model":"a","user":"u3"}`},   // excluded by to
	{id: "7", subject: "alice", time: "2024-02-29T23:59:59Z", data: `{"v":100,"model":"a","user":"u1"}`}, // excluded by from
	{id: "8", subject: "carol", time: "2024-03-01T12:00:00Z", data: `{"model":"a"}`},                     // no value
}

func TestAggregations(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	appendAll(t, s, "use", usageEvents)
	from, to := ts("2024-03-01T00:00:00Z"), ts("2024-03-03T00:00:00Z")
	all := fmt.Sprintf("%s..%s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	for _, tc := range []struct {
		agg  odometer.Aggregation
		prop string
		want string
	}{
		{odometer.Sum, "$.v", "12.85"},
		{odometer.Count, "", "6"}, // COUNT counts events without a value too
		{odometer.Avg, "$.v", "2.57"},
		{odometer.Min, "$.v", "-1"},
		{odometer.Max, "$.v", "10"},
		{odometer.Latest, "$.v", "0.1"},
		{odometer.UniqueCount, "$.user", "3"},
	} {
		t.Run(string(tc.agg), func(t *testing.T) {
			t.Parallel()
			m := compile(t, odometer.Meter{Slug: "m", EventType: "use", Aggregation: tc.agg, ValueProperty: tc.prop})
			res, err := usage.QueryUsage(t.Context(), s, m, odometer.UsageQuery{From: from, To: to}, to)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff([]string{all + " " + tc.want}, rowStrings(res)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestUsageGroupingAndWindows(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	appendAll(t, s, "use", usageEvents)
	sum := compile(t, odometer.Meter{Slug: "m", EventType: "use", Aggregation: odometer.Sum, ValueProperty: "$.v",
		GroupBy: map[string]string{"model": "$.model", "user": "$.user"}})
	kolkata := mustLoc(t, "Asia/Kolkata")
	for _, tc := range []struct {
		name string
		q    odometer.UsageQuery
		want []string
	}{
		{"day windows, by subject", odometer.UsageQuery{From: ts("2024-03-01T00:00:00Z"), To: ts("2024-03-03T00:00:00Z"),
			WindowSize: odometer.Day, GroupBy: []string{"subject"}}, []string{
			"2024-03-01T00:00:00Z..2024-03-02T00:00:00Z subject=alice 3.75",
			"2024-03-01T00:00:00Z..2024-03-02T00:00:00Z subject=bob -1",
			"2024-03-02T00:00:00Z..2024-03-03T00:00:00Z subject=alice 10",
			"2024-03-02T00:00:00Z..2024-03-03T00:00:00Z subject=bob 0.1",
		}},
		{"group by model, null group", odometer.UsageQuery{From: ts("2024-03-01T00:00:00Z"), To: ts("2024-03-03T00:00:00Z"),
			GroupBy: []string{"model"}}, []string{
			"2024-03-01T00:00:00Z..2024-03-03T00:00:00Z model=null 10",
			"2024-03-01T00:00:00Z..2024-03-03T00:00:00Z model=a 0.6",
			"2024-03-01T00:00:00Z..2024-03-03T00:00:00Z model=b 2.25",
		}},
		{"subject filter splits by subject", odometer.UsageQuery{Subjects: []string{"bob", "bob"},
			From: ts("2024-03-01T00:00:00Z"), To: ts("2024-03-04T00:00:00Z")}, []string{
			"2024-03-01T00:00:00Z..2024-03-04T00:00:00Z subject=bob -0.7",
		}},
		{"filterGroupBy", odometer.UsageQuery{FilterGroupBy: map[string][]string{"model": {"a"}, "user": {"u1", "u3"}},
			From: ts("2024-02-01T00:00:00Z"), To: ts("2024-03-03T00:00:00Z"), WindowSize: odometer.Month}, []string{
			"2024-02-01T00:00:00Z..2024-03-01T00:00:00Z 100",
			"2024-03-01T00:00:00Z..2024-03-03T00:00:00Z 0.6",
		}},
		{"kolkata days, clipped to range", odometer.UsageQuery{From: ts("2024-03-01T00:00:00Z"), To: ts("2024-03-03T00:00:00Z"),
			WindowSize: odometer.Day, TimeZone: kolkata}, []string{
			"2024-03-01T00:00:00Z..2024-03-01T18:30:00Z 2.75",
			"2024-03-01T18:30:00Z..2024-03-02T18:30:00Z 10",
			"2024-03-02T18:30:00Z..2024-03-03T00:00:00Z 0.1",
		}},
		{"hours in kolkata start at :30", odometer.UsageQuery{From: ts("2024-03-01T09:30:00Z"), To: ts("2024-03-01T11:30:00Z"),
			WindowSize: odometer.Hour, TimeZone: kolkata}, []string{
			"2024-03-01T09:30:00Z..2024-03-01T10:30:00Z 1.5",
			"2024-03-01T10:30:00Z..2024-03-01T11:30:00Z 1.25",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := usage.QueryUsage(t.Context(), s, sum, tc.q, ts("2024-06-01T00:00:00Z"))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, rowStrings(res)); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestUsageDST(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	// One event per hour across New York's fall-back day (25 local hours) and
	// the spring-forward day (23 local hours).
	var evs []e
	for _, day := range []string{"2024-11-03T04:00:00Z", "2024-03-10T05:00:00Z"} {
		start := ts(day)
		for h := range 26 {
			evs = append(evs, e{id: fmt.Sprint(day, h), subject: "s", time: start.Add(time.Duration(h) * time.Hour).Format(time.RFC3339), data: `{}`})
		}
	}
	appendAll(t, s, "tick", evs)
	count := compile(t, odometer.Meter{Slug: "ticks", EventType: "tick", Aggregation: odometer.Count})
	ny := mustLoc(t, "America/New_York")
	for _, tc := range []struct {
		from, to string
		want     []string
	}{
		{"2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z", []string{"2024-11-03T04:00:00Z..2024-11-04T05:00:00Z 25"}},
		{"2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z", []string{"2024-03-10T05:00:00Z..2024-03-11T04:00:00Z 23"}},
	} {
		res, err := usage.QueryUsage(t.Context(), s, count, odometer.UsageQuery{From: ts(tc.from), To: ts(tc.to),
			WindowSize: odometer.Day, TimeZone: ny}, ts(tc.to))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(tc.want, rowStrings(res)); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	}
}

func TestLatestTies(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	same := "2024-03-01T10:00:00Z"
	appendAll(t, s, "gauge", []e{
		// Same event time: the later receive time wins.
		{id: "a", subject: "x", time: same, data: `{"v":1}`, ingested: "2024-03-01T10:00:05Z"},
		{id: "b", subject: "x", time: same, data: `{"v":2}`, ingested: "2024-03-01T10:00:01Z"},
		// Same event and receive time: greater source, then greater id wins.
		{id: "c", subject: "y", time: same, data: `{"v":3}`, source: "b"},
		{id: "d", subject: "y", time: same, data: `{"v":4}`, source: "a"},
		{id: "f", subject: "z", time: same, data: `{"v":5}`},
		{id: "e", subject: "z", time: same, data: `{"v":6}`},
	})
	m := compile(t, odometer.Meter{Slug: "g", EventType: "gauge", Aggregation: odometer.Latest, ValueProperty: "$.v"})
	res, err := usage.QueryUsage(t.Context(), s, m, odometer.UsageQuery{From: ts(same), To: ts("2024-03-02T00:00:00Z"),
		GroupBy: []string{"subject"}}, ts("2024-06-01T00:00:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"2024-03-01T10:00:00Z..2024-03-02T00:00:00Z subject=x 1",
		"2024-03-01T10:00:00Z..2024-03-02T00:00:00Z subject=y 3",
		"2024-03-01T10:00:00Z..2024-03-02T00:00:00Z subject=z 5",
	}
	if d := cmp.Diff(want, rowStrings(res)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestUniqueCountAcrossWindows(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	appendAll(t, s, "login", []e{
		{id: "1", subject: "x", time: "2024-03-01T10:00:00Z", data: `{"user":"u1"}`},
		{id: "2", subject: "x", time: "2024-03-01T11:00:00Z", data: `{"user":"u1"}`},
		{id: "3", subject: "x", time: "2024-03-01T12:00:00Z", data: `{"user":"u2"}`},
		{id: "4", subject: "x", time: "2024-03-02T10:00:00Z", data: `{"user":"u1"}`},
		{id: "5", subject: "x", time: "2024-03-02T10:00:00Z", data: `{"user":1}`},
		{id: "6", subject: "x", time: "2024-03-02T10:00:00Z", data: `{"user":1.0}`}, // same number as 1
	})
	m := compile(t, odometer.Meter{Slug: "u", EventType: "login", Aggregation: odometer.UniqueCount, ValueProperty: "$.user"})
	q := odometer.UsageQuery{From: ts("2024-03-01T00:00:00Z"), To: ts("2024-03-03T00:00:00Z"), WindowSize: odometer.Day}
	res, err := usage.QueryUsage(t.Context(), s, m, q, q.To)
	if err != nil {
		t.Fatal(err)
	}
	// A value seen in two windows counts once in each window, and once in
	// the whole range: distinct counts do not add up across windows.
	want := []string{
		"2024-03-01T00:00:00Z..2024-03-02T00:00:00Z 2",
		"2024-03-02T00:00:00Z..2024-03-03T00:00:00Z 2",
	}
	if d := cmp.Diff(want, rowStrings(res)); d != "" {
		t.Errorf("windows (-want +got):\n%s", d)
	}
	q.WindowSize = ""
	res, err = usage.QueryUsage(t.Context(), s, m, q, q.To)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"2024-03-01T00:00:00Z..2024-03-03T00:00:00Z 3"}, rowStrings(res)); d != "" {
		t.Errorf("whole range (-want +got):\n%s", d)
	}
}

func TestQueryValidation(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	m := compile(t, odometer.Meter{Slug: "m", EventType: "use", Aggregation: odometer.Sum, ValueProperty: "$.v",
		GroupBy: map[string]string{"model": "$.model"}})
	for _, tc := range []struct {
		q     odometer.UsageQuery
		field string
	}{
		{odometer.UsageQuery{GroupBy: []string{"region"}}, "groupBy"},
		{odometer.UsageQuery{FilterGroupBy: map[string][]string{"region": {"eu"}}}, "filterGroupBy[region]"},
		{odometer.UsageQuery{From: ts("2024-03-02T00:00:00Z"), To: ts("2024-03-01T00:00:00Z")}, "from"},
		{odometer.UsageQuery{Subjects: []string{""}}, "subject"},
	} {
		_, err := usage.QueryUsage(t.Context(), s, m, tc.q, ts("2024-06-01T00:00:00Z"))
		if f := odometer.ErrorFields(err); odometer.ErrorCode(err) != odometer.EINVALID || len(f) != 1 || f[0].Field != tc.field {
			t.Errorf("%+v: err = %v, want EINVALID on %s", tc.q, err, tc.field)
		}
	}
}

// TestExactSumMillion is the brief's exactness check end to end through a
// real store: one million events of value 0.1 sum to exactly 100000.
func TestExactSumMillion(t *testing.T) {
	if testing.Short() {
		t.Skip("stores a million events")
	}
	t.Parallel()
	s := openStore(t)
	const n, batch = 1_000_000, 10_000
	base := ts("2024-01-01T00:00:00Z")
	evs := make([]odometer.Event, batch)
	for i := 0; i < n; i += batch {
		for j := range evs {
			k := i + j
			evs[j] = odometer.Event{Namespace: "default", ID: fmt.Sprint(k), Source: "s", SpecVersion: "1.0", Type: "tenth",
				Subject: fmt.Sprint("c", k%10), Time: base.Add(time.Duration(k) * time.Second), IngestedAt: base,
				Data: []byte(`{"v":0.1}`)}
		}
		if _, err := s.AppendEvents(t.Context(), evs); err != nil {
			t.Fatal(err)
		}
	}
	m := compile(t, odometer.Meter{Slug: "tenths", EventType: "tenth", Aggregation: odometer.Sum, ValueProperty: "$.v"})
	res, err := usage.QueryUsage(t.Context(), s, m, odometer.UsageQuery{}, base.Add(n*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 1 || res.Data[0].Value.String() != "100000" {
		t.Fatalf("sum of 1,000,000 × 0.1 = %v, want exactly 100000", rowStrings(res))
	}
	avg := compile(t, odometer.Meter{Slug: "avg", EventType: "tenth", Aggregation: odometer.Avg, ValueProperty: "$.v"})
	res, err = usage.QueryUsage(t.Context(), s, avg, odometer.UsageQuery{Subjects: []string{"c3"}}, base.Add(n*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Data) != 1 || res.Data[0].Value.String() != "0.1" {
		t.Fatalf("avg = %v, want 0.1", rowStrings(res))
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

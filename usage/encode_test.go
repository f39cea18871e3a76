package usage_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// cellStrings renders cells in a canonical order, for comparisons.
func cellStrings(cells []usage.Cell) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = fmt.Sprintf("%d %v %s %v %q %x = %x", c.Rollup, c.Size, c.Bucket.Format(time.RFC3339), c.BySubject, c.Subject, c.Groups, c.Value)
	}
	slices.Sort(out)
	return out
}

// testRollers returns, as a Cells.AddEvents argument, one roller per
// aggregation (rollup IDs from 1) of meters of "calls" events valued by
// $.v (COUNT: none) and grouped by groupBy.
func testRollers(t *testing.T, groupBy map[string]string, aggs ...odometer.Aggregation) func(ns, typ string) []*usage.Roller {
	t.Helper()
	var rollers []*usage.Roller
	for id, agg := range aggs {
		m := odometer.Meter{Namespace: "default", EventType: "calls", Aggregation: agg, ValueProperty: "$.v", GroupBy: groupBy}
		if agg == odometer.Count {
			m.ValueProperty = ""
		}
		r, err := usage.NewRoller(odometer.Rollup{ID: uint64(id + 1), Meter: m})
		if err != nil {
			t.Fatal(err)
		}
		rollers = append(rollers, r)
	}
	return func(ns, typ string) []*usage.Roller { return rollers }
}

// TestEncodedCells checks that cells survive their encoding, that decoding
// several encodings adds them up as one Cells would, that a filter keeps
// only its rollups' cells, and that damaged encodings are refused.
func TestEncodedCells(t *testing.T) {
	byType := testRollers(t, map[string]string{"model": "$.model"}, odometer.Sum, odometer.Latest, odometer.Min)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var events []odometer.Event
	for i := range 300 {
		events = append(events, odometer.Event{Namespace: "default", Type: "calls", Source: "s", ID: fmt.Sprint(i),
			Subject: []string{"a", "b", "c\x00d"}[i%3], Time: t0.Add(time.Duration(i) * 7 * time.Minute),
			IngestedAt: t0.Add(time.Duration(i%5) * time.Second),
			Data:       fmt.Appendf(nil, `{"v":"%d.%03d","model":%s}`, i%17-5, i, []string{`"x"`, `null`, `"é"`}[i%3])})
	}
	outcomes := make([]odometer.Outcome, len(events))
	var whole, first, second usage.Cells
	whole.AddEvents(byType, events, outcomes)
	first.AddEvents(byType, events[:170], outcomes)
	second.AddEvents(byType, events[170:], outcomes)

	var decoded usage.Cells
	for _, part := range []*usage.Cells{&first, &second} {
		if err := decoded.AddEncoded(part.AppendEncoded(nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff(cellStrings(whole.Cells()), cellStrings(decoded.Cells())); d != "" {
		t.Errorf("decoded cells differ from the cells of all events (-want +got):\n%s", d)
	}

	var only2 usage.Cells
	if err := only2.AddEncoded(whole.AppendEncoded(nil), func(id uint64) bool { return id == 2 }); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range cellStrings(whole.Cells()) {
		if strings.HasPrefix(s, "2 ") {
			want = append(want, s)
		}
	}
	if d := cmp.Diff(want, cellStrings(only2.Cells())); d != "" || len(want) == 0 {
		t.Errorf("cells of rollup 2 (-want +got):\n%s", d)
	}

	enc := whole.AppendEncoded(nil)
	for _, bad := range [][]byte{enc[:len(enc)-1], enc[:7], append(bytes.Clone(enc), 0x05)} {
		var cs usage.Cells
		if err := cs.AddEncoded(bad, nil); err == nil {
			t.Errorf("AddEncoded of a damaged encoding (%d of %d bytes) succeeded", len(bad), len(enc))
		}
	}
}

// TestFoldList checks that folding the concatenated lists of two sets of
// events gives the cell of their union, byte for byte, for each
// aggregation, and that a list it cannot fold is reported as such.
func TestFoldList(t *testing.T) {
	rollers := testRollers(t, nil, odometer.Sum, odometer.Latest, odometer.Min, odometer.Count)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var events []odometer.Event
	for i := range 40 {
		events = append(events, odometer.Event{Namespace: "default", Type: "calls", Source: "s", ID: fmt.Sprint(i),
			Subject: "a", Time: t0.Add(time.Duration(i%7) * time.Minute), IngestedAt: t0.Add(time.Duration(i%3) * time.Second),
			Data: fmt.Appendf(nil, `{"v":"%d.%02d"}`, i%11-4, i)})
	}
	outcomes := make([]odometer.Outcome, len(events))
	var whole usage.Cells
	whole.AddEvents(rollers, events, outcomes)
	lists := map[string][]byte{}
	key := func(c usage.Cell) string {
		return fmt.Sprint(c.Rollup, c.Size, c.Bucket, c.BySubject, c.Subject, c.Groups)
	}
	for _, e := range events {
		var one usage.Cells
		one.AddEvents(rollers, []odometer.Event{e}, outcomes[:1])
		for _, c := range one.Cells() {
			lists[key(c)] = append(lists[key(c)], c.Value...)
		}
	}
	var sum, latest []byte
	for _, c := range whole.Cells() {
		got, ok := usage.FoldList(lists[key(c)])
		if !ok || !bytes.Equal(got, c.Value) {
			t.Errorf("FoldList of rollup %d's cell %v: %x, %v; want %x", c.Rollup, c.Bucket, got, ok, c.Value)
		}
		switch c.Rollup {
		case 1:
			sum = c.Value
		case 2:
			latest = c.Value
		}
	}
	for name, bad := range map[string][]byte{
		"empty":             nil,
		"truncated":         sum[:len(sum)-1],
		"two aggregations":  append(slices.Clone(sum), latest...),
		"an unknown code":   {2, 9, 1},
		"a zero-length one": {0},
	} {
		if got, ok := usage.FoldList(bad); ok {
			t.Errorf("FoldList of %s list %x = %x, want not folded", name, bad, got)
		}
	}
}

// TestDeltasScan checks that a scan of deltas, for all subjects or for
// named ones, yields what the same scan of the cells of every event does.
func TestDeltasScan(t *testing.T) {
	byType := testRollers(t, map[string]string{"model": "$.model"}, odometer.Sum, odometer.Max)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var events []odometer.Event
	for i := range 500 {
		events = append(events, odometer.Event{Namespace: "default", Type: "calls", Source: "s", ID: fmt.Sprint(i),
			Subject: fmt.Sprint("c", i%7), Time: t0.Add(time.Duration(i) * 37 * time.Minute), IngestedAt: t0,
			Data: fmt.Appendf(nil, `{"v":"%d.5","model":"%s"}`, i%13, []string{"x", "y"}[i%2])})
	}
	outcomes := make([]odometer.Outcome, len(events))
	var whole usage.Cells
	whole.AddEvents(byType, events, outcomes)
	var rows [][]byte
	for i := 0; i < len(events); i += 100 {
		var part usage.Cells
		part.AddEvents(byType, events[i:i+100], outcomes)
		rows = append(rows, part.AppendEncoded(nil))
	}
	d := usage.NewDeltas(rows)
	scan := func(scan func(odometer.RollupScan, func(*odometer.RollupCell) error) error, s odometer.RollupScan) []string {
		var out []string
		if err := scan(s, func(c *odometer.RollupCell) error {
			out = append(out, fmt.Sprintf("%s %q %x %x", c.Bucket.Format(time.RFC3339), c.Subject, c.Groups, c.Value))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	for _, s := range []odometer.RollupScan{
		{Rollup: 1, Size: 24 * time.Hour},
		{Rollup: 2, Size: time.Hour, From: t0.Add(48 * time.Hour), To: t0.Add(96 * time.Hour)},
		{Rollup: 1, BySubject: true, Size: 24 * time.Hour},
		{Rollup: 1, BySubject: true, Size: 24 * time.Hour, Subjects: []string{"c3"}},
		{Rollup: 2, BySubject: true, Size: 24 * time.Hour, Subjects: []string{"c0", "c5", "nobody"}, From: t0.Add(72 * time.Hour)},
		// Subject lists that print alike must not share decoded cells:
		// the first has none, the second has some.
		{Rollup: 1, BySubject: true, Size: 24 * time.Hour, Subjects: []string{"c1 c2"}},
		{Rollup: 1, BySubject: true, Size: 24 * time.Hour, Subjects: []string{"c1", "c2"}},
	} {
		want, got := scan(whole.Scan, s), scan(d.Scan, s)
		if d := cmp.Diff(want, got); d != "" || len(want) == 0 && !slices.Equal(s.Subjects, []string{"c1 c2"}) {
			t.Errorf("scan %+v of deltas (-cells of every event +deltas):\n%s", s, d)
		}
		// Again: the second scan of a snapshot reuses what the first decoded.
		if d := cmp.Diff(want, scan(d.Scan, s)); d != "" {
			t.Errorf("second scan %+v of deltas (-cells of every event +deltas):\n%s", s, d)
		}
	}
}

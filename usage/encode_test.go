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

// TestEncodedCells checks that cells survive their encoding, that decoding
// several encodings adds them up as one Cells would, that a filter keeps
// only its rollups' cells, and that damaged encodings are refused.
func TestEncodedCells(t *testing.T) {
	var rollers []*usage.Roller
	for id, agg := range []odometer.Aggregation{odometer.Sum, odometer.Latest, odometer.Min} {
		m := odometer.Meter{Namespace: "default", EventType: "calls", Aggregation: agg, ValueProperty: "$.v",
			GroupBy: map[string]string{"model": "$.model"}}
		r, err := usage.NewRoller(odometer.Rollup{ID: uint64(id + 1), Meter: m})
		if err != nil {
			t.Fatal(err)
		}
		rollers = append(rollers, r)
	}
	byType := func(ns, typ string) []*usage.Roller { return rollers }
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

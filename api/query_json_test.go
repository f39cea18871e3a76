package api

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// TestUsageJSON checks that appendUsageJSON writes what json.Marshal
// writes, byte for byte.
func TestUsageJSON(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	day := odometer.Day
	t0 := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	t1 := time.Date(2024, 3, 2, 0, 0, 0, 123456000, time.UTC)
	rows := []odometer.UsageRow{
		{Value: odometer.MustDecimal("1234"), WindowStart: t0, WindowEnd: t1, GroupBy: map[string]*string{"model": str("gpt-4o")}},
		{Value: odometer.MustDecimal("-0.000000000000000001"), WindowStart: t0, WindowEnd: t1, Subject: str("customer-1"),
			GroupBy: map[string]*string{"z": nil, "a": str(""), "m": str(`<b>&"q"\`)}},
		{Value: odometer.MustDecimal("1e25"), WindowStart: t0, WindowEnd: t1, Subject: str("é\u2028\x00\xff"), GroupBy: map[string]*string{}},
		{Value: odometer.MustDecimal("1.50"), WindowStart: t0.In(time.FixedZone("x", 3600)), WindowEnd: t1, Subject: str("s"), GroupBy: nil},
		{},
	}
	for _, res := range []*odometer.UsageResult{
		{},
		{Data: []odometer.UsageRow{}},
		{From: &t0, To: &t1, WindowSize: &day, Data: rows},
		{To: &t1, Data: rows[:1]},
	} {
		want, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendUsageJSON([]byte("x"), res)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[1:], want) || got[0] != 'x' {
			t.Errorf("appendUsageJSON:\n%s\njson.Marshal:\n%s", got[1:], want)
		}
	}
	bad := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	res := &odometer.UsageResult{Data: []odometer.UsageRow{{WindowStart: bad}}}
	if _, err := json.Marshal(res); err == nil {
		t.Fatal("json.Marshal accepted year 10000")
	}
	if _, err := appendUsageJSON(nil, res); err == nil {
		t.Error("appendUsageJSON accepted year 10000")
	}
}

// FuzzAppendJSONString checks appendJSONString against json.Marshal.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "gpt-4o", "a b", `"`, `\`, "<>&", "\x7f", "\t\n", "é", "\u2028", "\xff", "~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %s, json.Marshal = %s", s, got, want)
		}
	})
}

func BenchmarkUsageJSON(b *testing.B) {
	models := []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-70b"}
	t0 := time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC)
	from, to, ws := t0, t0.AddDate(0, 0, 32), odometer.Day
	res := &odometer.UsageResult{From: &from, To: &to, WindowSize: &ws}
	for d := range 32 {
		for i := range models {
			res.Data = append(res.Data, odometer.UsageRow{Value: odometer.DecimalFromInt(int64(1000 + d*i)),
				WindowStart: t0.AddDate(0, 0, d), WindowEnd: t0.AddDate(0, 0, d+1), GroupBy: map[string]*string{"model": &models[i]}})
		}
	}
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(res); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendUsageJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := appendUsageJSON(make([]byte, 0, 64+160*len(res.Data)), res); err != nil {
				b.Fatal(err)
			}
		}
	})
}

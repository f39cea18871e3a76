package odometer_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/odometerhq/odometer"
)

func TestParseValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "0.1", want: "0.1"},
		{in: "-2.50", want: "-2.5"},
		{in: "1e3", want: "1000"},
		{in: "1E-2", want: "0.01"},
		{in: "0", want: "0"},
		{in: "-0", want: "0"},
		{in: "999999999999999999999", want: "999999999999999999999"},
		{in: "1000000000000000000000", err: "out of range"},
		{in: "0.000000000000000001", want: "0.000000000000000001"},
		{in: "0.0000000000000000001", err: "more than 18 digits"},
		{in: "1.50000000000000000000000", want: "1.5"},
		{in: "NaN", err: "not a finite"},
		{in: "Infinity", err: "not a finite"},
		{in: "", err: "not a decimal"},
		{in: " 1", err: "not a decimal"},
		{in: "abc", err: "not a decimal"},
		{in: "0x10", err: "not a decimal"},
	} {
		got, err := odometer.ParseValue(tc.in)
		if tc.err != "" {
			if err == nil || !contains(err.Error(), tc.err) {
				t.Errorf("ParseValue(%q) error = %v, want it to mention %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseValue(%q): %v", tc.in, err)
			continue
		}
		if got.String() != tc.want {
			t.Errorf("ParseValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestDecimalExactSum(t *testing.T) {
	t.Parallel()
	tenth := odometer.MustDecimal("0.1")
	var sum odometer.Decimal
	for range 1_000_000 {
		sum = sum.Add(tenth)
	}
	if sum.String() != "100000" {
		t.Fatalf("1,000,000 × 0.1 = %s, want exactly 100000", sum)
	}
	b, _ := json.Marshal(map[string]odometer.Decimal{"v": odometer.MustDecimal("0.1").Add(odometer.MustDecimal("0.2"))})
	if string(b) != `{"v":0.3}` {
		t.Fatalf("JSON of 0.1+0.2 = %s, want {\"v\":0.3}", b)
	}
}

func TestDecimalQuoRound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ x, y, want string }{
		{"3", "2", "1.5"},
		{"1", "3", "0.333333333333333333"},
		{"2", "3", "0.666666666666666667"},
		{"0.000000000000000001", "2", "0"}, // half-even: 0.0000000000000000005 → 0
		{"0.000000000000000003", "2", "0.000000000000000002"},
		{"-7", "2", "-3.5"},
	} {
		got := odometer.MustDecimal(tc.x).QuoRound(odometer.MustDecimal(tc.y))
		if got.String() != tc.want {
			t.Errorf("%s / %s = %s, want %s", tc.x, tc.y, got, tc.want)
		}
	}
}

func TestDecimalJSON(t *testing.T) {
	t.Parallel()
	var v struct{ A, B odometer.Decimal }
	if err := json.Unmarshal([]byte(`{"A": 12.50, "B": "-0.001"}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.String() != "12.5" || v.B.String() != "-0.001" {
		t.Fatalf("got %s %s", v.A, v.B)
	}
	if err := json.Unmarshal([]byte(`{"A": "x"}`), &v); err == nil {
		t.Fatal("want error for non-numeric string")
	}
}

func contains(s, sub string) bool {
	return strings.Contains(s, sub)
}

func TestDecimalFloorDiv(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ x, y, q, rem string }{
		{"7", "2", "3", "1"},
		{"-7", "2", "-4", "1"},
		{"0.5", "0.25", "2", "0.00"},
		{"100", "36", "2", "28"},
		{"-0.1", "36", "-1", "35.9"},
		{"123456789012345678901234567890", "7", "17636684144620811271604938270", "0"},
	} {
		q, rem := odometer.MustDecimal(c.x).FloorDiv(odometer.MustDecimal(c.y))
		if q.Cmp(odometer.MustDecimal(c.q)) != 0 || rem.Cmp(odometer.MustDecimal(c.rem)) != 0 {
			t.Errorf("FloorDiv(%s, %s) = %s, %s; want %s, %s", c.x, c.y, q, rem, c.q, c.rem)
		}
	}
	if n, ok := odometer.MustDecimal("1E+3").Int64(); !ok || n != 1000 {
		t.Errorf("Int64(1E+3) = %d, %v", n, ok)
	}
	if _, ok := odometer.MustDecimal("1.5").Int64(); ok {
		t.Error("Int64(1.5) succeeded")
	}
}

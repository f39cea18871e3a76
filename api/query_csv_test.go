package api_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// injections are subjects and group-by values that a spreadsheet would
// evaluate, with one ordinary value.
var injections = []string{`=HYPERLINK("http://x","y")`, "+1", "-cmd", "@SUM(A1)", "\tx", "\rx", "acme"}

// neutralised is what a CSV cell holding v must read.
func neutralised(v string) string {
	if v == "acme" {
		return v
	}
	return "'" + v
}

// TestQueryCSVNeutralisesFormulas sends events whose subjects and group-by
// values are formulas and checks that the usage CSV quotes each of them,
// while the values, negative ones too, stay exact numbers.
func TestQueryCSVNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"tokens","aggregation":"SUM","eventType":"prompt",
		"valueProperty":"$.tokens","groupBy":{"model":"$.model"}}`, nil)
	var evs []string
	for i, v := range injections {
		model, _ := json.Marshal(v)
		evs = append(evs, event(fmt.Sprint("e", i), v, "2024-06-01T10:00:00Z", fmt.Sprintf(`{"tokens":"-5.5","model":%s}`, model)))
	}
	e.ok(200, "POST", "/api/v1/events", "["+strings.Join(evs, ",")+"]", nil)

	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/meters/tokens/query?from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:00Z&groupBy=subject&groupBy=model", ""},
		{"POST", "/api/v1/meters/tokens/query", `{"from":"2024-06-01T00:00:00Z","to":"2024-06-02T00:00:00Z","groupBy":["subject","model"]}`},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		resp, b := e.do(tc.method, tc.path, body, "Accept", "text/csv")
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
			t.Fatalf("%s %s: %d %s\n%s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		records, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
		if err != nil {
			t.Fatalf("%s: parse CSV: %v\n%s", tc.method, err, b)
		}
		if got := strings.Join(records[0], ","); got != "window_start,window_end,subject,model,value" {
			t.Fatalf("header %q", got)
		}
		var got [][]string
		for _, rec := range records[1:] {
			got = append(got, rec[2:])
		}
		var want [][]string
		sorted := slices.Clone(injections)
		slices.Sort(sorted) // rows are ordered by subject
		for _, v := range sorted {
			want = append(want, []string{neutralised(v), neutralised(v), "-5.5"})
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Errorf("%s: cells\n%q\nwant\n%q", tc.method, got, want)
		}
	}

	// JSON is not a spreadsheet format: it keeps the values as they are.
	var u usageDoc
	e.ok(200, "GET", "/api/v1/meters/tokens/query?from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:00Z&subject=-cmd&groupBy=model", nil, &u)
	if len(u.Data) != 1 || *u.Data[0].Subject != "-cmd" || *u.Data[0].GroupBy["model"] != "-cmd" || string(u.Data[0].Value) != "-5.5" {
		t.Errorf("JSON:\n%s", u.rows())
	}
}

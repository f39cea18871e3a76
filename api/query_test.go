package api_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

type usageDoc struct {
	From       string `json:"from"`
	To         string `json:"to"`
	WindowSize string `json:"windowSize"`
	Data       []struct {
		Value       json.RawMessage    `json:"value"`
		WindowStart string             `json:"windowStart"`
		WindowEnd   string             `json:"windowEnd"`
		Subject     *string            `json:"subject"`
		GroupBy     map[string]*string `json:"groupBy"`
	} `json:"data"`
}

// rows renders the rows as "start..end subject k=v value" lines.
func (u usageDoc) rows() string {
	var out []string
	for _, r := range u.Data {
		s := r.WindowStart + ".." + r.WindowEnd + " "
		if r.Subject != nil {
			s += *r.Subject
		} else {
			s += "-"
		}
		for k, v := range r.GroupBy {
			if v == nil {
				s += " " + k + "=null"
			} else {
				s += " " + k + "=" + *v
			}
		}
		out = append(out, s+" "+string(r.Value))
	}
	return strings.Join(out, "\n")
}

// usageEnv has a SUM meter "tokens" grouped by model and five events.
func usageEnv(t *testing.T) *env {
	e := newEnv(t)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"tokens","aggregation":"SUM","eventType":"prompt",
		"valueProperty":"$.tokens","groupBy":{"model":"$.model"}}`, nil)
	e.ok(200, "POST", "/api/v1/events", "["+
		event("e1", "a", "2024-06-01T10:00:00Z", `{"tokens":1.5,"model":"gpt-4"}`)+","+
		event("e2", "a", "2024-06-01T20:00:00Z", `{"tokens":"2.25","model":"gpt-4"}`)+","+ // June 2 in Kolkata
		event("e3", "b", "2024-06-01T11:00:00Z", `{"tokens":10,"model":"gpt-3"}`)+","+
		event("e4", "a", "2024-06-01T12:00:00Z", `{"tokens":0.1,"model":"gpt-3"}`)+","+
		event("e5", "c", "2024-06-01T12:00:00Z", `{"tokens":"0.2","model":"gpt-3"}`)+"]", nil)
	return e
}

func TestQueryMeter(t *testing.T) {
	t.Parallel()
	e := usageEnv(t)

	var u usageDoc
	e.ok(200, "GET", "/api/v1/meters/tokens/query?to=2024-06-02T00:00:00Z", nil, &u)
	if u.rows() != "2024-06-01T10:00:00Z..2024-06-02T00:00:00Z - 14.05" || u.From != "" || u.To != "2024-06-02T00:00:00Z" {
		t.Fatalf("total: %+v\n%s", u, u.rows())
	}

	q := url.Values{
		"from":                 {"2024-05-31T18:30:00Z"},
		"to":                   {"2024-06-02T18:30:00Z"},
		"windowSize":           {"DAY"},
		"windowTimeZone":       {"Asia/Kolkata"},
		"subject":              {"a"},
		"groupBy":              {"model"},
		"filterGroupBy[model]": {"gpt-4"},
		"clientId":             {"ignored"},
	}
	want := "2024-05-31T18:30:00Z..2024-06-01T18:30:00Z a model=gpt-4 1.5\n" +
		"2024-06-01T18:30:00Z..2024-06-02T18:30:00Z a model=gpt-4 2.25"
	e.ok(200, "GET", "/api/v1/meters/tokens/query?"+q.Encode(), nil, &u, "Accept", "application/json")
	if u.rows() != want || u.WindowSize != "DAY" || u.From != "2024-05-31T18:30:00Z" {
		t.Fatalf("GET: %+v\n%s", u, u.rows())
	}
	// The same query as a POST body, by meter id.
	var m meterDoc
	e.ok(200, "GET", "/api/v1/meters/tokens", nil, &m)
	e.ok(200, "POST", "/api/v1/meters/"+m.ID+"/query", `{"from":"2024-05-31T18:30:00Z","to":"2024-06-02T18:30:00Z",
		"windowSize":"DAY","windowTimeZone":"Asia/Kolkata","subject":["a"],"groupBy":["model"],
		"filterGroupBy":{"model":["gpt-4"]},"clientId":"x"}`, &u)
	if u.rows() != want {
		t.Fatalf("POST:\n%s", u.rows())
	}

	// Several subjects and filter values; subject as a group-by.
	e.ok(200, "GET", "/api/v1/meters/tokens/query?subject=a&subject=b&filterGroupBy[model]=gpt-3&filterGroupBy[model]=gpt-4&to=2024-06-02T00:00:00Z&from=2024-06-01T00:00:00Z", nil, &u)
	if u.rows() != "2024-06-01T00:00:00Z..2024-06-02T00:00:00Z a 3.85\n2024-06-01T00:00:00Z..2024-06-02T00:00:00Z b 10" {
		t.Fatalf("subjects:\n%s", u.rows())
	}
	e.ok(200, "GET", "/api/v1/meters/tokens/query?groupBy=subject&windowSize=HOUR&from=2024-06-01T12:00:00Z&to=2024-06-01T13:00:00Z", nil, &u)
	if u.rows() != "2024-06-01T12:00:00Z..2024-06-01T13:00:00Z a 0.1\n2024-06-01T12:00:00Z..2024-06-01T13:00:00Z c 0.2" {
		t.Fatalf("groupBy subject:\n%s", u.rows())
	}
	e.problem(404, "GET", "/api/v1/meters/nope/query", nil)
}

func TestQueryMeterCSV(t *testing.T) {
	t.Parallel()
	e := usageEnv(t)
	path := "/api/v1/meters/tokens/query?windowSize=DAY&from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:00Z&groupBy=model&groupBy=subject"
	resp, b := e.do("GET", path, nil, "Accept", "text/csv")
	want := "window_start,window_end,subject,model,value\n" +
		"2024-06-01T00:00:00Z,2024-06-02T00:00:00Z,a,gpt-3,0.1\n" +
		"2024-06-01T00:00:00Z,2024-06-02T00:00:00Z,a,gpt-4,3.75\n" +
		"2024-06-01T00:00:00Z,2024-06-02T00:00:00Z,b,gpt-3,10\n" +
		"2024-06-01T00:00:00Z,2024-06-02T00:00:00Z,c,gpt-3,0.2\n"
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") || string(b) != want {
		t.Fatalf("CSV: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	// Preferences: CSV only when it is preferred.
	for accept, csv := range map[string]bool{
		"":                                 false,
		"*/*":                              false,
		"application/json":                 false,
		"text/csv;q=0.5, application/json": false,
		"application/json;q=0.5, text/csv": true,
		"text/csv, application/json":       true,
		"text/html,application/xml;q=0.9,*/*;q=0.8": false,
	} {
		resp, _ := e.do("GET", path, nil, "Accept", accept)
		if got := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv"); got != csv {
			t.Errorf("Accept %q: CSV = %v, want %v", accept, got, csv)
		}
	}
	// POST answers CSV too; without group-by the subject column is empty.
	resp, b = e.do("POST", "/api/v1/meters/tokens/query", `{"from":"2024-06-01T00:00:00Z","to":"2024-06-02T00:00:00Z"}`, "Accept", "text/csv")
	if resp.StatusCode != 200 || string(b) != "window_start,window_end,subject,value\n2024-06-01T00:00:00Z,2024-06-02T00:00:00Z,,14.05\n" {
		t.Fatalf("POST CSV: %d\n%s", resp.StatusCode, b)
	}
}

func TestQueryMeterBadParams(t *testing.T) {
	t.Parallel()
	e := usageEnv(t)
	for _, tc := range []struct {
		query  string
		fields []string
	}{
		{"windowSize=WEEK", []string{"windowSize"}},
		{"windowTimeZone=Mars/Olympus", []string{"windowTimeZone"}},
		{"windowTimeZone=Local", []string{"windowTimeZone"}},
		{"from=yesterday", []string{"from"}},
		{"to=2024-06-01", []string{"to"}},
		{"from=2024-06-02T00:00:00Z&to=2024-06-01T00:00:00Z", []string{"from"}},
		{"from=2024-06-01T00:00:00Z&from=2024-06-02T00:00:00Z", []string{"from"}},
		{"groupBy=colour", []string{"groupBy"}},
		{"filterGroupBy[colour]=red", []string{"filterGroupBy[colour]"}},
		{"subject=", []string{"subject"}},
		{"limit=5", []string{"limit"}},
		{"filterGroupBy=x", []string{"filterGroupBy"}},
		{"filterCustomerId=c", []string{"filterCustomerId"}},
		{"windowSize=YEAR&bogus=1&windowTimeZone=Nowhere", []string{"bogus", "windowSize", "windowTimeZone"}},
	} {
		p := e.problem(400, "GET", "/api/v1/meters/tokens/query?"+tc.query, nil)
		wantFields(t, p, tc.fields...)
	}
	for body, field := range map[string]string{
		`{"windowSize":"WEEK"}`:                    "windowSize",
		`{"subject":"a"}`:                          "subject",
		`{"filterGroupBy":{"model":"gpt-4"}}`:      "filterGroupBy.model",
		`{"advancedMeterGroupByFilters":{"m":{}}}`: "advancedMeterGroupByFilters",
		`{"page":1}`:                               "page",
		`{"from":"2024"}`:                          "from",
	} {
		wantFields(t, e.problem(400, "POST", "/api/v1/meters/tokens/query", body), field)
	}
}

func TestGroupByValues(t *testing.T) {
	t.Parallel()
	e := usageEnv(t)
	for path, want := range map[string]string{
		"/api/v1/meters/tokens/group-by/model/values?from=2024-06-01T00:00:00Z":                         `["gpt-3","gpt-4"]`,
		"/api/v1/meters/tokens/group-by/subject/values?from=2024-06-01T00:00:00Z":                       `["a","b","c"]`,
		"/api/v1/meters/tokens/group-by/model/values?from=2024-06-01T10:00:00Z&to=2024-06-01T11:00:00Z": `["gpt-4"]`,
		"/api/v1/meters/tokens/group-by/model/values":                                                   `[]`, // from defaults to 24 h ago
	} {
		resp, b := e.do("GET", path, nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != want {
			t.Errorf("GET %s = %d %s, want %s", path, resp.StatusCode, b, want)
		}
	}
	wantFields(t, e.problem(400, "GET", "/api/v1/meters/tokens/group-by/colour/values", nil), "groupByKey")
	wantFields(t, e.problem(400, "GET", "/api/v1/meters/tokens/group-by/model/values?from=x", nil), "from")
	wantFields(t, e.problem(400, "GET", "/api/v1/meters/tokens/group-by/model/values?since=x", nil), "since")
	e.problem(404, "GET", "/api/v1/meters/nope/group-by/model/values", nil)
}

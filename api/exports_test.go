package api_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
)

type destinationDoc struct {
	Name        string `json:"name"`
	ProductCode string `json:"productCode"`
	Region      string `json:"region"`
	Account     string `json:"account"`
	StartHour   string `json:"startHour"`
	Delay       string `json:"delay"`
	Window      string `json:"window"`
	LateHorizon string `json:"lateHorizon"`
	ZeroRecords bool   `json:"zeroRecords"`
	DryRun      bool   `json:"dryRun"`
	Dimensions  []struct {
		Dimension string            `json:"dimension"`
		MeterSlug string            `json:"meterSlug"`
		GroupBy   map[string]string `json:"groupBy"`
		Multiply  string            `json:"multiply"`
		Divide    string            `json:"divide"`
		Rounding  string            `json:"rounding"`
	} `json:"dimensions"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	FrozenThrough *time.Time `json:"frozenThrough"`
}

type customerDoc struct {
	Subject      string     `json:"subject"`
	CustomerID   string     `json:"customerId"`
	AWSAccountID string     `json:"awsAccountId"`
	LicenseArn   string     `json:"licenseArn"`
	From         *time.Time `json:"from"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
}

// exportEnv is a server on the clock now (testNow if nil) with the meters
// that destinations refer to.
func exportEnv(t *testing.T, now *clock) *env {
	t.Helper()
	e := newEnv(t, func(c *api.Config) {
		if now != nil {
			c.Now = now.Now
		}
	})
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"seconds","aggregation":"SUM","eventType":"run","valueProperty":"$.s",
		"groupBy":{"kind":"$.kind","zone":"$.zone"}}`, nil)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"call"}`, nil)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"peak","aggregation":"MAX","eventType":"run","valueProperty":"$.s"}`, nil)
	return e
}

const awsProd = `{"productCode":"prod-abc","region":"us-east-1","dimensions":[
	{"dimension":"hours","meterSlug":"seconds","multiply":"1","divide":"36"},
	{"dimension":"gpu_hours","meterSlug":"seconds","groupBy":{"kind":"gpu"},"divide":3600,"rounding":"HALF_UP"}]}`

func TestExportsCRUD(t *testing.T) {
	t.Parallel()
	now := &clock{t: testNow.Add(37 * time.Minute)}
	e := exportEnv(t, now)
	var list []destinationDoc
	e.ok(200, "GET", "/api/v1/exports", nil, &list)
	if list == nil || len(list) != 0 {
		t.Fatalf("empty list = %#v; want []", list)
	}
	e.problem(404, "GET", "/api/v1/exports/aws-prod", nil)

	// Created with the defaults filled in; decimals exact, as strings.
	var d destinationDoc
	resp := e.ok(201, "PUT", "/api/v1/exports/aws-prod", awsProd, &d)
	if loc := resp.Header.Get("Location"); loc != "/api/v1/exports/aws-prod" {
		t.Errorf("Location %q", loc)
	}
	if d.Name != "aws-prod" || d.ProductCode != "prod-abc" || d.Region != "us-east-1" || d.Account != "default" ||
		d.StartHour != "2024-06-10T12:00:00Z" || d.Delay != "15m" || d.Window != "6h" || d.LateHorizon != "24h" ||
		d.ZeroRecords || d.DryRun || !d.CreatedAt.Equal(now.Now()) || !d.UpdatedAt.Equal(now.Now()) || d.FrozenThrough != nil || len(d.Dimensions) != 2 {
		t.Fatalf("created %+v", d)
	}
	hours, gpu := d.Dimensions[0], d.Dimensions[1]
	if hours.Dimension != "hours" || hours.MeterSlug != "seconds" || hours.GroupBy != nil || hours.Multiply != "1" || hours.Divide != "36" || hours.Rounding != "DOWN" {
		t.Errorf("dimension 0 = %+v", hours)
	}
	if gpu.GroupBy["kind"] != "gpu" || gpu.Multiply != "1" || gpu.Divide != "3600" || gpu.Rounding != "HALF_UP" {
		t.Errorf("dimension 1 = %+v", gpu)
	}
	_, raw := e.do("GET", "/api/v1/exports/aws-prod", nil)
	if !bytes.Contains(raw, []byte(`"divide":"36"`)) || !bytes.Contains(raw, []byte(`"frozenThrough":null`)) {
		t.Errorf("GET %s: decimals are not strings or frozenThrough is not null", raw)
	}

	// Replaced: 200; the start hour stays when left out, CreatedAt stays.
	// A destination as fetched can be sent back.
	now.advance(2 * time.Hour)
	e.ok(200, "PUT", "/api/v1/exports/aws-prod", string(raw), &d)
	if d.StartHour != "2024-06-10T12:00:00Z" || !d.CreatedAt.Equal(testNow.Add(37*time.Minute)) || !d.UpdatedAt.Equal(now.Now()) {
		t.Errorf("sent back: %+v", d)
	}
	e.ok(200, "PUT", "/api/v1/exports/aws-prod", `{"productCode":"prod-xyz","account":"default",
		"startHour":"2024-06-01T00:00:00+02:00","delay":"1h30m","window":"24h","lateHorizon":"744h","zeroRecords":true,"dryRun":true,
		"dimensions":[{"dimension":"calls","meterSlug":"calls","multiply":"0.001","divide":"1"}]}`, &d)
	if d.ProductCode != "prod-xyz" || d.Region != "" || d.Account != "default" || d.StartHour != "2024-05-31T22:00:00Z" ||
		d.Delay != "1h30m" || d.Window != "24h" || d.LateHorizon != "744h" || !d.ZeroRecords || !d.DryRun ||
		len(d.Dimensions) != 1 || d.Dimensions[0].Multiply != "0.001" {
		t.Errorf("replaced: %+v", d)
	}
	var got destinationDoc
	e.ok(200, "GET", "/api/v1/exports/aws-prod", nil, &got)
	if got.ProductCode != "prod-xyz" || got.StartHour != d.StartHour || !got.UpdatedAt.Equal(now.Now()) {
		t.Errorf("get after replace: %+v", got)
	}

	e.ok(201, "PUT", "/api/v1/exports/aws-test", awsProd, nil)
	e.ok(200, "GET", "/api/v1/exports", nil, &list)
	if len(list) != 2 || list[0].Name != "aws-prod" || list[1].Name != "aws-test" || list[1].StartHour != "2024-06-10T14:00:00Z" {
		t.Fatalf("list %+v", list)
	}

	e.ok(204, "DELETE", "/api/v1/exports/aws-prod", nil, nil)
	e.problem(404, "DELETE", "/api/v1/exports/aws-prod", nil)
	e.problem(404, "GET", "/api/v1/exports/aws-prod", nil)
	e.ok(200, "GET", "/api/v1/exports", nil, &list)
	if len(list) != 1 || list[0].Name != "aws-test" {
		t.Fatalf("list after delete %+v", list)
	}
	wantFields(t, e.problem(400, "GET", "/api/v1/exports?all=1", nil), "all")
}

func TestExportValidation(t *testing.T) {
	t.Parallel()
	e := exportEnv(t, nil)
	e.ok(201, "PUT", "/api/v1/exports/aws", awsProd, nil)
	_, before := e.do("GET", "/api/v1/exports/aws", nil)

	dims := `"dimensions":[{"dimension":"hours","meterSlug":"seconds"}]`
	for _, tc := range []struct {
		path   string // default /api/v1/exports/aws
		body   string
		fields []string
	}{
		{"", `{` + dims + `}`, []string{"productCode"}},
		{"", `{"productCode":"p"}`, []string{"dimensions"}},
		{"", `{"productCode":"p","dimensions":[]}`, []string{"dimensions"}},
		{"/api/v1/exports/no%20spaces", `{"productCode":"p",` + dims + `}`, []string{"name"}},
		{"", `{"name":"other","productCode":"p",` + dims + `}`, []string{"name"}},
		{"", `{"productCode":"p","endpoint":"localhost:4566",` + dims + `}`, []string{"endpoint"}},
		{"", `{"productCode":"p","endpoint":"https://metering.marketplace.us-east-1.amazonaws.com",` + dims + `}`, []string{"endpoint"}},
		{"", `{"productCode":"p","endpoint":5,` + dims + `}`, []string{"endpoint"}},
		{"", `{"productCode":"p","region":"127.0.0.1:19999/x",` + dims + `}`, []string{"region"}},
		{"", `{"productCode":"p","region":"us-east-1.attacker.example",` + dims + `}`, []string{"region"}},
		{"", `{"productCode":"p","account":"not a slug",` + dims + `}`, []string{"account"}},
		{"", `{"productCode":"p","account":7,` + dims + `}`, []string{"account"}},
		{"", `{"productCode":"p","colour":"red",` + dims + `}`, []string{"colour"}},
		{"", `{"productCode":"p","delay":"soon",` + dims + `}`, []string{"delay"}},
		{"", `{"productCode":"p","delay":900,` + dims + `}`, []string{"delay"}},
		{"", `{"productCode":"p","delay":"0s",` + dims + `}`, []string{"delay"}},
		{"", `{"productCode":"p","delay":"-1m",` + dims + `}`, []string{"delay"}},
		{"", `{"productCode":"p","delay":"7h","window":"24h",` + dims + `}`, []string{"delay"}},
		{"", `{"productCode":"p","delay":"5h",` + dims + `}`, []string{"delay"}},
		{"", `{"productCode":"p","window":"0",` + dims + `}`, []string{"window"}},
		{"", `{"productCode":"p","window":"25h",` + dims + `}`, []string{"window"}},
		{"", `{"productCode":"p","lateHorizon":"30m",` + dims + `}`, []string{"lateHorizon"}},
		{"", `{"productCode":"p","lateHorizon":"0h",` + dims + `}`, []string{"lateHorizon"}},
		{"", `{"productCode":"p","lateHorizon":"745h",` + dims + `}`, []string{"lateHorizon"}},
		{"", `{"productCode":"p","startHour":"2024-06-10T12:30:00Z",` + dims + `}`, []string{"startHour"}},
		{"", `{"productCode":"p","startHour":"yesterday",` + dims + `}`, []string{"startHour"}},
		{"", `{"productCode":"p","dimensions":[{"meterSlug":"seconds"}]}`, []string{"dimensions[0].dimension"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"seconds"},{"dimension":"a","meterSlug":"calls"}]}`,
			[]string{"dimensions[1].dimension"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a"}]}`, []string{"dimensions[0].meterSlug"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"seconds","multiply":"0"}]}`, []string{"dimensions[0].multiply"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"seconds","multiply":"-1"}]}`, []string{"dimensions[0].multiply"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"seconds","multiply":"lots"}]}`, []string{"dimensions[0].multiply"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"seconds","divide":0}]}`, []string{"dimensions[0].divide"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"seconds","divide":"1e30"}]}`, []string{"dimensions[0].divide"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"seconds","rounding":"UP"}]}`, []string{"dimensions[0].rounding"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"seconds","groupBy":{"kind":1}}]}`, []string{"dimensions[0].groupBy.kind"}},
		// The meters: missing, not SUM or COUNT, without the group-by key.
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"missing"}]}`, []string{"dimensions[0].meterSlug"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"calls"},{"dimension":"b","meterSlug":"peak"}]}`,
			[]string{"dimensions[1].meterSlug"}},
		{"", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"seconds","groupBy":{"kind":"gpu","model":"x"}}]}`,
			[]string{"dimensions[0].groupBy.model"}},
		// Every problem in one answer: decoding, then the rules, then the
		// meters.
		{"", `{"productCode":"","delay":"x","window":"48h","dimensions":[{"dimension":"a","meterSlug":"peak","divide":"-3","groupBy":{"n":2}},
			{"dimension":"a","meterSlug":"calls","groupBy":{"kind":"gpu"}}]}`,
			[]string{"delay", "dimensions[0].groupBy.n", "productCode", "dimensions[0].divide", "dimensions[1].dimension", "window",
				"dimensions[0].meterSlug", "dimensions[1].groupBy.kind"}},
		{"", `{"productCode":"p",}`, []string{"body"}},
		{"", ``, []string{"body"}},
	} {
		path := tc.path
		if path == "" {
			path = "/api/v1/exports/aws"
		}
		p := e.problem(400, "PUT", path, tc.body)
		wantFields(t, p, tc.fields...)
		if !strings.HasPrefix(p.Detail, "invalid") {
			t.Errorf("%s: detail %q", tc.body, p.Detail)
		}
	}
	p := e.problem(400, "PUT", "/api/v1/exports/aws", `{"productCode":"p","dimensions":[{"dimension":"a","meterSlug":"peak"}]}`)
	if want := `meter "peak" is MAX; only SUM and COUNT meters can be exported`; p.Errors[0].Reason != want {
		t.Errorf("reason %q; want %q", p.Errors[0].Reason, want)
	}
	e.problem(415, "PUT", "/api/v1/exports/aws", awsProd, "Content-Type", "text/plain")

	// No failed request changed anything.
	if _, after := e.do("GET", "/api/v1/exports/aws", nil); !bytes.Equal(before, after) {
		t.Errorf("a refused PUT changed the destination:\n%s\nto\n%s", before, after)
	}
	e.problem(404, "GET", "/api/v1/exports/no%20spaces", nil)
	var list []destinationDoc
	if e.ok(200, "GET", "/api/v1/exports", nil, &list); len(list) != 1 {
		t.Errorf("a refused PUT created a destination: %+v", list)
	}
}

func TestExportCustomers(t *testing.T) {
	t.Parallel()
	now := &clock{t: testNow}
	e := exportEnv(t, now)
	const arn = "arn:aws:license-manager::123456789012:license:l-0123456789abcdef0123456789abcdef"
	e.problem(404, "PUT", "/api/v1/exports/aws/customers/acme", `{"customerId":"cust-1"}`)
	e.problem(404, "GET", "/api/v1/exports/aws/customers", nil)
	e.ok(201, "PUT", "/api/v1/exports/aws", awsProd, nil)

	var c customerDoc
	e.ok(200, "PUT", "/api/v1/exports/aws/customers/acme", `{"customerId":"cust-1"}`, &c)
	if c.Subject != "acme" || c.CustomerID != "cust-1" || c.AWSAccountID != "" || !c.CreatedAt.Equal(now.Now()) {
		t.Fatalf("put %+v", c)
	}
	// A subject with a slash, escaped in the path.
	e.ok(200, "PUT", "/api/v1/exports/aws/customers/team%2Fbeta", `{"awsAccountId":"123456789012","licenseArn":"`+arn+`"}`, &c)
	if c.Subject != "team/beta" || c.AWSAccountID != "123456789012" || c.LicenseArn != arn || c.CustomerID != "" {
		t.Fatalf("put licensed %+v", c)
	}
	// Replaced: CreatedAt stays; a mapping as fetched can be sent back.
	now.advance(time.Hour)
	e.ok(200, "PUT", "/api/v1/exports/aws/customers/acme", `{"subject":"acme","customerId":"cust-9","createdAt":"2000-01-01T00:00:00Z"}`, &c)
	if c.CustomerID != "cust-9" || !c.CreatedAt.Equal(testNow) || !c.UpdatedAt.Equal(now.Now()) {
		t.Fatalf("replaced %+v", c)
	}
	var list []customerDoc
	e.ok(200, "GET", "/api/v1/exports/aws/customers", nil, &list)
	if len(list) != 2 || list[0].Subject != "acme" || list[0].CustomerID != "cust-9" || list[1].Subject != "team/beta" {
		t.Fatalf("list %+v", list)
	}

	for _, tc := range []struct {
		path, body string
		fields     []string
	}{
		{"acme", `{}`, []string{"customerId"}},
		{"acme", `{"customerId":"c","awsAccountId":"123456789012","licenseArn":"x"}`, []string{"awsAccountId"}},
		{"acme", `{"customerId":"c","licenseArn":"x"}`, []string{"licenseArn"}},
		{"acme", `{"awsAccountId":"123456789012"}`, []string{"licenseArn"}},
		{"acme", `{"awsAccountId":"1234","licenseArn":"x"}`, []string{"awsAccountId"}},
		{"acme", `{"subject":"other","customerId":"c"}`, []string{"subject"}},
		{"acme", `{"customerId":"c","tier":"gold"}`, []string{"tier"}},
	} {
		wantFields(t, e.problem(400, "PUT", "/api/v1/exports/aws/customers/"+tc.path, tc.body), tc.fields...)
	}
	// A customer has one subject: AWS would drop the second's records as
	// duplicates.
	p := e.problem(409, "PUT", "/api/v1/exports/aws/customers/gamma", `{"customerId":"cust-9"}`)
	if !strings.Contains(p.Detail, `mapped to subject "acme"`) {
		t.Errorf("409 detail %q", p.Detail)
	}
	e.problem(409, "PUT", "/api/v1/exports/aws/customers/gamma", `{"awsAccountId":"123456789012","licenseArn":"`+arn+`"}`)
	// Nothing changed.
	var after []customerDoc
	e.ok(200, "GET", "/api/v1/exports/aws/customers", nil, &after)
	if len(after) != 2 || after[0].CustomerID != "cust-9" || !after[0].UpdatedAt.Equal(now.Now()) {
		t.Fatalf("refused PUTs changed the customers: %+v", after)
	}

	e.ok(204, "DELETE", "/api/v1/exports/aws/customers/acme", nil, nil)
	e.problem(404, "DELETE", "/api/v1/exports/aws/customers/acme", nil)
	e.ok(200, "GET", "/api/v1/exports/aws/customers", nil, &list)
	if len(list) != 1 || list[0].Subject != "team/beta" {
		t.Fatalf("list after delete %+v", list)
	}
	// Deleting the destination deletes its customers.
	e.ok(204, "DELETE", "/api/v1/exports/aws", nil, nil)
	e.ok(201, "PUT", "/api/v1/exports/aws", awsProd, nil)
	e.ok(200, "GET", "/api/v1/exports/aws/customers", nil, &list)
	if len(list) != 0 {
		t.Fatalf("customers of a re-created destination: %+v", list)
	}
}

// A mapping's from: the first hour exported. It must be a whole UTC hour,
// no later than the current hour, no earlier than the destination's
// startHour nor than the current hour − lateHorizon; each refusal is a 400
// naming from and stores nothing. Left out, it keeps the mapping's; one
// that keeps the first hour as it was is accepted however old.
func TestExportCustomerFrom(t *testing.T) {
	t.Parallel()
	now := &clock{t: testNow.Add(2*time.Hour + 40*time.Minute)} // 14:40; the oldest from is 10:00
	e := exportEnv(t, now)
	e.ok(201, "PUT", "/api/v1/exports/aws", strings.Replace(awsProd, `{"productCode"`,
		`{"startHour":"2024-06-10T08:00:00Z","lateHorizon":"4h","productCode"`, 1), nil)
	e.ok(201, "PUT", "/api/v1/exports/late", strings.Replace(awsProd, `{"productCode"`,
		`{"startHour":"2024-06-10T13:00:00Z","productCode"`, 1), nil)

	for _, tc := range []struct {
		path, from, reason string
	}{
		{"aws", `"2024-06-10T12:30:00Z"`, "must be a whole UTC hour"},
		{"aws", `"2024-06-10T12:00:00+05:30"`, "must be a whole UTC hour"}, // 06:30 UTC
		{"aws", `"2024-06-10T15:00:00Z"`, "after the current hour 2024-06-10T14:00:00Z"},
		{"aws", `"2024-06-10T09:00:00Z"`, "lateHorizon (4h)"},
		{"aws", `"2024-06-10T07:00:00Z"`, "before the destination's startHour"},
		{"late", `"2024-06-10T12:00:00Z"`, "before the destination's startHour 2024-06-10T13:00:00Z"},
		{"aws", `"yesterday"`, "RFC 3339"},
		{"aws", `1718020800`, ""},
	} {
		p := e.problem(400, "PUT", "/api/v1/exports/"+tc.path+"/customers/acme", `{"customerId":"c","from":`+tc.from+`}`)
		wantFields(t, p, "from")
		if !strings.Contains(p.Errors[0].Reason, tc.reason) {
			t.Errorf("from %s: reason %q, want it to say %q", tc.from, p.Errors[0].Reason, tc.reason)
		}
	}
	var list []customerDoc
	for _, dest := range []string{"aws", "late"} {
		if e.ok(200, "GET", "/api/v1/exports/"+dest+"/customers", nil, &list); len(list) != 0 {
			t.Fatalf("refused PUTs stored %+v", list)
		}
	}

	// The oldest from, written with an offset: stored and returned in UTC.
	var c customerDoc
	e.ok(200, "PUT", "/api/v1/exports/aws/customers/acme", `{"customerId":"c","from":"2024-06-10T12:00:00+02:00"}`, &c)
	if c.From == nil || !c.From.Equal(mustTime("2024-06-10 10:00")) {
		t.Fatalf("put: from %v, want 10:00 UTC", c.From)
	}
	e.ok(200, "PUT", "/api/v1/exports/aws/customers/bob", `{"customerId":"b"}`, nil)
	_, raw := e.do("GET", "/api/v1/exports/aws/customers", nil)
	if !bytes.Contains(raw, []byte(`"from":"2024-06-10T10:00:00Z"`)) || bytes.Count(raw, []byte(`"from"`)) != 1 {
		t.Fatalf("GET %s: want acme's from, and none for bob", raw)
	}

	// Left out, from stays; a mapping as fetched can be sent back later,
	// when its from is older than the late horizon.
	e.ok(200, "PUT", "/api/v1/exports/aws/customers/acme", `{"customerId":"c2"}`, &c)
	if c.From == nil || !c.From.Equal(mustTime("2024-06-10 10:00")) || c.CustomerID != "c2" {
		t.Fatalf("put without from: %+v", c)
	}
	now.advance(5 * time.Hour) // 19:40; the oldest from is 15:00
	if e.ok(200, "GET", "/api/v1/exports/aws/customers", nil, &list); len(list) != 2 || list[0].Subject != "acme" {
		t.Fatalf("list %+v", list)
	}
	sent, _ := json.Marshal(list[0])
	e.ok(200, "PUT", "/api/v1/exports/aws/customers/acme", string(sent), &c)
	if !c.From.Equal(mustTime("2024-06-10 10:00")) {
		t.Fatalf("sent back: from %v", c.From)
	}
	// bob starts in the hour it was mapped in, 14:00: saying so is no change.
	e.ok(200, "PUT", "/api/v1/exports/aws/customers/bob", `{"customerId":"b","from":"2024-06-10T14:00:00Z"}`, nil)
	// Moved earlier, but beyond the horizon: refused. Moved later: taken.
	wantFields(t, e.problem(400, "PUT", "/api/v1/exports/aws/customers/acme", `{"customerId":"c2","from":"2024-06-10T11:00:00Z"}`), "from")
	e.ok(200, "PUT", "/api/v1/exports/aws/customers/acme", `{"customerId":"c2","from":"2024-06-10T16:00:00Z"}`, &c)
	if !c.From.Equal(mustTime("2024-06-10 16:00")) {
		t.Fatalf("moved later: from %v", c.From)
	}
	if e.ok(200, "GET", "/api/v1/exports/aws/customers", nil, &list); !list[0].From.Equal(mustTime("2024-06-10 16:00")) ||
		!list[1].From.Equal(mustTime("2024-06-10 14:00")) {
		t.Fatalf("GET: %+v", list)
	}
}

type recordsDoc struct {
	Records []struct {
		Subject      string `json:"subject"`
		Dimension    string `json:"dimension"`
		Hour         string `json:"hour"`
		CustomerID   string `json:"customerId"`
		AWSAccountID string `json:"awsAccountId"`
		LicenseArn   string `json:"licenseArn"`
		Quantity     int64  `json:"quantity"`
		Usage        string `json:"usage"`
		Accounted    string `json:"accounted"`
		Late         string `json:"late"`
		LateHours    []struct {
			Hour  string `json:"hour"`
			Usage string `json:"usage"`
		} `json:"lateHours"`
		Carry            string     `json:"carry"`
		Status           string     `json:"status"`
		MeteringRecordID string     `json:"meteringRecordId"`
		Reason           string     `json:"reason"`
		Attempts         int        `json:"attempts"`
		NextAttemptAt    *time.Time `json:"nextAttemptAt"`
		FrozenAt         time.Time  `json:"frozenAt"`
		UpdatedAt        time.Time  `json:"updatedAt"`
	} `json:"records"`
}

// advance moves the clock on by d.
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// keys returns "hour subject dimension status" per record, the hour as
// HH.
func (r recordsDoc) keys() string {
	var s []string
	for _, rec := range r.Records {
		s = append(s, rec.Hour[11:13]+" "+rec.Subject+" "+rec.Dimension+" "+rec.Status)
	}
	return strings.Join(s, ", ")
}

type statusDoc struct {
	Destination   string     `json:"destination"`
	FrozenThrough *time.Time `json:"frozenThrough"`
	From          time.Time  `json:"from"`
	To            time.Time  `json:"to"`
	Hours         []struct {
		Hour             time.Time `json:"hour"`
		Dimension        string    `json:"dimension"`
		Pending          int64     `json:"pending"`
		Accepted         int64     `json:"accepted"`
		Duplicate        int64     `json:"duplicate"`
		NotSubscribed    int64     `json:"notSubscribed"`
		Rejected         int64     `json:"rejected"`
		Expired          int64     `json:"expired"`
		Empty            int64     `json:"empty"`
		QuantityAccepted int64     `json:"quantityAccepted"`
	} `json:"hours"`
}

func TestExportRecordsAndStatus(t *testing.T) {
	t.Parallel()
	now := &clock{t: testNow}
	e := exportEnv(t, now)
	ctx := t.Context()
	e.ok(201, "PUT", "/api/v1/exports/aws", `{"productCode":"p","startHour":"2024-06-10T08:00:00Z",
		"dimensions":[{"dimension":"hours","meterSlug":"seconds","divide":"36"},{"dimension":"calls","meterSlug":"calls"}]}`, nil)
	e.problem(404, "GET", "/api/v1/exports/nope/records", nil)
	e.problem(404, "GET", "/api/v1/exports/nope/status", nil)

	// Nothing frozen yet: no records; the status covers the 48 hours to
	// the current hour.
	var recs recordsDoc
	e.ok(200, "GET", "/api/v1/exports/aws/records", nil, &recs)
	if recs.Records == nil || len(recs.Records) != 0 {
		t.Fatalf("records before any freeze: %#v", recs)
	}
	var st statusDoc
	e.ok(200, "GET", "/api/v1/exports/aws/status", nil, &st)
	if st.Destination != "aws" || st.FrozenThrough != nil || !st.To.Equal(testNow) || !st.From.Equal(testNow.Add(-48*time.Hour)) || st.Hours == nil || len(st.Hours) != 0 {
		t.Fatalf("status before any freeze: %+v", st)
	}

	// Freeze 08:00 and 09:00 through the store, as the exporter does,
	// then record what AWS answered.
	h8, h9 := testNow.Add(-4*time.Hour), testNow.Add(-3*time.Hour)
	rec := func(subject, dim string, hour time.Time, q int64, usage string) *odometer.ExportRecord {
		return &odometer.ExportRecord{Namespace: "default", Destination: "aws", Subject: subject, Dimension: dim, Hour: hour,
			CustomerID: "cust-" + subject, Quantity: q, Usage: odometer.MustDecimal(usage), Accounted: odometer.MustDecimal(usage),
			Carry: odometer.MustDecimal("0.5"), Status: odometer.ExportPending, NextAttemptAt: hour.Add(75 * time.Minute),
			FrozenAt: hour.Add(75 * time.Minute), UpdatedAt: hour.Add(75 * time.Minute)}
	}
	freeze := func(hour time.Time, recs ...*odometer.ExportRecord) {
		t.Helper()
		if err := e.store.FreezeExportHour(ctx, &odometer.ExportFreeze{Namespace: "default", Destination: "aws", Hour: hour, Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
	freeze(h8, rec("acme", "hours", h8, 100, "3600.5"), rec("acme", "calls", h8, 3, "3"), rec("zeta", "hours", h8, 2, "72.5"))
	late := rec("acme", "hours", h9, 7, "250")
	late.Late, late.LateHours = odometer.MustDecimal("2.25"), []odometer.ExportLate{{Hour: h8, Usage: odometer.MustDecimal("2.25")}}
	late.Accounted = odometer.MustDecimal("250")
	empty := rec("zeta", "hours", h9, 0, "0")
	empty.Status = odometer.ExportEmpty
	freeze(h9, late, rec("zeta", "calls", h9, 1, "1"), empty)
	sent := h9.Add(80 * time.Minute)
	a8, c8, z8 := rec("acme", "hours", h8, 100, "0"), rec("acme", "calls", h8, 3, "0"), rec("zeta", "hours", h8, 2, "0")
	a8.Status, a8.MeteringRecordID, a8.Attempts, a8.NextAttemptAt, a8.UpdatedAt = odometer.ExportAccepted, "mr-1", 1, time.Time{}, sent
	c8.Status, c8.Attempts, c8.NextAttemptAt, c8.UpdatedAt = odometer.ExportDuplicate, 2, time.Time{}, sent
	z8.Status, z8.Reason, z8.Attempts, z8.NextAttemptAt, z8.UpdatedAt = odometer.ExportNotSubscribed, "CustomerNotSubscribed", 1, time.Time{}, sent
	if err := e.store.UpdateExportRecords(ctx, []*odometer.ExportRecord{a8, c8, z8}); err != nil {
		t.Fatal(err)
	}

	e.ok(200, "GET", "/api/v1/exports/aws/records", nil, &recs)
	if got, want := recs.keys(), "08 acme calls duplicate, 08 acme hours accepted, 08 zeta hours not_subscribed, "+
		"09 acme hours pending, 09 zeta calls pending, 09 zeta hours empty"; got != want {
		t.Fatalf("records:\n%s\nwant:\n%s", got, want)
	}
	r := recs.Records[1]
	if r.Hour != "2024-06-10T08:00:00Z" || r.CustomerID != "cust-acme" || r.Quantity != 100 || r.Usage != "3600.5" || r.Accounted != "3600.5" ||
		r.Late != "0" || len(r.LateHours) != 0 || r.Carry != "0.5" || r.MeteringRecordID != "mr-1" || r.Attempts != 1 ||
		r.NextAttemptAt != nil || !r.FrozenAt.Equal(h8.Add(75*time.Minute)) || !r.UpdatedAt.Equal(sent) {
		t.Errorf("accepted record %+v", r)
	}
	if r := recs.Records[2]; r.Reason != "CustomerNotSubscribed" {
		t.Errorf("not subscribed record %+v", r)
	}
	r = recs.Records[3]
	if r.Late != "2.25" || len(r.LateHours) != 1 || r.LateHours[0].Hour != "2024-06-10T08:00:00Z" || r.LateHours[0].Usage != "2.25" ||
		r.NextAttemptAt == nil || !r.NextAttemptAt.Equal(h9.Add(75*time.Minute)) {
		t.Errorf("pending record with late usage %+v", r)
	}
	_, raw := e.do("GET", "/api/v1/exports/aws/records?subject=acme&dimension=hours&from=2024-06-10T09:00:00Z", nil)
	if !bytes.Contains(raw, []byte(`"usage":"2.25"`)) || !bytes.Contains(raw, []byte(`"carry":"0.5"`)) {
		t.Errorf("decimals are not strings: %s", raw)
	}

	for query, want := range map[string]string{
		"?status=pending":                         "09 acme hours pending, 09 zeta calls pending",
		"?status=accepted,duplicate,accepted":     "08 acme calls duplicate, 08 acme hours accepted",
		"?status=not_subscribed&subject=zeta":     "08 zeta hours not_subscribed",
		"?dimension=calls":                        "08 acme calls duplicate, 09 zeta calls pending",
		"?from=2024-06-10T09:00:00Z&limit=2":      "09 acme hours pending, 09 zeta calls pending",
		"?to=2024-06-10T09:00:00Z&subject=acme":   "08 acme calls duplicate, 08 acme hours accepted",
		"?from=2024-06-10T10:00:00Z":              "",
		"?status=rejected,expired&subject=nobody": "",
	} {
		e.ok(200, "GET", "/api/v1/exports/aws/records"+query, nil, &recs)
		if got := recs.keys(); got != want {
			t.Errorf("records%s:\n%s\nwant:\n%s", query, got, want)
		}
	}
	for query, fields := range map[string][]string{
		"?status=sent":    {"status"},
		"?limit=0":        {"limit"},
		"?limit=1001":     {"limit"},
		"?from=yesterday": {"from"},
		"?from=2024-06-10T09:00:00Z&to=2024-06-10T09:00:00Z": {"from"},
		"?page=2": {"page"},
	} {
		wantFields(t, e.problem(400, "GET", "/api/v1/exports/aws/records"+query, nil), fields...)
	}

	// The status: the 48 hours to the end of the last frozen hour.
	e.ok(200, "GET", "/api/v1/exports/aws/status", nil, &st)
	if st.FrozenThrough == nil || !st.FrozenThrough.Equal(h9.Add(time.Hour)) || !st.To.Equal(h9.Add(time.Hour)) ||
		!st.From.Equal(h9.Add(-47*time.Hour)) {
		t.Fatalf("status range: %+v", st)
	}
	type row struct {
		hour                                                        int
		dim                                                         string
		pending, accepted, dup, notSub, rejected, expired, empty, q int64
	}
	var got []row
	for _, h := range st.Hours {
		got = append(got, row{h.Hour.Hour(), h.Dimension, h.Pending, h.Accepted, h.Duplicate, h.NotSubscribed, h.Rejected, h.Expired, h.Empty, h.QuantityAccepted})
	}
	want := []row{
		{8, "calls", 0, 0, 1, 0, 0, 0, 0, 3},
		{8, "hours", 0, 1, 0, 1, 0, 0, 0, 100},
		{9, "calls", 1, 0, 0, 0, 0, 0, 0, 0},
		{9, "hours", 1, 0, 0, 0, 0, 0, 1, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("status rows %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("status row %d = %+v; want %+v", i, got[i], want[i])
		}
	}
	e.ok(200, "GET", "/api/v1/exports/aws/status?from=2024-06-10T09:00:00Z", nil, &st)
	if len(st.Hours) != 2 || st.Hours[0].Hour.Hour() != 9 || !st.To.Equal(h9.Add(time.Hour)) {
		t.Errorf("status from 09:00: %+v", st)
	}
	e.ok(200, "GET", "/api/v1/exports/aws/status?from=2024-06-10T08:00:00Z&to=2024-06-10T09:00:00Z", nil, &st)
	if len(st.Hours) != 2 || st.Hours[1].Hour.Hour() != 8 {
		t.Errorf("status of 08:00: %+v", st)
	}
	// A from after the frozen hours looks 48 hours on from it.
	e.ok(200, "GET", "/api/v1/exports/aws/status?from=2024-06-11T00:00:00Z", nil, &st)
	if len(st.Hours) != 0 || !st.To.Equal(time.Date(2024, 6, 13, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("status from a later day: %+v", st)
	}
	wantFields(t, e.problem(400, "GET", "/api/v1/exports/aws/status?from=2024-06-10T09:00:00Z&to=2024-06-10T08:00:00Z", nil), "from")
	wantFields(t, e.problem(400, "GET", "/api/v1/exports/aws/status?to=later&status=x", nil), "status", "to")

	// Replacing the definition keeps the frozen hours and the records.
	e.ok(200, "PUT", "/api/v1/exports/aws", `{"productCode":"p2","dimensions":[{"dimension":"hours","meterSlug":"seconds"}]}`, nil)
	var d destinationDoc
	e.ok(200, "GET", "/api/v1/exports/aws", nil, &d)
	if d.FrozenThrough == nil || !d.FrozenThrough.Equal(h9.Add(time.Hour)) || d.StartHour != "2024-06-10T08:00:00Z" {
		t.Errorf("after a replace: %+v", d)
	}
	if e.ok(200, "GET", "/api/v1/exports/aws/records", nil, &recs); len(recs.Records) != 6 {
		t.Errorf("after a replace: %d records", len(recs.Records))
	}
}

// TestExportRoutesDocumented checks that openapi.yaml documents every
// export route.
func TestExportRoutesDocumented(t *testing.T) {
	t.Parallel()
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{
		"GET /api/v1/exports", "GET /api/v1/exports/{destination}", "PUT /api/v1/exports/{destination}",
		"DELETE /api/v1/exports/{destination}", "GET /api/v1/exports/{destination}/customers",
		"PUT /api/v1/exports/{destination}/customers/{subject}", "DELETE /api/v1/exports/{destination}/customers/{subject}",
		"GET /api/v1/exports/{destination}/records", "GET /api/v1/exports/{destination}/status",
	} {
		method, path, _ := strings.Cut(route, " ")
		op, _ := doc.Paths[path][strings.ToLower(method)].(map[string]any)
		if op == nil || op["responses"] == nil {
			t.Errorf("openapi.yaml does not document %s", route)
		}
	}
}

// A meter an export dimension reads cannot be deleted, nor lose a group-by
// key the dimension filters on; other changes go through.
func TestExportedMeterChanges(t *testing.T) {
	t.Parallel()
	e := exportEnv(t, nil)
	e.ok(201, "PUT", "/api/v1/exports/aws", awsProd, nil)
	p := e.problem(409, "DELETE", "/api/v1/meters/seconds", nil)
	if !strings.Contains(p.Detail, "aws/hours") || !strings.Contains(p.Detail, "aws/gpu_hours") {
		t.Errorf("delete refused with %q; want the dimensions named", p.Detail)
	}
	p = e.problem(409, "PUT", "/api/v1/meters/seconds", `{"groupBy":{"zone":"$.zone"}}`)
	if !strings.Contains(p.Detail, `aws/gpu_hours (filters on "kind")`) {
		t.Errorf("groupBy change refused with %q", p.Detail)
	}
	var m struct{ GroupBy map[string]string }
	e.ok(200, "GET", "/api/v1/meters/seconds", nil, &m)
	if len(m.GroupBy) != 2 {
		t.Fatalf("a refused change changed the meter: %+v", m)
	}
	e.ok(200, "PUT", "/api/v1/meters/seconds", `{"groupBy":{"kind":"$.kind"}}`, nil)
	e.ok(204, "DELETE", "/api/v1/meters/calls", nil, nil)
	e.ok(204, "DELETE", "/api/v1/exports/aws", nil, nil)
	e.ok(204, "DELETE", "/api/v1/meters/seconds", nil, nil)
}

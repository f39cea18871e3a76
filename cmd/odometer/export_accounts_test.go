package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/export/awsmp/awsmptest"
	"github.com/odometerhq/odometer/sqlite"
)

// The config file's aws.accounts (docs/export-aws.md, "AWS accounts and
// grants"): checked at start-up, naming the key and its line; applied to
// the file's own destinations and to the API's.

func TestAccountsConfig(t *testing.T) {
	t.Parallel()
	lc, err := parseConfig([]byte(`
aws:
  accounts:
    - name: main
      namespaces: [default, tenant-a]
      productCodes: [prod-abc123]
      region: us-east-1
      profile: seller
      roleArn: arn:aws:iam::123456789012:role/odometer-tenant-a
      externalId: tenant-a
      endpoint: http://127.0.0.1:4566
      stsEndpoint: http://127.0.0.1:4567
    - {name: any, namespaces: [tenant-b], productCodes: ["*"]}
exports:
  - {name: aws, productCode: prod-abc123, account: main, dimensions: [{dimension: d, meterSlug: m}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	as := lc.accounts.List()
	if len(as) != 2 {
		t.Fatalf("accounts %+v", as)
	}
	want := export.Account{Name: "main", Namespaces: []string{"default", "tenant-a"}, ProductCodes: []string{"prod-abc123"},
		Region: "us-east-1", Profile: "seller", RoleARN: "arn:aws:iam::123456789012:role/odometer-tenant-a", ExternalID: "tenant-a",
		Endpoint: "http://127.0.0.1:4566", STSEndpoint: "http://127.0.0.1:4567"}
	if got := as[1]; fmt.Sprint(*got) != fmt.Sprint(want) {
		t.Errorf("account main = %+v\nwant %+v", *got, want)
	}
	if lc.exports[0].Destination.Account != "main" {
		t.Errorf("the destination's account: %+v", lc.exports[0].Destination)
	}

	// No accounts declared: the implicit default.
	for _, yaml := range []string{"", "aws: {}", "aws: {accounts: []}"} {
		lc, err := parseConfig([]byte(yaml))
		if err != nil {
			t.Fatalf("%q: %v", yaml, err)
		}
		if as := lc.accounts.List(); len(as) != 1 || as[0].Name != "default" || strings.Join(as[0].Namespaces, ",") != "default" ||
			strings.Join(as[0].ProductCodes, ",") != "*" || as[0].Profile != "" || as[0].RoleARN != "" || as[0].Endpoint != "" {
			t.Errorf("%q: accounts %+v", yaml, as)
		}
	}

	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown key", "aws:\n  accounts:\n    - name: main\n      namespaces: [default]\n      productCodes: [p]\n      rolearn: x",
			[]string{`line 6: unknown key "rolearn"`}},
		{"unknown aws key", "aws:\n  account: []", []string{`line 2: unknown key "account"`}},
		{"namespaces left out", "aws:\n  accounts:\n    - name: main\n      productCodes: [p]",
			[]string{"aws.accounts[0].namespaces: line 3: required: list the namespaces"}},
		{"a namespace as text", "aws:\n  accounts:\n    - {name: main, namespaces: default, productCodes: [p]}",
			[]string{"line 3: cannot unmarshal"}},
		{"no product codes", "aws:\n  accounts:\n    - name: main\n      namespaces: [default]\n      productCodes: []",
			[]string{"aws.accounts[0].productCodes: line 3: required"}},
		{"name twice", "aws:\n  accounts:\n    - {name: main, namespaces: [default], productCodes: [p]}\n" +
			"    - {name: main, namespaces: [tenant], productCodes: [q]}", []string{`aws.accounts[1].name: line 4: "main" is aws.accounts[0]'s already`}},
		{"namespace twice", "aws:\n  accounts:\n    - name: main\n      namespaces:\n        - default\n        - default\n      productCodes: [p]",
			[]string{`aws.accounts[0].namespaces[1]: line 6: "default" is aws.accounts[0].namespaces[0] already`}},
		{"region", "aws:\n  accounts:\n    - name: main\n      namespaces: [default]\n      productCodes: [p]\n      region: localhost",
			[]string{"aws.accounts[0].region: line 6: must be an AWS region"}},
		{"external id alone", "aws:\n  accounts:\n    - {name: main, namespaces: [default], productCodes: [p], externalId: x1}",
			[]string{"aws.accounts[0].externalId: line 3: goes with roleArn only"}},
		{"several problems", "aws:\n  accounts:\n    - {name: main, namespaces: [default], productCodes: [p], endpoint: nope}\n" +
			"    - {name: 'no slug', namespaces: [''], productCodes: ['*', p]}",
			[]string{"aws.accounts[0].endpoint: line 3: must be an absolute http or https URL", "aws.accounts[1].name: line 4",
				"aws.accounts[1].namespaces[0]: line 4: is empty", `aws.accounts[1].productCodes: line 4: "*" allows any product code`}},
		// A destination's endpoint moved to its account.
		{"endpoint of a destination", "exports:\n  - name: aws\n    productCode: p\n    endpoint: http://127.0.0.1:4566\n    dimensions: [{dimension: d, meterSlug: m}]",
			[]string{`exports[0] ("aws", line 2)`, "endpoint: line 4: is set per AWS account now: move it to aws.accounts[].endpoint"}},
		{"account not a slug", "exports:\n  - {name: aws, productCode: p, account: 'a b', dimensions: [{dimension: d, meterSlug: m}]}",
			[]string{"account: must be 1–63 letters"}},
		{"region of a destination", "exports:\n  - {name: aws, productCode: p, region: eu, dimensions: [{dimension: d, meterSlug: m}]}",
			[]string{"region: must be an AWS region"}},
	} {
		wantConfigError(t, tc.name, tc.yaml, tc.want...)
	}
}

// The config file's destinations pass the checks the API's do; a refused
// one fails the start-up naming it, and nothing is stored.
func TestSyncExportsChecksGrants(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.DiscardHandler)
	now := time.Date(2026, 3, 1, 10, 20, 0, 0, time.UTC)
	const accounts = `
meters: [{slug: calls, eventType: call, aggregation: COUNT}]
aws:
  accounts:
    - {name: main, namespaces: [default], productCodes: [prod-a, prod-b]}
    - {name: tenants, namespaces: [tenant-a], productCodes: ["*"]}
`
	for _, tc := range []struct{ exports, want string }{
		{"{name: aws, productCode: prod-x}", `export destination "aws": productCode not allowed: AWS account "main" does not allow product code "prod-x"`},
		{"{name: aws, productCode: prod-a, account: tenants}", `export destination "aws": account not allowed: namespace "default" may not export with AWS account "tenants"`},
		{"{name: aws, productCode: prod-a, account: nope}", `export destination "aws": account not allowed: namespace "default" may not export with AWS account "nope"`},
	} {
		lc, err := parseConfig([]byte(accounts + "exports:\n  - " + strings.Replace(tc.exports, "}", ", dimensions: [{dimension: d, meterSlug: calls}]}", 1)))
		if err != nil {
			t.Fatal(err)
		}
		if err := syncMeters(ctx, store, lc.meters, now, log); err != nil {
			t.Fatal(err)
		}
		if err := syncExports(ctx, store, lc.exports, lc.accounts, now, log); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error containing %q", tc.exports, err, tc.want)
		}
	}
	// Several accounts granted to default: the destination must name one.
	lc, err := parseConfig([]byte(strings.Replace(accounts, "[tenant-a]", "[tenant-a, default]", 1) +
		"exports:\n  - {name: aws, productCode: prod-a, dimensions: [{dimension: d, meterSlug: calls}]}"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syncExports(ctx, store, lc.exports, lc.accounts, now, log); err == nil ||
		!strings.Contains(err.Error(), `export destination "aws": invalid account: required: namespace "default" may export with several AWS accounts (main, tenants)`) {
		t.Errorf("several accounts: %v", err)
	}
	if ds, err := store.ListExportDestinations(ctx, ""); err != nil || len(ds) != 0 {
		t.Fatalf("refused destinations were stored: %+v, %v", ds, err)
	}
	lc.exports[0].Destination.Account = "tenants"
	if err := syncExports(ctx, store, lc.exports, lc.accounts, now, log); err != nil {
		t.Fatal(err)
	}
	if d, err := store.FindExportDestination(ctx, "default", "aws"); err != nil || d.Account != "tenants" {
		t.Fatalf("stored %+v, %v", d, err)
	}
}

// A refused destination of the config file stops odometer serve from
// starting, saying why.
func TestServeRefusesConfigDestination(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "odometer.yaml")
	if err := os.WriteFile(cfg, []byte(`
meters: [{slug: calls, eventType: call, aggregation: COUNT}]
aws:
  accounts: [{name: tenants, namespaces: [tenant-a], productCodes: ["*"]}]
exports:
  - {name: aws, productCode: p, dimensions: [{dimension: d, meterSlug: calls}]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	err := run(t.Context(), []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", cfg}, mapEnv(nil),
		strings.NewReader(""), &strings.Builder{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), `export destination "aws": account not allowed: namespace "default" may not export to AWS`) {
		t.Fatalf("serve: %v", err)
	}
}

// The reported attack, end to end: with keys on, namespace tenant-b's
// admin sets a live destination's endpoint to a listener of its own. The
// server refuses it (400 naming endpoint) and never connects there; the
// destination tenant-b may make goes to the endpoint of the account the
// operator granted it, signed with the operator's credentials, and other
// accounts and product codes are refused. Not parallel: the AWS SDK reads
// its credentials from the process environment.
func TestServeTenantCannotRedirectExports(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDOPERATOR")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	listener, accepted := awsmptest.Trap(t)
	operator, tenants := awsmptest.Start(t, "prod-operator"), awsmptest.Start(t, "prod-b")

	out := mustRun(t, "keys", "create", "--offline", "--namespace", "tenant-b", "--name", "b-admin", "--scope", "admin")
	token := tokenRE.FindStringSubmatch(out)[1]
	cfg := filepath.Join(t.TempDir(), "odometer.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
aws:
  accounts:
    - {name: main, namespaces: [default], productCodes: ["*"], region: us-east-1, endpoint: %s}
    - {name: tenants, namespaces: [tenant-b], productCodes: [prod-b], region: us-east-1, endpoint: %s}
keys:
%s`, operator.URL, tenants.URL, out[strings.Index(out, "\n- {")+1:])), 0o644); err != nil {
		t.Fatal(err)
	}
	url, log, stop := startServe(t, "--config", cfg, "--export-interval", "50ms")
	defer stop()
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := call("POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"call"}`); status != 201 {
		t.Fatalf("meter: %d %s", status, body)
	}
	start := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	dest := func(extra string) string {
		return `{"productCode":"prod-b","dryRun":false,"delay":"1s","startHour":"` + start.Format(time.RFC3339) + `",` + extra +
			`"dimensions":[{"dimension":"calls","meterSlug":"calls"}]}`
	}
	refused := time.Now()
	for _, tc := range []struct {
		body   string
		status int
		field  string
	}{
		{dest(`"endpoint":"` + listener + `",`), 400, `"field":"endpoint"`},
		{dest(`"account":"main",`), 403, `"field":"account"`},
		{strings.Replace(dest(""), "prod-b", "prod-operator", 1), 403, `"field":"productCode"`},
	} {
		if status, body := call("PUT", "/api/v1/exports/x", tc.body); status != tc.status || !strings.Contains(body, tc.field) {
			t.Errorf("PUT %s: %d %s; want %d naming %s", tc.body, status, body, tc.status, tc.field)
		}
	}
	if status, body := call("GET", "/api/v1/exports/x", ""); status != 404 {
		t.Fatalf("after the refusals: %d %s", status, body)
	}

	// What tenant-b may do goes where the operator said.
	if status, body := call("PUT", "/api/v1/exports/x", dest("")); status != 201 || !strings.Contains(body, `"account":"tenants"`) {
		t.Fatalf("PUT: %d %s", status, body)
	}
	if status, body := call("PUT", "/api/v1/exports/x/customers/acme", `{"customerId":"cust-b","from":"`+start.Format(time.RFC3339)+`"}`); status != 200 {
		t.Fatalf("customer: %d %s", status, body)
	}
	var events strings.Builder
	events.WriteString("[")
	for h := range 3 {
		if h > 0 {
			events.WriteString(",")
		}
		fmt.Fprintf(&events, `{"specversion":"1.0","id":"e%d","source":"t","type":"call","subject":"acme","time":%q}`,
			h, start.Add(time.Duration(h)*time.Hour+time.Minute).Format(time.RFC3339))
	}
	if status, body := call("POST", "/api/v1/events", events.String()+"]"); status != 200 {
		t.Fatalf("events: %d %s", status, body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for tenants.Total("cust-b", "calls") != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the account's endpoint metered %v; log:\n%s", tenants.Accepted(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The report saw the POST within 2 s: give it more than that.
	time.Sleep(time.Until(refused.Add(3 * time.Second)))
	if n := accepted.Load(); n != 0 {
		t.Errorf("the server connected %d times to the endpoint tenant-b asked for", n)
	}
	for _, s := range tenants.Signers() {
		if s.KeyID != "AKIDOPERATOR" || s.Region != "us-east-1" {
			t.Errorf("a call signed by %+v", s)
		}
	}
	if n := len(operator.Calls()); n != 0 {
		t.Errorf("%d calls to the operator's own account's endpoint", n)
	}
	if strings.Contains(log.String(), "ALERT") {
		t.Errorf("alerts in the log:\n%s", log)
	}
}

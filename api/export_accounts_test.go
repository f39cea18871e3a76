package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/export/awsmp/awsmptest"
)

// tenantAccounts grant the namespaces of the tests with keys (seed's alpha
// and beta) any product code, with one AWS account.
var tenantAccounts = mustAccounts(export.Account{Name: "tenants", Namespaces: []string{"alpha", "beta"}, ProductCodes: []string{"*"}})

func mustAccounts(list ...export.Account) *export.Accounts {
	as, err := export.NewAccounts(list)
	if err != nil {
		panic(err)
	}
	return as
}

// The operator's grants, as PUT /api/v1/exports/{destination} applies
// them: namespace alpha has two accounts, beta one, carol none.
var grantAccounts = mustAccounts(
	export.Account{Name: "shared", Namespaces: []string{"alpha", "beta"}, ProductCodes: []string{"prod-shared"},
		Endpoint: "http://127.0.0.1:1/operator"},
	export.Account{Name: "alpha-own", Namespaces: []string{"alpha"}, ProductCodes: []string{"*"}},
	export.Account{Name: "nobodys", Namespaces: []string{"dave"}, ProductCodes: []string{"*"}},
)

// The reported attack: namespace beta's admin sets a destination's
// endpoint to an address of its choosing, live. It is refused naming
// endpoint, and nothing is stored; so is every form of it, and a region
// that would end up in a host name. (That the exporter never uses a
// stored endpoint is export/exporter's TestLegacyEndpointIsNeverUsed.)
func TestExportEndpointIsRefused(t *testing.T) {
	t.Parallel()
	e := closedEnv(t)
	alpha, beta := seed(e, "alpha"), seed(e, "beta")
	listener, accepted := awsmptest.Trap(t)
	before := snapshot(e, beta)
	dims := `"dimensions":[{"dimension":"tokens","meterSlug":"` + beta.meterSlug + `"}]`
	for _, tc := range []struct {
		path, body, field string
	}{
		{"/api/v1/exports/x", `{"productCode":"p","endpoint":"` + listener + `","dryRun":false,` + dims + `}`, "endpoint"},
		{"/api/v1/exports/" + beta.dest, `{"productCode":"p","endpoint":"` + listener + `","dryRun":false,` + dims + `}`, "endpoint"},
		{"/api/v1/exports/x", `{"productCode":"p","endpoint":{"url":"` + listener + `"},` + dims + `}`, "endpoint"},
		{"/api/v1/exports/x", `{"productCode":"p","region":"x.` + strings.TrimPrefix(listener, "http://") + `",` + dims + `}`, "region"},
	} {
		p := e.problem(400, "PUT", tc.path, tc.body, bearer(beta.admin)...)
		wantFields(t, p, tc.field)
		if tc.field == "endpoint" && !strings.Contains(p.Errors[0].Reason, "set by the operator in the config file: aws.accounts[].endpoint") {
			t.Errorf("reason %q", p.Errors[0].Reason)
		}
	}
	e.problem(404, "GET", "/api/v1/exports/x", nil, bearer(beta.admin)...)
	if after := snapshot(e, beta); after != before {
		t.Errorf("refused PUTs changed beta's data:\nbefore %s\nafter  %s", before, after)
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections to the listener", n)
	}

	// An empty or null endpoint is no endpoint: a client that sends one
	// back as it had it is not refused.
	for _, ep := range []string{`""`, `null`} {
		e.ok(200, "PUT", "/api/v1/exports/"+alpha.dest, `{"productCode":"p","endpoint":`+ep+`,
			"dimensions":[{"dimension":"tokens","meterSlug":"`+alpha.meterSlug+`"}]}`, nil, bearer(alpha.admin)...)
	}
	var d destinationDoc
	_, raw := e.do("GET", "/api/v1/exports/"+alpha.dest, nil, bearer(alpha.admin)...)
	if bytes.Contains(raw, []byte("endpoint")) {
		t.Errorf("GET shows an endpoint: %s", raw)
	}
	e.ok(200, "PUT", "/api/v1/exports/"+alpha.dest, string(raw), &d, bearer(alpha.admin)...)
	if d.Account != "tenants" {
		t.Errorf("account %q, want the only one granted", d.Account)
	}
}

// What account and product code a namespace may use is the operator's
// to say: every refusal names the field, and stores nothing.
func TestExportAccountGrants(t *testing.T) {
	t.Parallel()
	e := closedEnv(t, func(c *api.Config) { c.ExportAccounts = grantAccounts })
	alphaKey, betaKey, carolKey := e.key("alpha", "admin"), e.key("beta", "admin"), e.key("carol", "admin")
	for _, k := range []string{alphaKey, betaKey, carolKey} {
		e.ok(201, "POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"call"}`, nil, bearer(k)...)
	}
	put := func(key, product, account string) (int, problemDoc, destinationDoc) {
		t.Helper()
		body := `{"productCode":"` + product + `","dimensions":[{"dimension":"calls","meterSlug":"calls"}]`
		if account != "" {
			body += `,"account":"` + account + `"`
		}
		resp, b := e.do("PUT", "/api/v1/exports/aws", body+"}", bearer(key)...)
		var p problemDoc
		var d destinationDoc
		out, ct := any(&d), "application/json"
		if resp.StatusCode >= 400 {
			out, ct = &p, "application/problem+json"
		}
		if err := json.Unmarshal(b, out); err != nil || resp.Header.Get("Content-Type") != ct {
			t.Fatalf("PUT: %d %s %s: %v", resp.StatusCode, resp.Header.Get("Content-Type"), b, err)
		}
		if resp.StatusCode >= 400 && (p.Status != resp.StatusCode || p.Title != http.StatusText(resp.StatusCode)) {
			t.Errorf("problem %s", b)
		}
		return resp.StatusCode, p, d
	}
	for _, tc := range []struct {
		name, key, product, account string
		status                      int
		field, reason               string
	}{
		{"no account granted", carolKey, "prod-shared", "", 403, "account", `namespace "carol" may not export to AWS`},
		{"no account granted, one named", carolKey, "prod-shared", "shared", 403, "account", `namespace "carol" may not export to AWS`},
		{"another namespace's account", betaKey, "prod-shared", "alpha-own", 403, "account", `may not export with AWS account "alpha-own"`},
		{"an account granted to nobody here", betaKey, "prod-shared", "nobodys", 403, "account", `may not export with AWS account "nobodys"`},
		{"an account that does not exist", betaKey, "prod-shared", "missing", 403, "account", `may not export with AWS account "missing"`},
		{"a product code not allowed", betaKey, "prod-other", "", 403, "productCode", `AWS account "shared" does not allow product code "prod-other"`},
		{"a product code not allowed, account named", alphaKey, "prod-other", "shared", 403, "productCode", `allowed: prod-shared`},
		{"several accounts, none named", alphaKey, "prod-shared", "", 400, "account", "several AWS accounts (alpha-own, shared); name one"},
	} {
		status, p, _ := put(tc.key, tc.product, tc.account)
		if status != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, status, tc.status)
			continue
		}
		wantFields(t, p, tc.field)
		if !strings.Contains(p.Errors[0].Reason, tc.reason) || !strings.Contains(p.Detail, tc.reason) {
			t.Errorf("%s: %+v does not say %q", tc.name, p, tc.reason)
		}
	}
	// Not found means nothing was stored.
	for _, k := range []string{alphaKey, betaKey, carolKey} {
		e.problem(404, "GET", "/api/v1/exports/aws", nil, bearer(k)...)
	}
	// The refusal does not tell whether another namespace's account exists.
	_, other, _ := put(betaKey, "p", "alpha-own")
	_, missing, _ := put(betaKey, "p", "missing")
	if strings.ReplaceAll(other.Detail, "alpha-own", "X") != strings.ReplaceAll(missing.Detail, "missing", "X") {
		t.Errorf("refusals differ: %q and %q", other.Detail, missing.Detail)
	}

	// Granted: the account named, or the only one granted, is stored.
	if status, _, d := put(betaKey, "prod-shared", ""); status != 201 || d.Account != "shared" {
		t.Errorf("beta, the only account: %d %+v", status, d)
	}
	if status, _, d := put(alphaKey, "anything", "alpha-own"); status != 201 || d.Account != "alpha-own" {
		t.Errorf("alpha, its own account: %d %+v", status, d)
	}
	// A replacement is checked too, and a refused one changes nothing.
	_, before := e.do("GET", "/api/v1/exports/aws", nil, bearer(alphaKey)...)
	if status, p, _ := put(alphaKey, "anything", "shared"); status != 403 || p.fields()[0] != "productCode" {
		t.Errorf("alpha, a product code the account named does not allow: %d %+v", status, p)
	}
	if _, after := e.do("GET", "/api/v1/exports/aws", nil, bearer(alphaKey)...); !bytes.Equal(before, after) {
		t.Errorf("a refused replacement changed the destination:\n%s\n%s", before, after)
	}
	// As fetched, it can be sent back.
	var d destinationDoc
	e.ok(200, "PUT", "/api/v1/exports/aws", string(before), &d, bearer(alphaKey)...)
	if d.Account != "alpha-own" || d.ProductCode != "anything" {
		t.Errorf("sent back: %+v", d)
	}
}

// Without accounts declared, namespace default has the implicit account
// "default", and any other namespace none.
func TestExportImplicitDefaultAccount(t *testing.T) {
	t.Parallel()
	e := closedEnv(t, func(c *api.Config) { c.ExportAccounts = nil })
	def, other := e.key("default", "admin"), e.key("tenant", "admin")
	for _, k := range []string{def, other} {
		e.ok(201, "POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"call"}`, nil, bearer(k)...)
	}
	body := `{"productCode":"any-product","dimensions":[{"dimension":"calls","meterSlug":"calls"}]}`
	var d destinationDoc
	e.ok(201, "PUT", "/api/v1/exports/aws", body, &d, bearer(def)...)
	if d.Account != export.DefaultAccountName {
		t.Errorf("account %q", d.Account)
	}
	wantFields(t, e.problem(403, "PUT", "/api/v1/exports/aws", body, bearer(other)...), "account")
	wantFields(t, e.problem(403, "PUT", "/api/v1/exports/aws", strings.Replace(body, `{`, `{"account":"default",`, 1), bearer(other)...), "account")
	if ds, err := e.store.ListExportDestinations(t.Context(), "tenant"); err != nil || len(ds) != 0 {
		t.Errorf("tenant's destinations: %v, %v", ds, err)
	}
	if code := odometer.ErrorCode(odometer.ForbiddenFieldf("account", "x")); code != odometer.EFORBIDDEN {
		t.Errorf("ForbiddenFieldf code %q", code)
	}
}

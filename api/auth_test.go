package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
)

// closedEnv starts a server that needs API keys; opts adjust its Config
// further.
func closedEnv(t testing.TB, opts ...func(*api.Config)) *env {
	t.Helper()
	return newEnv(t, append([]func(*api.Config){func(c *api.Config) { c.Open = false; c.ExportAccounts = tenantAccounts }}, opts...)...)
}

// key stores a key of namespace ns with scopes in e's store and returns its
// token.
func (e *env) key(ns string, scopes ...string) string {
	e.t.Helper()
	tok, k, err := odometer.NewAPIKey(ns, "test", scopes, testNow)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateAPIKey(e.t.Context(), k); err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// bearer returns the header pair that sends tok.
func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// tenant is a namespace seeded with one object of every kind, made through
// the API with the namespace's admin key.
type tenant struct {
	ns, admin string // namespace, admin token
	meterID, meterSlug,
	featureID, featureKey,
	ledgerID, grantID,
	dest, subject, keyID string
	// markers are strings that only this namespace's data holds and that
	// no request of the tests sends.
	markers []string
}

// ids returns the tenant's object ids and its tokens: an answer to another
// namespace may hold none of them (but for those its request sent).
func (tn *tenant) ids() []string {
	return []string{tn.meterID, tn.featureID, tn.ledgerID, tn.grantID, tn.keyID, tn.admin}
}

// seed makes a tenant of namespace ns on e.
func seed(e *env, ns string) *tenant {
	e.t.Helper()
	tn := &tenant{ns: ns, admin: e.key(ns, "admin"), meterSlug: ns + "-tokens", featureKey: ns + "-feature",
		dest: ns + "-dest", subject: ns + "-subject"}
	tn.markers = []string{ns + " meter marker", ns + "-description-marker", ns + "-event-marker", ns + "-model-marker",
		ns + " feature marker", ns + "-ledger-marker", ns + "-product-marker", ns + "-customer-marker", ns + " key marker"}
	h := bearer(tn.admin)
	var m meterDoc
	e.ok(201, "POST", "/api/v1/meters", fmt.Sprintf(`{"slug":%q,"name":"%s meter marker","description":"%s-description-marker",
		"aggregation":"SUM","eventType":"prompt","valueProperty":"$.tokens","groupBy":{"model":"$.model"}}`, tn.meterSlug, ns, ns), &m, h...)
	tn.meterID = m.ID
	e.ok(200, "POST", "/api/v1/events", event(ns+"-event-marker", tn.subject, "2024-06-10T10:00:00Z",
		`{"tokens":5,"model":"`+ns+`-model-marker"}`), nil, h...)
	var f featureDoc
	e.ok(201, "POST", "/api/v1/features", fmt.Sprintf(`{"key":%q,"name":"%s feature marker","meterSlug":%q}`,
		tn.featureKey, ns, tn.meterSlug), &f, h...)
	tn.featureID = f.ID
	var l ledgerDoc
	e.ok(201, "POST", "/api/v1/ledgers", fmt.Sprintf(`{"subject":%q,"metadata":{"owner":"%s-ledger-marker"}}`, tn.subject, ns), &l, h...)
	tn.ledgerID = l.ID
	var g grantDoc
	e.ok(201, "POST", "/api/v1/ledgers/"+tn.ledgerID+"/grants", fmt.Sprintf(`{"feature":%q,"amount":100}`, tn.featureKey), &g, h...)
	tn.grantID = g.ID
	e.ok(201, "PUT", "/api/v1/exports/"+tn.dest, fmt.Sprintf(`{"productCode":"%s-product-marker","region":"us-east-1",
		"dimensions":[{"dimension":"tokens","meterSlug":%q}]}`, ns, tn.meterSlug), nil, h...)
	e.ok(200, "PUT", "/api/v1/exports/"+tn.dest+"/customers/"+tn.subject, `{"customerId":"`+ns+`-customer-marker"}`, nil, h...)
	var k keyDoc
	e.ok(201, "POST", "/api/v1/keys", `{"name":"`+ns+` key marker","scopes":["read"]}`, &k, h...)
	tn.keyID = k.ID
	return tn
}

type keyDoc struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Namespace string     `json:"namespace"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt"`
	Token     string     `json:"token"`
	Salt      any        `json:"salt"`
	Hash      any        `json:"hash"`
}

// routeCase is how the tests call a route: the path naming tenant tn's
// objects, and a body (nil for none) for tn.
type routeCase struct {
	path func(tn *tenant) string
	body func(tn *tenant) any
	// named: the path names objects of the namespace, so that those of
	// another namespace must be 404. False for the routes that name
	// nothing, and for PUT /api/v1/exports/{destination}, which makes a
	// destination of the caller's own when it has none of the name.
	named bool
	// destroys: the route deletes or ends what it names; the table test
	// calls these last.
	destroys bool
}

var seq atomic.Int64

// uniq returns a string not returned before.
func uniq(prefix string) string { return prefix + strconv.FormatInt(seq.Add(1), 10) }

func fixed(p string) func(*tenant) string { return func(*tenant) string { return p } }

// routeCases has a case per route of api.Routes(); TestRouteAuth fails for
// a route without one.
var routeCases = map[string]routeCase{
	"POST /api/v1/events": {path: fixed("/api/v1/events"), body: func(tn *tenant) any {
		return event(uniq("ev"), tn.subject, "2024-06-10T11:00:00Z", `{"tokens":1,"model":"m"}`)
	}},
	"GET /api/v1/events": {path: fixed("/api/v1/events?from=2024-01-01T00:00:00Z")},

	"GET /api/v1/events/outcomes": {path: func(tn *tenant) string { return "/api/v1/events/outcomes?id=" + tn.ns + "-event-marker" }},
	"GET /api/v1/event-subjects":  {path: fixed("/api/v1/event-subjects")},

	"GET /api/v1/meters": {path: fixed("/api/v1/meters")},
	"POST /api/v1/meters": {path: fixed("/api/v1/meters"), body: func(*tenant) any {
		return `{"slug":"` + uniq("m") + `","aggregation":"COUNT","eventType":"other"}`
	}},
	"GET /api/v1/meters/{meterIdOrSlug}": {path: func(tn *tenant) string { return "/api/v1/meters/" + tn.meterID }, named: true},
	"PUT /api/v1/meters/{meterIdOrSlug}": {path: func(tn *tenant) string { return "/api/v1/meters/" + tn.meterSlug },
		body: func(*tenant) any { return `{"name":"renamed","groupBy":{"model":"$.model"}}` }, named: true},
	"DELETE /api/v1/meters/{meterIdOrSlug}": {path: func(tn *tenant) string { return "/api/v1/meters/" + tn.meterSlug },
		named: true, destroys: true},
	"GET /api/v1/meters/{meterIdOrSlug}/query": {path: func(tn *tenant) string {
		return "/api/v1/meters/" + tn.meterSlug + "/query?from=2024-06-10T00:00:00Z&windowSize=HOUR&groupBy=model&groupBy=subject"
	}, named: true},
	"POST /api/v1/meters/{meterIdOrSlug}/query": {path: func(tn *tenant) string { return "/api/v1/meters/" + tn.meterID + "/query" },
		body: func(*tenant) any { return `{"from":"2024-06-10T00:00:00Z","groupBy":["model","subject"]}` }, named: true},
	"GET /api/v1/meters/{meterIdOrSlug}/group-by/{groupByKey}/values": {path: func(tn *tenant) string {
		return "/api/v1/meters/" + tn.meterSlug + "/group-by/model/values?from=2024-06-10T00:00:00Z"
	}, named: true},

	"POST /api/v1/features": {path: fixed("/api/v1/features"), body: func(tn *tenant) any {
		return `{"key":"` + uniq("f") + `","meterSlug":"` + tn.meterSlug + `"}`
	}},
	"GET /api/v1/features":                  {path: fixed("/api/v1/features")},
	"GET /api/v1/features/{featureIdOrKey}": {path: func(tn *tenant) string { return "/api/v1/features/" + tn.featureKey }, named: true},
	"DELETE /api/v1/features/{featureIdOrKey}": {path: func(tn *tenant) string { return "/api/v1/features/" + tn.featureID },
		named: true, destroys: true},
	"POST /api/v1/features/{featureId}/archive": {path: func(tn *tenant) string { return "/api/v1/features/" + tn.featureID + "/archive" },
		named: true, destroys: true},

	"POST /api/v1/ledgers":           {path: fixed("/api/v1/ledgers"), body: func(*tenant) any { return `{"subject":"` + uniq("s") + `"}` }},
	"GET /api/v1/ledgers":            {path: fixed("/api/v1/ledgers")},
	"GET /api/v1/ledgers/{ledgerId}": {path: func(tn *tenant) string { return "/api/v1/ledgers/" + tn.ledgerID }, named: true},
	"POST /api/v1/ledgers/{ledgerId}/grants": {path: func(tn *tenant) string { return "/api/v1/ledgers/" + tn.ledgerID + "/grants" },
		body: func(tn *tenant) any { return `{"feature":"` + tn.featureKey + `","amount":1}` }, named: true},
	"GET /api/v1/ledgers/{ledgerId}/grants": {path: func(tn *tenant) string { return "/api/v1/ledgers/" + tn.ledgerID + "/grants" }, named: true},
	"GET /api/v1/ledgers/{ledgerId}/grants/{grantId}": {path: func(tn *tenant) string {
		return "/api/v1/ledgers/" + tn.ledgerID + "/grants/" + tn.grantID
	}, named: true},
	"POST /api/v1/ledgers/{ledgerId}/grants/{grantId}/void": {path: func(tn *tenant) string {
		return "/api/v1/ledgers/" + tn.ledgerID + "/grants/" + tn.grantID + "/void"
	}, named: true, destroys: true},
	"GET /api/v1/ledgers/{ledgerId}/balance": {path: func(tn *tenant) string { return "/api/v1/ledgers/" + tn.ledgerID + "/balance" }, named: true},
	"GET /api/v1/ledgers/{ledgerId}/history": {path: func(tn *tenant) string { return "/api/v1/ledgers/" + tn.ledgerID + "/history" }, named: true},
	"POST /api/v1/ledgers/{ledgerId}/reset": {path: func(tn *tenant) string { return "/api/v1/ledgers/" + tn.ledgerID + "/reset" },
		named: true, destroys: true},
	"GET /api/v1/ledgers/{ledgerId}/access": {path: func(tn *tenant) string {
		return "/api/v1/ledgers/" + tn.ledgerID + "/access?feature=" + tn.featureKey
	}, named: true},

	"GET /api/v1/exports":               {path: fixed("/api/v1/exports")},
	"GET /api/v1/exports/{destination}": {path: func(tn *tenant) string { return "/api/v1/exports/" + tn.dest }, named: true},
	"PUT /api/v1/exports/{destination}": {path: func(tn *tenant) string { return "/api/v1/exports/" + tn.dest },
		body: func(tn *tenant) any {
			return `{"productCode":"p","region":"us-east-1","dimensions":[{"dimension":"tokens","meterSlug":"` + tn.meterSlug + `"}]}`
		}},
	"DELETE /api/v1/exports/{destination}": {path: func(tn *tenant) string { return "/api/v1/exports/" + tn.dest },
		named: true, destroys: true},
	"GET /api/v1/exports/{destination}/customers": {path: func(tn *tenant) string { return "/api/v1/exports/" + tn.dest + "/customers" }, named: true},
	"PUT /api/v1/exports/{destination}/customers/{subject}": {path: func(tn *tenant) string {
		return "/api/v1/exports/" + tn.dest + "/customers/" + uniq("c")
	}, body: func(*tenant) any { return `{"customerId":"` + uniq("cust") + `"}` }, named: true},
	"DELETE /api/v1/exports/{destination}/customers/{subject}": {path: func(tn *tenant) string {
		return "/api/v1/exports/" + tn.dest + "/customers/" + tn.subject
	}, named: true, destroys: true},
	"GET /api/v1/exports/{destination}/records": {path: func(tn *tenant) string { return "/api/v1/exports/" + tn.dest + "/records" }, named: true},
	"GET /api/v1/exports/{destination}/status":  {path: func(tn *tenant) string { return "/api/v1/exports/" + tn.dest + "/status" }, named: true},

	"POST /api/v1/keys": {path: fixed("/api/v1/keys"), body: func(*tenant) any { return `{"name":"k","scopes":["read"]}` }},
	"GET /api/v1/keys":  {path: fixed("/api/v1/keys")},
	"DELETE /api/v1/keys/{keyId}": {path: func(tn *tenant) string { return "/api/v1/keys/" + tn.keyID },
		named: true, destroys: true},

	"GET /api/v1/openapi.yaml": {path: fixed("/api/v1/openapi.yaml")},
	"GET /healthz":             {path: fixed("/healthz")},
	"GET /readyz":              {path: fixed("/readyz")},
	"GET /metrics":             {path: fixed("/metrics")},
}

// send calls route (a pattern) as rc says for tenant tn, with header pairs.
func (e *env) send(route string, rc routeCase, tn *tenant, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	method, _, _ := strings.Cut(route, " ")
	var body any
	if rc.body != nil {
		body = rc.body(tn)
	}
	return e.do(method, rc.path(tn), body, hdr...)
}

// otherScopes returns the scopes that do not allow scope: every other
// scope, admin included for metrics, which admin does not allow.
func otherScopes(scope string) []string {
	var out []string
	for _, s := range odometer.Scopes {
		if s != scope && (s != odometer.ScopeAdmin || scope == odometer.ScopeMetrics) {
			out = append(out, s)
		}
	}
	return out
}

// TestRouteAuth calls every route of the route table: without a key (401),
// with a key that lacks its scope (403), with one that has it (neither),
// and naming another namespace's objects (404).
func TestRouteAuth(t *testing.T) {
	t.Parallel()
	e := closedEnv(t)
	alpha, beta := seed(e, "alpha"), seed(e, "beta")
	scoped := map[string]string{}
	for _, s := range odometer.Scopes {
		scoped[s] = e.key("alpha", s)
	}
	routes := api.Routes()
	if len(routes) < 40 {
		t.Fatalf("api.Routes() lists %d routes", len(routes))
	}
	for _, r := range routes {
		if _, ok := routeCases[r.Pattern]; !ok {
			t.Errorf("route %s has no case in routeCases", r.Pattern)
		}
	}
	for p := range routeCases {
		if !slices.ContainsFunc(routes, func(r api.Route) bool { return r.Pattern == p }) {
			t.Errorf("routeCases has %s, which is not a route", p)
		}
	}
	// Destroying routes last, so that the others find what they name.
	slices.SortStableFunc(routes, func(a, b api.Route) int {
		da, db := routeCases[a.Pattern].destroys, routeCases[b.Pattern].destroys
		switch {
		case da == db:
			return 0
		case da:
			return 1
		}
		return -1
	})
	for _, r := range routes {
		rc := routeCases[r.Pattern]
		if r.Scope == "public" {
			if resp, b := e.send(r.Pattern, rc, alpha); resp.StatusCode != 200 {
				t.Errorf("%s without a key: %d %s", r.Pattern, resp.StatusCode, b)
			}
			continue
		}
		// No key.
		resp, b := e.send(r.Pattern, rc, alpha)
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" ||
			resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s without a key: %d %v %s; want 401 with WWW-Authenticate: Bearer", r.Pattern, resp.StatusCode, resp.Header, b)
		}
		// Keys without the scope.
		for _, s := range otherScopes(r.Scope) {
			resp, b := e.send(r.Pattern, rc, alpha, bearer(scoped[s])...)
			var p problemDoc
			_ = json.Unmarshal(b, &p)
			if resp.StatusCode != 403 || !strings.Contains(p.Detail, strconv.Quote(r.Scope)) {
				t.Errorf("%s with a %s key: %d %s; want 403 naming %q", r.Pattern, s, resp.StatusCode, b, r.Scope)
			}
		}
		if rc.named {
			// Another namespace's objects are not found: 404, not 403.
			resp, b := e.send(r.Pattern, rc, beta, bearer(alpha.admin)...)
			if resp.StatusCode != 404 {
				t.Errorf("%s naming namespace beta's objects with alpha's key: %d %s; want 404", r.Pattern, resp.StatusCode, b)
			}
		}
		// The key with the scope, then an admin key (but for the
		// metrics), get past the checks.
		may := []string{scoped[r.Scope]}
		if r.Scope != odometer.ScopeMetrics {
			may = append(may, alpha.admin)
		}
		for _, tok := range may {
			resp, b := e.send(r.Pattern, rc, alpha, bearer(tok)...)
			if resp.StatusCode == 401 || resp.StatusCode == 403 || resp.StatusCode >= 500 {
				t.Errorf("%s with a key that may: %d %s", r.Pattern, resp.StatusCode, b)
			}
		}
	}
	// By slug and key too, not only by id.
	e.problem(404, "GET", "/api/v1/meters/"+beta.meterSlug, nil, bearer(alpha.admin)...)
	e.problem(404, "GET", "/api/v1/features/"+beta.featureID, nil, bearer(alpha.admin)...)
	e.problem(404, "GET", "/api/v1/ledgers/"+alpha.ledgerID+"/grants/"+beta.grantID, nil, bearer(alpha.admin)...)
	e.problem(404, "GET", "/api/v1/ledgers/"+beta.ledgerID+"/grants/"+beta.grantID, nil, bearer(alpha.admin)...)
	// beta's objects are all there still, as beta sees them.
	for _, p := range []string{"/api/v1/meters/" + beta.meterID, "/api/v1/features/" + beta.featureID,
		"/api/v1/ledgers/" + beta.ledgerID + "/grants/" + beta.grantID, "/api/v1/exports/" + beta.dest} {
		e.ok(200, "GET", p, nil, nil, bearer(beta.admin)...)
	}
	var keys []keyDoc
	e.ok(200, "GET", "/api/v1/keys", nil, &keys, bearer(beta.admin)...)
	if i := slices.IndexFunc(keys, func(k keyDoc) bool { return k.ID == beta.keyID }); i < 0 || keys[i].RevokedAt != nil {
		t.Errorf("beta's keys after alpha's requests: %+v", keys)
	}
}

// TestAuthRefusals: every way of not sending a valid key gets the same 401,
// which repeats nothing of what was sent.
func TestAuthRefusals(t *testing.T) {
	t.Parallel()
	e := closedEnv(t)
	good := e.key("alpha", "read")
	_, secret, _ := odometer.ParseToken(good)
	id, _, _ := odometer.ParseToken(good)
	revoked := e.key("alpha", "read")
	rid, _, _ := odometer.ParseToken(revoked)
	admin := e.key("alpha", "admin")
	e.ok(200, "DELETE", "/api/v1/keys/"+rid, nil, nil, bearer(admin)...)
	_, other, _ := odometer.NewAPIKey("alpha", "never stored", []string{"read"}, testNow)
	wrong := secret[:len(secret)-1] + "A" // the secret with its last character changed
	if wrong == secret {
		wrong = secret[:len(secret)-1] + "B"
	}

	var detail string
	for _, hdr := range [][]string{
		nil,
		{"Authorization", ""},
		{"Authorization", "Bearer"},
		{"Authorization", "Bearer "},
		{"Authorization", "Basic " + good},
		{"Authorization", "Token " + good},
		{"Authorization", good},
		{"Authorization", "Bearer odo_garbled"},
		{"Authorization", "Bearer " + strings.Replace(good, "odo_", "odx_", 1)},
		{"Authorization", "Bearer odo_" + id + "_" + wrong},                          // wrong secret
		{"Authorization", "Bearer odo_" + id + "_"},                                  // no secret
		{"Authorization", "Bearer odo_" + other.ID + "_" + secret},                   // unknown id
		{"Authorization", "Bearer " + revoked},                                       // revoked
		{"Authorization", "Bearer " + good + "x"},                                    // longer
		{"Authorization", "Bearer " + strings.ToUpper(good)},                         // case changed
		{"Authorization", "Bearer " + good + "\x00"},                                 // NUL
		{"Authorization", "Bearer " + url.QueryEscape(good+"/")},                     // escaped
		{"Authorization", "Bearer " + good + " Bearer " + good},                      // two in one
		{"Authorization", "Bearer " + good, "Authorization", "Bearer " + good + "x"}, // two headers: do sets the last
	} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", e.url+"/api/v1/meters", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Add(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// net/http refuses some header values before sending.
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("%q: %d %s; want 401", hdr, resp.StatusCode, b)
			continue
		}
		var p problemDoc
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		if detail == "" {
			detail = p.Detail
		}
		if p.Detail != detail || strings.Contains(string(b), secret[:8]) || strings.Contains(string(b), id) {
			t.Errorf("%q: detail %q; want the same generic detail %q for all, without the token", hdr, p.Detail, detail)
		}
	}
	e.ok(200, "GET", "/api/v1/meters", nil, nil, bearer(good)...)
	e.ok(200, "GET", "/api/v1/meters", nil, nil, "Authorization", "bearer  "+good+" ") // scheme is case-insensitive
}

// TestOpenMode: without keys every request works in namespace "default",
// whatever Authorization it carries; keys made then are of "default".
func TestOpenMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"tokens","aggregation":"COUNT","eventType":"prompt"}`, nil)
	e.ok(200, "GET", "/api/v1/meters/tokens", nil, nil, "Authorization", "Bearer nonsense")
	var k keyDoc
	e.ok(201, "POST", "/api/v1/keys", `{"name":"first","scopes":["admin"]}`, &k)
	if k.Namespace != "default" || !strings.HasPrefix(k.Token, "odo_"+k.ID+"_") {
		t.Fatalf("key made in Open mode: %+v", k)
	}
	m, err := e.store.FindMeter(t.Context(), "default", "tokens")
	if err != nil || m.Slug != "tokens" {
		t.Fatalf("meter of namespace default: %v %v", m, err)
	}
	// Rate limits hold for everybody together.
	limited := newEnv(t, func(c *api.Config) { c.IngestRate, c.IngestBurst = 0.1, 1 })
	limited.ok(200, "POST", "/api/v1/events", event("a", "s", "2024-06-10T10:00:00Z", `{}`), nil)
	limited.problem(429, "POST", "/api/v1/events", event("b", "s", "2024-06-10T10:00:00Z", `{}`), "Authorization", "Bearer "+k.Token)
}

func TestKeysAPI(t *testing.T) {
	t.Parallel()
	e := closedEnv(t)
	admin := e.key("alpha", "admin")
	e.key("beta", "admin")
	h := bearer(admin)

	var k keyDoc
	resp := e.ok(201, "POST", "/api/v1/keys", `{"name":"ingester","scopes":["ingest","read"]}`, &k, h...)
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	if len(k.ID) != 26 || k.Name != "ingester" || k.Namespace != "alpha" || strings.Join(k.Scopes, ",") != "ingest,read" ||
		!k.CreatedAt.Equal(testNow) || k.RevokedAt != nil || k.Salt != nil || k.Hash != nil {
		t.Fatalf("created %+v", k)
	}
	if id, _, err := odometer.ParseToken(k.Token); err != nil || id != k.ID {
		t.Fatalf("token %q of key %s: %v", k.Token, k.ID, err)
	}
	// The token works, with its scopes only.
	e.ok(200, "POST", "/api/v1/events", event("e1", "s", "2024-06-10T10:00:00Z", `{}`), nil, bearer(k.Token)...)
	e.ok(200, "GET", "/api/v1/events", nil, nil, bearer(k.Token)...)
	e.problem(403, "GET", "/api/v1/keys", nil, bearer(k.Token)...)

	// Listed without secrets; the token is never shown again.
	resp, b := e.do("GET", "/api/v1/keys", nil, h...)
	if resp.StatusCode != 200 || strings.Contains(string(b), k.Token) || strings.Contains(string(b), `"token"`) ||
		strings.Contains(string(b), `"salt"`) || strings.Contains(string(b), `"hash"`) {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	var keys []keyDoc
	e.ok(200, "GET", "/api/v1/keys", nil, &keys, h...)
	if len(keys) != 2 || !slices.ContainsFunc(keys, func(l keyDoc) bool { return l.ID == k.ID && l.Namespace == "alpha" }) {
		t.Fatalf("alpha's keys: %+v", keys)
	}

	// Field errors.
	wantFields(t, e.problem(400, "POST", "/api/v1/keys", `{"name":"x","scopes":[]}`, h...), "scopes")
	wantFields(t, e.problem(400, "POST", "/api/v1/keys", `{"name":"x","scopes":["write"]}`, h...), "scopes")
	wantFields(t, e.problem(400, "POST", "/api/v1/keys", `{"name":"`+strings.Repeat("n", 201)+`","scopes":["read"]}`, h...), "name")
	wantFields(t, e.problem(400, "POST", "/api/v1/keys", `{"scopes":["read"],"namespace":"beta"}`, h...), "namespace")
	wantFields(t, e.problem(400, "DELETE", "/api/v1/keys/"+k.Token, nil, h...), "keyId")

	// Revoked: 200 with the key, then 409; the token stops working at once.
	var rk keyDoc
	e.ok(200, "DELETE", "/api/v1/keys/"+k.ID, nil, &rk, h...)
	if rk.ID != k.ID || rk.RevokedAt == nil || !rk.RevokedAt.Equal(testNow) || rk.Token != "" {
		t.Fatalf("revoked %+v", rk)
	}
	e.problem(401, "GET", "/api/v1/events", nil, bearer(k.Token)...)
	e.problem(409, "DELETE", "/api/v1/keys/"+k.ID, nil, h...)
	e.problem(404, "DELETE", "/api/v1/keys/"+strings.Repeat("0", 26), nil, h...)
}

// TestRevocationReachesEveryNode: two nodes on one store; a key revoked
// through one is refused by the other within KeyCacheTTL.
func TestRevocationReachesEveryNode(t *testing.T) {
	t.Parallel()
	const ttl = 200 * time.Millisecond
	a := closedEnv(t, func(c *api.Config) { c.KeyCacheTTL = ttl })
	b := closedEnv(t, func(c *api.Config) { c.KeyCacheTTL = ttl; c.Store = a.store })
	admin := a.key("ns", "admin")
	reader := a.key("ns", "read")
	rid, _, _ := odometer.ParseToken(reader)
	a.ok(200, "GET", "/api/v1/meters", nil, nil, bearer(reader)...) // cached on a
	b.ok(200, "DELETE", "/api/v1/keys/"+rid, nil, nil, bearer(admin)...)
	revoked := time.Now()
	b.problem(401, "GET", "/api/v1/meters", nil, bearer(reader)...) // at once on b
	// a looked the key up before it was revoked, so its cache entry
	// expires before revoked+ttl: from then on a refuses the key, however
	// slow the machine.
	time.Sleep(time.Until(revoked.Add(ttl)))
	a.problem(401, "GET", "/api/v1/meters", nil, bearer(reader)...)
	a.ok(200, "GET", "/api/v1/meters", nil, nil, bearer(admin)...)
}

// TestRateLimit: a client on loopback over its ingest rate gets 429 with
// Retry-After, and gets through again after waiting that long.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := closedEnv(t, func(c *api.Config) { c.IngestRate, c.IngestBurst = 5, 5 })
	tok := e.key("ns", "ingest", "read")
	other := e.key("ns", "ingest")
	post := func(tok string) *http.Response {
		resp, _ := e.do("POST", "/api/v1/events", event(uniq("e"), "s", "2024-06-10T10:00:00Z", `{}`), bearer(tok)...)
		return resp
	}
	for i := range 5 {
		if resp := post(tok); resp.StatusCode != 200 {
			t.Fatalf("request %d of the burst: %d", i, resp.StatusCode)
		}
	}
	var limited *http.Response
	for range 100 { // unless each takes 200 ms, these outrun the refill
		if resp := post(tok); resp.StatusCode == 429 {
			limited = resp
			break
		}
	}
	if limited == nil {
		t.Fatal("no 429 after 105 requests at a rate of 5 per second")
	}
	wait, err := strconv.Atoi(limited.Header.Get("Retry-After"))
	if err != nil || wait < 1 || wait > 2 || limited.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("429 with Retry-After %q, Content-Type %q", limited.Header.Get("Retry-After"), limited.Header.Get("Content-Type"))
	}
	// Another key, and another class of route, are not limited by it.
	if resp := post(other); resp.StatusCode != 200 {
		t.Errorf("another key: %d", resp.StatusCode)
	}
	e.ok(200, "GET", "/api/v1/events", nil, nil, bearer(tok)...)
	time.Sleep(time.Duration(wait) * time.Second)
	if resp := post(tok); resp.StatusCode != 200 {
		t.Errorf("after waiting Retry-After: %d", resp.StatusCode)
	}
}

// TestQueryRateLimit: the usage query routes share their own limit.
func TestQueryRateLimit(t *testing.T) {
	t.Parallel()
	e := closedEnv(t, func(c *api.Config) { c.QueryRate, c.QueryBurst = 0.01, 2 }) // a token per 100 s
	tok := e.key("ns", "admin")
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"m","aggregation":"COUNT","eventType":"t","groupBy":{"k":"$.k"}}`, nil, bearer(tok)...)
	e.ok(200, "GET", "/api/v1/meters/m/query", nil, nil, bearer(tok)...)
	e.ok(200, "POST", "/api/v1/meters/m/query", `{}`, nil, bearer(tok)...)
	resp, _ := e.do("GET", "/api/v1/meters/m/group-by/k/values", nil, bearer(tok)...)
	if wait, _ := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 429 || wait < 90 || wait > 100 {
		t.Fatalf("third query: %d, Retry-After %q; want 429 and about 100", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	e.ok(200, "GET", "/api/v1/meters/m", nil, nil, bearer(tok)...) // not a query
}

func TestMaxQueryWindows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"tokens","aggregation":"COUNT","eventType":"prompt"}`, nil)
	q := func(params string) string { return "/api/v1/meters/tokens/query?" + params }
	// A week of minutes is 10,080 windows.
	p := e.problem(400, "GET", q("windowSize=MINUTE&from=2024-06-01T00:00:00Z&to=2024-06-08T00:00:00Z"), nil)
	wantFields(t, p, "windowSize")
	if !strings.Contains(p.Errors[0].Reason, "10000") || !strings.Contains(p.Errors[0].Reason, "10080") {
		t.Errorf("reason %q does not give the count and the limit", p.Errors[0].Reason)
	}
	wantFields(t, e.problem(400, "POST", "/api/v1/meters/tokens/query",
		`{"windowSize":"MINUTE","from":"2024-06-01T00:00:00Z","to":"2024-06-08T00:00:00Z"}`), "windowSize")
	// to defaults to now.
	wantFields(t, e.problem(400, "GET", q("windowSize=MINUTE&from=2024-06-03T00:00:00Z"), nil), "windowSize")
	// Exactly the limit passes; so do coarser windows, no windows, no from.
	e.ok(200, "GET", q("windowSize=MINUTE&from=2024-06-01T00:00:00Z&to=2024-06-07T22:40:00Z"), nil, nil)
	e.ok(200, "GET", q("windowSize=MINUTE&from=2024-06-01T00:00:00.5Z&to=2024-06-07T22:40:00Z"), nil, nil)
	e.ok(200, "GET", q("windowSize=HOUR&from=2024-01-01T00:00:00Z&to=2024-12-31T00:00:00Z"), nil, nil)
	e.ok(200, "GET", q("from=1970-01-01T00:00:00Z&to=2024-06-08T00:00:00Z"), nil, nil)
	e.ok(200, "GET", q("windowSize=MINUTE"), nil, nil)

	small := newEnv(t, func(c *api.Config) { c.MaxQueryWindows = 24 })
	small.ok(201, "POST", "/api/v1/meters", `{"slug":"tokens","aggregation":"COUNT","eventType":"prompt"}`, nil)
	small.ok(200, "GET", q("windowSize=HOUR&from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:00Z"), nil, nil)
	wantFields(t, small.problem(400, "GET", q("windowSize=HOUR&from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:01Z"), nil), "windowSize")
	// DAY windows in a zone: 2024-06-01 to 2024-06-25 local is 24 days.
	small.ok(200, "GET", q("windowSize=DAY&windowTimeZone=America/New_York&from=2024-06-01T04:00:00Z&to=2024-06-25T04:00:00Z"), nil, nil)
	wantFields(t, small.problem(400, "GET", q("windowSize=DAY&windowTimeZone=America/New_York&from=2024-06-01T03:59:00Z&to=2024-06-25T04:00:00Z"), nil), "windowSize")
	small.ok(200, "GET", q("windowSize=MONTH&from=2022-01-01T00:00:00Z&to=2024-01-01T00:00:00Z"), nil, nil)
	wantFields(t, small.problem(400, "GET", q("windowSize=MONTH&from=2022-01-01T00:00:00Z&to=2024-01-01T00:00:00.001Z"), nil), "windowSize")
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTokensAreNeverShown sends tokens the right and the wrong ways, in
// failing and malformed requests, and looks for them in the log, the
// answers and /metrics.
func TestTokensAreNeverShown(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	e := closedEnv(t, func(c *api.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.IngestRate, c.IngestBurst = 0.01, 2
		c.Ingester = failingIngester{odometer.Errorf(odometer.EUNAVAILABLE, "the ingest queue is full")}
	})
	admin := e.key("ns", "admin")
	reader := e.key("ns", "read")
	revoked := e.key("ns", "read")
	rid, _, _ := odometer.ParseToken(revoked)
	e.ok(200, "DELETE", "/api/v1/keys/"+rid, nil, nil, bearer(admin)...)
	var made keyDoc
	e.ok(201, "POST", "/api/v1/keys", `{"name":"made","scopes":["ingest"]}`, &made, bearer(admin)...)
	tokens := []string{admin, reader, revoked, made.Token}
	readerID, _, _ := odometer.ParseToken(reader)

	var answers []string
	record := func(resp *http.Response, b []byte) {
		answers = append(answers, fmt.Sprint(resp.Header), string(b))
	}
	for _, tok := range tokens {
		id, secret, _ := odometer.ParseToken(tok)
		for _, r := range []struct {
			method, path string
			body         any
			hdr          []string
		}{
			{"GET", "/api/v1/meters", nil, bearer(tok)},
			{"GET", "/api/v1/meters", nil, []string{"Authorization", "Basic " + tok}},
			{"GET", "/api/v1/meters", nil, bearer("odo_" + id + "_" + secret + "x")},
			{"GET", "/api/v1/meters", nil, bearer(tok + " " + tok)},
			{"POST", "/api/v1/meters", `{"slug":"` + tok + `","aggregation":"SUM","eventType":"x"}`, bearer(tok)},
			{"POST", "/api/v1/meters", `{"` + tok + `":1}`, bearer(tok)},
			{"POST", "/api/v1/meters", `{"slug":`, bearer(tok)},
			{"POST", "/api/v1/keys", `{"name":"` + tok + `","scopes":["` + tok + `"]}`, bearer(tok)},
			{"GET", "/api/v1/meters?" + tok + "=1", nil, bearer(tok)},
			{"GET", "/api/v1/meters/" + tok, nil, bearer(tok)},
			{"DELETE", "/api/v1/keys/" + tok, nil, bearer(tok)},
			{"GET", "/api/v1/" + tok, nil, bearer(tok)},
			{"PATCH", "/api/v1/meters/" + tok, nil, bearer(tok)},
			{"POST", "/api/v1/events", event("e", "s", "2024-06-10T10:00:00Z", `{}`), bearer(tok)}, // 503
			{"POST", "/api/v1/events", event(tok, tok, "yesterday", `{}`), bearer(tok)},            // 400
			{"POST", "/api/v1/events", event("e", "s", "2024-06-10T10:00:00Z", `{}`), bearer(tok)}, // 429
			{"GET", "/api/v1/meters/x/query?windowSize=" + tok, nil, bearer(tok)},
		} {
			record(e.do(r.method, r.path, r.body, r.hdr...))
		}
	}
	metrics := e.key("ns", "metrics")
	resp, b := e.do("GET", "/metrics", nil, bearer(metrics)...)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "odometer_http_requests_total") {
		t.Fatalf("/metrics with a metrics key: %d %.200s", resp.StatusCode, b)
	}
	record(resp, b)
	log := logs.String()
	if !strings.Contains(log, "status=401") || !strings.Contains(log, "status=403") || !strings.Contains(log, "status=429") ||
		!strings.Contains(log, "status=503") || !strings.Contains(log, "key="+readerID) {
		t.Fatalf("the requests did not fail as they should; log:\n%s", log)
	}
	for _, tok := range tokens {
		_, secret, _ := odometer.ParseToken(tok)
		if strings.Contains(log, secret) {
			t.Errorf("the log holds the secret of %s:\n%s", tok, log)
		}
		for _, a := range answers {
			if strings.Contains(a, secret) {
				t.Errorf("an answer holds the secret of %s:\n%s", tok, a)
			}
		}
	}
}

// TestNamespacesNeverLeak sends a few hundred random requests, each to a
// random route with every path parameter drawn at random from two seeded
// namespaces, with the key of one of them: no answer holds the other's
// data or ids (but for those the request sent), and the other's data are
// unchanged afterwards.
func TestNamespacesNeverLeak(t *testing.T) {
	t.Parallel()
	e := closedEnv(t)
	tenants := []*tenant{seed(e, "alpha"), seed(e, "beta")}
	var routes []api.Route
	for _, r := range api.Routes() {
		if r.Scope != "public" {
			routes = append(routes, r)
		}
	}
	param := regexp.MustCompile(`\{[A-Za-z]+\}`)
	rng := rand.New(rand.NewPCG(20240610, 1))
	statuses := map[int]int{}
	for i, caller := range tenants {
		other := tenants[1-i]
		before := snapshot(e, other)
		for range 200 {
			r := routes[rng.IntN(len(routes))]
			method, pattern, _ := strings.Cut(r.Pattern, " ")
			pick := func() *tenant { return tenants[rng.IntN(2)] }
			path := param.ReplaceAllStringFunc(pattern, func(p string) string {
				tn := pick()
				switch p {
				case "{meterIdOrSlug}":
					return []string{tn.meterID, tn.meterSlug}[rng.IntN(2)]
				case "{featureIdOrKey}":
					return []string{tn.featureID, tn.featureKey}[rng.IntN(2)]
				case "{featureId}":
					return tn.featureID
				case "{ledgerId}":
					return tn.ledgerID
				case "{grantId}":
					return tn.grantID
				case "{destination}":
					return tn.dest
				case "{subject}":
					return tn.subject
				case "{keyId}":
					return tn.keyID
				case "{groupByKey}":
					return "model"
				}
				t.Fatalf("route %s: no values for %s", r.Pattern, p)
				return ""
			})
			if strings.HasSuffix(pattern, "/access") {
				path += "?feature=" + pick().featureKey
			}
			var body any
			if rc := routeCases[r.Pattern]; rc.body != nil {
				body = rc.body(pick()) // the other namespace's names, too
			}
			resp, b := e.do(method, path, body, bearer(caller.admin)...)
			statuses[resp.StatusCode]++
			if resp.StatusCode >= 500 {
				t.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
			}
			sent := path + fmt.Sprint(body)
			for _, s := range append(other.ids(), other.markers...) {
				if !strings.Contains(sent, s) && strings.Contains(string(b), s) {
					t.Errorf("%s %s %v by %s: the answer holds %q of %s: %s", method, path, body, caller.ns, s, other.ns, b)
				}
			}
		}
		if after := snapshot(e, other); after != before {
			t.Errorf("%s's requests changed %s's data:\nbefore %s\nafter  %s", caller.ns, other.ns, before, after)
		}
	}
	t.Logf("statuses: %v", statuses)
	if statuses[404] == 0 || statuses[200]+statuses[201]+statuses[204] == 0 {
		t.Errorf("statuses %v: want both found and not found", statuses)
	}
}

// snapshot returns what tn's admin key reads of tn's data.
func snapshot(e *env, tn *tenant) string {
	e.t.Helper()
	var b strings.Builder
	for _, p := range []string{
		"/api/v1/meters", "/api/v1/features?includeArchived=true", "/api/v1/ledgers", "/api/v1/ledgers/" + tn.ledgerID + "/grants",
		"/api/v1/ledgers/" + tn.ledgerID + "/balance?at=2024-06-10T12:00:00Z", "/api/v1/exports",
		"/api/v1/exports/" + tn.dest + "/customers", "/api/v1/keys", "/api/v1/events?from=2000-01-01T00:00:00Z",
		"/api/v1/meters/" + tn.meterSlug + "/query?groupBy=subject&from=2024-06-10T00:00:00Z",
	} {
		resp, body := e.do("GET", p, nil, bearer(tn.admin)...)
		// A problem's instance names the request, which differs each time.
		body = requestInstance.ReplaceAll(body, []byte(`"instance":"urn:request:…"`))
		fmt.Fprintf(&b, "%s %d %s\n", p, resp.StatusCode, body)
	}
	return b.String()
}

var requestInstance = regexp.MustCompile(`"instance":"urn:request:[^"]*"`)

// An open server stops being open once a key exists: at once when the key
// is made through it, within KeyCacheTTL when it was made elsewhere (here:
// straight in the store, as another node or the config file would).
func TestOpenModeEndsWithTheFirstKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *api.Config) { c.KeyCacheTTL = 100 * time.Millisecond })
	e.ok(200, "GET", "/api/v1/meters", nil, nil)
	var k keyDoc
	e.ok(201, "POST", "/api/v1/keys", `{"name":"first","scopes":["read"]}`, &k)
	e.problem(401, "GET", "/api/v1/meters", nil)
	e.ok(200, "GET", "/api/v1/meters", nil, nil, bearer(k.Token)...)

	other := newEnv(t, func(c *api.Config) { c.KeyCacheTTL = 100 * time.Millisecond })
	other.ok(200, "GET", "/api/v1/meters", nil, nil)
	tok := other.key("default", "read")
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := other.do("GET", "/api/v1/meters", nil)
		if resp.StatusCode == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still open 5 s after a key was stored: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	other.ok(200, "GET", "/api/v1/meters", nil, nil, bearer(tok)...)
}

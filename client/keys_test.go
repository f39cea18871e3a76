package client_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/api/apitest"
	"github.com/odometerhq/odometer/client"
	"github.com/odometerhq/odometer/export"
)

// wantStatus fails unless err is a *client.Problem with status.
func wantStatus(t *testing.T, what string, err error, status int) *client.Problem {
	t.Helper()
	p := client.AsProblem(err)
	if p == nil || p.Status != status {
		t.Fatalf("%s: %v; want a %d problem", what, err, status)
	}
	return p
}

func TestKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var admin string
	// The operator grants namespace acme an AWS account, for PutExport.
	accounts, err := export.NewAccounts([]export.Account{{Name: "acme-aws", Namespaces: []string{"acme"}, ProductCodes: []string{"p"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := apitest.Server(t, apitest.Key(&admin, "acme", client.ScopeAdmin),
		apitest.Config(func(c *api.Config) { c.ExportAccounts = accounts }))

	_, err = client.New(srv.URL).ListMeters(ctx)
	wantStatus(t, "no key", err, http.StatusUnauthorized)

	c := client.New(srv.URL, client.WithAPIKey(admin))
	if _, err := c.CreateMeter(ctx, client.MeterCreate{Slug: "calls", EventType: "prompt", Aggregation: "COUNT"}); err != nil {
		t.Fatal(err)
	}
	k, err := c.CreateKey(ctx, "ingester", []string{client.ScopeIngest})
	if err != nil {
		t.Fatal(err)
	}
	if k.Name != "ingester" || k.Namespace != "acme" || strings.Join(k.Scopes, ",") != "ingest" || k.RevokedAt != nil ||
		!strings.HasPrefix(k.Token, "odo_"+k.ID+"_") {
		t.Fatalf("CreateKey = %+v", k)
	}
	keys, err := c.ListKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListKeys = %+v, %v", keys, err)
	}
	for _, l := range keys {
		if l.Token != "" || l.Namespace != "acme" {
			t.Errorf("listed %+v", l)
		}
	}
	_, err = c.CreateKey(ctx, "bad", []string{"write"})
	if p := wantStatus(t, "unknown scope", err, http.StatusBadRequest); len(p.Errors) != 1 || p.Errors[0].Field != "scopes" {
		t.Errorf("problem %+v", p)
	}

	// The ingest key sends events, and nothing else; the Recorder's
	// requests carry it too.
	ing := client.New(srv.URL, client.WithAPIKey(k.Token))
	if _, err := ing.Ingest(ctx, []client.Event{event("e1", "acme", `{}`, t0)}); err != nil {
		t.Fatal(err)
	}
	_, err = ing.ListMeters(ctx)
	if p := wantStatus(t, "ingest key lists meters", err, http.StatusForbidden); !strings.Contains(p.Detail, `"read"`) {
		t.Errorf("403 detail %q does not name the scope", p.Detail)
	}
	r := newRecorder(t, ing, t.TempDir())
	if err := r.Record(ctx, event("e2", "acme", `{}`, t0)); err != nil {
		t.Fatal(err)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Close(closeCtx); err != nil {
		t.Fatal(err)
	}
	res, err := c.QueryMeter(ctx, "calls", client.Query{})
	if err != nil || len(res.Data) != 1 || res.Data[0].Value.String() != "2" {
		t.Fatalf("calls = %+v, %v; want 2 events", res, err)
	}
	// PutExport builds its own request: it carries the key as well.
	if _, _, err := c.PutExport(ctx, "aws", client.ExportDestination{ProductCode: "p", Region: "us-east-1",
		Dimensions: []client.ExportDimension{{Dimension: "calls", MeterSlug: "calls"}}}); err != nil {
		t.Fatal(err)
	}

	// Revoked, the key stops working.
	rk, err := c.RevokeKey(ctx, k.ID)
	if err != nil || rk.ID != k.ID || rk.RevokedAt == nil {
		t.Fatalf("RevokeKey = %+v, %v", rk, err)
	}
	_, err = ing.Ingest(ctx, []client.Event{event("e3", "acme", `{}`, t0)})
	wantStatus(t, "revoked key", err, http.StatusUnauthorized)
	_, err = c.RevokeKey(ctx, k.ID)
	wantStatus(t, "revoked twice", err, http.StatusConflict)
	_, err = c.RevokeKey(ctx, strings.Repeat("0", 26))
	wantStatus(t, "unknown key", err, http.StatusNotFound)
}

// TestAPIKeyGoesToTheServerOnly: a redirect within the server keeps the
// key; one to another origin does not take it along.
func TestAPIKeyGoesToTheServerOnly(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewUnstartedServer(nil)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Host+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		switch r.URL.Path {
		case "/api/v1/keys": // same origin
			http.Redirect(w, r, "/api/v1/meters", http.StatusFound)
		case "/api/v1/exports": // "localhost" is another origin than "127.0.0.1"
			http.Redirect(w, r, "http://localhost:"+port+"/api/v1/meters", http.StatusFound)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte("[]"))
		}
	})
	srv.Start()
	t.Cleanup(srv.Close)
	c := client.New(srv.URL, client.WithAPIKey("odo_secret"), client.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	if _, err := c.ListKeys(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListExports(t.Context()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	host := strings.TrimPrefix(srv.URL, "http://")
	want := []string{
		host + " Bearer odo_secret", host + " Bearer odo_secret", // /api/v1/keys, then /api/v1/meters
		host + " Bearer odo_secret", "localhost:" + port + " ", // /api/v1/exports, then elsewhere
	}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Fatalf("requests seen:\n%q\nwant\n%q", seen, want)
	}
}

// TestRateLimitProblem: over its rate, a key gets a temporary problem
// that says how long to wait.
func TestRateLimitProblem(t *testing.T) {
	t.Parallel()
	var tok string
	srv := apitest.Server(t, apitest.Key(&tok, "acme", client.ScopeIngest),
		apitest.Config(func(c *api.Config) { c.IngestRate, c.IngestBurst = 0.01, 1 })) // a token per 100 s
	c := client.New(srv.URL, client.WithAPIKey(tok))
	if _, err := c.Ingest(t.Context(), []client.Event{event("e1", "acme", `{}`, t0)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Ingest(t.Context(), []client.Event{event("e2", "acme", `{}`, t0)})
	p := wantStatus(t, "over the rate", err, http.StatusTooManyRequests)
	if !p.Temporary() || p.RetryAfter < 90*time.Second || p.RetryAfter > 100*time.Second {
		t.Fatalf("problem %+v; want temporary, with RetryAfter about 100s", p)
	}
	b, _ := json.Marshal(p)
	if strings.Contains(string(b)+p.Error(), tok[len(tok)-10:]) {
		t.Fatalf("the problem holds the token: %s", p.Error())
	}
}

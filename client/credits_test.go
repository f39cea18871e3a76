package client_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer/api/apitest"
	"github.com/odometerhq/odometer/client"
)

// post sends a JSON body to the real API and decodes the answer.
func post(t *testing.T, base, path, body string, out any) {
	t.Helper()
	resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBalanceAndAccess(t *testing.T) {
	t.Parallel()
	srv := apitest.Server(t)
	c := client.New(srv.URL)
	ctx := t.Context()

	createTokensMeter(t, c)
	post(t, srv.URL, "/api/v1/features", `{"key":"ai","meter":"tokens"}`, nil)
	var l struct{ ID string }
	post(t, srv.URL, "/api/v1/ledgers", `{"subject":"acme"}`, &l)
	start := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	post(t, srv.URL, "/api/v1/ledgers/"+l.ID+"/grants",
		`{"feature":"ai","amount":"10","effectiveAt":"`+start.Format(time.RFC3339)+`"}`, nil)
	if _, err := c.Ingest(ctx, []client.Event{event("u1", "acme", `{"tokens":"7.5","model":"m"}`, start.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}

	got, err := c.LedgerOf(ctx, "acme")
	if err != nil || got.ID != l.ID {
		t.Fatalf("LedgerOf(acme) = %+v, %v; want %s", got, err, l.ID)
	}
	if _, err := c.LedgerOf(ctx, "nobody"); client.AsProblem(err) == nil || client.AsProblem(err).Status != http.StatusNotFound {
		t.Fatalf("LedgerOf(nobody): %v, want a 404 problem", err)
	}
	bal, err := c.Balance(ctx, l.ID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(bal.Features) != 1 || bal.Features[0].Balance != "2.5" || bal.Features[0].Usage != "7.5" || len(bal.Features[0].Grants) != 1 {
		t.Fatalf("balance %+v", bal)
	}
	before, err := c.Balance(ctx, l.ID, start.Add(30*time.Second))
	if err != nil || before.Features[0].Balance != "10" {
		t.Fatalf("balance before the usage: %+v, %v", before, err)
	}
	if _, err := c.Ingest(ctx, []client.Event{event("u2", "acme", `{"tokens":"3","model":"m"}`, start.Add(2*time.Minute))}); err != nil {
		t.Fatal(err)
	}
	a, err := c.Access(ctx, l.ID, "ai", false)
	if err != nil || a.HasAccess || a.Overage != "0.5" {
		t.Fatalf("access after overuse: %+v, %v; want no access and overage 0.5", a, err)
	}
	a, err = c.Access(ctx, l.ID, "ai", true)
	if err != nil || !a.HasAccess {
		t.Fatalf("access with a soft limit: %+v, %v; want access", a, err)
	}
	if _, err := c.Access(ctx, l.ID, "nope", false); client.AsProblem(err) == nil {
		t.Fatalf("access to an unknown feature: %v, want a problem", err)
	}
}

package billing_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer/api/apitest"
	"github.com/odometerhq/odometer/client"
	"github.com/odometerhq/odometer/client/billing"
)

// newServer starts the real API on SQLite with a meter of billing amounts
// by type.
func newServer(t *testing.T) (string, *client.Client) {
	t.Helper()
	srv := apitest.Server(t)
	c := client.New(srv.URL)
	if _, err := c.CreateMeter(t.Context(), client.MeterCreate{Slug: "usage", EventType: "billing", Aggregation: "SUM",
		ValueProperty: "$.amount", GroupBy: map[string]string{"type": "$.amount_type"}}); err != nil {
		t.Fatal(err)
	}
	return srv.URL, c
}

func closeClient(t *testing.T, c *billing.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAddAmounts(t *testing.T) {
	t.Parallel()
	url, api := newServer(t)
	reg := prometheus.NewRegistry()
	c, err := billing.New(billing.Config{URL: url, SpoolDir: t.TempDir()}, reg)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	amounts := billing.Amounts{billing.ContainerSeconds: 3600, billing.NodeSeconds: 60, billing.Samples: 0, "gpu-seconds": 7}
	if err := c.AddAmounts("req-1", "instance-a", at, amounts, map[string]string{"region": "eu"}); err != nil {
		t.Fatal(err)
	}
	// A retry of the same call is counted once by the server.
	if err := c.AddAmounts("req-1", "instance-a", at, amounts, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.AddAmounts("req-2", "instance-a", at.Add(time.Hour), billing.Amounts{billing.ContainerSeconds: 400}, nil); err != nil {
		t.Fatal(err)
	}
	// Rejected by the server (a NUL in the subject): dead-lettered, counted
	// as rejected; the others go on.
	if err := c.AddAmounts("req-3", "bad\x00instance", at, billing.Amounts{billing.WeavenetSeconds: 5}, nil); err != nil {
		t.Fatal(err)
	}
	closeClient(t, c)

	res, err := api.QueryMeter(t.Context(), "usage", client.Query{GroupBy: []string{"type"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range res.Data {
		got[*r.GroupBy["type"]] = r.Value.String()
	}
	want := map[string]string{"container-seconds": "4000", "node-seconds": "60", "gpu-seconds": "7"}
	if len(got) != len(want) {
		t.Fatalf("server usage %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("server usage %v, want %v", got, want)
		}
	}

	for _, c := range []struct {
		status, typ string
		events      float64
		amount      float64
	}{
		{"success", "container-seconds", 3, 7600}, // req-1 twice (a duplicate is delivered too), req-2
		{"success", "node-seconds", 2, 120},
		{"success", "samples", 0, 0},
		{"rejected", "weavenet-seconds", 1, 5},
	} {
		if n := counter(t, reg, "billing_client_events_total", c.status, c.typ); n != c.events {
			t.Errorf("billing_client_events_total{%s,%s} = %v, want %v", c.status, c.typ, n, c.events)
		}
		if n := counter(t, reg, "billing_client_amounts_total", c.status, c.typ); n != c.amount {
			t.Errorf("billing_client_amounts_total{%s,%s} = %v, want %v", c.status, c.typ, n, c.amount)
		}
	}
}

// counter returns the value of a gathered counter (0 when absent).
func counter(t *testing.T, reg *prometheus.Registry, name, status, typ string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["status"] == status && labels["amount_type"] == typ {
				v = m.GetCounter().GetValue()
			}
		}
	}
	return v
}

func TestEventIDIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := billing.EventID("k", billing.ContainerSeconds), billing.EventID("k", billing.ContainerSeconds)
	if a != b || a == billing.EventID("k", billing.NodeSeconds) || a == billing.EventID("k2", billing.ContainerSeconds) {
		t.Fatalf("EventID: %s %s", a, b)
	}
}

func TestRegisterFlagsAndRegistries(t *testing.T) {
	t.Parallel()
	var cfg billing.Config
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	dir := t.TempDir()
	if err := fs.Parse([]string{"-billing.url", "http://127.0.0.1:1", "-billing.spool-dir", dir, "-billing.timeout", "2s"}); err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "http://127.0.0.1:1" || cfg.SpoolDir != dir || cfg.Timeout != 2*time.Second || cfg.EventType != "billing" {
		t.Fatalf("config from flags: %+v", cfg)
	}
	// Two clients on two registries, and one on none: no global state.
	for _, reg := range []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry(), nil} {
		cfg.SpoolDir = t.TempDir()
		var r prometheus.Registerer
		if reg != nil {
			r = reg
		}
		c, err := billing.New(cfg, r)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		c.Close(ctx)
		cancel()
	}
}

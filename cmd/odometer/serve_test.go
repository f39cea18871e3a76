package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/ledger"
	"github.com/odometerhq/odometer/sqlite"
)

func mustParseConfig(t *testing.T, yaml string) []*odometer.Meter {
	t.Helper()
	lc, err := parseConfig([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return lc.meters
}

func TestSyncMeters(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.DiscardHandler)
	t1 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	t2, t3 := t1.Add(time.Hour), t1.Add(2*time.Hour)

	// A meter created through the API, absent from the config.
	other := &odometer.Meter{ID: odometer.NewID(t1), Namespace: "default", Slug: "other", EventType: "x", Aggregation: odometer.Count, CreatedAt: t1, UpdatedAt: t1}
	if err := store.CreateMeter(ctx, other); err != nil {
		t.Fatal(err)
	}

	v1 := mustParseConfig(t, `
meters:
  - slug: tokens
    eventType: prompt
    aggregation: SUM
    valueProperty: $.tokens
    groupBy: {model: $.model}
  - slug: requests
    description: Requests served
    eventType: prompt
    aggregation: COUNT
    filters: {$.status: ["ok", "cached"]}
    eventFrom: 2024-01-01T00:00:00Z
`)
	if err := syncMeters(ctx, store, v1, t1, log); err != nil {
		t.Fatal(err)
	}
	tokens, err := store.FindMeter(ctx, "default", "tokens")
	if err != nil {
		t.Fatal(err)
	}
	if tokens.ID == "" || tokens.Name != "tokens" || tokens.ValueProperty != "$.tokens" || tokens.GroupBy["model"] != "$.model" ||
		!tokens.CreatedAt.Equal(t1) || !tokens.UpdatedAt.Equal(t1) {
		t.Errorf("created tokens = %+v", tokens)
	}
	requests, err := store.FindMeter(ctx, "default", "requests")
	if err != nil {
		t.Fatal(err)
	}
	if requests.Description != "Requests served" || len(requests.Filters["$.status"]) != 2 || requests.EventFrom == nil || !requests.EventFrom.Equal(t1) {
		t.Errorf("created requests = %+v", requests)
	}

	// The same config again changes nothing.
	if err := syncMeters(ctx, store, v1, t2, log); err != nil {
		t.Fatal(err)
	}
	for _, slug := range []string{"tokens", "requests"} {
		m, err := store.FindMeter(ctx, "default", slug)
		if err != nil {
			t.Fatal(err)
		}
		if !m.UpdatedAt.Equal(t1) {
			t.Errorf("%s updated at %v by an unchanged config", slug, m.UpdatedAt)
		}
	}

	// Mutable fields change in place; the id and creation time stay.
	v2 := mustParseConfig(t, `
meters:
  - slug: tokens
    name: Tokens
    description: LLM tokens
    eventType: prompt
    aggregation: SUM
    valueProperty: $.tokens
    groupBy: {model: $.model, region: $.region}
`)
	if err := syncMeters(ctx, store, v2, t3, log); err != nil {
		t.Fatal(err)
	}
	got, err := store.FindMeter(ctx, "default", "tokens")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tokens.ID || got.Name != "Tokens" || got.Description != "LLM tokens" || got.GroupBy["region"] != "$.region" ||
		!got.CreatedAt.Equal(t1) || !got.UpdatedAt.Equal(t3) {
		t.Errorf("updated tokens = %+v", got)
	}
	// Meters absent from the config are left alone.
	for _, slug := range []string{"requests", "other"} {
		if _, err := store.FindMeter(ctx, "default", slug); err != nil {
			t.Errorf("%s: %v", slug, err)
		}
	}

	// What a meter counts cannot change under the same slug.
	for field, yaml := range map[string]string{
		"eventType":     "meters: [{slug: tokens, eventType: completion, aggregation: SUM, valueProperty: $.tokens}]",
		"aggregation":   "meters: [{slug: tokens, eventType: prompt, aggregation: MAX, valueProperty: $.tokens}]",
		"valueProperty": "meters: [{slug: tokens, eventType: prompt, aggregation: SUM, valueProperty: $.input}]",
		"eventFrom":     "meters: [{slug: tokens, eventType: prompt, aggregation: SUM, valueProperty: $.tokens, eventFrom: 2024-02-01T00:00:00Z}]",
	} {
		err := syncMeters(ctx, store, mustParseConfig(t, yaml), t3, log)
		if err == nil || !strings.Contains(err.Error(), `meter "tokens": `+field+" is") {
			t.Errorf("changing %s: err = %v; want an error naming the meter and the field", field, err)
		}
	}
	if got, _ := store.FindMeter(ctx, "default", "tokens"); got.EventType != "prompt" || got.Aggregation != odometer.Sum || got.ValueProperty != "$.tokens" {
		t.Errorf("a refused change was stored: %+v", got)
	}

	// A group-by key that a feature filters on cannot be dropped.
	svc := ledger.New(store, func() time.Time { return t3 }, nil)
	if _, err := svc.CreateFeature(ctx, "default", ledger.FeatureInput{Key: "eu", Meter: "tokens",
		MeterGroupByFilters: map[string]string{"region": "eu"}}); err != nil {
		t.Fatal(err)
	}
	err = syncMeters(ctx, store, mustParseConfig(t, "meters: [{slug: tokens, eventType: prompt, aggregation: SUM, valueProperty: $.tokens, groupBy: {model: $.model}}]"), t3, log)
	if odometer.ErrorCode(err) != odometer.ECONFLICT || !strings.Contains(err.Error(), `"eu" (filters on "region")`) {
		t.Errorf("dropping a group-by key a feature filters on: %v", err)
	}
}

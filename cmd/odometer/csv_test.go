package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

// injections are text cells that a spreadsheet would evaluate, with one
// ordinary value.
var injections = []string{`=HYPERLINK("http://x","y")`, "+1", "-cmd", "@SUM(A1)", "\tx", "\rx", "acme"}

// neutralised is what a CSV cell holding v must read.
func neutralised(v string) string {
	if v == "acme" {
		return v
	}
	return "'" + v
}

// parseCSV parses out, failing the test if it is not CSV.
func parseCSV(t *testing.T, out string) [][]string {
	t.Helper()
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v\n%s", err, out)
	}
	return records
}

// TestQueryCSVFormulas ingests events whose subjects and models are
// formulas and checks "odometer query --format csv": every such cell is
// quoted, the values (negative here) stay exact.
func TestQueryCSVFormulas(t *testing.T) {
	t.Parallel()
	url, log, stop := startServe(t, "--config", "testdata/meters.yaml")
	server := "--server=" + url
	var lines []string
	for i, v := range injections {
		ev := map[string]any{"specversion": "1.0", "id": fmt.Sprint("f", i), "source": "csv", "type": "prompt", "subject": v,
			"time": "2024-03-01T10:00:00Z", "data": map[string]string{"tokens": "-5", "model": v}}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	file := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mustRun(t, "ingest", server, file); got != "accepted=7 duplicate=0 rejected=0\n" {
		t.Fatalf("ingest: %q", got)
	}
	records := parseCSV(t, mustRun(t, "query", server, "tokens", "--from", "2024-03-01", "--to", "2024-03-02",
		"--group-by", "subject", "--group-by", "model", "--format", "csv"))
	want := [][]string{{"window_start", "window_end", "subject", "model", "value"}}
	sorted := slices.Clone(injections)
	slices.Sort(sorted) // rows are ordered by subject
	for _, v := range sorted {
		want = append(want, []string{"2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", neutralised(v), neutralised(v), "-5"})
	}
	if fmt.Sprintf("%q", records) != fmt.Sprintf("%q", want) {
		t.Errorf("query --format csv:\n%q\nwant\n%q", records, want)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v\n%s", err, log)
	}
}

// TestExportStatusCSVFormulas declares export dimensions whose names are
// formulas, freezes an hour of records for each, and checks that
// "odometer export status --csv" quotes the names and leaves the counts
// alone.
func TestExportStatusCSVFormulas(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var dims []string
	for _, v := range injections {
		name, _ := json.Marshal(v) // a YAML double-quoted string
		dims = append(dims, fmt.Sprintf("{dimension: %s, meterSlug: calls}", name))
	}
	cfg := filepath.Join(t.TempDir(), "odometer.yaml")
	err := os.WriteFile(cfg, []byte(`
meters:
  - {slug: calls, eventType: call, aggregation: COUNT}
exports:
  - name: aws
    productCode: prod-abc
    region: us-east-1
    dryRun: true
    dimensions: [`+strings.Join(dims, ", ")+`]
    customers:
      - {subject: acme, customerId: cust-1}
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, log, stop := startServe(t, "--data", dir, "--config", cfg, "--no-export")
	if err := stop(); err != nil {
		t.Fatalf("serve: %v\n%s", err, log)
	}

	ctx := t.Context()
	store, err := openStore(ctx, dir, eventLogPebble)
	if err != nil {
		t.Fatal(err)
	}
	d, err := store.FindExportDestination(ctx, "default", "aws")
	if err != nil {
		t.Fatal(err)
	}
	h0 := d.StartHour
	f := &odometer.ExportFreeze{Namespace: "default", Destination: "aws", Hour: h0}
	for _, v := range injections {
		f.Records = append(f.Records, &odometer.ExportRecord{Namespace: "default", Destination: "aws", Subject: "acme", Dimension: v,
			Hour: h0, CustomerID: "cust-1", Quantity: 2, Usage: odometer.MustDecimal("2"), Accounted: odometer.MustDecimal("2"),
			Status: odometer.ExportPending, FrozenAt: h0.Add(65 * time.Minute), UpdatedAt: h0.Add(65 * time.Minute)})
	}
	if err := store.FreezeExportHour(ctx, f); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	url, log, stop := startServe(t, "--data", dir, "--no-export")
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v\n%s", err, log)
		}
	}()
	records := parseCSV(t, mustRun(t, "export", "status", "--server="+url, "--csv", "--from", h0.Format(time.RFC3339)))
	if len(records) != len(injections)+1 || records[0][2] != "dimension" {
		t.Fatalf("export status --csv:\n%q", records)
	}
	var got, want []string
	for _, rec := range records[1:] {
		got = append(got, strings.Join(rec, "|"))
	}
	for _, v := range injections {
		want = append(want, "aws|"+h0.Format(time.RFC3339)+"|"+neutralised(v)+"|1|0|0|0|0|0|0|0|0")
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("export status --csv rows:\n%q\nwant\n%q", got, want)
	}
}

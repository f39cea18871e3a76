package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/api/apitest"
	"github.com/odometerhq/odometer/client"
	"github.com/odometerhq/odometer/sqlite"
)

func TestExports(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	h, stop := apitest.Handler(t, dir, api.Limits{})
	srv := httptest.NewServer(h)
	c := client.New(srv.URL)

	if _, err := c.CreateMeter(ctx, client.MeterCreate{Slug: "seconds", EventType: "run", Aggregation: "SUM",
		ValueProperty: "$.s", GroupBy: map[string]string{"kind": "$.kind"}}); err != nil {
		t.Fatal(err)
	}
	if ds, err := c.ListExports(ctx); err != nil || len(ds) != 0 {
		t.Fatalf("ListExports = %v, %v; want none", ds, err)
	}
	start := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	def := client.ExportDestination{ProductCode: "prod-abc", StartHour: start, Delay: 5 * time.Minute,
		Dimensions: []client.ExportDimension{
			{Dimension: "hours", MeterSlug: "seconds", Divide: "36"},
			{Dimension: "gpu", MeterSlug: "seconds", GroupBy: map[string]string{"kind": "gpu"}, Multiply: "0.5", Rounding: "HALF_UP"},
		}}
	d, created, err := c.PutExport(ctx, "aws", def)
	if err != nil || !created {
		t.Fatalf("PutExport = %v, %v", created, err)
	}
	if d.Name != "aws" || d.Account != "default" || !d.StartHour.Equal(start) || d.Delay != 5*time.Minute || d.Window != 6*time.Hour || d.LateHorizon != 24*time.Hour ||
		d.FrozenThrough != nil || d.CreatedAt.IsZero() || len(d.Dimensions) != 2 || d.Dimensions[0].Divide != "36" ||
		d.Dimensions[0].Multiply != "1" || d.Dimensions[0].Rounding != "DOWN" || d.Dimensions[1].Multiply != "0.5" {
		t.Fatalf("PutExport returned %+v", d)
	}
	// What GetExport returns can be put back as it is.
	got, err := c.GetExport(ctx, "aws")
	if err != nil {
		t.Fatal(err)
	}
	got.DryRun = true
	d, created, err = c.PutExport(ctx, "aws", *got)
	if err != nil || created || !d.DryRun || !d.StartHour.Equal(start) || d.Delay != 5*time.Minute {
		t.Fatalf("PutExport again = %+v, %v, %v", d, created, err)
	}
	_, _, err = c.PutExport(ctx, "aws", client.ExportDestination{ProductCode: "p", Window: 48 * time.Hour,
		Dimensions: []client.ExportDimension{{Dimension: "x", MeterSlug: "nope"}}})
	if p := client.AsProblem(err); p == nil || p.Status != http.StatusBadRequest || len(p.Errors) != 2 ||
		p.Errors[0].Field != "window" || p.Errors[1].Field != "dimensions[0].meterSlug" {
		t.Fatalf("invalid PutExport: %v (%+v)", err, client.AsProblem(err))
	}
	// Only the accounts the operator granted the namespace: the implicit
	// "default" here.
	def.Account = "other"
	_, _, err = c.PutExport(ctx, "aws", def)
	if p := client.AsProblem(err); p == nil || p.Status != http.StatusForbidden || len(p.Errors) != 1 || p.Errors[0].Field != "account" {
		t.Fatalf("PutExport with an account not granted: %v (%+v)", err, client.AsProblem(err))
	}
	def.Account = ""
	if _, err := c.GetExport(ctx, "nope"); client.AsProblem(err) == nil || client.AsProblem(err).Status != http.StatusNotFound {
		t.Fatalf("GetExport(nope): %v", err)
	}

	cust, err := c.PutExportCustomer(ctx, "aws", client.ExportCustomer{Subject: "acme", CustomerID: "cust-1"})
	if err != nil || cust.Subject != "acme" || cust.CustomerID != "cust-1" || cust.CreatedAt.IsZero() {
		t.Fatalf("PutExportCustomer = %+v, %v", cust, err)
	}
	// From: the first hour exported, two hours back; a zero From keeps it;
	// a From that is not a whole hour is refused, naming from.
	from := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	cust, err = c.PutExportCustomer(ctx, "aws", client.ExportCustomer{Subject: "acme", CustomerID: "cust-1", From: from.In(time.FixedZone("", -3600))})
	if err != nil || !cust.From.Equal(from) {
		t.Fatalf("PutExportCustomer with From = %+v, %v; want From %s", cust, err, from)
	}
	if cust, err = c.PutExportCustomer(ctx, "aws", client.ExportCustomer{Subject: "acme", CustomerID: "cust-1"}); err != nil || !cust.From.Equal(from) {
		t.Fatalf("PutExportCustomer without From = %+v, %v; want From kept", cust, err)
	}
	if _, err := c.PutExportCustomer(ctx, "aws", client.ExportCustomer{Subject: "acme", CustomerID: "cust-1", From: from.Add(30 * time.Minute)}); client.AsProblem(err) == nil ||
		client.AsProblem(err).Status != http.StatusBadRequest || client.AsProblem(err).Errors[0].Field != "from" {
		t.Fatalf("PutExportCustomer with From on the half hour: %v", err)
	}
	if _, err := c.PutExportCustomer(ctx, "aws", client.ExportCustomer{Subject: "team/b", AWSAccountID: "123456789012", LicenseArn: "arn:l"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutExportCustomer(ctx, "aws", client.ExportCustomer{Subject: "other", CustomerID: "cust-1"}); client.AsProblem(err) == nil ||
		client.AsProblem(err).Status != http.StatusConflict {
		t.Fatalf("a second subject for cust-1: %v", err)
	}
	cs, err := c.ListExportCustomers(ctx, "aws")
	if err != nil || len(cs) != 2 || cs[1].Subject != "team/b" || cs[1].LicenseArn != "arn:l" ||
		!cs[0].From.Equal(from) || !cs[1].From.IsZero() {
		t.Fatalf("ListExportCustomers = %+v, %v", cs, err)
	}
	if err := c.DeleteExportCustomer(ctx, "aws", "team/b"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteExportCustomer(ctx, "aws", "team/b"); client.AsProblem(err) == nil || client.AsProblem(err).Status != http.StatusNotFound {
		t.Fatalf("second DeleteExportCustomer: %v", err)
	}

	// Freeze an hour as the exporter does, with the server stopped.
	srv.Close()
	stop()
	store, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(dim string, q int64, status odometer.ExportStatus) *odometer.ExportRecord {
		return &odometer.ExportRecord{Namespace: "default", Destination: "aws", Subject: "acme", Dimension: dim, Hour: start,
			CustomerID: "cust-1", Quantity: q, Usage: odometer.MustDecimal("3601.5"), Accounted: odometer.MustDecimal("3601.5"),
			Carry: odometer.MustDecimal("1.5"), Status: status, FrozenAt: start.Add(time.Hour), UpdatedAt: start.Add(time.Hour)}
	}
	err = store.FreezeExportHour(ctx, &odometer.ExportFreeze{Namespace: "default", Destination: "aws", Hour: start,
		Records: []*odometer.ExportRecord{rec("hours", 100, odometer.ExportAccepted), rec("gpu", 0, odometer.ExportPending)}})
	if cerr := store.Close(); err != nil || cerr != nil {
		t.Fatal(err, cerr)
	}
	h, stop = apitest.Handler(t, dir, api.Limits{})
	defer stop()
	srv = httptest.NewServer(h)
	defer srv.Close()
	c = client.New(srv.URL)

	recs, err := c.ExportRecords(ctx, "aws", client.ExportRecordsQuery{})
	if err != nil || len(recs) != 2 {
		t.Fatalf("ExportRecords = %+v, %v", recs, err)
	}
	r := recs[1]
	if r.Dimension != "hours" || !r.Hour.Equal(start) || r.CustomerID != "cust-1" || r.Quantity != 100 || r.Usage != "3601.5" ||
		r.Carry != "1.5" || r.Late != "0" || r.Status != client.ExportAccepted {
		t.Errorf("record %+v", r)
	}
	if u, _ := r.Usage.Float64(); u != 3601.5 {
		t.Errorf("usage %v", u)
	}
	recs, err = c.ExportRecords(ctx, "aws", client.ExportRecordsQuery{Status: []string{client.ExportPending}, From: start,
		To: start.Add(time.Hour), Subject: "acme", Dimension: "gpu", Limit: 1})
	if err != nil || len(recs) != 1 || recs[0].Dimension != "gpu" {
		t.Fatalf("ExportRecords(pending gpu) = %+v, %v", recs, err)
	}
	if _, err := c.ExportRecords(ctx, "aws", client.ExportRecordsQuery{Status: []string{"sent"}}); client.AsProblem(err) == nil ||
		client.AsProblem(err).Errors[0].Field != "status" {
		t.Fatalf("ExportRecords(status sent): %v", err)
	}

	st, err := c.ExportStatus(ctx, "aws", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Destination != "aws" || st.FrozenThrough == nil || !st.FrozenThrough.Equal(start.Add(time.Hour)) || !st.To.Equal(start.Add(time.Hour)) ||
		!st.From.Equal(start.Add(-47*time.Hour)) || len(st.Hours) != 2 {
		t.Fatalf("ExportStatus = %+v", st)
	}
	if h := st.Hours[1]; h.Dimension != "hours" || h.Accepted != 1 || h.QuantityAccepted != 100 || h.Pending != 0 {
		t.Errorf("hours row %+v", h)
	}
	if h := st.Hours[0]; h.Dimension != "gpu" || h.Pending != 1 || h.QuantityAccepted != 0 {
		t.Errorf("gpu row %+v", h)
	}
	st, err = c.ExportStatus(ctx, "aws", start.Add(time.Hour), start.Add(2*time.Hour))
	if err != nil || len(st.Hours) != 0 {
		t.Fatalf("ExportStatus of a later hour = %+v, %v", st, err)
	}

	if d, err := c.GetExport(ctx, "aws"); err != nil || d.FrozenThrough == nil {
		t.Fatalf("GetExport after the freeze: %+v, %v", d, err)
	}
	if err := c.DeleteExport(ctx, "aws"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteExport(ctx, "aws"); client.AsProblem(err) == nil || client.AsProblem(err).Status != http.StatusNotFound {
		t.Fatalf("second DeleteExport: %v", err)
	}
}

// TestExportDestinationJSON checks the wire form the SDK sends: durations
// as Go duration text, zero settings left out.
func TestExportDestinationJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(client.ExportDestination{ProductCode: "p", Window: 90 * time.Minute,
		Dimensions: []client.ExportDimension{{Dimension: "d", MeterSlug: "m", Divide: "36"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"productCode":"p","window":"1h30m0s","zeroRecords":false,"dryRun":false,"dimensions":[{"dimension":"d","meterSlug":"m","divide":36}]}`; string(b) != want {
		t.Errorf("JSON %s\nwant %s", b, want)
	}
	var d client.ExportDestination
	if err := json.Unmarshal([]byte(`{"name":"a","delay":"bad"}`), &d); err == nil {
		t.Error("a bad delay was read")
	}
}

func ExampleClient_PutExport() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c := client.New(url)
	if _, err := c.CreateMeter(ctx, client.MeterCreate{
		Slug: "seconds", EventType: "run", Aggregation: "SUM", ValueProperty: "$.seconds",
	}); err != nil {
		log.Fatal(err)
	}
	// Report seconds as hundredths of an hour; a dry run freezes records
	// without sending them.
	d, created, err := c.PutExport(ctx, "aws", client.ExportDestination{
		ProductCode: "prod-abc123",
		StartHour:   time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		DryRun:      true,
		Dimensions:  []client.ExportDimension{{Dimension: "compute_hours", MeterSlug: "seconds", Divide: "36"}},
	})
	if err != nil {
		log.Fatal(err) // a *client.Problem names every bad field
	}
	fmt.Println(created, d.Delay, d.Window, d.Dimensions[0].Rounding)
	if _, err := c.PutExportCustomer(ctx, "aws", client.ExportCustomer{Subject: "acme", CustomerID: "cust-1"}); err != nil {
		log.Fatal(err)
	}
	recs, err := c.ExportRecords(ctx, "aws", client.ExportRecordsQuery{Status: []string{client.ExportPending}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(recs), "records frozen")
	// Output:
	// true 15m0s 6h0m0s DOWN
	// 0 records frozen
}

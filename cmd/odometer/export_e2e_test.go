package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export/awsmp/awsmptest"
)

// The exporter inside "odometer serve": usage ingested over HTTP for the
// last three hours is frozen, sent to a local AWS stand-in (the endpoint
// of the config file's AWS account) through the SDK's default credential
// chain, and shown by "odometer export status"
// and "odometer export records". Not parallel: the AWS SDK reads its
// credentials from the process environment.
func TestServeExportsUsage(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	aws := awsmptest.Start(t, "prod-e2e")
	start := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	cfg := filepath.Join(t.TempDir(), "odometer.yaml")
	config := fmt.Sprintf(`
meters:
  - {slug: seconds, eventType: run, aggregation: SUM, valueProperty: $.s}
aws:
  accounts:
    - {name: main, namespaces: [default], productCodes: [prod-e2e], region: us-east-1, endpoint: %s}
exports:
  - name: aws
    productCode: prod-e2e
    startHour: %s
    delay: 1s
    dimensions:
      - {dimension: hours, meterSlug: seconds, divide: 36}
`, aws.URL, start.Format(time.RFC3339))
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	// Usage first, with the exporter off.
	url, log, stop := startServe(t, "--data", dir, "--config", cfg, "--no-export")
	var events strings.Builder
	for h := range 3 {
		for i, s := range []string{"1800", "0.5"} {
			at := start.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Minute)
			fmt.Fprintf(&events, `{"specversion":"1.0","id":"e-%d-%d","source":"test","type":"run","subject":"acme","time":%q,"data":{"s":%s}}`+"\n",
				h, i, at.Format(time.RFC3339), s)
		}
	}
	if _, stderr, err := runCmd(t, events.String(), "ingest", "--server="+url, "-"); err != nil {
		t.Fatalf("ingest: %v\n%s", err, stderr)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v\n%s", err, log)
	}
	// A customer mapped since the first hour, as if set up then.
	store, err := openStore(t.Context(), dir, eventLogPebble)
	if err != nil {
		t.Fatal(err)
	}
	c := &odometer.ExportCustomer{Namespace: "default", Destination: "aws", Subject: "acme", CustomerID: "cust-acme", CreatedAt: start, UpdatedAt: start}
	if err := store.PutExportCustomer(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	store.Close()

	url, log, stop = startServe(t, "--data", dir, "--config", cfg, "--export-interval", "50ms")
	defer stop()
	// Wait until the outcomes are stored, not only sent.
	deadline := time.Now().Add(30 * time.Second)
	var status string
	for {
		status = mustRun(t, "export", "status", "--server="+url, "--csv")
		if strings.Count(status, ",hours,0,0,1,") == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s AWS metered %v and the status is:\n%s\nlog:\n%s", aws.Accepted(), status, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// 1800.5 s an hour: 50 hundredths of an hour each, 0.5 s carried.
	for _, k := range aws.Keys() {
		if q := aws.Accepted()[k]; k.Customer != "cust-acme" || k.Dimension != "hours" || q != 50 {
			t.Errorf("AWS metered %d for %+v", q, k)
		}
	}
	records := mustRun(t, "export", "records", "aws", "--server="+url, "--status", "accepted")
	if got := strings.Count(records, " cust-acme "); got != 3 {
		t.Errorf("records list %d accepted records, want 3:\n%s", got, records)
	}
	if !strings.Contains(records, "1.5") {
		t.Errorf("records do not show the 1.5 s carried after three hours:\n%s", records)
	}
}

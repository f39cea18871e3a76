package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/sqlite"
)

const licenseArn = "arn:aws:license-manager::123456789012:license:l-0123456789abcdef0123456789abcdef"

// exportConfig declares two meters and a destination with both kinds of
// customers.
const exportConfig = `
meters:
  - slug: seconds
    eventType: run
    aggregation: SUM
    valueProperty: $.s
    groupBy: {kind: $.kind}
  - {slug: calls, eventType: call, aggregation: COUNT}
exports:
  - name: aws
    productCode: prod-abc
    region: us-east-1
    delay: 5m
    window: 12h
    lateHorizon: 48h
    dryRun: true
    dimensions:
      - dimension: hours
        meterSlug: seconds
        divide: 36
      - dimension: gpu_hours
        meterSlug: seconds
        groupBy: {kind: gpu}
        multiply: 0.5
        divide: "3600"
        rounding: HALF_UP
    customers:
      - {subject: acme, customerId: cust-1}
      - {subject: beta, awsAccountId: 012345678901, licenseArn: "` + licenseArn + `"}
`

func TestExportConfig(t *testing.T) {
	t.Parallel()
	lc, err := parseConfig([]byte(exportConfig))
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.exports) != 1 {
		t.Fatalf("exports = %+v", lc.exports)
	}
	def := lc.exports[0]
	d := def.Destination
	if d.Name != "aws" || d.ProductCode != "prod-abc" || d.Region != "us-east-1" || d.Delay != 5*time.Minute || d.Window != 12*time.Hour ||
		d.LateHorizon != 48*time.Hour || !d.DryRun || d.ZeroRecords || def.StartHourSet || len(d.Dimensions) != 2 {
		t.Fatalf("destination %+v", d)
	}
	if g := d.Dimensions[1]; g.Multiply.String() != "0.5" || g.Divide.String() != "3600" || g.Rounding != "HALF_UP" || g.GroupBy["kind"] != "gpu" {
		t.Errorf("gpu_hours = %+v", g)
	}
	if h := d.Dimensions[0]; h.Multiply.String() != "1" || h.Divide.String() != "36" || h.Rounding != "DOWN" {
		t.Errorf("hours = %+v", h)
	}
	if len(def.Customers) != 2 || def.Customers[0].CustomerID != "cust-1" || def.Customers[1].AWSAccountID != "012345678901" ||
		def.Customers[1].LicenseArn != licenseArn {
		t.Errorf("customers %+v", def.Customers)
	}

	dims := "\n    dimensions: [{dimension: d, meterSlug: m}]"
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"no product", "exports:\n  - name: aws" + dims, []string{`exports[0] ("aws", line 2)`, "productCode: required"}},
		{"bad name", "exports:\n  - name: a b\n    productCode: p" + dims, []string{"name: must be 1–63 letters"}},
		{"unknown key", "exports:\n  - name: aws\n    productCode: p\n    dealy: 5m" + dims, []string{`line 4: unknown key "dealy"`}},
		{"unknown dimension key", "exports:\n  - name: aws\n    productCode: p\n    dimensions: [{dimension: d, meterSlug: m, factor: 2}]",
			[]string{`line 4: unknown key "factor"`}},
		{"bad delay", "exports:\n  - name: aws\n    productCode: p\n    delay: soon" + dims, []string{"delay: line 4: must be a duration", `"soon"`}},
		{"zero delay", "exports:\n  - name: aws\n    productCode: p\n    delay: 0s" + dims, []string{"delay: line 4: must be above 0"}},
		{"long window", "exports:\n  - name: aws\n    productCode: p\n    window: 25h" + dims, []string{"window: must be above 0 and at most 24h"}},
		{"short horizon", "exports:\n  - name: aws\n    productCode: p\n    lateHorizon: 10m" + dims, []string{"lateHorizon: must be from 1h"}},
		{"start hour", "exports:\n  - name: aws\n    productCode: p\n    startHour: 2026-03-01T00:30:00Z" + dims, []string{"startHour: must be a whole UTC hour"}},
		{"start text", "exports:\n  - name: aws\n    productCode: p\n    startHour: March" + dims, []string{"startHour: line 4: must be an RFC 3339 time"}},
		{"no dimensions", "exports:\n  - name: aws\n    productCode: p", []string{"dimensions: list at least one"}},
		{"bad divide", "exports:\n  - name: aws\n    productCode: p\n    dimensions:\n      - {dimension: d, meterSlug: m, divide: x}",
			[]string{"dimensions[0].divide: line 5: must be a decimal number"}},
		{"zero multiply", "exports:\n  - name: aws\n    productCode: p\n    dimensions:\n      - {dimension: d, meterSlug: m, multiply: 0}",
			[]string{"dimensions[0].multiply: line 5: must be positive"}},
		{"rounding", "exports:\n  - name: aws\n    productCode: p\n    dimensions:\n      - {dimension: d, meterSlug: m, rounding: UP}",
			[]string{"dimensions[0].rounding: must be DOWN or HALF_UP"}},
		{"customer", "exports:\n  - name: aws\n    productCode: p" + dims + "\n    customers: [{subject: acme}]",
			[]string{"customers[0].customerId: required"}},
		{"customer license", "exports:\n  - name: aws\n    productCode: p" + dims + "\n    customers: [{subject: acme, awsAccountId: '123456789012'}]",
			[]string{"customers[0].licenseArn: required with awsAccountId"}},
		{"subject twice", "exports:\n  - name: aws\n    productCode: p" + dims +
			"\n    customers: [{subject: a, customerId: c1}, {subject: a, customerId: c2}]", []string{`customers[1].subject: "a" is customers[0] already`}},
		{"customer twice", "exports:\n  - name: aws\n    productCode: p" + dims +
			"\n    customers: [{subject: a, customerId: c1}, {subject: b, customerId: c1}]", []string{`customers[1].subject: customer "c1" is mapped to subject "a"`}},
		{"customer from text", "exports:\n  - name: aws\n    productCode: p" + dims + "\n    customers:\n      - {subject: a, customerId: c, from: today}",
			[]string{"customers[0].from: line 6: must be an RFC 3339 time", `"today"`}},
		{"customer from half hour", "exports:\n  - name: aws\n    productCode: p" + dims +
			"\n    customers:\n      - {subject: a, customerId: c}\n      - {subject: b, customerId: d, from: '2026-03-01T09:30:00+01:00'}",
			[]string{"customers[1].from: line 7: must be a whole UTC hour"}},
		{"name twice", "exports:\n  - {name: aws, productCode: p, dimensions: [{dimension: d, meterSlug: m}]}\n" +
			"  - {name: aws, productCode: q, dimensions: [{dimension: d, meterSlug: m}]}", []string{`exports[1] ("aws", line 3): name "aws" is exports[0]'s already`}},
		{"every problem", "exports:\n  - name: aws\n    delay: x\n    dimensions: [{dimension: d, divide: -1}]",
			[]string{"delay: line 3", "productCode: required", "dimensions[0].meterSlug: required", "dimensions[0].divide: must be positive"}},
	} {
		wantConfigError(t, tc.name, tc.yaml, tc.want...)
	}
}

func TestSyncExports(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.DiscardHandler)
	t1 := time.Date(2026, 3, 1, 10, 20, 0, 0, time.UTC)
	t2, t3 := t1.Add(3*time.Hour), t1.Add(5*time.Hour)

	lc, err := parseConfig([]byte(exportConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := syncMeters(ctx, store, lc.meters, t1, log); err != nil {
		t.Fatal(err)
	}
	// A destination created through the API, absent from the config.
	other := &odometer.ExportDestination{Namespace: "default", Name: "other", ProductCode: "p", StartHour: t1.Truncate(time.Hour),
		Delay: time.Minute, Window: time.Hour * 6, LateHorizon: time.Hour * 24,
		Dimensions: []odometer.ExportDimension{{Dimension: "d", MeterSlug: "calls", Multiply: odometer.MustDecimal("1"), Divide: odometer.MustDecimal("1"), Rounding: "DOWN"}},
		CreatedAt:  t1, UpdatedAt: t1}
	if _, err := store.PutExportDestination(ctx, other); err != nil {
		t.Fatal(err)
	}

	if err := syncExports(ctx, store, lc.exports, lc.accounts, t1, log); err != nil {
		t.Fatal(err)
	}
	d, err := store.FindExportDestination(ctx, "default", "aws")
	if err != nil {
		t.Fatal(err)
	}
	if d.ProductCode != "prod-abc" || d.Account != "default" || !d.StartHour.Equal(t1.Truncate(time.Hour)) || d.Delay != 5*time.Minute || !d.DryRun ||
		!d.CreatedAt.Equal(t1) || len(d.Dimensions) != 2 || d.Dimensions[1].Divide.String() != "3600" {
		t.Fatalf("created %+v", d)
	}
	cs, err := store.ListExportCustomers(ctx, "default", "aws")
	if err != nil || len(cs) != 2 || cs[0].Subject != "acme" || cs[1].AWSAccountID != "012345678901" || !cs[1].CreatedAt.Equal(t1) {
		t.Fatalf("customers %+v, %v", cs, err)
	}

	// Hours get frozen; the same config again, later, changes nothing: the
	// start hour stays where it was.
	if err := store.FreezeExportHour(ctx, &odometer.ExportFreeze{Namespace: "default", Destination: "aws", Hour: d.StartHour}); err != nil {
		t.Fatal(err)
	}
	if err := syncExports(ctx, store, lc.exports, lc.accounts, t2, log); err != nil {
		t.Fatal(err)
	}
	again, err := store.FindExportDestination(ctx, "default", "aws")
	if err != nil {
		t.Fatal(err)
	}
	if !again.UpdatedAt.Equal(t1) || !again.StartHour.Equal(d.StartHour) || !again.FrozenThrough.Equal(d.StartHour.Add(time.Hour)) {
		t.Errorf("an unchanged config changed the destination: %+v", again)
	}
	if cs, _ := store.ListExportCustomers(ctx, "default", "aws"); !cs[0].UpdatedAt.Equal(t1) {
		t.Errorf("an unchanged config rewrote a customer: %+v", cs[0])
	}

	// A changed config replaces the definition and the customers listed;
	// what is frozen stays, and so does what the config does not list.
	lc, err = parseConfig([]byte(strings.NewReplacer("prod-abc", "prod-xyz", "dryRun: true", "dryRun: false",
		"customerId: cust-1", "customerId: cust-7").Replace(exportConfig)))
	if err != nil {
		t.Fatal(err)
	}
	lc.exports[0].Customers = lc.exports[0].Customers[:1] // beta is no longer listed
	if err := syncExports(ctx, store, lc.exports, lc.accounts, t3, log); err != nil {
		t.Fatal(err)
	}
	got, err := store.FindExportDestination(ctx, "default", "aws")
	if err != nil {
		t.Fatal(err)
	}
	if got.ProductCode != "prod-xyz" || got.DryRun || !got.UpdatedAt.Equal(t3) || !got.CreatedAt.Equal(t1) ||
		!got.StartHour.Equal(d.StartHour) || !got.FrozenThrough.Equal(d.StartHour.Add(time.Hour)) {
		t.Errorf("updated %+v", got)
	}
	cs, err = store.ListExportCustomers(ctx, "default", "aws")
	if err != nil || len(cs) != 2 || cs[0].CustomerID != "cust-7" || !cs[0].UpdatedAt.Equal(t3) || !cs[0].CreatedAt.Equal(t1) || cs[1].Subject != "beta" {
		t.Errorf("customers after the change %+v, %v", cs, err)
	}
	if _, err := store.FindExportDestination(ctx, "default", "other"); err != nil {
		t.Errorf("a destination absent from the config: %v", err)
	}

	// The meters are checked against the store, as the API does.
	for yaml, want := range map[string]string{
		"exports: [{name: x, productCode: p, dimensions: [{dimension: d, meterSlug: nope}]}]":                                                     `export destination "x": invalid export destination: dimensions[0].meterSlug: no meter "nope"`,
		"exports: [{name: x, productCode: p, dimensions: [{dimension: d, meterSlug: calls, groupBy: {kind: gpu}}]}]":                              `dimensions[0].groupBy.kind: meter "calls" has no group-by keys`,
		"exports: [{name: aws, productCode: p, dimensions: [{dimension: d, meterSlug: calls}], customers: [{subject: zed, customerId: cust-7}]}]": `customer of subject "zed": customer "cust-7" is mapped to subject "acme" already`,
	} {
		lc, err := parseConfig([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		err = syncExports(ctx, store, lc.exports, lc.accounts, t3, log)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v; want %q", yaml, err, want)
		}
	}
	if _, err := store.FindExportDestination(ctx, "default", "x"); odometer.ErrorCode(err) != odometer.ENOTFOUND {
		t.Errorf("a refused destination was stored: %v", err)
	}
}

// TestSyncExportCustomerFrom checks a customer's from in the config file:
// stored in UTC; left out, the mapping's is kept; unchanged, it is accepted
// however old it has grown; changed, it must be an hour that has begun and
// no more than lateHorizon before the current hour, or the start-up fails
// naming the subject and from.
func TestSyncExportCustomerFrom(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	log := slog.New(slog.DiscardHandler)
	t1 := time.Date(2026, 3, 1, 10, 20, 0, 0, time.UTC)
	config := func(acme string) []*exportDef {
		t.Helper()
		lc, err := parseConfig([]byte(`
meters: [{slug: calls, eventType: call, aggregation: COUNT}]
exports:
  - name: aws
    productCode: p
    startHour: 2026-03-01T00:00:00Z
    dimensions: [{dimension: d, meterSlug: calls}]
    customers:
      - {subject: acme, customerId: cust-1` + acme + `}
      - {subject: beta, customerId: cust-2}
`))
		if err != nil {
			t.Fatal(err)
		}
		if err := syncMeters(ctx, store, lc.meters, t1, log); err != nil {
			t.Fatal(err)
		}
		return lc.exports
	}
	customers := func() []*odometer.ExportCustomer {
		t.Helper()
		cs, err := store.ListExportCustomers(ctx, "default", "aws")
		if err != nil || len(cs) != 2 {
			t.Fatalf("customers %+v, %v", cs, err)
		}
		return cs
	}

	if err := syncExports(ctx, store, config(", from: '2026-03-01T10:00:00+02:00'"), export.DefaultAccounts(), t1, log); err != nil {
		t.Fatal(err)
	}
	if cs := customers(); !cs[0].From.Equal(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)) || cs[0].From.Location() != time.UTC || !cs[1].From.IsZero() {
		t.Fatalf("from %s and %s; want 08:00 UTC and none", cs[0].From, cs[1].From)
	}
	// Three days on: the same config, and one without acme's from, change
	// nothing.
	t2 := t1.Add(72 * time.Hour)
	for _, acme := range []string{", from: 2026-03-01T08:00:00Z", ""} {
		if err := syncExports(ctx, store, config(acme), export.DefaultAccounts(), t2, log); err != nil {
			t.Fatalf("from %q three days on: %v", acme, err)
		}
		if cs := customers(); !cs[0].From.Equal(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)) || !cs[0].UpdatedAt.Equal(t1) {
			t.Fatalf("from %q three days on rewrote acme: %+v", acme, cs[0])
		}
	}
	// A new from must be an hour that has begun, within the late horizon.
	for acme, want := range map[string]string{
		", from: 2026-03-03T09:00:00Z": `customer of subject "acme": from: 2026-03-03T09:00:00Z is more than the destination's lateHorizon (24h)`,
		", from: 2026-03-04T11:00:00Z": `customer of subject "acme": from: 2026-03-04T11:00:00Z is after the current hour`,
	} {
		if err := syncExports(ctx, store, config(acme), export.DefaultAccounts(), t2, log); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("from %q: %v; want an error containing %q", acme, err, want)
		}
	}
	if err := syncExports(ctx, store, config(", from: 2026-03-03T10:00:00Z"), export.DefaultAccounts(), t2, log); err != nil {
		t.Fatal(err)
	}
	if cs := customers(); !cs[0].From.Equal(time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)) || !cs[0].UpdatedAt.Equal(t2) {
		t.Fatalf("acme after a new from: %+v", cs[0])
	}
}

// TestExportCommands runs the server with exports in its config, freezes
// hours as the exporter does, and reads them back with "odometer export".
func TestExportCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "odometer.yaml")
	if err := os.WriteFile(cfg, []byte(exportConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	url, log, stop := startServe(t, "--data", dir, "--config", cfg)
	server := "--server=" + url
	if got := mustRun(t, "export", "status", server); got != "DESTINATION  HOUR  DIMENSION  PENDING  IN_FLIGHT  ACCEPTED  DUPLICATE  NOT_SUBSCRIBED  REJECTED  EXPIRED  EMPTY  QUANTITY_ACCEPTED\n" {
		t.Errorf("status before any freeze:\n%s", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v\n%s", err, log)
	}
	for _, want := range []string{`msg="export destination created from config" destination=aws`,
		`msg="export customer set from config" destination=aws subject=beta`} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log does not contain %q:\n%s", want, log)
		}
	}

	// Freeze two hours (a dry run's records stay pending), and record
	// what AWS answered for two of them.
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
	rec := func(subject, dim string, hour time.Time, q int64, usage string, st odometer.ExportStatus) *odometer.ExportRecord {
		r := &odometer.ExportRecord{Namespace: "default", Destination: "aws", Subject: subject, Dimension: dim, Hour: hour,
			Quantity: q, Usage: odometer.MustDecimal(usage), Accounted: odometer.MustDecimal(usage), Carry: odometer.MustDecimal("0.25"),
			Status: st, FrozenAt: hour.Add(65 * time.Minute), UpdatedAt: hour.Add(65 * time.Minute)}
		if subject == "acme" {
			r.CustomerID = "cust-1"
		} else {
			r.AWSAccountID, r.LicenseArn = "012345678901", licenseArn
		}
		return r
	}
	late := rec("acme", "hours", h0.Add(time.Hour), 3, "108", odometer.ExportPending)
	late.Late, late.LateHours = odometer.MustDecimal("1.5"), []odometer.ExportLate{{Hour: h0, Usage: odometer.MustDecimal("1.5")}}
	for _, f := range []*odometer.ExportFreeze{
		{Hour: h0, Records: []*odometer.ExportRecord{rec("acme", "hours", h0, 100, "3600.25", odometer.ExportPending),
			rec("beta", "gpu_hours", h0, 2, "7200", odometer.ExportPending), rec("beta", "hours", h0, 0, "0", odometer.ExportEmpty)}},
		{Hour: h0.Add(time.Hour), Records: []*odometer.ExportRecord{late}},
	} {
		f.Namespace, f.Destination = "default", "aws"
		if err := store.FreezeExportHour(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	acc, rej := rec("acme", "hours", h0, 0, "0", odometer.ExportAccepted), rec("beta", "gpu_hours", h0, 0, "0", odometer.ExportRejected)
	acc.MeteringRecordID, acc.Attempts = "mr-1", 1
	rej.Reason, rej.Attempts = "InvalidCustomerIdentifierException", 2
	if err := store.UpdateExportRecords(ctx, []*odometer.ExportRecord{acc, rej}); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	// Restarted with the same config: what is frozen stays.
	url, log, stop = startServe(t, "--data", dir, "--config", cfg)
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v\n%s", err, log)
		}
	}()
	server = "--server=" + url
	hh := func(offset int) string { return h0.Add(time.Duration(offset) * time.Hour).Format(time.RFC3339) }

	want := "" +
		"DESTINATION  HOUR                  DIMENSION  PENDING  IN_FLIGHT  ACCEPTED  DUPLICATE  NOT_SUBSCRIBED  REJECTED  EXPIRED  EMPTY  QUANTITY_ACCEPTED\n" +
		"aws          " + hh(0) + "  gpu_hours  0        0          0         0          0               1         0        0      0\n" +
		"aws          " + hh(0) + "  hours      0        0          1         0          0               0         0        1      100\n" +
		"aws          " + hh(1) + "  hours      1        0          0         0          0               0         0        0      0\n"
	if got := mustRun(t, "export", "status", server); got != want {
		t.Errorf("export status:\n%s\nwant:\n%s", got, want)
	}
	want = "" +
		"destination,hour,dimension,pending,in_flight,accepted,duplicate,not_subscribed,rejected,expired,empty,quantity_accepted\n" +
		"aws," + hh(1) + ",hours,1,0,0,0,0,0,0,0,0\n"
	if got := mustRun(t, "export", "status", server, "aws", "--csv", "--from", hh(1)); got != want {
		t.Errorf("export status --csv --from:\n%s\nwant:\n%s", got, want)
	}
	if got := mustRun(t, "export", "status", server, "aws", "--from", h0.Add(-24*time.Hour).Format(time.DateOnly), "--to", hh(1), "--csv"); strings.Count(got, "\n") != 3 {
		t.Errorf("export status of the first hour:\n%s", got)
	}

	want = "" +
		"HOUR                  SUBJECT  DIMENSION  CUSTOMER      QUANTITY  USAGE    LATE  CARRY  STATUS    ATTEMPTS  DETAIL\n" +
		hh(0) + "  acme     hours      cust-1        100       3600.25  0     0.25   accepted  1         mr-1\n" +
		hh(0) + "  beta     gpu_hours  012345678901  2         7200     0     0.25   rejected  2         InvalidCustomerIdentifierException\n" +
		hh(0) + "  beta     hours      012345678901  0         0        0     0.25   empty     0         -\n" +
		hh(1) + "  acme     hours      cust-1        3         108      1.5   0.25   pending   0         -\n"
	if got := mustRun(t, "export", "records", server, "aws"); got != want {
		t.Errorf("export records:\n%s\nwant:\n%s", got, want)
	}
	for _, args := range [][]string{
		{"--status", "pending"},
		{"--status", "pending,empty", "--subject", "acme"},
		{"--from", hh(1)},
		{"--dimension", "hours", "--limit", "1", "--from", hh(1)},
	} {
		got := mustRun(t, append([]string{"export", "records", server, "aws"}, args...)...)
		if lines := strings.Split(strings.TrimSpace(got), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "pending") {
			t.Errorf("export records %q:\n%s", args, got)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export"}, "export takes a subcommand"},
		{[]string{"export", "send"}, `unknown export subcommand "send"`},
		{[]string{"export", "records", server}, "export records takes one argument"},
		{[]string{"export", "status", server, "a", "b"}, "at most one argument"},
		{[]string{"export", "status", server, "--from", "soon"}, "--from"},
		{[]string{"export", "status", server, "nope"}, "404 Not Found"},
		{[]string{"export", "records", server, "aws", "--status", "sent"}, `status: "sent" is not a status`},
		{[]string{"export", "records", server, "aws", "--limit", "5000"}, "limit"},
	} {
		_, _, err := runCmd(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("odometer %q: err = %v; want %q", tc.args, err, tc.want)
		}
	}
	var stderr bytes.Buffer
	err = run(ctx, []string{"help", "export"}, mapEnv(nil), strings.NewReader(""), &bytes.Buffer{}, &stderr)
	if exitCode(err, &stderr) != 0 || !strings.Contains(stderr.String(), "odometer export records [flags] DESTINATION") {
		t.Errorf("help export: %v\n%s", err, stderr.String())
	}
}

// wantConfigError checks that the config file yaml is refused with an
// error holding each of want.
func wantConfigError(t *testing.T, name, yaml string, want ...string) {
	t.Helper()
	_, err := parseConfig([]byte(yaml))
	if err == nil {
		t.Errorf("%s: no error", name)
		return
	}
	for _, s := range want {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: error %q does not contain %q", name, err, s)
		}
	}
}

package export

import (
	"strings"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/sqlite"
)

// validDestination returns a destination that Normalize accepts.
func validDestination() *odometer.ExportDestination {
	return &odometer.ExportDestination{
		Namespace:   "default",
		Name:        "aws-prod",
		ProductCode: "prod-abc123",
		Dimensions: []odometer.ExportDimension{
			{Dimension: "hours", MeterSlug: "seconds", Multiply: dec("1"), Divide: dec("36")},
			{Dimension: "gpu", MeterSlug: "seconds", GroupBy: map[string]string{"kind": "gpu"}, Rounding: "HALF_UP"},
		},
	}
}

func TestNormalizeDefaults(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 14, 37, 12, 5, time.FixedZone("CET", 3600))
	d := validDestination()
	if err := Normalize(d, now); err != nil {
		t.Fatal(err)
	}
	if d.Delay != 15*time.Minute || d.Window != 6*time.Hour || d.LateHorizon != 24*time.Hour {
		t.Errorf("durations = %s, %s, %s; want 15m, 6h, 24h", d.Delay, d.Window, d.LateHorizon)
	}
	if want := time.Date(2026, 3, 10, 13, 0, 0, 0, time.UTC); !d.StartHour.Equal(want) || d.StartHour.Location() != time.UTC {
		t.Errorf("startHour = %s; want %s", d.StartHour, want)
	}
	first, second := d.Dimensions[0], d.Dimensions[1]
	if first.Multiply.String() != "1" || first.Divide.String() != "36" || first.Rounding != "DOWN" {
		t.Errorf("dimension 0 = %+v", first)
	}
	if second.Multiply.String() != "1" || second.Divide.String() != "1" || second.Rounding != "HALF_UP" {
		t.Errorf("dimension 1 = %+v", second)
	}

	// Set values are kept; a start hour in another zone is turned to UTC.
	d = validDestination()
	d.Delay, d.Window, d.LateHorizon = time.Second, MaxWindow, MaxLateHorizon
	d.StartHour = time.Date(2026, 1, 1, 2, 0, 0, 0, time.FixedZone("EET", 2*3600))
	d.Account, d.Region = "seller", "us-gov-west-1"
	if err := Normalize(d, now); err != nil {
		t.Fatal(err)
	}
	if d.Delay != time.Second || d.Window != 24*time.Hour || d.LateHorizon != 744*time.Hour ||
		!d.StartHour.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || d.StartHour.Location() != time.UTC {
		t.Errorf("set values changed: %+v", d)
	}
}

func TestNormalizeErrors(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		change func(d *odometer.ExportDestination)
		fields []string // the fields named, in order
		reason string   // a substring of the first reason
	}{
		{"no name", func(d *odometer.ExportDestination) { d.Name = "" }, []string{"name"}, "letters, digits"},
		{"name not a slug", func(d *odometer.ExportDestination) { d.Name = "aws prod" }, []string{"name"}, "letters, digits"},
		{"name too long", func(d *odometer.ExportDestination) { d.Name = strings.Repeat("a", 64) }, []string{"name"}, "1–63"},
		{"no product", func(d *odometer.ExportDestination) { d.ProductCode = "" }, []string{"productCode"}, "required"},
		{"long product", func(d *odometer.ExportDestination) { d.ProductCode = strings.Repeat("p", 256) }, []string{"productCode"}, "longer than 255"},
		// The region ends up in a host name: only the AWS form passes.
		{"region spaces", func(d *odometer.ExportDestination) { d.Region = " us-east-1" }, []string{"region"}, "AWS region"},
		{"region host", func(d *odometer.ExportDestination) { d.Region = "127.0.0.1:19999/x" }, []string{"region"}, `got "127.0.0.1:19999/x"`},
		{"region dots", func(d *odometer.ExportDestination) { d.Region = "us-east-1.evil.example" }, []string{"region"}, "us-east-1 or us-gov-west-1"},
		{"region capitals", func(d *odometer.ExportDestination) { d.Region = "US-EAST-1" }, []string{"region"}, "AWS region"},
		{"region no number", func(d *odometer.ExportDestination) { d.Region = "us-east" }, []string{"region"}, "AWS region"},
		{"account not a slug", func(d *odometer.ExportDestination) { d.Account = "main account" }, []string{"account"}, "letters, digits"},
		{"no dimensions", func(d *odometer.ExportDestination) { d.Dimensions = nil }, []string{"dimensions"}, "at least one"},
		{"no dimension name", func(d *odometer.ExportDestination) { d.Dimensions[1].Dimension = "" }, []string{"dimensions[1].dimension"}, "required"},
		{"long dimension name", func(d *odometer.ExportDestination) { d.Dimensions[0].Dimension = strings.Repeat("d", 256) },
			[]string{"dimensions[0].dimension"}, "longer than 255"},
		{"dimension twice", func(d *odometer.ExportDestination) { d.Dimensions[1].Dimension = "hours" }, []string{"dimensions[1].dimension"}, "dimensions[0] already"},
		{"no meter", func(d *odometer.ExportDestination) { d.Dimensions[0].MeterSlug = "" }, []string{"dimensions[0].meterSlug"}, "required"},
		{"empty group key", func(d *odometer.ExportDestination) { d.Dimensions[0].GroupBy = map[string]string{"": "x"} },
			[]string{"dimensions[0].groupBy"}, "empty"},
		{"negative multiply", func(d *odometer.ExportDestination) { d.Dimensions[0].Multiply = dec("-2") }, []string{"dimensions[0].multiply"}, "must be positive; got -2"},
		{"negative divide", func(d *odometer.ExportDestination) { d.Dimensions[1].Divide = dec("-0.5") }, []string{"dimensions[1].divide"}, "must be positive"},
		{"huge divide", func(d *odometer.ExportDestination) { d.Dimensions[0].Divide = dec("1e30") }, []string{"dimensions[0].divide"}, "10^21"},
		{"fine multiply", func(d *odometer.ExportDestination) { d.Dimensions[0].Multiply = dec("0.0000000000000000001") },
			[]string{"dimensions[0].multiply"}, "18 fraction digits"},
		{"rounding", func(d *odometer.ExportDestination) { d.Dimensions[0].Rounding = "UP" }, []string{"dimensions[0].rounding"}, `DOWN or HALF_UP; got "UP"`},
		{"negative delay", func(d *odometer.ExportDestination) { d.Delay = -time.Second }, []string{"delay"}, "above 0 and at most 6h"},
		{"long delay", func(d *odometer.ExportDestination) { d.Delay = 6*time.Hour + time.Second; d.Window = MaxWindow }, []string{"delay"}, "above 0 and at most 6h"},
		{"delay eats the window", func(d *odometer.ExportDestination) { d.Delay = 5 * time.Hour }, []string{"delay"}, "shorter than the window"},
		{"negative window", func(d *odometer.ExportDestination) { d.Window = -time.Hour }, []string{"window"}, "above 0"},
		{"long window", func(d *odometer.ExportDestination) { d.Window = 25 * time.Hour }, []string{"window"}, "at most 24h"},
		{"short horizon", func(d *odometer.ExportDestination) { d.LateHorizon = 59 * time.Minute }, []string{"lateHorizon"}, "from 1h0m0s to 744h0m0s"},
		{"long horizon", func(d *odometer.ExportDestination) { d.LateHorizon = 745 * time.Hour }, []string{"lateHorizon"}, "744h"},
		{"start not an hour", func(d *odometer.ExportDestination) { d.StartHour = time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC) },
			[]string{"startHour"}, "whole UTC hour"},
		{"start not a UTC hour", func(d *odometer.ExportDestination) {
			d.StartHour = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("IST", 5*3600+1800))
		}, []string{"startHour"}, "2025-12-31T18:30:00Z"},
		{"every field at once", func(d *odometer.ExportDestination) {
			d.Name, d.ProductCode, d.Region = "-x", "", "nope"
			d.Dimensions[0] = odometer.ExportDimension{Multiply: dec("-1"), Divide: dec("-1"), Rounding: "UP"}
			d.Delay, d.Window, d.LateHorizon = -1, 48*time.Hour, time.Minute
			d.StartHour = time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC)
		}, []string{"name", "productCode", "region", "dimensions[0].dimension", "dimensions[0].meterSlug",
			"dimensions[0].multiply", "dimensions[0].divide", "dimensions[0].rounding", "delay", "window", "lateHorizon", "startHour"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := validDestination()
			tt.change(d)
			err := Normalize(d, now)
			if odometer.ErrorCode(err) != odometer.EINVALID {
				t.Fatalf("Normalize: %v; want EINVALID", err)
			}
			fs := odometer.ErrorFields(err)
			var got []string
			for _, f := range fs {
				got = append(got, f.Field)
				if f.Reason == "" {
					t.Errorf("%s: no reason", f.Field)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.fields, " ") {
				t.Fatalf("fields %q; want %q (%v)", got, tt.fields, err)
			}
			if !strings.Contains(fs[0].Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", fs[0].Reason, tt.reason)
			}
		})
	}
}

func TestCheckCustomer(t *testing.T) {
	t.Parallel()
	const arn = "arn:aws:license-manager::123456789012:license:l-0123456789abcdef0123456789abcdef"
	tests := []struct {
		name   string
		c      odometer.ExportCustomer
		fields string // the fields named; "" = valid
	}{
		{"customer id", odometer.ExportCustomer{Subject: "acme", CustomerID: "cust-1"}, ""},
		{"account and license", odometer.ExportCustomer{Subject: "acme", AWSAccountID: "123456789012", LicenseArn: arn}, ""},
		{"no subject", odometer.ExportCustomer{CustomerID: "cust-1"}, "subject"},
		{"no customer", odometer.ExportCustomer{Subject: "acme"}, "customerId"},
		{"license alone", odometer.ExportCustomer{Subject: "acme", LicenseArn: arn}, "customerId"},
		{"both", odometer.ExportCustomer{Subject: "acme", CustomerID: "c", AWSAccountID: "123456789012", LicenseArn: arn}, "awsAccountId"},
		{"license with customer id", odometer.ExportCustomer{Subject: "acme", CustomerID: "c", LicenseArn: arn}, "licenseArn"},
		{"account without license", odometer.ExportCustomer{Subject: "acme", AWSAccountID: "123456789012"}, "licenseArn"},
		{"short account", odometer.ExportCustomer{Subject: "acme", AWSAccountID: "12345", LicenseArn: arn}, "awsAccountId"},
		{"nothing", odometer.ExportCustomer{}, "subject customerId"},
		{"no subject, bad account", odometer.ExportCustomer{AWSAccountID: "x"}, "subject awsAccountId licenseArn"},
	}
	for _, tt := range tests {
		err := CheckCustomer(&tt.c)
		var got []string
		for _, f := range odometer.ErrorFields(err) {
			got = append(got, f.Field)
		}
		if strings.Join(got, " ") != tt.fields || (tt.fields != "") != (odometer.ErrorCode(err) == odometer.EINVALID) {
			t.Errorf("%s: CheckCustomer = %v (fields %q); want fields %q", tt.name, err, got, tt.fields)
		}
	}
}

func TestCheckCustomerUnique(t *testing.T) {
	t.Parallel()
	existing := []*odometer.ExportCustomer{
		{Subject: "acme", CustomerID: "cust-1"},
		{Subject: "beta", AWSAccountID: "123456789012", LicenseArn: "arn:l1"},
	}
	for _, c := range []*odometer.ExportCustomer{
		{Subject: "acme", CustomerID: "cust-1"},                                // itself again
		{Subject: "gamma", CustomerID: "cust-2"},                               // another customer
		{Subject: "gamma", AWSAccountID: "123456789012", LicenseArn: "arn:l2"}, // another license
	} {
		if err := CheckCustomerUnique(c, existing); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, c := range []*odometer.ExportCustomer{
		{Subject: "gamma", CustomerID: "cust-1"},
		{Subject: "gamma", AWSAccountID: "123456789012", LicenseArn: "arn:l1"},
	} {
		err := CheckCustomerUnique(c, existing)
		if odometer.ErrorCode(err) != odometer.ECONFLICT || !strings.Contains(err.Error(), "mapped to subject") {
			t.Errorf("%+v: %v; want ECONFLICT", c, err)
		}
	}
}

func TestCheckMeters(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, m := range []*odometer.Meter{
		{Slug: "seconds", EventType: "run", Aggregation: odometer.Sum, ValueProperty: "$.s", GroupBy: map[string]string{"kind": "$.kind", "zone": "$.zone"}},
		{Slug: "calls", EventType: "call", Aggregation: odometer.Count},
		{Slug: "peak", EventType: "run", Aggregation: odometer.Max, ValueProperty: "$.s"},
	} {
		m.ID, m.Namespace, m.CreatedAt, m.UpdatedAt = odometer.NewID(at), "default", at, at
		if err := store.CreateMeter(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	seconds, err := store.FindMeter(ctx, "default", "seconds")
	if err != nil {
		t.Fatal(err)
	}

	d := validDestination()
	d.Dimensions = append(d.Dimensions, odometer.ExportDimension{Dimension: "calls", MeterSlug: "calls"},
		odometer.ExportDimension{Dimension: "by-id", MeterSlug: seconds.ID})
	if err := CheckMeters(ctx, d, store); err != nil {
		t.Fatal(err)
	}
	if d.Dimensions[3].MeterSlug != "seconds" {
		t.Errorf("a meter named by id keeps %q; want its slug", d.Dimensions[3].MeterSlug)
	}

	d.Dimensions = []odometer.ExportDimension{
		{Dimension: "a", MeterSlug: "missing"},
		{Dimension: "b", MeterSlug: "peak"},
		{Dimension: "c", MeterSlug: "seconds", GroupBy: map[string]string{"kind": "gpu", "model": "x", "subject": "acme"}},
		{Dimension: "d", MeterSlug: "calls", GroupBy: map[string]string{"kind": "gpu"}},
		{Dimension: "e"}, // Normalize's to report
	}
	err = CheckMeters(ctx, d, store)
	var got []string
	for _, f := range odometer.ErrorFields(err) {
		got = append(got, f.Field+": "+f.Reason)
	}
	want := []string{
		`dimensions[0].meterSlug: no meter "missing"`,
		`dimensions[1].meterSlug: meter "peak" is MAX; only SUM and COUNT meters can be exported`,
		`dimensions[2].groupBy.model: meter "seconds" has no group-by key "model" (its keys: kind, zone)`,
		`dimensions[2].groupBy.subject: meter "seconds" has no group-by key "subject" (its keys: kind, zone)`,
		`dimensions[3].groupBy.kind: meter "calls" has no group-by keys`,
	}
	if odometer.ErrorCode(err) != odometer.EINVALID || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("CheckMeters = %v\ngot:\n%s\nwant:\n%s", err, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

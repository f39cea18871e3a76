package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
)

// The records of usage export (odometer.ExportStore). Beyond the
// interface's comments, the suite pins these behaviours:
//   - destinations, customers, records and accounts round-trip every
//     field; nil slices and maps stay nil, empty ones stay empty; decimals
//     come back exactly; a customer's zero From stays zero, a set one comes
//     back in UTC, and replacing a mapping replaces From, zero included;
//   - a new destination starts with FrozenThrough zero whatever the caller
//     set; PutExportDestination never moves it;
//   - decimals beyond the limits of odometer values are an EINVALID error
//     (Multiply, Divide, Usage, Accounted, Late and late usages), except
//     carries, which may have up to 36 fraction digits (usage × multiply);
//   - FreezeExportHour takes records of earlier hours (the empty records of
//     hours that had none) and refuses (EINVALID) an hour that is not a
//     whole hour, records of another destination, of a later hour or of an
//     hour that is not whole, and unknown statuses; its ECONFLICT for a
//     frozen hour names the hour the destination is frozen through;
//   - UpdateExportRecords changes nothing but the sending state, whatever
//     else the records passed to it say; concurrent calls on the same
//     records each apply whole;
//   - ListExportAccounts orders by subject, then dimension; every listing
//     compares keys in byte order; listing the customers, accounts or
//     records of a missing destination returns nothing, not an error;
//   - ListExportRecords' Limit 0 is an EINVALID error; DueBy keeps only
//     pending records, and its bound is inclusive;
//   - TryLockExporter with a done context fails; an unlock called twice
//     does not release a lock taken since;
//   - namespaces share nothing.

// exportCreated is when the suite's export records are created; exports
// start at x0, a whole UTC hour.
var (
	exportCreated = time.Date(2025, 5, 31, 8, 30, 15, 123456000, time.UTC)
	x0            = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
)

// xhour returns x0 + n hours.
func xhour(n int) time.Time { return x0.Add(time.Duration(n) * time.Hour) }

func xdec(s string) odometer.Decimal { return odometer.MustDecimal(s) }

// exportDestination returns a destination with one dimension.
func exportDestination(ns, name string) *odometer.ExportDestination {
	return &odometer.ExportDestination{
		Namespace:   ns,
		Name:        name,
		ProductCode: "prod-" + name,
		Dimensions: []odometer.ExportDimension{
			{Dimension: "tokens", MeterSlug: "tokens", Multiply: xdec("1"), Divide: xdec("1000"), Rounding: "DOWN"},
		},
		StartHour:   x0,
		Delay:       10 * time.Minute,
		Window:      6 * time.Hour,
		LateHorizon: 2 * time.Hour,
		CreatedAt:   exportCreated,
		UpdatedAt:   exportCreated,
	}
}

// exportRecord returns a pending record of d for (subject, dimension) at
// hour h, frozen 10 minutes after h ends.
func exportRecord(d *odometer.ExportDestination, subject, dimension string, h time.Time) *odometer.ExportRecord {
	frozen := h.Add(time.Hour + 10*time.Minute)
	return &odometer.ExportRecord{
		Namespace:     d.Namespace,
		Destination:   d.Name,
		Subject:       subject,
		Dimension:     dimension,
		Hour:          h,
		CustomerID:    "cust-" + subject,
		Quantity:      7,
		Usage:         xdec("7000.5"),
		Accounted:     xdec("7000.5"),
		Carry:         xdec("0.5"),
		Status:        odometer.ExportPending,
		NextAttemptAt: frozen,
		FrozenAt:      frozen,
		UpdatedAt:     frozen,
	}
}

func exportFreeze(d *odometer.ExportDestination, h time.Time, recs ...*odometer.ExportRecord) *odometer.ExportFreeze {
	return &odometer.ExportFreeze{Namespace: d.Namespace, Destination: d.Name, Hour: h, Records: recs}
}

func mustPutDestination(t *testing.T, s odometer.Store, d *odometer.ExportDestination, wantCreated bool) {
	t.Helper()
	created, err := s.PutExportDestination(t.Context(), d)
	if err != nil {
		t.Fatalf("PutExportDestination(%q): %v", d.Name, err)
	}
	if created != wantCreated {
		t.Errorf("PutExportDestination(%q) reported created %v, want %v", d.Name, created, wantCreated)
	}
}

func mustFreeze(t *testing.T, s odometer.Store, f *odometer.ExportFreeze) {
	t.Helper()
	if err := s.FreezeExportHour(t.Context(), f); err != nil {
		t.Fatalf("FreezeExportHour(%q, %s): %v", f.Destination, f.Hour.Format(time.RFC3339), err)
	}
}

func mustPutCustomer(t *testing.T, s odometer.Store, c *odometer.ExportCustomer) {
	t.Helper()
	if err := s.PutExportCustomer(t.Context(), c); err != nil {
		t.Fatalf("PutExportCustomer(%q, %q): %v", c.Destination, c.Subject, err)
	}
}

func findDestination(t *testing.T, s odometer.Store, ns, name string) *odometer.ExportDestination {
	t.Helper()
	d, err := s.FindExportDestination(t.Context(), ns, name)
	if err != nil {
		t.Fatalf("FindExportDestination(%q, %q): %v", ns, name, err)
	}
	return d
}

// exportRecords returns every record of the destination, in listing order.
func exportRecords(t *testing.T, s odometer.Store, ns, dest string) []*odometer.ExportRecord {
	t.Helper()
	rs, err := s.ListExportRecords(t.Context(), odometer.ExportRecordFilter{Namespace: ns, Destination: dest, Limit: 1 << 20})
	if err != nil {
		t.Fatalf("ListExportRecords(%q, %q): %v", ns, dest, err)
	}
	return rs
}

func exportAccounts(t *testing.T, s odometer.Store, ns, dest string) []odometer.ExportAccount {
	t.Helper()
	as, err := s.ListExportAccounts(t.Context(), ns, dest)
	if err != nil {
		t.Fatalf("ListExportAccounts(%q, %q): %v", ns, dest, err)
	}
	return as
}

func exportCustomers(t *testing.T, s odometer.Store, ns, dest string) []*odometer.ExportCustomer {
	t.Helper()
	cs, err := s.ListExportCustomers(t.Context(), ns, dest)
	if err != nil {
		t.Fatalf("ListExportCustomers(%q, %q): %v", ns, dest, err)
	}
	return cs
}

// exportState is everything the store keeps of one destination.
type exportState struct {
	Destination *odometer.ExportDestination
	Customers   []*odometer.ExportCustomer
	Accounts    []odometer.ExportAccount
	Records     []*odometer.ExportRecord
}

func readExportState(t *testing.T, s odometer.Store, ns, dest string) exportState {
	t.Helper()
	return exportState{
		Destination: findDestination(t, s, ns, dest),
		Customers:   exportCustomers(t, s, ns, dest),
		Accounts:    exportAccounts(t, s, ns, dest),
		Records:     exportRecords(t, s, ns, dest),
	}
}

// wantUnchanged checks that the destination's state is still before.
func wantUnchanged(t *testing.T, s odometer.Store, what string, before exportState) {
	t.Helper()
	after := readExportState(t, s, before.Destination.Namespace, before.Destination.Name)
	if diff := cmp.Diff(before, after, decimals); diff != "" {
		t.Errorf("%s changed the destination's state (-before +after):\n%s", what, diff)
	}
}

// recordKeys returns "hour/subject/dimension" of each record, hours
// numbered from x0, in order; never nil.
func recordKeys(rs []*odometer.ExportRecord) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%d/%s/%s", int(r.Hour.Sub(x0)/time.Hour), r.Subject, r.Dimension))
	}
	return out
}

func testExportDestinations(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	if ds, err := s.ListExportDestinations(ctx, ""); err != nil || len(ds) != 0 {
		t.Fatalf("ListExportDestinations on an empty store = %v, %v", ds, err)
	}

	full := exportDestination("ns", "aws")
	full.Region, full.Account = "eu-west-1", "seller-héllo"
	full.Dimensions = []odometer.ExportDimension{
		{Dimension: "Tokens", MeterSlug: "tokens", GroupBy: map[string]string{"model": "gpt-4", "region": "eu"},
			Multiply: xdec("0.000000000000000001"), Divide: xdec("999999999999999999999.999999999999999999"), Rounding: "HALF_UP"},
		{Dimension: "AllTokens", MeterSlug: "tokens", Multiply: xdec("1"), Divide: xdec("36"), Rounding: "DOWN"},
		{Dimension: "EmptyGroup", MeterSlug: "requests", GroupBy: map[string]string{}, Multiply: xdec("3"), Divide: xdec("7")},
	}
	full.StartHour = xhour(-48)
	full.Delay, full.Window, full.LateHorizon = 15*time.Minute+time.Nanosecond, 24*time.Hour, 72*time.Hour
	full.ZeroRecords, full.DryRun = true, true
	full.UpdatedAt = exportCreated.Add(time.Hour + time.Microsecond)
	noDims := exportDestination("ns", "bare")
	noDims.Dimensions = nil
	emptyDims := exportDestination("ns", "empty")
	emptyDims.Dimensions = []odometer.ExportDimension{}
	// FrozenThrough is not the caller's to set.
	claimsFrozen := exportDestination("ns", "claims")
	claimsFrozen.FrozenThrough = xhour(9)
	other := exportDestination("other", "aws")
	for _, d := range []*odometer.ExportDestination{full, noDims, emptyDims, claimsFrozen, other} {
		mustPutDestination(t, s, d, true)
	}
	claimsFrozen.FrozenThrough = time.Time{}
	for _, d := range []*odometer.ExportDestination{full, noDims, emptyDims, claimsFrozen, other} {
		got := findDestination(t, s, d.Namespace, d.Name)
		if diff := cmp.Diff(d, got, decimals); diff != "" {
			t.Errorf("FindExportDestination(%q, %q) (-want +got):\n%s", d.Namespace, d.Name, diff)
		}
		if got.CreatedAt.Location() != time.UTC || got.StartHour.Location() != time.UTC {
			t.Errorf("FindExportDestination(%q): times in %v and %v, want UTC", d.Name, got.CreatedAt.Location(), got.StartHour.Location())
		}
	}

	names := func(ns string) []string {
		t.Helper()
		ds, err := s.ListExportDestinations(ctx, ns)
		if err != nil {
			t.Fatalf("ListExportDestinations(%q): %v", ns, err)
		}
		out := []string{}
		for _, d := range ds {
			out = append(out, d.Namespace+"/"+d.Name)
		}
		return out
	}
	if diff := cmp.Diff([]string{"ns/aws", "ns/bare", "ns/claims", "ns/empty"}, names("ns")); diff != "" {
		t.Errorf("ListExportDestinations(ns) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ns/aws", "ns/bare", "ns/claims", "ns/empty", "other/aws"}, names("")); diff != "" {
		t.Errorf("ListExportDestinations of every namespace (-want +got):\n%s", diff)
	}
	if got := names("nobody"); len(got) != 0 {
		t.Errorf("ListExportDestinations of an unknown namespace: %v", got)
	}
	ds, err := s.ListExportDestinations(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*odometer.ExportDestination{full, noDims, claimsFrozen, emptyDims}, ds, decimals); diff != "" {
		t.Errorf("ListExportDestinations(ns) (-want +got):\n%s", diff)
	}

	// Replacing keeps CreatedAt and FrozenThrough; it replaces the AWS
	// account too (here with "").
	mustFreeze(t, s, exportFreeze(full, xhour(0)))
	replaced := exportDestination("ns", "aws")
	replaced.ProductCode, replaced.Region = "prod-2", "us-west-2"
	replaced.Dimensions = []odometer.ExportDimension{{Dimension: "Seconds", MeterSlug: "seconds", Multiply: xdec("1"), Divide: xdec("3600")}}
	replaced.StartHour = xhour(-24)
	replaced.Delay, replaced.Window, replaced.LateHorizon = time.Minute, time.Hour, 0
	replaced.CreatedAt = exportCreated.Add(72 * time.Hour)
	replaced.UpdatedAt = exportCreated.Add(72 * time.Hour)
	replaced.FrozenThrough = xhour(40)
	mustPutDestination(t, s, replaced, false)
	want := *replaced
	want.CreatedAt, want.FrozenThrough = full.CreatedAt, xhour(1)
	if diff := cmp.Diff(&want, findDestination(t, s, "ns", "aws"), decimals); diff != "" {
		t.Errorf("FindExportDestination after replacing (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(other, findDestination(t, s, "other", "aws"), decimals); diff != "" {
		t.Errorf("the other namespace's destination after replacing (-want +got):\n%s", diff)
	}

	_, err = s.FindExportDestination(ctx, "ns", "nope")
	wantErr(t, "FindExportDestination of an unknown name", err, odometer.ENOTFOUND, "nope")
	_, err = s.FindExportDestination(ctx, "nobody", "aws")
	wantErr(t, "FindExportDestination in another namespace", err, odometer.ENOTFOUND, "aws")

	// Decimals beyond the limits of values; nothing is stored.
	for _, tt := range []struct{ multiply, divide string }{
		{"1000000000000000000000", "1"},
		{"1", "0.0000000000000000001"},
		{"-1000000000000000000000", "1"},
	} {
		d := exportDestination("ns", "bad")
		d.Dimensions[0].Multiply, d.Dimensions[0].Divide = xdec(tt.multiply), xdec(tt.divide)
		_, err := s.PutExportDestination(ctx, d)
		wantCode(t, fmt.Sprintf("PutExportDestination with multiply %s, divide %s", tt.multiply, tt.divide), err, odometer.EINVALID)
		d = exportDestination("ns", "aws")
		d.Dimensions[0].Divide = xdec(tt.multiply)
		d.Dimensions[0].Multiply = xdec(tt.divide)
		_, err = s.PutExportDestination(ctx, d)
		wantCode(t, "replacing with an out-of-range decimal", err, odometer.EINVALID)
	}
	if _, err := s.FindExportDestination(ctx, "ns", "bad"); odometer.ErrorCode(err) != odometer.ENOTFOUND {
		t.Errorf("FindExportDestination of a refused destination: %v, want ENOTFOUND", err)
	}
	if diff := cmp.Diff(&want, findDestination(t, s, "ns", "aws"), decimals); diff != "" {
		t.Errorf("FindExportDestination after refused replacements (-want +got):\n%s", diff)
	}
}

func testExportDelete(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	d := exportDestination("ns", "aws")
	keep := exportDestination("ns", "keep")
	for _, dest := range []*odometer.ExportDestination{d, keep} {
		mustPutDestination(t, s, dest, true)
		mustPutCustomer(t, s, &odometer.ExportCustomer{Namespace: "ns", Destination: dest.Name, Subject: "acme", CustomerID: "c1",
			CreatedAt: exportCreated, UpdatedAt: exportCreated})
		f := exportFreeze(dest, xhour(0), exportRecord(dest, "acme", "tokens", xhour(0)))
		f.Accounts = []odometer.ExportAccount{{Subject: "acme", Dimension: "tokens", Carry: xdec("0.5"), LastHour: xhour(0)}}
		mustFreeze(t, s, f)
	}
	kept := readExportState(t, s, "ns", "keep")

	if err := s.DeleteExportDestination(ctx, "ns", "aws"); err != nil {
		t.Fatalf("DeleteExportDestination: %v", err)
	}
	_, err := s.FindExportDestination(ctx, "ns", "aws")
	wantErr(t, "FindExportDestination after DeleteExportDestination", err, odometer.ENOTFOUND, "aws")
	wantErr(t, "DeleteExportDestination twice", s.DeleteExportDestination(ctx, "ns", "aws"), odometer.ENOTFOUND, "aws")
	wantErr(t, "DeleteExportDestination of an unknown name", s.DeleteExportDestination(ctx, "ns", "nope"), odometer.ENOTFOUND, "nope")
	wantErr(t, "DeleteExportDestination in another namespace", s.DeleteExportDestination(ctx, "other", "keep"), odometer.ENOTFOUND, "keep")
	if got := exportCustomers(t, s, "ns", "aws"); len(got) != 0 {
		t.Errorf("customers of a deleted destination: %v", got)
	}
	if got := exportAccounts(t, s, "ns", "aws"); len(got) != 0 {
		t.Errorf("accounts of a deleted destination: %v", got)
	}
	if got := exportRecords(t, s, "ns", "aws"); len(got) != 0 {
		t.Errorf("records of a deleted destination: %v", recordKeys(got))
	}
	if sums, err := s.SummarizeExportRecords(ctx, "ns", "aws", time.Time{}, time.Time{}); err != nil || len(sums) != 0 {
		t.Errorf("SummarizeExportRecords of a deleted destination = %v, %v", sums, err)
	}
	wantUnchanged(t, s, "deleting another destination", kept)

	// The name is free again, with nothing of the old destination: not its
	// customers, accounts, records or FrozenThrough.
	mustPutDestination(t, s, exportDestination("ns", "aws"), true)
	if got := readExportState(t, s, "ns", "aws"); len(got.Customers)+len(got.Accounts)+len(got.Records) != 0 || !got.Destination.FrozenThrough.IsZero() {
		t.Errorf("a re-created destination has the old one's state: %+v", got)
	}
	mustFreeze(t, s, exportFreeze(d, xhour(0), exportRecord(d, "acme", "tokens", xhour(0))))
}

func testExportCustomers(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	d := exportDestination("ns", "aws")
	mustPutDestination(t, s, d, true)
	mustPutDestination(t, s, exportDestination("ns", "other"), true)
	if got := exportCustomers(t, s, "ns", "aws"); len(got) != 0 {
		t.Fatalf("ListExportCustomers of a new destination: %v", got)
	}
	byID := &odometer.ExportCustomer{Namespace: "ns", Destination: "aws", Subject: "acme", CustomerID: "CUST-1",
		CreatedAt: exportCreated, UpdatedAt: exportCreated}
	byLicense := &odometer.ExportCustomer{Namespace: "ns", Destination: "aws", Subject: "Zeta ✓", AWSAccountID: "123456789012",
		LicenseArn: "arn:aws:license-manager::123456789012:license:l-1", CreatedAt: exportCreated.Add(time.Microsecond),
		UpdatedAt: exportCreated.Add(time.Second), From: xhour(-3).In(time.FixedZone("UTC+5:30", 5*3600+1800))}
	bare := &odometer.ExportCustomer{Namespace: "ns", Destination: "aws", Subject: "b", CreatedAt: exportCreated, UpdatedAt: exportCreated}
	elsewhere := &odometer.ExportCustomer{Namespace: "ns", Destination: "other", Subject: "acme", CustomerID: "OTHER",
		CreatedAt: exportCreated, UpdatedAt: exportCreated}
	for _, c := range []*odometer.ExportCustomer{byID, byLicense, bare, elsewhere} {
		mustPutCustomer(t, s, c)
	}
	// Byte order: "Zeta ✓" < "acme" < "b".
	if diff := cmp.Diff([]*odometer.ExportCustomer{byLicense, byID, bare}, exportCustomers(t, s, "ns", "aws")); diff != "" {
		t.Errorf("ListExportCustomers (-want +got):\n%s", diff)
	}
	if got := exportCustomers(t, s, "ns", "other"); !cmp.Equal([]*odometer.ExportCustomer{elsewhere}, got) {
		t.Errorf("ListExportCustomers of another destination = %+v", got)
	}
	// From: zero stays zero (the creation hour), a set one comes back in UTC.
	checkFrom := func(what string, want map[string]time.Time) {
		t.Helper()
		for _, c := range exportCustomers(t, s, "ns", "aws") {
			w, ok := want[c.Subject]
			switch {
			case !ok:
			case w.IsZero() && !c.From.IsZero():
				t.Errorf("%s: %q has From %s, want zero", what, c.Subject, c.From)
			case !w.IsZero() && (!c.From.Equal(w) || c.From.Location() != time.UTC):
				t.Errorf("%s: %q has From %s, want %s in UTC", what, c.Subject, c.From, w.UTC())
			}
		}
	}
	checkFrom("put", map[string]time.Time{"acme": {}, "Zeta ✓": xhour(-3), "b": {}})

	// Replacing keeps CreatedAt; the mapping may switch kinds; From is
	// replaced.
	replaced := &odometer.ExportCustomer{Namespace: "ns", Destination: "aws", Subject: "acme", AWSAccountID: "210987654321",
		LicenseArn: "arn:l-2", From: xhour(2), CreatedAt: exportCreated.Add(48 * time.Hour), UpdatedAt: exportCreated.Add(48 * time.Hour)}
	mustPutCustomer(t, s, replaced)
	want := *replaced
	want.CreatedAt = byID.CreatedAt
	if diff := cmp.Diff([]*odometer.ExportCustomer{byLicense, &want, bare}, exportCustomers(t, s, "ns", "aws")); diff != "" {
		t.Errorf("ListExportCustomers after replacing (-want +got):\n%s", diff)
	}
	checkFrom("replaced with From", map[string]time.Time{"acme": xhour(2)})
	// Replaced again without From: zero, as the caller gave it.
	replaced.From = time.Time{}
	mustPutCustomer(t, s, replaced)
	want.From = time.Time{}
	if diff := cmp.Diff([]*odometer.ExportCustomer{byLicense, &want, bare}, exportCustomers(t, s, "ns", "aws")); diff != "" {
		t.Errorf("ListExportCustomers after replacing From with zero (-want +got):\n%s", diff)
	}
	checkFrom("replaced without From", map[string]time.Time{"acme": {}, "Zeta ✓": xhour(-3)})

	if err := s.DeleteExportCustomer(ctx, "ns", "aws", "b"); err != nil {
		t.Fatalf("DeleteExportCustomer: %v", err)
	}
	wantErr(t, "DeleteExportCustomer twice", s.DeleteExportCustomer(ctx, "ns", "aws", "b"), odometer.ENOTFOUND, "b")
	wantErr(t, "DeleteExportCustomer of a subject mapped elsewhere", s.DeleteExportCustomer(ctx, "ns", "other", "Zeta ✓"), odometer.ENOTFOUND, "Zeta ✓")
	wantErr(t, "DeleteExportCustomer in another namespace", s.DeleteExportCustomer(ctx, "ns2", "aws", "acme"), odometer.ENOTFOUND, "acme")
	if diff := cmp.Diff([]*odometer.ExportCustomer{byLicense, &want}, exportCustomers(t, s, "ns", "aws")); diff != "" {
		t.Errorf("ListExportCustomers after DeleteExportCustomer (-want +got):\n%s", diff)
	}

	// A mapping needs its destination.
	missing := &odometer.ExportCustomer{Namespace: "ns", Destination: "no-dest", Subject: "acme", CustomerID: "C",
		CreatedAt: exportCreated, UpdatedAt: exportCreated}
	wantErr(t, "PutExportCustomer for a missing destination", s.PutExportCustomer(ctx, missing), odometer.ENOTFOUND, "no-dest")
	missing.Namespace, missing.Destination = "ns2", "aws"
	wantErr(t, "PutExportCustomer for a destination of another namespace", s.PutExportCustomer(ctx, missing), odometer.ENOTFOUND, "aws")
	if got := exportCustomers(t, s, "ns", "no-dest"); len(got) != 0 {
		t.Errorf("ListExportCustomers of a missing destination: %v", got)
	}
}

// fullRecord returns a record with every field set, LateHours included,
// and decimals at the limits.
func fullRecord(d *odometer.ExportDestination, subject string, h time.Time) *odometer.ExportRecord {
	r := exportRecord(d, subject, "Tokens", h)
	r.CustomerID, r.AWSAccountID, r.LicenseArn = "", "123456789012", "arn:aws:license-manager::123456789012:license:l-1"
	r.Quantity = 1 << 40 // beyond int32: the store keeps it
	r.Usage = xdec("999999999999999999999.999999999999999999")
	r.Accounted = xdec("0.000000000000000001")
	r.Late = xdec("-12.25")
	r.LateHours = []odometer.ExportLate{{Hour: h.Add(-2 * time.Hour), Usage: xdec("-20")}, {Hour: h.Add(-time.Hour), Usage: xdec("7.75")}}
	r.Carry = xdec("-0.000000000000000000000000000000000001") // 36 fraction digits
	r.Attempts = 3
	r.MeteringRecordID, r.Reason = "mr-1", "a reason"
	r.NextAttemptAt = h.Add(90*time.Minute + time.Microsecond)
	r.FrozenAt = h.Add(70*time.Minute + 123456*time.Microsecond)
	r.UpdatedAt = h.Add(80 * time.Minute)
	return r
}

func testExportFreeze(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	d := exportDestination("ns", "aws")
	mustPutDestination(t, s, d, true)

	full := fullRecord(d, "acme", xhour(0))
	emptyLate := exportRecord(d, "b", "Tokens", xhour(0))
	emptyLate.LateHours = []odometer.ExportLate{}
	zero := exportRecord(d, "b", "Requests", xhour(0))
	zero.Quantity, zero.Usage, zero.Accounted, zero.Carry, zero.Status = 0, odometer.Decimal{}, odometer.Decimal{}, odometer.Decimal{}, odometer.ExportEmpty
	f0 := exportFreeze(d, xhour(0), zero, full, emptyLate)
	f0.Accounts = []odometer.ExportAccount{
		{Subject: "b", Dimension: "Tokens", Carry: xdec("0.5"), LastHour: xhour(0)},
		{Subject: "acme", Dimension: "Tokens", Carry: full.Carry, LastHour: xhour(0)},
	}
	mustFreeze(t, s, f0)
	if got := findDestination(t, s, "ns", "aws").FrozenThrough; !got.Equal(xhour(1)) {
		t.Errorf("FrozenThrough after freezing hour 0 = %v, want %v", got, xhour(1))
	}
	got := exportRecords(t, s, "ns", "aws")
	if diff := cmp.Diff([]*odometer.ExportRecord{full, zero, emptyLate}, got, decimals); diff != "" {
		t.Errorf("records after freezing hour 0 (-want +got):\n%s", diff)
	}
	for _, r := range got {
		if r.Hour.Location() != time.UTC || r.FrozenAt.Location() != time.UTC {
			t.Errorf("record %v: times not in UTC", recordKeys([]*odometer.ExportRecord{r}))
		}
	}
	wantAccounts := []odometer.ExportAccount{f0.Accounts[1], f0.Accounts[0]} // by subject, dimension
	if diff := cmp.Diff(wantAccounts, exportAccounts(t, s, "ns", "aws"), decimals); diff != "" {
		t.Errorf("accounts after freezing hour 0 (-want +got):\n%s", diff)
	}

	// Hour 1 raises hour 0's Accounted and moves the accounts on.
	next := exportRecord(d, "acme", "Tokens", xhour(1))
	next.Late = xdec("3.5")
	next.LateHours = []odometer.ExportLate{{Hour: xhour(0), Usage: xdec("3.5")}}
	// Hour 0 of (c, Tokens) had no record: an empty one keeps its late usage.
	placeholder := exportRecord(d, "c", "Tokens", xhour(0))
	placeholder.Quantity, placeholder.Usage, placeholder.Accounted = 0, odometer.Decimal{}, xdec("2")
	placeholder.Status, placeholder.Reason = odometer.ExportEmpty, "no usage when its hour was frozen"
	placeholder.FrozenAt, placeholder.UpdatedAt, placeholder.NextAttemptAt = next.FrozenAt, next.FrozenAt, next.FrozenAt
	f1 := exportFreeze(d, xhour(1), next, placeholder)
	f1.Accounted = []odometer.ExportAccounted{
		{Subject: "acme", Dimension: "Tokens", Hour: xhour(0), Accounted: xdec("3.500000000000000001")},
		{Subject: "b", Dimension: "Requests", Hour: xhour(0), Accounted: xdec("0")}, // unchanged value
	}
	f1.Accounts = []odometer.ExportAccount{
		{Subject: "acme", Dimension: "Tokens", Carry: xdec("12.125"), LastHour: xhour(1)},
		{Subject: "acme", Dimension: "Requests", Carry: xdec("0"), LastHour: xhour(1)},
		{Subject: "b", Dimension: "Requests", Carry: xdec("-2"), LastHour: xhour(1)},
	}
	mustFreeze(t, s, f1)
	raised := *full
	raised.Accounted = xdec("3.500000000000000001")
	if diff := cmp.Diff([]*odometer.ExportRecord{&raised, zero, emptyLate, placeholder, next}, exportRecords(t, s, "ns", "aws"), decimals); diff != "" {
		t.Errorf("records after freezing hour 1 (-want +got):\n%s", diff)
	}
	wantAccounts = []odometer.ExportAccount{f1.Accounts[1], f1.Accounts[0], f1.Accounts[2], f0.Accounts[0]}
	if diff := cmp.Diff(wantAccounts, exportAccounts(t, s, "ns", "aws"), decimals); diff != "" {
		t.Errorf("accounts after freezing hour 1 (-want +got):\n%s", diff)
	}
	if got := findDestination(t, s, "ns", "aws").FrozenThrough; !got.Equal(xhour(2)) {
		t.Errorf("FrozenThrough after freezing hour 1 = %v, want %v", got, xhour(2))
	}

	// An hour is frozen once, and only the next one may be frozen.
	before := readExportState(t, s, "ns", "aws")
	for _, tt := range []struct {
		name string
		f    *odometer.ExportFreeze
	}{
		{"the same hour again", exportFreeze(d, xhour(1), exportRecord(d, "new", "Tokens", xhour(1)))},
		{"the same hour again, without records", exportFreeze(d, xhour(1))},
		{"an earlier hour", exportFreeze(d, xhour(0), exportRecord(d, "new", "Tokens", xhour(0)))},
		{"a later hour than the next", exportFreeze(d, xhour(3), exportRecord(d, "new", "Tokens", xhour(3)))},
	} {
		err := s.FreezeExportHour(ctx, tt.f)
		wantErr(t, "FreezeExportHour of "+tt.name, err, odometer.ECONFLICT, "aws", xhour(2).Format(time.RFC3339))
		wantUnchanged(t, s, "FreezeExportHour of "+tt.name, before)
	}

	// An hour without records only moves FrozenThrough.
	mustFreeze(t, s, exportFreeze(d, xhour(2)))
	before.Destination.FrozenThrough = xhour(3)
	wantUnchanged(t, s, "FreezeExportHour without records", before)

	wantErr(t, "FreezeExportHour of a missing destination", s.FreezeExportHour(ctx, &odometer.ExportFreeze{Namespace: "ns", Destination: "nope", Hour: xhour(0)}),
		odometer.ENOTFOUND, "nope")
	wantErr(t, "FreezeExportHour of a destination of another namespace", s.FreezeExportHour(ctx, &odometer.ExportFreeze{Namespace: "ns2", Destination: "aws", Hour: xhour(3)}),
		odometer.ENOTFOUND, "aws")

	// A destination without a frozen hour may start at any hour.
	late := exportDestination("ns", "late")
	mustPutDestination(t, s, late, true)
	mustFreeze(t, s, exportFreeze(late, xhour(100), exportRecord(late, "acme", "Tokens", xhour(100))))
	if got := findDestination(t, s, "ns", "late").FrozenThrough; !got.Equal(xhour(101)) {
		t.Errorf("FrozenThrough after a first freeze of hour 100 = %v, want %v", got, xhour(101))
	}
	wantUnchanged(t, s, "freezing another destination", before)
}

// testExportFreezeAtomic checks that a failing freeze writes nothing: not
// the records before the failing part, not the raises, not the accounts,
// not FrozenThrough.
func testExportFreezeAtomic(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	d := exportDestination("ns", "aws")
	mustPutDestination(t, s, d, true)
	f0 := exportFreeze(d, xhour(0), exportRecord(d, "acme", "Tokens", xhour(0)))
	f0.Accounts = []odometer.ExportAccount{{Subject: "acme", Dimension: "Tokens", Carry: xdec("0.5"), LastHour: xhour(0)}}
	mustFreeze(t, s, f0)
	before := readExportState(t, s, "ns", "aws")

	// good returns a valid freeze of hour 1: two records, a raise of hour
	// 0's record, and accounts.
	good := func() *odometer.ExportFreeze {
		f := exportFreeze(d, xhour(1), exportRecord(d, "acme", "Tokens", xhour(1)), exportRecord(d, "b", "Tokens", xhour(1)))
		f.Accounted = []odometer.ExportAccounted{{Subject: "acme", Dimension: "Tokens", Hour: xhour(0), Accounted: xdec("9000")}}
		f.Accounts = []odometer.ExportAccount{
			{Subject: "acme", Dimension: "Tokens", Carry: xdec("0.75"), LastHour: xhour(1)},
			{Subject: "b", Dimension: "Tokens", Carry: xdec("0.25"), LastHour: xhour(1)},
		}
		return f
	}
	tests := []struct {
		name  string
		spoil func(f *odometer.ExportFreeze)
		code  string
		names []string
	}{
		{"a raise of a missing record", func(f *odometer.ExportFreeze) {
			f.Accounted = append(f.Accounted, odometer.ExportAccounted{Subject: "ghost", Dimension: "Tokens", Hour: xhour(0), Accounted: xdec("1")})
		}, odometer.ENOTFOUND, []string{"ghost"}},
		{"a raise of a record of another hour", func(f *odometer.ExportFreeze) {
			f.Accounted[0].Hour = xhour(-1)
		}, odometer.ENOTFOUND, []string{"acme"}},
		{"a record twice", func(f *odometer.ExportFreeze) {
			f.Records = append(f.Records, exportRecord(d, "b", "Tokens", xhour(1)))
		}, odometer.ECONFLICT, []string{"b"}},
		{"a record of an earlier hour that has one", func(f *odometer.ExportFreeze) {
			f.Records = append(f.Records, exportRecord(d, "acme", "Tokens", xhour(0)))
		}, odometer.ECONFLICT, []string{"acme", xhour(0).Format(time.RFC3339)}},
		{"a record of a later hour", func(f *odometer.ExportFreeze) {
			f.Records[1].Hour = xhour(2)
		}, odometer.EINVALID, nil},
		{"a record of an hour that is not whole", func(f *odometer.ExportFreeze) {
			f.Records[1].Hour = xhour(0).Add(time.Minute)
		}, odometer.EINVALID, nil},
		{"a record of another destination", func(f *odometer.ExportFreeze) {
			f.Records[1].Destination = "other"
		}, odometer.EINVALID, nil},
		{"a record of another namespace", func(f *odometer.ExportFreeze) {
			f.Records[1].Namespace = "other"
		}, odometer.EINVALID, nil},
		{"an hour that is not whole", func(f *odometer.ExportFreeze) {
			f.Hour = f.Hour.Add(time.Minute)
			for _, r := range f.Records {
				r.Hour = f.Hour
			}
		}, odometer.EINVALID, nil},
		{"an unknown status", func(f *odometer.ExportFreeze) {
			f.Records[1].Status = "sent"
		}, odometer.EINVALID, nil},
		{"a usage beyond the limits", func(f *odometer.ExportFreeze) {
			f.Records[1].Usage = xdec("1000000000000000000000")
		}, odometer.EINVALID, nil},
		{"an accounted usage with 19 fraction digits", func(f *odometer.ExportFreeze) {
			f.Records[1].Accounted = xdec("0.0000000000000000001")
		}, odometer.EINVALID, nil},
		{"a late usage beyond the limits", func(f *odometer.ExportFreeze) {
			f.Records[1].Late = xdec("-1e21")
		}, odometer.EINVALID, nil},
		{"a late hour's usage beyond the limits", func(f *odometer.ExportFreeze) {
			f.Records[1].LateHours = []odometer.ExportLate{{Hour: xhour(0), Usage: xdec("0.0000000000000000001")}}
		}, odometer.EINVALID, nil},
		{"a carry with 37 fraction digits", func(f *odometer.ExportFreeze) {
			f.Records[1].Carry = xdec("0.0000000000000000000000000000000000001")
		}, odometer.EINVALID, nil},
		{"a raise beyond the limits", func(f *odometer.ExportFreeze) {
			f.Accounted[0].Accounted = xdec("1e21")
		}, odometer.EINVALID, nil},
		{"an account's carry beyond the limits", func(f *odometer.ExportFreeze) {
			f.Accounts[1].Carry = xdec("1e21")
		}, odometer.EINVALID, nil},
	}
	for _, tt := range tests {
		f := good()
		tt.spoil(f)
		wantErr(t, "FreezeExportHour with "+tt.name, s.FreezeExportHour(ctx, f), tt.code, tt.names...)
		wantUnchanged(t, s, "FreezeExportHour with "+tt.name, before)
	}

	// The same freeze then succeeds.
	f := good()
	mustFreeze(t, s, f)
	if diff := cmp.Diff([]string{"0/acme/Tokens", "1/acme/Tokens", "1/b/Tokens"}, recordKeys(exportRecords(t, s, "ns", "aws"))); diff != "" {
		t.Errorf("records after the good freeze (-want +got):\n%s", diff)
	}
	if rs := exportRecords(t, s, "ns", "aws"); rs[0].Accounted.Cmp(xdec("9000")) != 0 {
		t.Errorf("hour 0's Accounted after the good freeze = %s, want 9000", rs[0].Accounted)
	}
	if diff := cmp.Diff(f.Accounts, exportAccounts(t, s, "ns", "aws"), decimals); diff != "" {
		t.Errorf("accounts after the good freeze (-want +got):\n%s", diff)
	}
}

// testExportFreezeConcurrent freezes the same hour of a destination from
// several goroutines at once, each with records of its own subjects (so
// that no key conflict stops them), while another goroutine freezes another
// destination's hours in turn: exactly one freeze of the hour succeeds, the
// others get ECONFLICT, and the records, the raise and the accounts are the
// winner's alone.
func testExportFreezeConcurrent(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	d := exportDestination("ns", "aws")
	side := exportDestination("ns", "side")
	mustPutDestination(t, s, d, true)
	mustPutDestination(t, s, side, true)
	mustFreeze(t, s, exportFreeze(d, xhour(0), exportRecord(d, "acme", "Tokens", xhour(0))))

	const racers, sideHours = 8, 20
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins []int
	)
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			var recs []*odometer.ExportRecord
			var accounts []odometer.ExportAccount
			for _, subj := range racerSubjects(i) {
				r := exportRecord(d, subj, "Tokens", xhour(1))
				r.Quantity = int64(i)
				recs = append(recs, r)
				accounts = append(accounts, odometer.ExportAccount{Subject: subj, Dimension: "Tokens",
					Carry: odometer.DecimalFromInt(int64(i)), LastHour: xhour(1)})
			}
			f := exportFreeze(d, xhour(1), recs...)
			f.Accounted = []odometer.ExportAccounted{{Subject: "acme", Dimension: "Tokens", Hour: xhour(0), Accounted: odometer.DecimalFromInt(int64(1000 + i))}}
			f.Accounts = accounts
			<-start
			err := s.FreezeExportHour(ctx, f)
			switch odometer.ErrorCode(err) {
			case "":
				mu.Lock()
				wins = append(wins, i)
				mu.Unlock()
			case odometer.ECONFLICT:
			default:
				t.Errorf("racer %d: FreezeExportHour: %v", i, err)
			}
		})
	}
	wg.Go(func() {
		<-start
		for h := range sideHours {
			if err := s.FreezeExportHour(ctx, exportFreeze(side, xhour(h), exportRecord(side, "acme", "Tokens", xhour(h)))); err != nil {
				t.Errorf("FreezeExportHour of the other destination's hour %d: %v", h, err)
				return
			}
		}
	})
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(wins) != 1 {
		t.Fatalf("%d freezes of the same hour succeeded (%v), want exactly 1", len(wins), wins)
	}
	w := wins[0]
	rs := exportRecords(t, s, "ns", "aws")
	want := []string{"0/acme/Tokens"}
	for _, subj := range racerSubjects(w) {
		want = append(want, "1/"+subj+"/Tokens")
	}
	if diff := cmp.Diff(want, recordKeys(rs)); diff != "" {
		t.Fatalf("records (-want +got):\n%s", diff)
	}
	if got := rs[0].Accounted; got.Cmp(odometer.DecimalFromInt(int64(1000+w))) != 0 {
		t.Errorf("hour 0's Accounted = %s, want the winner's %d", got, 1000+w)
	}
	for _, r := range rs[1:] {
		if r.Quantity != int64(w) {
			t.Errorf("record %s: quantity %d, want the winner's %d", recordKeys([]*odometer.ExportRecord{r})[0], r.Quantity, w)
		}
	}
	as := exportAccounts(t, s, "ns", "aws")
	if len(as) != len(racerSubjects(w)) {
		t.Errorf("%d accounts, want the winner's %d", len(as), len(racerSubjects(w)))
	}
	for _, a := range as {
		if a.Carry.Cmp(odometer.DecimalFromInt(int64(w))) != 0 {
			t.Errorf("account %s/%s: carry %s, want the winner's %d", a.Subject, a.Dimension, a.Carry, w)
		}
	}
	if got := findDestination(t, s, "ns", "aws").FrozenThrough; !got.Equal(xhour(2)) {
		t.Errorf("FrozenThrough = %v, want %v", got, xhour(2))
	}
	if got := findDestination(t, s, "ns", "side").FrozenThrough; !got.Equal(xhour(sideHours)) {
		t.Errorf("the other destination's FrozenThrough = %v, want %v", got, xhour(sideHours))
	}
	if got := len(exportRecords(t, s, "ns", "side")); got != sideHours {
		t.Errorf("the other destination has %d records, want %d", got, sideHours)
	}
}

// racerSubjects returns the subjects of racer i's freeze.
func racerSubjects(i int) []string {
	return []string{fmt.Sprintf("r%d-a", i), fmt.Sprintf("r%d-b", i), fmt.Sprintf("r%d-c", i)}
}

func testExportUpdate(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	d := exportDestination("ns", "aws")
	mustPutDestination(t, s, d, true)
	a, b, c := fullRecord(d, "a", xhour(0)), exportRecord(d, "b", "Tokens", xhour(0)), exportRecord(d, "c", "Tokens", xhour(0))
	mustFreeze(t, s, exportFreeze(d, xhour(0), a, b, c))
	if err := s.UpdateExportRecords(ctx, nil); err != nil {
		t.Errorf("UpdateExportRecords of no records: %v", err)
	}

	// Only the sending state changes, whatever else the records say.
	changeA := *a
	changeA.Status, changeA.MeteringRecordID, changeA.Reason = odometer.ExportAccepted, "mr-a", ""
	changeA.Attempts, changeA.NextAttemptAt, changeA.UpdatedAt = 4, time.Time{}, xhour(2).Add(time.Microsecond)
	changeA.Quantity, changeA.CustomerID, changeA.Usage, changeA.Accounted = 1, "other", xdec("1"), xdec("2")
	changeA.Late, changeA.Carry, changeA.LateHours, changeA.FrozenAt = xdec("3"), xdec("4"), nil, xhour(5)
	changeB := *b
	changeB.Status, changeB.Reason, changeB.Attempts = odometer.ExportRejected, "InvalidCustomerIdentifierException", 1
	changeB.NextAttemptAt, changeB.UpdatedAt = xhour(3), xhour(3)
	if err := s.UpdateExportRecords(ctx, []*odometer.ExportRecord{&changeB, &changeA}); err != nil {
		t.Fatalf("UpdateExportRecords: %v", err)
	}
	wantA, wantB := *a, *b
	wantA.Status, wantA.MeteringRecordID, wantA.Reason = changeA.Status, changeA.MeteringRecordID, changeA.Reason
	wantA.Attempts, wantA.NextAttemptAt, wantA.UpdatedAt = changeA.Attempts, changeA.NextAttemptAt, changeA.UpdatedAt
	wantB.Status, wantB.Reason, wantB.Attempts = changeB.Status, changeB.Reason, changeB.Attempts
	wantB.NextAttemptAt, wantB.UpdatedAt = changeB.NextAttemptAt, changeB.UpdatedAt
	if diff := cmp.Diff([]*odometer.ExportRecord{&wantA, &wantB, c}, exportRecords(t, s, "ns", "aws"), decimals); diff != "" {
		t.Errorf("records after UpdateExportRecords (-want +got):\n%s", diff)
	}

	// All or nothing.
	before := readExportState(t, s, "ns", "aws")
	changeC := *c
	changeC.Status, changeC.Attempts = odometer.ExportDuplicate, 9
	for _, tt := range []struct {
		name  string
		bad   func() *odometer.ExportRecord
		code  string
		names []string
	}{
		{"a missing subject", func() *odometer.ExportRecord { r := changeC; r.Subject = "ghost"; return &r }, odometer.ENOTFOUND, []string{"ghost"}},
		{"a missing hour", func() *odometer.ExportRecord { r := changeC; r.Hour = xhour(1); return &r }, odometer.ENOTFOUND, []string{"c"}},
		{"a missing dimension", func() *odometer.ExportRecord { r := changeC; r.Dimension = "Other"; return &r }, odometer.ENOTFOUND, []string{"Other"}},
		{"another destination", func() *odometer.ExportRecord { r := changeC; r.Destination = "nope"; return &r }, odometer.ENOTFOUND, nil},
		{"another namespace", func() *odometer.ExportRecord { r := changeC; r.Namespace = "ns2"; return &r }, odometer.ENOTFOUND, nil},
		{"an unknown status", func() *odometer.ExportRecord { r := changeC; r.Status = ""; return &r }, odometer.EINVALID, nil},
	} {
		err := s.UpdateExportRecords(ctx, []*odometer.ExportRecord{&changeC, tt.bad()})
		wantErr(t, "UpdateExportRecords with "+tt.name, err, tt.code, tt.names...)
		wantUnchanged(t, s, "UpdateExportRecords with "+tt.name, before)
	}

	// Concurrent updates of the same records, each listing them in its own
	// order: each applies whole, so the records end with one writer's
	// state.
	const writers, rounds = 4, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range rounds {
				var recs []*odometer.ExportRecord
				for _, r := range []*odometer.ExportRecord{a, b, c} {
					u := *r
					u.Attempts, u.Reason = w*100+i, fmt.Sprintf("writer %d", w)
					recs = append(recs, &u)
				}
				rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
				if err := s.UpdateExportRecords(ctx, recs); err != nil {
					t.Errorf("writer %d: UpdateExportRecords: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	rs := exportRecords(t, s, "ns", "aws")
	for _, r := range rs[1:] {
		if r.Attempts != rs[0].Attempts || r.Reason != rs[0].Reason {
			t.Errorf("after concurrent updates, records hold different writers' states: %d %q and %d %q",
				rs[0].Attempts, rs[0].Reason, r.Attempts, r.Reason)
		}
	}
	if rs[0].Attempts%100 != rounds-1 {
		t.Errorf("after concurrent updates, Attempts %d is not a writer's last round", rs[0].Attempts)
	}
}

// exportListFixture freezes hours 0 to 2 of ns/aws with subjects "B" (quantity 10) and
// "a" (quantity 1) and dimensions x and y, and then gives 0/B/x, 0/a/y and
// 1/B/y other sending states:
//
//	0/B/x accepted; 0/a/y rejected; 1/B/y pending, next attempt at hour 3;
//	every other record pending, next attempt 10 minutes after its hour ends.
//
// Another destination of ns and a destination "aws" of another namespace
// hold records for the same keys, which no listing of ns/aws may show.
func exportListFixture(t *testing.T, s odometer.Store) {
	d := exportDestination("ns", "aws")
	for _, dest := range []*odometer.ExportDestination{d, exportDestination("ns", "other"), exportDestination("ns2", "aws")} {
		mustPutDestination(t, s, dest, true)
		for h := range 3 {
			var recs []*odometer.ExportRecord
			for _, subj := range []string{"a", "B"} {
				for _, dim := range []string{"y", "x"} {
					r := exportRecord(dest, subj, dim, xhour(h))
					r.NextAttemptAt = xhour(h + 1).Add(10 * time.Minute)
					r.Quantity = map[string]int64{"a": 1, "B": 10}[subj]
					recs = append(recs, r)
				}
			}
			mustFreeze(t, s, exportFreeze(dest, xhour(h), recs...))
		}
	}
	set := func(subj, dim string, h int, status odometer.ExportStatus, next time.Time) *odometer.ExportRecord {
		r := exportRecord(d, subj, dim, xhour(h))
		r.Status, r.NextAttemptAt = status, next
		return r
	}
	if err := s.UpdateExportRecords(t.Context(), []*odometer.ExportRecord{
		set("B", "x", 0, odometer.ExportAccepted, xhour(0)),
		set("a", "y", 0, odometer.ExportRejected, xhour(0)),
		set("B", "y", 1, odometer.ExportPending, xhour(3)),
	}); err != nil {
		t.Fatalf("UpdateExportRecords: %v", err)
	}
}

func testExportList(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	exportListFixture(t, s)
	all := []string{"0/B/x", "0/B/y", "0/a/x", "0/a/y", "1/B/x", "1/B/y", "1/a/x", "1/a/y", "2/B/x", "2/B/y", "2/a/x", "2/a/y"}
	dueBy := xhour(2).Add(10 * time.Minute) // hour 1's default next attempt: inclusive
	tests := []struct {
		name string
		f    odometer.ExportRecordFilter
		want []string
	}{
		{"all", odometer.ExportRecordFilter{}, all},
		{"one status", odometer.ExportRecordFilter{Status: []odometer.ExportStatus{odometer.ExportAccepted}}, []string{"0/B/x"}},
		{"two statuses", odometer.ExportRecordFilter{Status: []odometer.ExportStatus{odometer.ExportRejected, odometer.ExportAccepted}}, []string{"0/B/x", "0/a/y"}},
		{"a status no record has", odometer.ExportRecordFilter{Status: []odometer.ExportStatus{odometer.ExportExpired}}, []string{}},
		{"pending", odometer.ExportRecordFilter{Status: []odometer.ExportStatus{odometer.ExportPending}}, append([]string{"0/B/y", "0/a/x"}, all[4:]...)},
		{"subject", odometer.ExportRecordFilter{Subject: "a"}, []string{"0/a/x", "0/a/y", "1/a/x", "1/a/y", "2/a/x", "2/a/y"}},
		{"subject case-sensitive", odometer.ExportRecordFilter{Subject: "b"}, []string{}},
		{"dimension", odometer.ExportRecordFilter{Dimension: "y"}, []string{"0/B/y", "0/a/y", "1/B/y", "1/a/y", "2/B/y", "2/a/y"}},
		{"subject and dimension", odometer.ExportRecordFilter{Subject: "B", Dimension: "y"}, []string{"0/B/y", "1/B/y", "2/B/y"}},
		{"from inclusive", odometer.ExportRecordFilter{From: xhour(1)}, all[4:]},
		{"to exclusive", odometer.ExportRecordFilter{To: xhour(1)}, all[:4]},
		{"range", odometer.ExportRecordFilter{From: xhour(1), To: xhour(2)}, all[4:8]},
		{"empty range", odometer.ExportRecordFilter{From: xhour(1), To: xhour(1)}, []string{}},
		{"due", odometer.ExportRecordFilter{DueBy: dueBy}, []string{"0/B/y", "0/a/x", "1/B/x", "1/a/x", "1/a/y"}},
		{"due a microsecond earlier", odometer.ExportRecordFilter{DueBy: dueBy.Add(-time.Microsecond)}, []string{"0/B/y", "0/a/x"}},
		{"due later", odometer.ExportRecordFilter{DueBy: xhour(3)}, []string{"0/B/y", "0/a/x", "1/B/x", "1/B/y", "1/a/x", "1/a/y"}},
		{"due and a terminal status", odometer.ExportRecordFilter{DueBy: xhour(9), Status: []odometer.ExportStatus{odometer.ExportAccepted}}, []string{}},
		{"due and subject", odometer.ExportRecordFilter{DueBy: dueBy, Subject: "a"}, []string{"0/a/x", "1/a/x", "1/a/y"}},
		{"due and range", odometer.ExportRecordFilter{DueBy: xhour(9), From: xhour(1), To: xhour(2), Dimension: "y"}, []string{"1/B/y", "1/a/y"}},
		{"limit", odometer.ExportRecordFilter{Limit: 5}, all[:5]},
		{"limit and filter", odometer.ExportRecordFilter{Subject: "a", From: xhour(1), Limit: 3}, []string{"1/a/x", "1/a/y", "2/a/x"}},
		{"another destination", odometer.ExportRecordFilter{Destination: "other", Status: []odometer.ExportStatus{odometer.ExportAccepted}}, []string{}},
		{"a missing destination", odometer.ExportRecordFilter{Destination: "nope"}, []string{}},
		{"another namespace", odometer.ExportRecordFilter{Namespace: "nobody"}, []string{}},
	}
	for _, tt := range tests {
		f := tt.f
		if f.Namespace == "" {
			f.Namespace = "ns"
		}
		if f.Destination == "" {
			f.Destination = "aws"
		}
		if f.Limit == 0 {
			f.Limit = 100
		}
		rs, err := s.ListExportRecords(ctx, f)
		if err != nil {
			t.Errorf("%s: ListExportRecords: %v", tt.name, err)
			continue
		}
		for _, r := range rs {
			if r.Namespace != f.Namespace || r.Destination != f.Destination {
				t.Errorf("%s: a record of %s/%s listed", tt.name, r.Namespace, r.Destination)
			}
		}
		if diff := cmp.Diff(tt.want, recordKeys(rs)); diff != "" {
			t.Errorf("%s: records (-want +got):\n%s", tt.name, diff)
		}
	}
	// The other destinations' records are there, untouched by ns/aws's updates.
	if got := exportRecords(t, s, "ns2", "aws"); len(got) != 12 || got[0].Status != odometer.ExportPending {
		t.Errorf("ns2/aws: %d records, first %+v; want 12, all pending", len(got), got[0])
	}
	for _, limit := range []int{0, -1} {
		_, err := s.ListExportRecords(ctx, odometer.ExportRecordFilter{Namespace: "ns", Destination: "aws", Limit: limit})
		wantCode(t, fmt.Sprintf("ListExportRecords with Limit %d", limit), err, odometer.EINVALID)
	}
}

func testExportSummarize(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	exportListFixture(t, s)
	// One of hour 1's pending x records was sent once: it is in flight.
	sent, err := s.ListExportRecords(ctx, odometer.ExportRecordFilter{Namespace: "ns", Destination: "aws",
		Dimension: "x", From: xhour(1), To: xhour(2), Limit: 1})
	if err != nil || len(sent) != 1 || sent[0].Status != odometer.ExportPending {
		t.Fatalf("hour 1's first x record: %v %v", sent, err)
	}
	sent[0].Attempts, sent[0].NextAttemptAt = 1, xhour(5)
	if err := s.UpdateExportRecords(ctx, sent); err != nil {
		t.Fatal(err)
	}
	sum := func(h int, dim string, status odometer.ExportStatus, records, quantity int64) odometer.ExportSummary {
		return odometer.ExportSummary{Hour: xhour(h), Dimension: dim, Status: status, Records: records, Quantity: quantity}
	}
	inFlight := func(x odometer.ExportSummary, n int64) odometer.ExportSummary { x.InFlight = n; return x }
	const (
		acc = odometer.ExportAccepted
		pen = odometer.ExportPending
		rej = odometer.ExportRejected
	)
	all := []odometer.ExportSummary{
		sum(0, "x", acc, 1, 10), sum(0, "x", pen, 1, 1), sum(0, "y", pen, 1, 10), sum(0, "y", rej, 1, 1),
		inFlight(sum(1, "x", pen, 2, 11), 1), sum(1, "y", pen, 2, 11),
		sum(2, "x", pen, 2, 11), sum(2, "y", pen, 2, 11),
	}
	tests := []struct {
		name     string
		ns, dest string
		from, to time.Time
		want     []odometer.ExportSummary
	}{
		{"all", "ns", "aws", time.Time{}, time.Time{}, all},
		{"from inclusive", "ns", "aws", xhour(1), time.Time{}, all[4:]},
		{"to exclusive", "ns", "aws", time.Time{}, xhour(1), all[:4]},
		{"range", "ns", "aws", xhour(1), xhour(2), all[4:6]},
		{"empty range", "ns", "aws", xhour(3), xhour(9), []odometer.ExportSummary{}},
		{"another namespace", "ns2", "aws", time.Time{}, xhour(1), []odometer.ExportSummary{sum(0, "x", pen, 2, 11), sum(0, "y", pen, 2, 11)}},
		{"a missing destination", "ns", "nope", time.Time{}, time.Time{}, []odometer.ExportSummary{}},
	}
	for _, tt := range tests {
		got, err := s.SummarizeExportRecords(ctx, tt.ns, tt.dest, tt.from, tt.to)
		if err != nil {
			t.Errorf("%s: SummarizeExportRecords: %v", tt.name, err)
			continue
		}
		if len(got) == 0 {
			got = []odometer.ExportSummary{}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: SummarizeExportRecords (-want +got):\n%s", tt.name, diff)
		}
	}
}

// testExportNamespaces stores the same destination name, subjects and hours
// in two namespaces and checks that nothing of one is visible in, or
// changed by, the other.
func testExportNamespaces(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	for _, ns := range []string{"ns-a", "ns-b"} {
		d := exportDestination(ns, "aws")
		d.ProductCode = "prod-" + ns
		mustPutDestination(t, s, d, true)
		mustPutCustomer(t, s, &odometer.ExportCustomer{Namespace: ns, Destination: "aws", Subject: "acme", CustomerID: "cust-" + ns,
			CreatedAt: exportCreated, UpdatedAt: exportCreated})
		f := exportFreeze(d, xhour(0), exportRecord(d, "acme", "tokens", xhour(0)))
		f.Accounts = []odometer.ExportAccount{{Subject: "acme", Dimension: "tokens", Carry: xdec("0.5"), LastHour: xhour(0)}}
		mustFreeze(t, s, f)
	}
	b := readExportState(t, s, "ns-b", "aws")

	// Changes in ns-a: a replaced definition and mapping, a freeze with a
	// raise, an update, a deleted mapping, then the deleted destination.
	da := exportDestination("ns-a", "aws")
	da.ProductCode = "changed"
	mustPutDestination(t, s, da, false)
	mustPutCustomer(t, s, &odometer.ExportCustomer{Namespace: "ns-a", Destination: "aws", Subject: "acme", CustomerID: "changed",
		CreatedAt: exportCreated, UpdatedAt: exportCreated})
	f := exportFreeze(da, xhour(1), exportRecord(da, "acme", "tokens", xhour(1)))
	f.Accounted = []odometer.ExportAccounted{{Subject: "acme", Dimension: "tokens", Hour: xhour(0), Accounted: xdec("1")}}
	f.Accounts = []odometer.ExportAccount{{Subject: "acme", Dimension: "tokens", Carry: xdec("0.75"), LastHour: xhour(1)}}
	mustFreeze(t, s, f)
	r := exportRecord(da, "acme", "tokens", xhour(0))
	r.Status = odometer.ExportAccepted
	if err := s.UpdateExportRecords(ctx, []*odometer.ExportRecord{r}); err != nil {
		t.Fatal(err)
	}
	if got := readExportState(t, s, "ns-a", "aws"); got.Destination.ProductCode != "changed" || len(got.Records) != 2 ||
		got.Records[0].Status != odometer.ExportAccepted || len(got.Customers) != 1 || got.Customers[0].CustomerID != "changed" {
		t.Errorf("ns-a's state after its changes: %+v", got)
	}
	wantUnchanged(t, s, "changes in another namespace", b)
	if err := s.DeleteExportCustomer(ctx, "ns-a", "aws", "acme"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteExportDestination(ctx, "ns-a", "aws"); err != nil {
		t.Fatal(err)
	}
	wantUnchanged(t, s, "deleting another namespace's destination", b)
	if ds, err := s.ListExportDestinations(ctx, ""); err != nil || len(ds) != 1 || ds[0].Namespace != "ns-b" {
		t.Errorf("ListExportDestinations of every namespace = %v, %v; want ns-b's alone", ds, err)
	}
}

func testExportLock(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	unlock, ok, err := s.TryLockExporter(ctx)
	if err != nil || !ok {
		t.Fatalf("TryLockExporter on a new store = %v, %v; want the lock", ok, err)
	}
	for range 2 {
		if u, ok, err := s.TryLockExporter(ctx); err != nil || ok {
			if ok {
				u()
			}
			t.Fatalf("TryLockExporter while locked = %v, %v; want ok false", ok, err)
		}
	}
	unlock()
	unlock() // does nothing

	// A lock taken with a context that then ends stays held until unlock,
	// which works without it.
	lockCtx, cancel := context.WithCancel(ctx)
	second, ok, err := s.TryLockExporter(lockCtx)
	if err != nil || !ok {
		t.Fatalf("TryLockExporter after unlock = %v, %v; want the lock", ok, err)
	}
	cancel()
	unlock() // the first holder's, again: must not release the second's lock
	if u, ok, err := s.TryLockExporter(ctx); err != nil || ok {
		if ok {
			u()
		}
		t.Fatalf("TryLockExporter after a stale unlock = %v, %v; want ok false", ok, err)
	}
	second()

	done, cancel := context.WithCancel(ctx)
	cancel()
	if u, ok, err := s.TryLockExporter(done); err == nil {
		if ok {
			u()
		}
		t.Errorf("TryLockExporter with a done context = %v, nil; want an error", ok)
	}

	third, ok, err := s.TryLockExporter(ctx)
	if err != nil || !ok {
		t.Fatalf("TryLockExporter after the second unlock = %v, %v; want the lock", ok, err)
	}
	third()
}

package exporter_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/export/awsmp"
	"github.com/odometerhq/odometer/export/awsmp/awsmptest"
	"github.com/odometerhq/odometer/export/exporter"
	"github.com/odometerhq/odometer/postgres"
	"github.com/odometerhq/odometer/postgres/pgtest"
	"github.com/odometerhq/odometer/sqlite"
	"github.com/odometerhq/odometer/usage"
)

const product = "prod-odometer"

// clock is the exporter's time, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// env is an exporter on a real store, sending to a local AWS stand-in.
type env struct {
	t     *testing.T
	store odometer.Store
	aws   *awsmptest.Server
	clock *clock
	exp   *exporter.Exporter
	dest  *odometer.ExportDestination
	base  time.Time // the destination's first hour
	seq   atomic.Int64
}

// storeKinds runs fn on SQLite and, when configured, on PostgreSQL.
func storeKinds(t *testing.T, fn func(t *testing.T, open func(t *testing.T) odometer.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, func(t *testing.T) odometer.Store {
			s, err := sqlite.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := pgtest.NewDatabase(t)
		fn(t, func(t *testing.T) odometer.Store { return openPostgres(t, url) })
	})
}

func openPostgres(t *testing.T, url string) odometer.Store {
	s, err := postgres.Open(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newEnv makes a destination starting at base (48 hours before the wall
// clock's hour, so that the stores' late marks, stamped with the wall
// clock, are never in the exporter's past), with two dimensions: "hours"
// (meter "seconds" converted to hundredths of an hour, only region eu)
// and "calls" (meter "calls", a COUNT).
func newEnv(t *testing.T, store odometer.Store, change func(d *odometer.ExportDestination)) *env {
	t.Helper()
	base := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	e := &env{t: t, store: store, aws: awsmptest.Start(t, product), clock: &clock{now: base}, base: base}
	ctx := t.Context()
	for _, m := range []*odometer.Meter{
		{Slug: "seconds", EventType: "job", Aggregation: odometer.Sum, ValueProperty: "$.seconds", GroupBy: map[string]string{"region": "$.region"}},
		{Slug: "calls", EventType: "job", Aggregation: odometer.Count},
	} {
		m.ID = odometer.NewID(base)
		m.Namespace = "default"
		m.CreatedAt, m.UpdatedAt = base, base
		if err := store.CreateMeter(ctx, m); err != nil && odometer.ErrorCode(err) != odometer.ECONFLICT {
			t.Fatal(err)
		}
	}
	e.dest = &odometer.ExportDestination{
		Namespace: "default", Name: "aws", ProductCode: product, Region: "us-east-1", Account: "main",
		StartHour: base, Delay: 10 * time.Minute, Window: 6 * time.Hour, LateHorizon: 24 * time.Hour,
		Dimensions: []odometer.ExportDimension{
			{Dimension: "hours", MeterSlug: "seconds", GroupBy: map[string]string{"region": "eu"},
				Multiply: odometer.MustDecimal("1"), Divide: odometer.MustDecimal("36"), Rounding: "DOWN"},
			{Dimension: "calls", MeterSlug: "calls", Multiply: odometer.MustDecimal("1"), Divide: odometer.MustDecimal("1"), Rounding: "DOWN"},
		},
		CreatedAt: base, UpdatedAt: base,
	}
	if change != nil {
		change(e.dest)
	}
	if _, err := store.PutExportDestination(ctx, e.dest); err != nil {
		t.Fatal(err)
	}
	e.exp = e.exporter(store, prometheus.NewRegistry())
	return e
}

// exporter returns an exporter of store whose one AWS account, "main",
// grants namespace default the product (e.mainAccount).
func (e *env) exporter(store odometer.Store, reg prometheus.Registerer) *exporter.Exporter {
	return e.exporterWith(store, reg, accountsOf(e.t, e.mainAccount()), nil)
}

// mainAccount grants namespace default the product, at the stand-in.
func (e *env) mainAccount() export.Account {
	return export.Account{Name: "main", Namespaces: []string{"default"}, ProductCodes: []string{product}, Endpoint: e.aws.URL}
}

// exporterWith returns an exporter of store with accounts, logging to log
// (nil: nowhere), that sends to each account's endpoint with static test
// credentials.
func (e *env) exporterWith(store odometer.Store, reg prometheus.Registerer, accounts *export.Accounts, log *slog.Logger) *exporter.Exporter {
	x, err := exporter.New(exporter.Config{
		Store:    store,
		Rollups:  usage.NewRollups(10000),
		Accounts: accounts,
		NewSender: func(ctx context.Context, a *export.Account, productCode, region string) (*awsmp.Sender, error) {
			return awsmp.New(awsmptest.Config(), productCode, a.Endpoint), nil
		},
		Now:        e.clock.Now,
		MinBackoff: time.Minute, MaxBackoff: 10 * time.Minute,
		Registerer: reg,
		Logger:     log,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return x
}

// customer maps subject to the AWS customer "cust-<subject>", mapped
// since the destination's first hour.
func (e *env) customer(subject string) {
	e.t.Helper()
	c := &odometer.ExportCustomer{Namespace: "default", Destination: "aws", Subject: subject,
		CustomerID: "cust-" + subject, CreatedAt: e.base, UpdatedAt: e.base}
	if err := e.store.PutExportCustomer(e.t.Context(), c); err != nil {
		e.t.Fatal(err)
	}
}

// job stores one event of subject at t, received now.
func (e *env) job(subject string, at time.Time, seconds, region string) {
	e.t.Helper()
	ev := odometer.Event{
		Namespace: "default", ID: fmt.Sprintf("ev-%d", e.seq.Add(1)), Source: "test", Type: "job", Subject: subject,
		Time: at.UTC().Truncate(odometer.TimePrecision), IngestedAt: e.clock.Now(),
		Data: fmt.Appendf(nil, `{"seconds":%s,"region":%q}`, seconds, region),
	}
	if _, err := e.store.AppendEvents(e.t.Context(), []odometer.Event{ev}); err != nil {
		e.t.Fatal(err)
	}
}

// round moves the clock to now and runs one export round, which must
// succeed.
func (e *env) round(now time.Time) {
	e.t.Helper()
	e.clock.Set(now)
	if err := e.exp.Round(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
}

// hour returns the destination's hour n.
func (e *env) hour(n int) time.Time { return e.base.Add(time.Duration(n) * time.Hour) }

// closed is when hour n is frozen: after its end and the delay.
func (e *env) closed(n int) time.Time { return e.hour(n + 1).Add(11 * time.Minute) }

func (e *env) records(f odometer.ExportRecordFilter) []*odometer.ExportRecord {
	e.t.Helper()
	f.Namespace, f.Destination = "default", "aws"
	if f.Limit == 0 {
		f.Limit = 100000
	}
	recs, err := e.store.ListExportRecords(e.t.Context(), f)
	if err != nil {
		e.t.Fatal(err)
	}
	return recs
}

func (e *env) record(subject, dimension string, hour time.Time) *odometer.ExportRecord {
	e.t.Helper()
	recs := e.records(odometer.ExportRecordFilter{Subject: subject, Dimension: dimension, From: hour, To: hour.Add(time.Hour)})
	if len(recs) != 1 {
		e.t.Fatalf("%d records of (%s, %s, %s), want 1", len(recs), subject, dimension, hour)
	}
	return recs[0]
}

// usageSince is the dimension's usage of subject over the frozen hours
// from the hour from on (zero: the destination's first hour), read from the
// events by the plain query path.
func (e *env) usageSince(subject, dimension string, from time.Time) odometer.Decimal {
	e.t.Helper()
	d, err := e.store.FindExportDestination(e.t.Context(), "default", "aws")
	if err != nil {
		e.t.Fatal(err)
	}
	var dim odometer.ExportDimension
	for _, x := range d.Dimensions {
		if x.Dimension == dimension {
			dim = x
		}
	}
	m, err := e.store.FindMeter(e.t.Context(), "default", dim.MeterSlug)
	if err != nil {
		e.t.Fatal(err)
	}
	cm, err := m.Compile()
	if err != nil {
		e.t.Fatal(err)
	}
	if from.IsZero() {
		from = d.StartHour
	}
	q := odometer.UsageQuery{From: from, To: d.FrozenThrough, Subjects: []string{subject}}
	for k, v := range dim.GroupBy {
		q.FilterGroupBy = map[string][]string{k: {v}}
	}
	res, err := usage.QueryUsage(e.t.Context(), e.store, cm, q, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	var sum odometer.Decimal
	for _, r := range res.Data {
		sum = sum.Add(r.Value)
	}
	return sum.Mul(dim.Multiply)
}

// checkExact asserts the exporter's invariant for (subject, dimension):
// what AWS metered × divide + the carry left = the usage of the frozen
// hours × multiply, exactly.
func (e *env) checkExact(subject, dimension string, divide int64) {
	e.t.Helper()
	e.checkExactLosing(subject, dimension, divide)
}

// checkExactLosing is checkExact where the records in the lost statuses
// (expired, rejected locally) count as if metered: their quantities are
// what the exporter reported lost.
func (e *env) checkExactLosing(subject, dimension string, divide int64, lost ...odometer.ExportStatus) {
	e.t.Helper()
	e.checkExactSince(time.Time{}, subject, dimension, divide, lost...)
}

// checkExactSince is checkExactLosing for the usage of the frozen hours from
// the hour from on (zero: the destination's first hour).
func (e *env) checkExactSince(from time.Time, subject, dimension string, divide int64, lost ...odometer.ExportStatus) {
	e.t.Helper()
	metered := e.aws.Total("cust-"+subject, dimension)
	if len(lost) > 0 {
		for _, r := range e.records(odometer.ExportRecordFilter{Subject: subject, Dimension: dimension, Status: lost}) {
			metered += r.Quantity
		}
	}
	accounts, err := e.store.ListExportAccounts(e.t.Context(), "default", "aws")
	if err != nil {
		e.t.Fatal(err)
	}
	var carry odometer.Decimal
	for _, a := range accounts {
		if a.Subject == subject && a.Dimension == dimension {
			carry = a.Carry
		}
	}
	got := odometer.DecimalFromInt(metered).Mul(odometer.DecimalFromInt(divide)).Add(carry)
	if want := e.usageSince(subject, dimension, from); got.Cmp(want) != 0 {
		e.t.Errorf("(%s, %s): metered %d × %d + carry %s = %s, want the usage %s", subject, dimension, metered, divide, carry, got, want)
	}
}

func statuses(recs []*odometer.ExportRecord) map[odometer.ExportStatus]int {
	out := map[odometer.ExportStatus]int{}
	for _, r := range recs {
		out[r.Status]++
	}
	return out
}

// Usage is aggregated per UTC hour, whatever offset the events' times
// were written in, and an event on an hour's edge counts in the hour it
// starts. Two customers, two dimensions, one with a group filter.
func TestHourlyAggregation(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		e := newEnv(t, open(t), nil)
		e.customer("alice")
		e.customer("bob")
		kolkata, _ := time.LoadLocation("Asia/Kolkata")
		e.job("alice", e.hour(1).Add(-time.Microsecond), "3600", "eu") // last instant of hour 0
		e.job("alice", e.hour(1), "36", "eu")                          // first instant of hour 1
		e.job("alice", e.hour(1).In(kolkata).Add(30*time.Minute), "72", "eu")
		e.job("alice", e.hour(1).Add(10*time.Minute), "999", "us") // not in "hours"
		e.job("bob", e.hour(2).Add(59*time.Minute).In(kolkata), "7200", "eu")

		e.round(e.closed(0).Add(-2 * time.Minute)) // hour 0 not closed yet
		if n := len(e.records(odometer.ExportRecordFilter{})); n != 0 {
			t.Fatalf("%d records before hour 0 closed", n)
		}
		e.round(e.closed(2))
		want := map[awsmptest.Key]int32{
			{Customer: "cust-alice", Dimension: "hours", Hour: e.hour(0)}: 100, // 3600 s = 100 hundredths
			{Customer: "cust-alice", Dimension: "calls", Hour: e.hour(0)}: 1,
			{Customer: "cust-alice", Dimension: "hours", Hour: e.hour(1)}: 3, // 108 s = 3 hundredths
			{Customer: "cust-alice", Dimension: "calls", Hour: e.hour(1)}: 3,
			{Customer: "cust-bob", Dimension: "hours", Hour: e.hour(2)}:   200,
			{Customer: "cust-bob", Dimension: "calls", Hour: e.hour(2)}:   1,
		}
		got := e.aws.Accepted()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("AWS metered\n%v\nwant\n%v", got, want)
		}
		for _, k := range e.aws.Keys() {
			if k.Hour.Minute() != 0 || k.Hour.Second() != 0 {
				t.Errorf("timestamp %s is not an hour start", k.Hour)
			}
		}
		r := e.record("alice", "hours", e.hour(1))
		if r.Status != odometer.ExportAccepted || r.MeteringRecordID != awsmptest.MeteringRecordID(awsmptest.Key{Customer: "cust-alice", Dimension: "hours", Hour: e.hour(1)}) {
			t.Errorf("record after acceptance: %+v", r)
		}
		for _, s := range []string{"alice", "bob"} {
			e.checkExact(s, "hours", 36)
			e.checkExact(s, "calls", 1)
		}
	})
}

// 60 records of one hour go out in calls of 25, 25 and 10.
func TestSixtyRecordsThreeCalls(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		e := newEnv(t, open(t), func(d *odometer.ExportDestination) { d.Dimensions = d.Dimensions[1:] })
		for i := range 60 {
			s := fmt.Sprintf("s%02d", i)
			e.customer(s)
			e.job(s, e.hour(0).Add(time.Duration(i)*time.Second), "1", "eu")
		}
		e.round(e.closed(0))
		if got := fmt.Sprint(e.aws.Calls()); got != "[25 25 10]" {
			t.Fatalf("calls carried %s records, want [25 25 10]", got)
		}
		if st := statuses(e.records(odometer.ExportRecordFilter{})); st[odometer.ExportAccepted] != 60 || len(st) != 1 {
			t.Fatalf("statuses %v", st)
		}
		// Nothing is sent again.
		e.round(e.closed(0).Add(time.Hour))
		if n := len(e.aws.Calls()); n != 3 {
			t.Fatalf("%d calls after a second round", n)
		}
		for i := range 60 {
			e.checkExact(fmt.Sprintf("s%02d", i), "calls", 1)
		}
	})
}

// Per-record outcomes: DuplicateRecord and CustomerNotSubscribed are
// terminal; unprocessed records are resent unchanged after a backoff;
// throttling backs off; a bad record is isolated and the others metered.
func TestOutcomes(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		e := newEnv(t, open(t), func(d *odometer.ExportDestination) { d.Dimensions = d.Dimensions[1:] })
		for _, s := range []string{"dup", "gone", "slow", "ok", "bad"} {
			e.customer(s)
			e.job(s, e.hour(0), "1", "eu")
		}
		// Someone metered dup's hour already.
		pre := awsmp.New(awsmptest.Config(), product, e.aws.URL)
		if _, err := pre.Send(t.Context(), []awsmp.Record{{CustomerIdentifier: "cust-dup", Dimension: "calls", Hour: e.hour(0), Quantity: 1}}); err != nil {
			t.Fatal(err)
		}
		e.aws.NotSubscribed = map[string]bool{"cust-gone": true}
		throttled := 1
		e.aws.Fail = func(call int, recs []awsmptest.Record) string {
			if throttled > 0 {
				throttled--
				return "ThrottlingException"
			}
			for _, r := range recs {
				if r.CustomerIdentifier == "cust-bad" {
					return "InvalidCustomerIdentifierException"
				}
			}
			return ""
		}
		unprocessed := 2
		e.aws.Unprocessed = func(call int, r awsmptest.Record) bool {
			if r.CustomerIdentifier == "cust-slow" && unprocessed > 0 {
				unprocessed--
				return true
			}
			return false
		}
		calls := len(e.aws.Calls())

		t0 := e.closed(0)
		e.round(t0) // throttled: everything waits
		if len(e.aws.Calls()) != calls+1 {
			t.Fatalf("throttled round made %d calls", len(e.aws.Calls())-calls)
		}
		pending := e.records(odometer.ExportRecordFilter{Status: []odometer.ExportStatus{odometer.ExportPending}})
		if len(pending) != 5 {
			t.Fatalf("%d pending after throttling, want 5", len(pending))
		}
		for _, r := range pending {
			if r.Attempts != 1 || !r.NextAttemptAt.After(t0) {
				t.Fatalf("throttled record %s: attempts %d, next %s", r.Subject, r.Attempts, r.NextAttemptAt)
			}
		}
		sums, err := e.store.SummarizeExportRecords(t.Context(), "default", "aws", time.Time{}, time.Time{})
		if err != nil || len(sums) != 1 || sums[0].Records != 5 || sums[0].InFlight != 5 {
			t.Fatalf("summary after throttling: %+v %v, want 5 in flight", sums, err)
		}
		e.round(t0.Add(10 * time.Second)) // still backing off
		if len(e.aws.Calls()) != calls+1 {
			t.Fatal("a call was made during the backoff")
		}
		e.round(t0.Add(2 * time.Minute))
		want := map[string]odometer.ExportStatus{
			"dup": odometer.ExportDuplicate, "gone": odometer.ExportNotSubscribed, "slow": odometer.ExportPending,
			"ok": odometer.ExportAccepted, "bad": odometer.ExportRejected,
		}
		for s, st := range want {
			if r := e.record(s, "calls", e.hour(0)); r.Status != st {
				t.Errorf("%s: %s (%s), want %s", s, r.Status, r.Reason, st)
			}
		}
		if r := e.record("bad", "calls", e.hour(0)); !strings.Contains(r.Reason, "InvalidCustomerIdentifierException") {
			t.Errorf("rejection reason %q", r.Reason)
		}
		// slow is resent, unchanged, until processed; the terminal records
		// never are.
		sentBefore := sends(e.aws)
		for i := range 4 {
			e.round(t0.Add(time.Duration(5+10*i) * time.Minute))
		}
		if r := e.record("slow", "calls", e.hour(0)); r.Status != odometer.ExportAccepted || r.Attempts != 4 {
			t.Fatalf("slow: %s after %d attempts", r.Status, r.Attempts)
		}
		var slow []awsmptest.Record
		for _, r := range e.aws.Sent() {
			if r.CustomerIdentifier == "cust-slow" {
				slow = append(slow, r)
			}
		}
		if len(slow) < 3 || slices.ContainsFunc(slow, func(r awsmptest.Record) bool { return r != slow[0] }) {
			t.Fatalf("slow's sends differ: %v", slow)
		}
		sentAfter := sends(e.aws)
		for _, c := range []string{"cust-dup", "cust-gone", "cust-ok", "cust-bad"} {
			if sentAfter[c] != sentBefore[c] {
				t.Errorf("%s sent again after its terminal outcome", c)
			}
		}
		for _, s := range []string{"ok", "slow"} {
			e.checkExact(s, "calls", 1)
		}
	})
}

// sends counts the records sent per customer.
func sends(s *awsmptest.Server) map[string]int {
	out := map[string]int{}
	for _, r := range s.Sent() {
		out[r.Customer()]++
	}
	return out
}

// Usage that arrives for an hour already reported is carried into the
// next hour frozen, with the hours it came from, and raises what is
// accounted for its own hour; an hour that had no record gets an empty one
// that accounts it.
func TestLateUsage(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		e := newEnv(t, open(t), nil)
		e.customer("alice")
		e.job("alice", e.hour(0).Add(5*time.Minute), "360", "eu")
		e.round(e.closed(0))
		if r := e.record("alice", "hours", e.hour(0)); r.Status != odometer.ExportAccepted || r.Quantity != 10 {
			t.Fatalf("hour 0: %+v", r)
		}
		// Late: 720 s more for hour 0, and 36 s for hour 1, which had
		// none when it was frozen.
		e.round(e.closed(1))
		e.job("alice", e.hour(0).Add(50*time.Minute), "720", "eu")
		e.job("alice", e.hour(1).Add(50*time.Minute), "36", "eu")
		e.job("alice", e.hour(2).Add(1*time.Minute), "72", "eu")
		e.round(e.closed(2))

		r2 := e.record("alice", "hours", e.hour(2))
		if r2.Quantity != 23 || r2.Usage.String() != "72" || r2.Late.String() != "756" {
			t.Fatalf("hour 2: quantity %d usage %s late %s, want 23, 72, 756", r2.Quantity, r2.Usage, r2.Late)
		}
		wantLate := []odometer.ExportLate{{Hour: e.hour(0), Usage: odometer.MustDecimal("720")}, {Hour: e.hour(1), Usage: odometer.MustDecimal("36")}}
		if fmt.Sprint(r2.LateHours) != fmt.Sprint(wantLate) {
			t.Fatalf("hour 2 audit trail %v, want %v", r2.LateHours, wantLate)
		}
		if r0 := e.record("alice", "hours", e.hour(0)); r0.Accounted.String() != "1080" || r0.Usage.String() != "360" || r0.Quantity != 10 {
			t.Fatalf("hour 0 after the late usage: %+v", r0)
		}
		if r1 := e.record("alice", "hours", e.hour(1)); r1.Status != odometer.ExportEmpty || r1.Accounted.String() != "36" {
			t.Fatalf("hour 1 after the late usage: %+v", r1)
		}
		// The hour-0 record AWS has is unchanged: one send, quantity 10.
		if q := e.aws.Accepted()[awsmptest.Key{Customer: "cust-alice", Dimension: "hours", Hour: e.hour(0)}]; q != 10 {
			t.Fatalf("AWS has %d for hour 0", q)
		}
		// Nothing is carried twice.
		e.round(e.closed(3))
		if n := len(e.records(odometer.ExportRecordFilter{From: e.hour(3)})); n != 0 {
			t.Fatalf("%d records for hour 3 without usage", n)
		}
		e.checkExact("alice", "hours", 36)
		e.checkExact("alice", "calls", 1)
	})
}

// failingStore fails UpdateExportRecords when fail is set, as a crash
// between a send and storing its outcome would leave things.
type failingStore struct {
	odometer.Store
	fail atomic.Bool
}

func (s *failingStore) UpdateExportRecords(ctx context.Context, recs []*odometer.ExportRecord) error {
	if s.fail.Load() {
		return errors.New("injected: the process died before storing the outcome")
	}
	return s.Store.UpdateExportRecords(ctx, recs)
}

// A crash between a send and storing its outcome: the resend is
// byte-identical, AWS answers DuplicateRecord, and the record counts as
// delivered, once.
func TestCrashBetweenSendAndCommit(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		fs := &failingStore{Store: open(t)}
		e := newEnv(t, fs, nil)
		e.customer("alice")
		e.customer("bob")
		e.job("alice", e.hour(0), "3600", "eu")
		e.job("bob", e.hour(0), "1800", "eu")
		fs.fail.Store(true)
		e.clock.Set(e.closed(0))
		if err := e.exp.Round(t.Context()); err == nil {
			t.Fatal("the round did not report the failed commit")
		}
		first := e.aws.Bodies()
		if len(first) != 1 {
			t.Fatalf("%d calls", len(first))
		}
		if st := statuses(e.records(odometer.ExportRecordFilter{})); st[odometer.ExportPending] != 4 {
			t.Fatalf("after the lost outcome: %v", st)
		}
		// A restarted exporter sends the same bytes.
		fs.fail.Store(false)
		e.exp = e.exporter(fs, nil)
		e.round(e.closed(0).Add(time.Minute))
		bodies := e.aws.Bodies()
		if len(bodies) != 2 || string(bodies[1]) != string(first[0]) {
			t.Fatalf("the resend differs:\n%s\n%s", first[0], bodies[len(bodies)-1])
		}
		if st := statuses(e.records(odometer.ExportRecordFilter{})); st[odometer.ExportDuplicate] != 4 {
			t.Fatalf("after the resend: %v", st)
		}
		e.checkExact("alice", "hours", 36)
		e.checkExact("bob", "hours", 36)
		e.checkExact("bob", "calls", 1)
	})
}

// Seconds into hundredths of an hour, hour after hour: each hour reports
// whole hundredths and carries the rest, so the long-run total is exact.
// HALF_UP rounds each hour to the nearest and carries the difference.
func TestConversionCarries(t *testing.T) {
	for _, rounding := range []string{"DOWN", "HALF_UP"} {
		t.Run(rounding, func(t *testing.T) {
			storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
				e := newEnv(t, open(t), func(d *odometer.ExportDestination) { d.Dimensions[0].Rounding = rounding })
				e.customer("alice")
				seconds := []string{"50", "50", "10.5", "0.25", "35", "71.75", "18"}
				for i, s := range seconds {
					e.job("alice", e.hour(i).Add(time.Minute), s, "eu")
					e.round(e.closed(i))
				}
				var quantities []int64
				for _, r := range e.records(odometer.ExportRecordFilter{Dimension: "hours"}) {
					quantities = append(quantities, r.Quantity)
				}
				want := map[string]string{"DOWN": "[1 1 1 0 1 2 0]", "HALF_UP": "[1 2 0 0 1 2 1]"}[rounding]
				if fmt.Sprint(quantities) != want {
					t.Fatalf("quantities %v, want %s", quantities, want)
				}
				e.checkExact("alice", "hours", 36)
			})
		})
	}
}

// Records whose time window passed unsent expire and are never sent: after
// an outage longer than the window, and at the month-end cut-off (06:00
// UTC on the 1st) even inside a 24-hour window.
func TestTimeWindow(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		e := newEnv(t, open(t), func(d *odometer.ExportDestination) { d.Dimensions = d.Dimensions[1:] })
		e.aws.Now = e.clock.Now
		e.customer("alice")
		for i := range 10 {
			e.job("alice", e.hour(i).Add(time.Minute), "1", "eu")
		}
		// The exporter was down: hours 0..9 close at once, 11 hours
		// after hour 0. Hours 0..4 are past the 6-hour window.
		e.round(e.closed(9))
		recs := e.records(odometer.ExportRecordFilter{})
		for i, r := range recs {
			want := odometer.ExportAccepted
			if e.hour(i).Add(6 * time.Hour).Before(e.closed(9)) {
				want = odometer.ExportExpired
			}
			if r.Status != want {
				t.Errorf("hour %d: %s (%s), want %s", i, r.Status, r.Reason, want)
			}
		}
		for _, r := range e.aws.Sent() {
			if r.Hour().Add(6 * time.Hour).Before(e.closed(9)) {
				t.Errorf("an expired hour %s was sent", r.Hour())
			}
		}
		if n := e.aws.Total("cust-alice", "calls"); n != 5 {
			t.Errorf("AWS metered %d, want the 5 hours inside the window", n)
		}
		e.checkExactLosing("alice", "calls", 1, odometer.ExportExpired)
	})
}

func TestMonthEndCutoff(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := newEnv(t, s, func(d *odometer.ExportDestination) {
		d.Dimensions = d.Dimensions[1:]
		d.Window = 24 * time.Hour
	})
	e.customer("alice")
	// The last hours of the month before the destination's first hour's
	// month, exported late: 22:00 and 23:00 on the last day, frozen at
	// 06:30 on the 1st, inside 24 hours but after the cut-off.
	first := time.Date(e.base.Year(), e.base.Month(), 1, 0, 0, 0, 0, time.UTC)
	if err := s.DeleteExportDestination(t.Context(), "default", "aws"); err != nil {
		t.Fatal(err)
	}
	e.dest.StartHour = first.Add(-2 * time.Hour)
	if _, err := s.PutExportDestination(t.Context(), e.dest); err != nil {
		t.Fatal(err)
	}
	c := &odometer.ExportCustomer{Namespace: "default", Destination: "aws", Subject: "alice", CustomerID: "cust-alice", CreatedAt: e.dest.StartHour, UpdatedAt: e.dest.StartHour}
	if err := s.PutExportCustomer(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	e.job("alice", first.Add(-2*time.Hour), "1", "eu")
	e.job("alice", first.Add(-time.Hour), "1", "eu")
	e.job("alice", first.Add(5*time.Hour), "1", "eu")
	e.round(first.Add(5*time.Hour + 50*time.Minute)) // 05:50: all but hour 05 closed
	e.round(first.Add(6*time.Hour + 30*time.Minute))
	recs := e.records(odometer.ExportRecordFilter{})
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	// Frozen at 05:50, the month's hours were sent before the cut-off.
	for _, r := range recs {
		if r.Status != odometer.ExportAccepted {
			t.Errorf("%s: %s", r.Hour, r.Status)
		}
	}

	// Now the same, frozen after the cut-off.
	if err := s.DeleteExportDestination(t.Context(), "default", "aws"); err != nil {
		t.Fatal(err)
	}
	e.dest.StartHour = first.Add(-2 * time.Hour)
	if _, err := s.PutExportDestination(t.Context(), e.dest); err != nil {
		t.Fatal(err)
	}
	if err := s.PutExportCustomer(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	calls := len(e.aws.Calls())
	e.round(first.Add(6*time.Hour + 30*time.Minute))
	recs = e.records(odometer.ExportRecordFilter{})
	want := []odometer.ExportStatus{odometer.ExportExpired, odometer.ExportExpired, odometer.ExportDuplicate}
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	for i, r := range recs {
		if r.Status != want[i] {
			t.Errorf("%s: %s, want %s", r.Hour, r.Status, want[i])
		}
	}
	if got := e.aws.Calls()[calls:]; fmt.Sprint(got) != "[1]" {
		t.Errorf("calls after the cut-off carried %v records, want [1]", got)
	}
}

// A quantity beyond AWS's int32 limit is rejected locally, never sent.
func TestInt32Limit(t *testing.T) {
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		e := newEnv(t, open(t), func(d *odometer.ExportDestination) { d.Dimensions = d.Dimensions[:1] })
		e.customer("alice")
		e.job("alice", e.hour(0), "77309411328", "eu") // 2^31 × 36 seconds
		e.job("alice", e.hour(1), "36", "eu")
		e.round(e.closed(1))
		r0 := e.record("alice", "hours", e.hour(0))
		if r0.Status != odometer.ExportRejected || r0.Quantity != 2147483648 || !strings.Contains(r0.Reason, "2147483647") {
			t.Fatalf("hour 0: %+v", r0)
		}
		if r1 := e.record("alice", "hours", e.hour(1)); r1.Status != odometer.ExportAccepted || r1.Quantity != 1 {
			t.Fatalf("hour 1: %+v", r1)
		}
		if got := fmt.Sprint(e.aws.Calls()); got != "[1]" {
			t.Fatalf("calls %s", got)
		}
		e.checkExactLosing("alice", "hours", 36, odometer.ExportRejected)
	})
}

// With zero records on, every mapped customer gets a record each hour,
// usage or not; with it off, hours without usage make none.
func TestZeroRecords(t *testing.T) {
	for _, zero := range []bool{false, true} {
		t.Run(fmt.Sprint(zero), func(t *testing.T) {
			t.Parallel()
			s, err := sqlite.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			e := newEnv(t, s, func(d *odometer.ExportDestination) { d.ZeroRecords = zero })
			e.customer("alice")
			e.customer("idle")
			e.job("alice", e.hour(0), "3600", "eu")
			e.round(e.closed(1))
			sent := e.aws.Sent()
			want := 2 // alice's hour 0
			if zero {
				want = 2 * 2 * 2 // two customers, two dimensions, two hours
			}
			if len(sent) != want {
				t.Fatalf("%d records sent, want %d: %v", len(sent), want, sent)
			}
			for _, r := range sent {
				if r.Quantity == 0 && !zero {
					t.Errorf("a zero record was sent: %+v", r)
				}
			}
		})
	}
}

// A dry run freezes records, which the records API shows, and sends
// nothing.
func TestDryRun(t *testing.T) {
	t.Parallel()
	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := newEnv(t, s, func(d *odometer.ExportDestination) { d.DryRun = true })
	e.customer("alice")
	e.job("alice", e.hour(0), "3600", "eu")
	e.round(e.closed(0))
	if n := len(e.aws.Calls()); n != 0 {
		t.Fatalf("a dry run made %d calls", n)
	}
	if st := statuses(e.records(odometer.ExportRecordFilter{})); st[odometer.ExportPending] != 2 {
		t.Fatalf("dry run records: %v", st)
	}
}

// Two nodes on one PostgreSQL database: while one holds the exporter lock
// the other does nothing, and racing rounds send each record once.
func TestTwoNodesOnePostgres(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDatabase(t)
	a, b := openPostgres(t, url), openPostgres(t, url)
	e := newEnv(t, a, nil)
	other := e.exporter(b, nil)
	for i := range 30 {
		s := fmt.Sprintf("s%02d", i)
		e.customer(s)
		for h := range 4 {
			e.job(s, e.hour(h).Add(time.Duration(i)*time.Minute), fmt.Sprint(36*(i+h+1)), "eu")
		}
	}
	unlock, ok, err := a.TryLockExporter(t.Context())
	if err != nil || !ok {
		t.Fatalf("lock: %v %v", ok, err)
	}
	e.clock.Set(e.closed(0))
	if err := other.Round(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.records(odometer.ExportRecordFilter{})); n != 0 || len(e.aws.Calls()) != 0 {
		t.Fatalf("the node without the lock froze %d records and made %d calls", n, len(e.aws.Calls()))
	}
	unlock()

	for h := range 4 {
		e.clock.Set(e.closed(h))
		var wg sync.WaitGroup
		for _, x := range []*exporter.Exporter{e.exp, other, e.exp, other} {
			wg.Go(func() {
				if err := x.Round(t.Context()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	sent := e.aws.Sent()
	if len(sent) != 30*2*4 {
		t.Fatalf("%d records sent, want %d (each once)", len(sent), 30*2*4)
	}
	if st := statuses(e.records(odometer.ExportRecordFilter{})); st[odometer.ExportAccepted] != 240 {
		t.Fatalf("statuses %v", st)
	}
	for i := range 30 {
		e.checkExact(fmt.Sprintf("s%02d", i), "hours", 36)
	}
}

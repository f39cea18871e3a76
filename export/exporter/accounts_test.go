package exporter_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3" // the legacy row is written with plain SQL
	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/export/awsmp/awsmptest"
	"github.com/odometerhq/odometer/export/exporter"
	"github.com/odometerhq/odometer/postgres/pgtest"
	"github.com/odometerhq/odometer/sqlite"
)

// The exporter and the operator's AWS accounts (docs/export-aws.md, "AWS
// accounts and grants"): requests go where the account says, signed with
// its credentials, and only while it grants the destination's namespace
// the product code.

// accountsOf returns the accounts, which must be valid.
func accountsOf(t testing.TB, list ...export.Account) *export.Accounts {
	t.Helper()
	as, err := export.NewAccounts(list)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newLog() (*slog.Logger, *syncBuffer) {
	var b syncBuffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

// gauge reads the gauge name{destination=dest} from reg; -1 if it has no
// such series.
func gauge(t *testing.T, reg *prometheus.Registry, name, dest string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "destination" && l.GetValue() == dest {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// legacyStore is a store whose destinations can be given a value in the
// endpoint column, as destinations stored before accounts existed had.
type legacyStore struct {
	odometer.Store
	setEndpoint func(t *testing.T, namespace, name, endpoint string)
}

// legacyKinds runs fn on SQLite and, when configured, on PostgreSQL.
func legacyKinds(t *testing.T, fn func(t *testing.T, s legacyStore)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		s, err := sqlite.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, sqlite.FileName)+"?_busy_timeout=10000")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, legacyStore{s, func(t *testing.T, ns, name, endpoint string) {
			res, err := db.ExecContext(t.Context(), `UPDATE export_destinations SET endpoint = ?, account = '' WHERE namespace = ? AND name = ?`,
				endpoint, ns, name)
			if n, _ := res.RowsAffected(); err != nil || n != 1 {
				t.Fatalf("set the legacy endpoint of %s/%s: %v (%d rows)", ns, name, err, n)
			}
		}})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := pgtest.NewDatabase(t)
		s := openPostgres(t, url)
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(t.Context()) })
		fn(t, legacyStore{s, func(t *testing.T, ns, name, endpoint string) {
			tag, err := conn.Exec(t.Context(), `UPDATE export_destinations SET endpoint = $1, account = '' WHERE namespace = $2 AND name = $3`,
				endpoint, ns, name)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("set the legacy endpoint of %s/%s: %v (%d rows)", ns, name, err, tag.RowsAffected())
			}
		}})
	})
}

// A destination row from before accounts, whose endpoint column points at
// a listener: rounds never connect to it. In namespace default, granted
// the one account "main", it is sent with that account, to its endpoint;
// in namespace tenant-b, granted nothing, it is not sent at all.
func TestLegacyEndpointIsNeverUsed(t *testing.T) {
	t.Parallel()
	legacyKinds(t, func(t *testing.T, s legacyStore) {
		listener, accepted := awsmptest.Trap(t)
		e := newEnv(t, s, nil)
		log, logs := newLog()
		reg := prometheus.NewRegistry()
		e.exp = e.exporterWith(s, reg, accountsOf(t, e.mainAccount()), log)
		ctx := t.Context()

		// tenant-b's copy of the destination, with a customer and usage.
		meter := &odometer.Meter{ID: odometer.NewID(e.base), Namespace: "tenant-b", Slug: "calls", EventType: "job",
			Aggregation: odometer.Count, CreatedAt: e.base, UpdatedAt: e.base}
		if err := s.CreateMeter(ctx, meter); err != nil {
			t.Fatal(err)
		}
		b := *e.dest
		b.Namespace, b.Dimensions = "tenant-b", e.dest.Dimensions[1:]
		if _, err := s.PutExportDestination(ctx, &b); err != nil {
			t.Fatal(err)
		}
		if err := s.PutExportCustomer(ctx, &odometer.ExportCustomer{Namespace: "tenant-b", Destination: "aws", Subject: "bob",
			CustomerID: "cust-bob", CreatedAt: e.base, UpdatedAt: e.base}); err != nil {
			t.Fatal(err)
		}
		ev := odometer.Event{Namespace: "tenant-b", ID: "b-1", Source: "test", Type: "job", Subject: "bob", Time: e.hour(0),
			IngestedAt: e.base, Data: []byte(`{}`)}
		if _, err := s.AppendEvents(ctx, []odometer.Event{ev}); err != nil {
			t.Fatal(err)
		}
		s.setEndpoint(t, "default", "aws", listener)
		s.setEndpoint(t, "tenant-b", "aws", listener)
		if d, err := s.FindExportDestination(ctx, "default", "aws"); err != nil || d.Account != "" {
			t.Fatalf("the legacy row reads as %+v, %v", d, err)
		}

		e.customer("alice")
		e.job("alice", e.hour(0), "3600", "eu")
		e.round(e.closed(0))
		e.round(e.closed(0).Add(20 * time.Minute))
		if n := accepted.Load(); n != 0 {
			t.Fatalf("the exporter connected %d times to the endpoint stored with a destination", n)
		}
		// default/aws went to the account's endpoint, the stand-in.
		if st := statuses(e.records(odometer.ExportRecordFilter{})); st[odometer.ExportAccepted] != 2 || len(st) != 1 {
			t.Errorf("default/aws records: %v; want 2 accepted", st)
		}
		if got := e.aws.Total("cust-alice", "calls"); got != 1 {
			t.Errorf("the stand-in metered %d calls of alice, want 1", got)
		}
		// tenant-b/aws: frozen, pending, never sent anywhere.
		recs, err := s.ListExportRecords(ctx, odometer.ExportRecordFilter{Namespace: "tenant-b", Destination: "aws", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if st := statuses(recs); st[odometer.ExportPending] != 1 || len(st) != 1 || recs[0].Attempts != 0 {
			t.Errorf("tenant-b/aws records: %v; want 1 pending, never attempted", st)
		}
		if got := e.aws.Total("cust-bob", "calls"); got != 0 {
			t.Errorf("the stand-in metered %d calls of tenant-b's customer", got)
		}
		if g := gauge(t, reg, "odometer_export_forbidden", "tenant-b/aws"); g != 1 {
			t.Errorf("odometer_export_forbidden{tenant-b/aws} = %v, want 1", g)
		}
		if g := gauge(t, reg, "odometer_export_forbidden", "default/aws"); g != 0 {
			t.Errorf("odometer_export_forbidden{default/aws} = %v, want 0", g)
		}
		if l := logs.String(); !strings.Contains(l, "ALERT: export destination not sent") || !strings.Contains(l, "destination=tenant-b/aws") ||
			!strings.Contains(l, "granted it no AWS account") || strings.Contains(l, "destination=default/aws reason") {
			t.Errorf("log:\n%s", l)
		}
	})
}

// A destination its account no longer allows is frozen but not sent; its
// records go out when the grant is back, and expire when their window
// passes before that.
func TestGrantTakenAwayStopsSending(t *testing.T) {
	t.Parallel()
	storeKinds(t, func(t *testing.T, open func(t *testing.T) odometer.Store) {
		s := open(t)
		e := newEnv(t, s, nil)
		granted := accountsOf(t, e.mainAccount())
		other := e.mainAccount()
		other.ProductCodes = []string{"prod-other"}
		noProduct := accountsOf(t, other)
		other = e.mainAccount()
		other.Namespaces = []string{"tenant-a"}
		noNamespace := accountsOf(t, other)

		log, logs := newLog()
		reg := prometheus.NewRegistry()
		e.exp = e.exporterWith(s, reg, noProduct, log)
		e.customer("alice")
		e.job("alice", e.hour(0), "3600", "eu")
		e.round(e.closed(0))
		if n := len(e.aws.Calls()); n != 0 {
			t.Fatalf("%d calls for a product code the account does not allow", n)
		}
		if st := statuses(e.records(odometer.ExportRecordFilter{})); st[odometer.ExportPending] != 2 || len(st) != 1 {
			t.Fatalf("records %v; want 2 pending", st)
		}
		if g := gauge(t, reg, "odometer_export_forbidden", "default/aws"); g != 1 {
			t.Errorf("odometer_export_forbidden = %v, want 1", g)
		}
		if l := logs.String(); !strings.Contains(l, "destination=default/aws") ||
			!strings.Contains(l, `does not allow product code \"prod-odometer\" for namespace \"default\"`) {
			t.Errorf("log:\n%s", l)
		}

		// The grant is back: the records go out.
		e.exp = e.exporterWith(s, nil, granted, nil)
		e.round(e.closed(0).Add(time.Minute))
		if st := statuses(e.records(odometer.ExportRecordFilter{})); st[odometer.ExportAccepted] != 2 {
			t.Fatalf("records after the grant is back: %v", st)
		}
		e.checkExact("alice", "hours", 36)

		// Taken away again, with the namespace this time: hour 1 waits,
		// then expires unsent.
		reg = prometheus.NewRegistry()
		e.exp = e.exporterWith(s, reg, noNamespace, log)
		e.job("alice", e.hour(1), "7200", "eu")
		e.round(e.closed(1))
		calls := len(e.aws.Calls())
		if st := statuses(e.records(odometer.ExportRecordFilter{From: e.hour(1), To: e.hour(2)})); st[odometer.ExportPending] != 2 {
			t.Fatalf("hour 1 records: %v; want 2 pending", st)
		}
		e.round(e.hour(1).Add(6*time.Hour + time.Minute))
		if st := statuses(e.records(odometer.ExportRecordFilter{From: e.hour(1), To: e.hour(2)})); st[odometer.ExportExpired] != 2 {
			t.Fatalf("hour 1 records after its window: %v; want 2 expired", st)
		}
		if n := len(e.aws.Calls()); n != calls || n != 1 {
			t.Errorf("%d calls, want the 1 made while granted", n)
		}
		if g := gauge(t, reg, "odometer_export_forbidden", "default/aws"); g != 1 {
			t.Errorf("odometer_export_forbidden = %v, want 1", g)
		}
		if l := logs.String(); !strings.Contains(l, `namespace \"default\" may not export to AWS`) {
			t.Errorf("log:\n%s", l)
		}
	})
}

// awsEnv points the AWS SDK's default chain at base credentials in the
// environment and a shared credentials file with a profile "seller", and
// away from anything of the machine's. Not for parallel tests.
func awsEnv(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte("[seller]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = secret-profile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "secret-env", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": creds,
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_STS": "", "AWS_ENDPOINT_URL_MARKETPLACE_METERING": "",
	} {
		t.Setenv(k, v)
	}
}

// tenant is one namespace's destination "aws" in TestAccountCredentials.
type tenant struct {
	ns, account, product string
	aws                  *awsmptest.Server
}

// The exporter signs each destination's requests with its account's
// credentials, through the real AWS SDK: a role assumed with STS (signed
// with the base credentials, with the external id), a profile of the
// shared credentials file, and the default chain (the environment). A
// grant removed from the accounts stops the sending. Not parallel: the
// SDK reads the process environment.
func TestAccountCredentials(t *testing.T) {
	awsEnv(t)
	const role = "arn:aws:iam::123456789012:role/odometer-tenant-a"
	sts := awsmptest.StartSTS(t, map[string]awsmptest.Role{role: {KeyID: "ASIAROLEA", ExternalID: "tenant-a-ext"}})
	tenants := []*tenant{
		{ns: "tenant-a", account: "", product: "prod-a"}, // the only account granted
		{ns: "tenant-b", account: "seller", product: "prod-b"},
		{ns: "default", account: "main", product: "prod-d"},
		{ns: "tenant-c", account: "", product: "prod-c"}, // a role STS refuses
	}
	for _, tn := range tenants {
		tn.aws = awsmptest.Start(t, tn.product)
	}
	roles := export.Account{Name: "roles", Namespaces: []string{"tenant-a"}, ProductCodes: []string{"prod-a"}, Region: "us-west-2",
		RoleARN: role, ExternalID: "tenant-a-ext", Endpoint: tenants[0].aws.URL, STSEndpoint: sts.URL}
	seller := export.Account{Name: "seller", Namespaces: []string{"tenant-b"}, ProductCodes: []string{"prod-b"},
		Profile: "seller", Endpoint: tenants[1].aws.URL}
	main := export.Account{Name: "main", Namespaces: []string{"default"}, ProductCodes: []string{"*"}, Region: "us-east-1",
		Endpoint: tenants[2].aws.URL}
	refused := export.Account{Name: "refused", Namespaces: []string{"tenant-c"}, ProductCodes: []string{"*"}, Region: "us-east-1",
		RoleARN: role, ExternalID: "not-tenant-a", Endpoint: tenants[3].aws.URL, STSEndpoint: sts.URL}

	s, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	base := time.Now().UTC().Truncate(time.Hour).Add(-48 * time.Hour)
	clk := &clock{now: base}
	for _, tn := range tenants {
		m := &odometer.Meter{ID: odometer.NewID(base), Namespace: tn.ns, Slug: "calls", EventType: "job", Aggregation: odometer.Count,
			CreatedAt: base, UpdatedAt: base}
		if err := s.CreateMeter(ctx, m); err != nil {
			t.Fatal(err)
		}
		d := &odometer.ExportDestination{Namespace: tn.ns, Name: "aws", ProductCode: tn.product, Account: tn.account,
			StartHour: base, Delay: 10 * time.Minute, Window: 6 * time.Hour, LateHorizon: 24 * time.Hour,
			Dimensions: []odometer.ExportDimension{{Dimension: "calls", MeterSlug: "calls",
				Multiply: odometer.MustDecimal("1"), Divide: odometer.MustDecimal("1"), Rounding: "DOWN"}},
			CreatedAt: base, UpdatedAt: base}
		if tn.ns == "tenant-b" {
			d.Region = "eu-west-1" // the destination's region wins over the account's (none here)
		}
		if _, err := s.PutExportDestination(ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := s.PutExportCustomer(ctx, &odometer.ExportCustomer{Namespace: tn.ns, Destination: "aws", Subject: "acme",
			CustomerID: "cust-" + tn.ns, CreatedAt: base, UpdatedAt: base}); err != nil {
			t.Fatal(err)
		}
	}
	job := func(hour int) {
		t.Helper()
		for _, tn := range tenants {
			ev := odometer.Event{Namespace: tn.ns, ID: fmt.Sprintf("ev-%d", hour), Source: "test", Type: "job", Subject: "acme",
				Time: base.Add(time.Duration(hour) * time.Hour), IngestedAt: clk.Now(), Data: []byte(`{}`)}
			if _, err := s.AppendEvents(ctx, []odometer.Event{ev}); err != nil {
				t.Fatal(err)
			}
		}
	}
	log, logs := newLog()
	round := func(accounts *export.Accounts, at time.Time) {
		t.Helper()
		// NewSender is left out: the real SDK, with the accounts'
		// credentials.
		x, err := exporter.New(exporter.Config{Store: s, Accounts: accounts, Now: clk.Now, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		clk.Set(at)
		if err := x.Round(ctx); err != nil {
			t.Fatal(err)
		}
	}
	closed := func(hour int) time.Time { return base.Add(time.Duration(hour+1)*time.Hour + 11*time.Minute) }

	job(0)
	round(accountsOf(t, roles, seller, main, refused), closed(0))
	for _, tn := range tenants[:3] {
		if got := tn.aws.Total("cust-"+tn.ns, "calls"); got != 1 {
			t.Errorf("%s: AWS metered %d, want 1\nlog:\n%s", tn.ns, got, logs)
		}
	}
	// A role that cannot be assumed sends nothing and rejects nothing: the
	// record waits for a retry, as after a network failure.
	if n := len(tenants[3].aws.Calls()); n != 0 {
		t.Errorf("%d calls without credentials", n)
	}
	recs, err := s.ListExportRecords(ctx, odometer.ExportRecordFilter{Namespace: "tenant-c", Destination: "aws", Limit: 10})
	if err != nil || len(recs) != 1 || recs[0].Status != odometer.ExportPending || recs[0].Attempts != 1 || !recs[0].NextAttemptAt.After(clk.Now()) {
		t.Errorf("tenant-c's records after STS refused the role: %+v, %v", recs, err)
	}
	if l := logs.String(); !strings.Contains(l, "export call failed; backing off") || !strings.Contains(l, "AccessDenied") {
		t.Errorf("the log does not say why tenant-c waits:\n%s", l)
	}
	for want, tn := range map[awsmptest.Signer]*tenant{
		{KeyID: "ASIAROLEA", Region: "us-west-2", Service: "aws-marketplace", SecurityToken: "token-ASIAROLEA"}: tenants[0],
		{KeyID: "AKIDPROFILE", Region: "eu-west-1", Service: "aws-marketplace"}:                                 tenants[1],
		{KeyID: "AKIDENV", Region: "us-east-1", Service: "aws-marketplace"}:                                     tenants[2],
	} {
		signers := tn.aws.Signers()
		if len(signers) == 0 {
			t.Errorf("%s: no call", tn.ns)
		}
		for _, got := range signers {
			if got != want {
				t.Errorf("%s: a call signed by %+v, want %+v", tn.ns, got, want)
			}
		}
	}
	calls := sts.Calls()
	if len(calls) == 0 {
		t.Fatal("the role was never assumed")
	}
	for _, c := range calls {
		if c.ExternalID == "not-tenant-a" && c.SessionName == "odometer-refused" {
			continue
		}
		if c.RoleARN != role || c.ExternalID != "tenant-a-ext" || c.SessionName != "odometer-roles" ||
			c.Signer.KeyID != "AKIDENV" || c.Signer.Region != "us-west-2" || c.Signer.Service != "sts" {
			t.Errorf("AssumeRole call %+v", c)
		}
	}

	// The operator takes tenant-b off the seller account and prod-a off
	// the roles account: their hour 1 is frozen but not sent.
	roles.ProductCodes = []string{"prod-other"}
	seller.Namespaces = []string{"tenant-c"}
	job(1)
	round(accountsOf(t, roles, seller, main), closed(1))
	for _, tn := range tenants[:3] {
		want := 1
		if tn.ns == "default" {
			want = 2
		}
		if got := tn.aws.Total("cust-"+tn.ns, "calls"); got != int64(want) || len(tn.aws.Calls()) != want {
			t.Errorf("%s after the grant is gone: AWS metered %d in %d calls, want %d", tn.ns, got, len(tn.aws.Calls()), want)
		}
		recs, err := s.ListExportRecords(ctx, odometer.ExportRecordFilter{Namespace: tn.ns, Destination: "aws",
			From: base.Add(time.Hour), To: base.Add(2 * time.Hour), Limit: 10})
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s: hour 1 records %v, %v", tn.ns, recs, err)
		}
		if wantStatus := map[bool]odometer.ExportStatus{true: odometer.ExportAccepted, false: odometer.ExportPending}[tn.ns == "default"]; recs[0].Status != wantStatus {
			t.Errorf("%s: hour 1 is %s, want %s", tn.ns, recs[0].Status, wantStatus)
		}
	}
	l := logs.String()
	for _, want := range []string{
		`destination=tenant-a/aws account="" productCode=prod-a reason="productCode not allowed: AWS account \"roles\" does not allow product code \"prod-a\"`,
		`destination=tenant-b/aws account=seller productCode=prod-b reason="account not allowed: namespace \"tenant-b\" may not export to AWS`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("the log does not say %s:\n%s", want, l)
		}
	}
}

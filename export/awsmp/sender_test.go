package awsmp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"

	"github.com/odometerhq/odometer/export/awsmp/awsmptest"
)

// newSender returns a Sender of product prod-1 on a local stand-in of the
// service (awsmptest), whose hooks the test sets before its first call.
func newSender(t *testing.T) (*Sender, *awsmptest.Server) {
	t.Helper()
	srv := awsmptest.Start(t, "prod-1")
	return New(awsmptest.Config(), "prod-1", srv.URL), srv
}

// failIf fails a whole call with the error type code returns for one of
// its records, if any.
func failIf(code func(r awsmptest.Record) string) func(int, []awsmptest.Record) string {
	return func(_ int, recs []awsmptest.Record) string {
		for _, r := range recs {
			if c := code(r); c != "" {
				return c
			}
		}
		return ""
	}
}

var hour = time.Date(2026, 3, 10, 14, 0, 0, 0, time.UTC)

func records(n int) []Record {
	var out []Record
	for i := range n {
		out = append(out, Record{CustomerIdentifier: fmt.Sprintf("cust-%02d", i), Dimension: "tokens", Hour: hour, Quantity: int32(10 + i)})
	}
	return out
}

func TestSendStatuses(t *testing.T) {
	t.Parallel()
	s, f := newSender(t)
	f.Fail = failIf(func(r awsmptest.Record) string {
		if !r.Hour().Equal(hour) {
			return "TimestampOutOfBoundsException"
		}
		return ""
	})
	f.NotSubscribed = map[string]bool{"cust-01": true}
	f.Unprocessed = func(_ int, r awsmptest.Record) bool { return r.CustomerIdentifier == "cust-03" }
	recs := records(5)
	// AWS has cust-02's record already.
	if _, err := s.Send(t.Context(), recs[2:3]); err != nil {
		t.Fatal(err)
	}
	recs[4] = Record{CustomerAWSAccountID: "123456789012", LicenseArn: "arn:aws:license-manager::1:license:l-1", Dimension: "tokens", Hour: hour, Quantity: 7}
	res, err := s.Send(t.Context(), recs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{Accepted, CustomerNotSubscribed, DuplicateRecord, Unprocessed, Accepted}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("record %d: %s, want %s", i, r.Status, want[i])
		}
	}
	if res[0].MeteringRecordID != fmt.Sprintf("mr-cust-00-tokens-%d", hour.Unix()) {
		t.Errorf("metering record id %q", res[0].MeteringRecordID)
	}
	// The same records make the same request, byte for byte.
	if _, err := s.Send(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	if b := f.Bodies(); string(b[1]) != string(b[2]) {
		t.Fatalf("two sends of the same records differ:\n%s\n%s", b[1], b[2])
	}
}

func TestSendBatchesAndErrors(t *testing.T) {
	t.Parallel()
	throttle := true
	var mu sync.Mutex
	s, f := newSender(t)
	f.Fail = failIf(func(r awsmptest.Record) string {
		mu.Lock()
		defer mu.Unlock()
		if throttle {
			return "ThrottlingException"
		}
		if r.CustomerIdentifier == "cust-bad" {
			return "InvalidCustomerIdentifierException"
		}
		return ""
	})
	_, err := s.Send(t.Context(), records(3))
	if err == nil || !Retryable(err) {
		t.Fatalf("throttled call: %v, want a retryable error", err)
	}
	if _, rejected := Rejected(err); rejected {
		t.Fatal("a throttled call counted as rejected")
	}
	mu.Lock()
	throttle = false
	mu.Unlock()

	// 60 records: three calls of 25, 25 and 10.
	recs := records(60)
	for len(recs) > 0 {
		n := min(MaxBatch, len(recs))
		res, err := s.Send(t.Context(), recs[:n])
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Status != Accepted {
				t.Fatalf("record %d: %s", i, r.Status)
			}
		}
		recs = recs[n:]
	}
	if got := f.Calls()[1:]; fmt.Sprint(got) != "[25 25 10]" {
		t.Fatalf("calls carried %v records, want [25 25 10]", got)
	}
	if _, err := s.Send(t.Context(), records(26)); err == nil {
		t.Fatal("26 records in one call were sent")
	}

	bad := append(records(2), Record{CustomerIdentifier: "cust-bad", Dimension: "tokens", Hour: hour, Quantity: 1})
	_, err = s.Send(t.Context(), bad)
	if code, ok := Rejected(err); !ok || code != "InvalidCustomerIdentifierException" || Retryable(err) {
		t.Fatalf("rejected call: %v (code %q)", err, code)
	}
}

// A rejected batch is split until the bad records are alone; the others
// are metered.
func TestSendIsolating(t *testing.T) {
	t.Parallel()
	tooOld := func(r awsmptest.Record) string {
		if r.Hour().Before(hour) {
			return "TimestampOutOfBoundsException"
		}
		return ""
	}
	s, f := newSender(t)
	f.Fail = failIf(tooOld)
	recs := records(20)
	recs[3].Hour = hour.Add(-8 * time.Hour)
	recs[17].Hour = hour.Add(-9 * time.Hour)
	out, done, err := s.SendIsolating(t.Context(), recs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		want := Accepted
		if i == 3 || i == 17 {
			want = Rejection
			if o.Code != "TimestampOutOfBoundsException" {
				t.Errorf("record %d: code %q", i, o.Code)
			}
		}
		if !done[i] || o.Status != want {
			t.Errorf("record %d: %+v done=%v, want %s", i, o, done[i], want)
		}
	}
	if n := len(f.Calls()); n > 1+2*2*5 {
		t.Errorf("%d calls to isolate 2 records of 20", n)
	}

	// A throttled call stops the walk; what was sent keeps its outcome.
	s2, f2 := newSender(t)
	f2.Fail = failIf(func(r awsmptest.Record) string {
		if r.CustomerIdentifier == "cust-10" {
			return "ThrottlingException"
		}
		return tooOld(r)
	})
	out, done, err = s2.SendIsolating(t.Context(), recs)
	if err == nil || !Retryable(err) {
		t.Fatalf("throttled walk: %v", err)
	}
	if !done[0] || out[0].Status != Accepted || done[10] {
		t.Fatalf("after the throttled walk: record 0 %+v done=%v; record 10 done=%v", out[0], done[0], done[10])
	}
}

// closeOnRead is a request body whose reads fail once it is closed, as the
// SDK's does.
type closeOnRead struct {
	r      *strings.Reader
	closed bool
}

func (b *closeOnRead) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("read on a closed body")
	}
	return b.r.Read(p)
}

func (b *closeOnRead) Close() error { b.closed = true; return nil }

// clientFunc is an HTTP client made of a function.
type clientFunc func(*http.Request) (*http.Response, error)

func (f clientFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// The body net/http sends must survive the SDK closing the request's body
// early (aws-sdk-go-v2 issue 2737): ownBody hands the transport a copy.
func TestOwnBodySurvivesEarlyClose(t *testing.T) {
	orig := &closeOnRead{r: strings.NewReader(`{"UsageRecords":[]}`)}
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/", orig)
	if err != nil {
		t.Fatal(err)
	}
	var sent string
	c := ownBody{clientFunc(func(r *http.Request) (*http.Response, error) {
		orig.Close() // what the SDK does once the headers are in
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		sent = string(b)
		if r.ContentLength != int64(len(b)) {
			t.Errorf("ContentLength %d for a %d-byte body", r.ContentLength, len(b))
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})}
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	if sent != `{"UsageRecords":[]}` {
		t.Fatalf("sent %q", sent)
	}
}

// Credentials that cannot be had, even with an AWS error inside (STS
// refusing a role), fail the call retryably and send nothing: no record
// was refused.
func TestCredentialsFailureIsRetryable(t *testing.T) {
	t.Parallel()
	srv := awsmptest.Start(t, "prod-1")
	cfg := awsmptest.Config()
	cfg.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform sts:AssumeRole"}
	})
	s := New(cfg, "prod-1", srv.URL)
	_, err := s.Send(t.Context(), records(3))
	var ce *CredentialsError
	if !errors.As(err, &ce) || !Retryable(err) || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("Send without credentials: %v (retryable %v)", err, Retryable(err))
	}
	if _, ok := Rejected(err); ok {
		t.Errorf("Rejected(%v) = true", err)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("%d calls reached the service", n)
	}
	out, done, err := s.SendIsolating(t.Context(), records(3))
	if err == nil || done[0] || out[0].Status == Rejection {
		t.Errorf("SendIsolating without credentials: %v, %v, %v", out, done, err)
	}
}

package awsmp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// fakeAWS speaks BatchMeterUsage's wire protocol (AWS JSON 1.1): it checks
// the target header and content type, reads epoch-second timestamps, and
// answers per-record results, unprocessed records or __type errors as
// decide says.
type fakeAWS struct {
	mu     sync.Mutex
	bodies [][]byte
	calls  []int // records per call
	// decide returns a record's status ("" means unprocessed), or an error
	// type that fails the whole call.
	decide func(r wireRecord) (status, callError string)
}

type wireRecord struct {
	Timestamp            float64 `json:"Timestamp"`
	CustomerIdentifier   string  `json:"CustomerIdentifier,omitempty"`
	CustomerAWSAccountId string  `json:"CustomerAWSAccountId,omitempty"`
	LicenseArn           string  `json:"LicenseArn,omitempty"`
	Dimension            string  `json:"Dimension"`
	Quantity             int32   `json:"Quantity"`
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "AWSMPMeteringService.BatchMeterUsage" || r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		http.Error(w, "unexpected request "+r.Header.Get("X-Amz-Target"), http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in struct {
		ProductCode  string
		UsageRecords []wireRecord
	}
	if err := json.Unmarshal(body, &in); err != nil || in.ProductCode != "prod-1" {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, body)
	f.calls = append(f.calls, len(in.UsageRecords))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	type result struct {
		UsageRecord      wireRecord
		MeteringRecordId string `json:",omitempty"`
		Status           string
	}
	out := struct {
		Results            []result
		UnprocessedRecords []wireRecord
	}{Results: []result{}, UnprocessedRecords: []wireRecord{}}
	for _, u := range in.UsageRecords {
		status, callErr := f.decide(u)
		if callErr != "" {
			code := http.StatusBadRequest
			if callErr == "InternalServiceErrorException" {
				code = http.StatusInternalServerError
			}
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"__type":"%s","message":"refused"}`, callErr)
			return
		}
		if status == "" {
			out.UnprocessedRecords = append(out.UnprocessedRecords, u)
			continue
		}
		res := result{UsageRecord: u, Status: status}
		if status == "Success" {
			res.MeteringRecordId = fmt.Sprintf("mr-%s-%s-%d", u.CustomerIdentifier, u.Dimension, int64(u.Timestamp))
		}
		out.Results = append(out.Results, res)
	}
	json.NewEncoder(w).Encode(out)
}

func newSender(t *testing.T, f *fakeAWS) *Sender {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := aws.Config{Region: "us-east-1", Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"}, nil
	})}
	return New(cfg, "prod-1", srv.URL)
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
	f := &fakeAWS{decide: func(r wireRecord) (string, string) {
		if r.Timestamp != float64(hour.Unix()) {
			return "", "TimestampOutOfBoundsException"
		}
		switch r.CustomerIdentifier {
		case "cust-01":
			return "CustomerNotSubscribed", ""
		case "cust-02":
			return "DuplicateRecord", ""
		case "cust-03":
			return "", "" // unprocessed
		}
		return "Success", ""
	}}
	s := newSender(t, f)
	recs := records(5)
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
	if string(f.bodies[0]) != string(f.bodies[1]) {
		t.Fatalf("two sends of the same records differ:\n%s\n%s", f.bodies[0], f.bodies[1])
	}
}

func TestSendBatchesAndErrors(t *testing.T) {
	t.Parallel()
	throttle := true
	var mu sync.Mutex
	f := &fakeAWS{decide: func(r wireRecord) (string, string) {
		mu.Lock()
		defer mu.Unlock()
		if throttle {
			return "", "ThrottlingException"
		}
		if r.CustomerIdentifier == "cust-bad" {
			return "", "InvalidCustomerIdentifierException"
		}
		return "Success", ""
	}}
	s := newSender(t, f)
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
	if got := f.calls[1:]; fmt.Sprint(got) != "[25 25 10]" {
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
	f := &fakeAWS{decide: func(r wireRecord) (string, string) {
		if r.Timestamp < float64(hour.Unix()) {
			return "", "TimestampOutOfBoundsException"
		}
		return "Success", ""
	}}
	s := newSender(t, f)
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
	if len(f.calls) > 1+2*2*5 {
		t.Errorf("%d calls to isolate 2 records of 20", len(f.calls))
	}

	// A throttled call stops the walk; what was sent keeps its outcome.
	f2 := &fakeAWS{decide: func(r wireRecord) (string, string) {
		if r.Timestamp < float64(hour.Unix()) {
			return "", "TimestampOutOfBoundsException"
		}
		if r.CustomerIdentifier == "cust-10" {
			return "", "ThrottlingException"
		}
		return "Success", ""
	}}
	s2 := newSender(t, f2)
	out, done, err = s2.SendIsolating(t.Context(), recs)
	if err == nil || !Retryable(err) {
		t.Fatalf("throttled walk: %v", err)
	}
	if !done[0] || out[0].Status != Accepted || done[10] {
		t.Fatalf("after the throttled walk: record 0 %+v done=%v; record 10 done=%v", out[0], done[0], done[10])
	}
}

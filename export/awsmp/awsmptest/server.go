// Package awsmptest is a local stand-in for AWS Marketplace Metering's
// BatchMeterUsage, for tests that drive the real SDK client through its
// endpoint override. It speaks the service's wire protocol (AWS JSON 1.1,
// epoch-second timestamps, __type errors) and keeps what AWS keeps: each
// (customer, dimension, hour) is metered once, and a record sent again is
// answered DuplicateRecord. It records who signed each call (Signers).
// STS (sts.go) stands in for STS's AssumeRole.
package awsmptest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Record is one usage record as it went over the wire.
type Record struct {
	Timestamp            float64 `json:"Timestamp"`
	CustomerIdentifier   string  `json:"CustomerIdentifier,omitempty"`
	CustomerAWSAccountId string  `json:"CustomerAWSAccountId,omitempty"`
	LicenseArn           string  `json:"LicenseArn,omitempty"`
	Dimension            string  `json:"Dimension"`
	Quantity             int32   `json:"Quantity"`
}

// Hour is the record's timestamp.
func (r Record) Hour() time.Time { return time.Unix(int64(r.Timestamp), 0).UTC() }

// Customer is the record's CustomerIdentifier, or its account id.
func (r Record) Customer() string {
	if r.CustomerIdentifier != "" {
		return r.CustomerIdentifier
	}
	return r.CustomerAWSAccountId
}

// Key identifies what AWS meters once.
type Key struct {
	Customer, Dimension string
	Hour                time.Time
}

// Server is the fake service. Set its hooks before the first call.
type Server struct {
	URL         string
	ProductCode string
	// Now and Window, when Now is set, refuse a call carrying a record
	// whose hour started more than Window (default 6 h) before Now, with
	// TimestampOutOfBoundsException, as AWS does.
	Now    func() time.Time
	Window time.Duration
	// NotSubscribed customers get CustomerNotSubscribed.
	NotSubscribed map[string]bool
	// Fail, when set and returning a non-empty AWS error type, fails the
	// whole call (ThrottlingException → 400, InternalServiceErrorException →
	// 500, any other → 400). call counts from 0.
	Fail func(call int, recs []Record) string
	// Unprocessed, when set and true, leaves a record unprocessed.
	Unprocessed func(call int, r Record) bool

	mu       sync.Mutex
	calls    int
	signers  []Signer
	bodies   [][]byte
	sizes    []int
	accepted map[Key]int32
}

// Start starts a Server for product on 127.0.0.1, closed when the test
// ends.
func Start(t testing.TB, product string) *Server {
	s := &Server{ProductCode: product, accepted: map[Key]int32{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Signer is who signed a call, as its SigV4 Authorization header and its
// X-Amz-Security-Token say.
type Signer struct {
	KeyID         string // the access key id
	Region        string // the credential scope's region
	Service       string // the credential scope's service
	SecurityToken string // the session token of temporary credentials
}

// signerOf parses "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/
// aws-marketplace/aws4_request, SignedHeaders=…, Signature=…"; a header of
// another form gives a zero Signer.
func signerOf(r *http.Request) Signer {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ")
	if !ok {
		return Signer{}
	}
	for part := range strings.SplitSeq(auth, ",") {
		cred, ok := strings.CutPrefix(strings.TrimSpace(part), "Credential=")
		if !ok {
			continue
		}
		scope := strings.Split(cred, "/")
		if len(scope) != 5 {
			return Signer{}
		}
		return Signer{KeyID: scope[0], Region: scope[2], Service: scope[3], SecurityToken: r.Header.Get("X-Amz-Security-Token")}
	}
	return Signer{}
}

// Config is an aws.Config with static test credentials.
func Config() aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret"}, nil
	})}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Amz-Target") != "AWSMPMeteringService.BatchMeterUsage" || r.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		http.Error(w, "unexpected request "+r.Header.Get("X-Amz-Target"), http.StatusBadRequest)
		return
	}
	if r.Header.Get("Authorization") == "" {
		fail(w, http.StatusBadRequest, "MissingAuthenticationTokenException")
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in struct {
		ProductCode  string
		UsageRecords []Record
	}
	if err := json.Unmarshal(body, &in); err != nil {
		fail(w, http.StatusBadRequest, "SerializationException")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	call := s.calls
	s.calls++
	s.signers = append(s.signers, signerOf(r))
	s.bodies = append(s.bodies, body)
	s.sizes = append(s.sizes, len(in.UsageRecords))
	if in.ProductCode != s.ProductCode {
		fail(w, http.StatusBadRequest, "InvalidProductCodeException")
		return
	}
	if len(in.UsageRecords) == 0 || len(in.UsageRecords) > 25 {
		fail(w, http.StatusBadRequest, "ValidationException")
		return
	}
	if s.Fail != nil {
		if code := s.Fail(call, in.UsageRecords); code != "" {
			status := http.StatusBadRequest
			if code == "InternalServiceErrorException" {
				status = http.StatusInternalServerError
			}
			fail(w, status, code)
			return
		}
	}
	if s.Now != nil {
		window := s.Window
		if window == 0 {
			window = 6 * time.Hour
		}
		for _, u := range in.UsageRecords {
			if u.Hour().Before(s.Now().Add(-window)) {
				fail(w, http.StatusBadRequest, "TimestampOutOfBoundsException")
				return
			}
		}
	}
	type result struct {
		UsageRecord      Record
		MeteringRecordId string `json:",omitempty"`
		Status           string
	}
	out := struct {
		Results            []result
		UnprocessedRecords []Record
	}{Results: []result{}, UnprocessedRecords: []Record{}}
	for _, u := range in.UsageRecords {
		if s.Unprocessed != nil && s.Unprocessed(call, u) {
			out.UnprocessedRecords = append(out.UnprocessedRecords, u)
			continue
		}
		k := Key{u.Customer(), u.Dimension, u.Hour()}
		res := result{UsageRecord: u}
		switch _, dup := s.accepted[k]; {
		case s.NotSubscribed[k.Customer]:
			res.Status = "CustomerNotSubscribed"
		case dup:
			res.Status = "DuplicateRecord"
		default:
			s.accepted[k] = u.Quantity
			res.Status = "Success"
			res.MeteringRecordId = MeteringRecordID(k)
		}
		out.Results = append(out.Results, res)
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func fail(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"__type":"%s","message":"refused by the test service"}`, code)
}

// MeteringRecordID is the id the server gives the record k.
func MeteringRecordID(k Key) string {
	return fmt.Sprintf("mr-%s-%s-%d", k.Customer, k.Dimension, k.Hour.Unix())
}

// Accepted returns the metered quantities.
func (s *Server) Accepted() map[Key]int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[Key]int32, len(s.accepted))
	for k, q := range s.accepted {
		out[k] = q
	}
	return out
}

// Total sums the metered quantities of a customer and dimension.
func (s *Server) Total(customer, dimension string) int64 {
	var n int64
	for k, q := range s.Accepted() {
		if k.Customer == customer && k.Dimension == dimension {
			n += int64(q)
		}
	}
	return n
}

// Calls returns the number of records each call carried, in order.
func (s *Server) Calls() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.sizes...)
}

// Signers returns who signed each call, in order.
func (s *Server) Signers() []Signer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Signer(nil), s.signers...)
}

// Bodies returns the request bodies, in order.
func (s *Server) Bodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

// Sent returns every record of every call, in order.
func (s *Server) Sent() []Record {
	var out []Record
	for _, b := range s.Bodies() {
		var in struct{ UsageRecords []Record }
		if json.Unmarshal(b, &in) == nil {
			out = append(out, in.UsageRecords...)
		}
	}
	return out
}

// Keys returns the metered keys, sorted.
func (s *Server) Keys() []Key {
	acc := s.Accepted()
	keys := make([]Key, 0, len(acc))
	for k := range acc {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if !a.Hour.Equal(b.Hour) {
			return a.Hour.Before(b.Hour)
		}
		if a.Customer != b.Customer {
			return a.Customer < b.Customer
		}
		return a.Dimension < b.Dimension
	})
	return keys
}

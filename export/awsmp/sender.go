// Package awsmp sends usage records to AWS Marketplace's BatchMeterUsage
// with the AWS SDK for Go v2, and sorts out what each answer means for
// each record. It keeps no state: the exporter (not written yet) owns the
// outbox, retries and bisection; see docs/export-aws.md.
package awsmp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/marketplacemetering"
	"github.com/aws/aws-sdk-go-v2/service/marketplacemetering/types"
	"github.com/aws/smithy-go"
)

// MaxBatch is the most records one BatchMeterUsage call may carry.
const MaxBatch = 25

// Record is one (customer, dimension, hour) quantity. Exactly one of
// CustomerIdentifier and CustomerAWSAccountID is set; LicenseArn goes with
// the account id for license-based products.
type Record struct {
	CustomerIdentifier   string
	CustomerAWSAccountID string
	LicenseArn           string
	Dimension            string
	Hour                 time.Time // the hour's start, sent as the timestamp
	Quantity             int32
}

// Status is what AWS said of one record.
type Status string

const (
	Accepted              Status = "Success"               // metered; MeteringRecordID set
	CustomerNotSubscribed Status = "CustomerNotSubscribed" // terminal: never resend
	DuplicateRecord       Status = "DuplicateRecord"       // terminal: AWS has this (customer, dimension, hour)
	Unprocessed           Status = "Unprocessed"           // send again, unchanged, after a backoff
)

// Result is the outcome of Records[i] of a Send.
type Result struct {
	Status           Status
	MeteringRecordID string
}

// Sender calls BatchMeterUsage for one product.
type Sender struct {
	api         *marketplacemetering.Client
	productCode string
}

// New returns a Sender. endpoint, when set, replaces the service's
// endpoint (tests, private endpoints). The SDK's own retries are off: the
// exporter retries with its outbox, so that every retry sends the same
// frozen records.
func New(cfg aws.Config, productCode, endpoint string) *Sender {
	if cfg.Credentials != nil {
		cfg.Credentials = credentials{cfg.Credentials}
	}
	api := marketplacemetering.NewFromConfig(cfg, func(o *marketplacemetering.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.Retryer = aws.NopRetryer{}
		o.HTTPClient = ownBody{o.HTTPClient}
	})
	return &Sender{api: api, productCode: productCode}
}

// Send sends up to MaxBatch records in one call and returns one Result per
// record, in order. An error means the call as a whole failed: see
// Retryable and Rejected.
func (s *Sender) Send(ctx context.Context, recs []Record) ([]Result, error) {
	if len(recs) == 0 || len(recs) > MaxBatch {
		return nil, fmt.Errorf("send %d records: a call carries 1 to %d", len(recs), MaxBatch)
	}
	in := &marketplacemetering.BatchMeterUsageInput{ProductCode: aws.String(s.productCode)}
	for _, r := range recs {
		u := types.UsageRecord{Dimension: aws.String(r.Dimension), Timestamp: aws.Time(r.Hour.UTC()), Quantity: aws.Int32(r.Quantity)}
		if r.CustomerIdentifier != "" {
			u.CustomerIdentifier = aws.String(r.CustomerIdentifier)
		} else {
			u.CustomerAWSAccountId = aws.String(r.CustomerAWSAccountID)
			if r.LicenseArn != "" {
				u.LicenseArn = aws.String(r.LicenseArn)
			}
		}
		in.UsageRecords = append(in.UsageRecords, u)
	}
	out, err := s.api.BatchMeterUsage(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("BatchMeterUsage of %d records: %w", len(recs), err)
	}
	type key struct {
		customer, dimension string
		unix                int64
	}
	keyOf := func(u types.UsageRecord) key {
		c := aws.ToString(u.CustomerIdentifier)
		if c == "" {
			c = "account:" + aws.ToString(u.CustomerAWSAccountId)
		}
		return key{c, aws.ToString(u.Dimension), aws.ToTime(u.Timestamp).Unix()}
	}
	byKey := map[key]Result{}
	for _, r := range out.Results {
		if r.UsageRecord == nil {
			continue
		}
		byKey[keyOf(*r.UsageRecord)] = Result{Status: Status(r.Status), MeteringRecordID: aws.ToString(r.MeteringRecordId)}
	}
	for _, u := range out.UnprocessedRecords {
		byKey[keyOf(u)] = Result{Status: Unprocessed}
	}
	res := make([]Result, len(recs))
	for i, u := range in.UsageRecords {
		r, ok := byKey[keyOf(u)]
		if !ok {
			// Not mentioned in the answer: nothing says it was metered.
			r = Result{Status: Unprocessed}
		}
		res[i] = r
	}
	return res, nil
}

// CredentialsError is a failure to get the credentials a call is signed
// with, such as STS refusing to let a role be assumed. The call never
// reached AWS Marketplace, so it is retryable, whatever AWS error it holds:
// nothing about the records was refused.
type CredentialsError struct{ Err error }

func (e *CredentialsError) Error() string { return "get AWS credentials: " + e.Err.Error() }
func (e *CredentialsError) Unwrap() error { return e.Err }

// credentials marks the failures of a credentials provider as
// CredentialsError.
type credentials struct{ aws.CredentialsProvider }

func (c credentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	creds, err := c.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return creds, &CredentialsError{Err: err}
	}
	return creds, nil
}

// Retryable reports whether a failed call may succeed unchanged later:
// throttling, AWS's internal errors, 5xx answers, network failures and
// failures to get credentials (CredentialsError).
func Retryable(err error) bool {
	if ce := (*CredentialsError)(nil); errors.As(err, &ce) {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return !errors.Is(err, context.Canceled) // no answer: a network failure
	}
	switch ae.ErrorCode() {
	case "ThrottlingException", "InternalServiceErrorException":
		return true
	}
	return ae.ErrorFault() == smithy.FaultServer
}

// Rejected returns the error code when AWS refused the call because of
// what it carried (e.g. TimestampOutOfBoundsException,
// InvalidCustomerIdentifierException): sending it again cannot help, but
// sending its records apart can isolate the bad one.
func Rejected(err error) (code string, ok bool) {
	var ae smithy.APIError
	if errors.As(err, &ae) && !Retryable(err) {
		return ae.ErrorCode(), true
	}
	return "", false
}

// Rejection is the outcome of a record that AWS refused in a call of its
// own: Code is the error code (e.g. TimestampOutOfBoundsException).
const Rejection Status = "Rejected"

// Outcome is a record's outcome after SendIsolating: a Result, or a
// rejection with its code and message.
type Outcome struct {
	Result
	Code, Message string // set when Status is Rejection
}

// sendFunc is Sender.Send, or a fake in tests.
type sendFunc func(ctx context.Context, recs []Record) ([]Result, error)

// SendIsolating sends up to MaxBatch records like Send, and when AWS
// rejects the call for what it carries, sends halves of it apart until
// each rejected record is alone: the others go through, and each alone
// rejected record gets a Rejection outcome. A retryable failure of any
// call stops it and returns the error; records already sent keep their
// outcomes (done reports which), and sending the rest again later is safe.
func (s *Sender) SendIsolating(ctx context.Context, recs []Record) (out []Outcome, done []bool, err error) {
	return sendIsolating(ctx, s.Send, recs)
}

func sendIsolating(ctx context.Context, send sendFunc, recs []Record) ([]Outcome, []bool, error) {
	out := make([]Outcome, len(recs))
	done := make([]bool, len(recs))
	var walk func(lo, hi int) error
	walk = func(lo, hi int) error {
		res, err := send(ctx, recs[lo:hi])
		if err == nil {
			for i, r := range res {
				out[lo+i], done[lo+i] = Outcome{Result: r}, true
			}
			return nil
		}
		code, rejected := Rejected(err)
		if !rejected {
			return err
		}
		if hi-lo == 1 {
			out[lo] = Outcome{Result: Result{Status: Rejection}, Code: code, Message: err.Error()}
			done[lo] = true
			return nil
		}
		mid := (lo + hi) / 2
		if err := walk(lo, mid); err != nil {
			return err
		}
		return walk(mid, hi)
	}
	if len(recs) == 0 || len(recs) > MaxBatch {
		return nil, nil, fmt.Errorf("send %d records: a call carries 1 to %d", len(recs), MaxBatch)
	}
	err := walk(0, len(recs))
	return out, done, err
}

// ownBody sends each request with a body of its own, read into memory
// first. The SDK closes a request's body as soon as the response headers
// are in, while net/http may still be reading it (it reads once more past
// Content-Length to check that nothing is left); that read then fails,
// and net/http closes the connection under the response being read: the
// call fails with "use of closed network connection" although AWS answered
// (aws-sdk-go-v2 issue 2737). A resend is then answered DuplicateRecord:
// nothing is metered twice, but an answer is lost for nothing. A
// BatchMeterUsage body is at most 25 records, a few kilobytes.
type ownBody struct {
	next marketplacemetering.HTTPClient
}

func (c ownBody) Do(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return c.next.Do(r)
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the request body: %w", err)
	}
	r = r.Clone(r.Context())
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.ContentLength = int64(len(b))
	return c.next.Do(r)
}

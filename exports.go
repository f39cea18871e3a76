package odometer

import (
	"context"
	"time"
)

// The records of usage export (docs/export-aws.md). The exporter (package
// export/exporter) decides what to send; the stores keep the destinations,
// the customer mappings and a durable outbox of frozen records, and apply
// each hour's freeze in one transaction.

// ExportDestination is where a namespace's usage is reported: an AWS
// Marketplace product.
type ExportDestination struct {
	Namespace string
	Name      string // unique in the namespace; a slug
	// ProductCode is the AWS Marketplace product the records are for.
	ProductCode string
	Region      string // AWS region; "" = the account's, else the SDK's default chain
	// Account names the operator's AWS account (the config file's
	// aws.accounts, package export) that the records are sent with; ""
	// (destinations stored before accounts existed) means the only account
	// granted to the namespace. The account, not the destination, says
	// where requests go and with which credentials.
	Account    string
	Dimensions []ExportDimension
	// StartHour is the first UTC hour exported; earlier usage never is.
	StartHour time.Time
	// Delay is how long after an hour ends it is closed and frozen.
	Delay time.Duration
	// Window is how long after its hour starts a record may be sent
	// (AWS: 6 h by default, at most 24 h).
	Window time.Duration
	// LateHorizon is how far back late usage is looked for when an hour is
	// frozen; usage arriving later than that for an hour is not exported.
	LateHorizon time.Duration
	// ZeroRecords sends a zero-quantity record for every mapped customer
	// and dimension without usage in an hour.
	ZeroRecords bool
	// DryRun freezes records but never sends them; they stay pending.
	DryRun    bool
	CreatedAt time.Time
	UpdatedAt time.Time
	// FrozenThrough is the end of the last frozen hour (zero: none yet).
	// Only FreezeExportHour moves it.
	FrozenThrough time.Time
}

// ExportDimension maps a meter's usage, restricted to group-by values, to
// an AWS dimension, converted to whole quantities: usage × Multiply /
// Divide, rounded by Rounding with the remainder carried into the next
// hour (package export).
type ExportDimension struct {
	Dimension string            // the AWS dimension name
	MeterSlug string            // a SUM or COUNT meter
	GroupBy   map[string]string // group-by key → value; nil = all usage
	Multiply  Decimal
	Divide    Decimal
	Rounding  string // DOWN or HALF_UP
}

// ExportCustomer maps a subject to an AWS customer: a CustomerIdentifier,
// or an AWS account id with a LicenseArn for license-based products.
type ExportCustomer struct {
	Namespace    string
	Destination  string
	Subject      string
	CustomerID   string // CustomerIdentifier
	AWSAccountID string // CustomerAWSAccountId
	LicenseArn   string
	// From is the first UTC hour whose usage is exported for the subject;
	// zero means the hour CreatedAt falls in (FirstHour). Usage of earlier
	// hours is never sent. The hours from From that were frozen before the
	// mapping existed go out as late usage (docs/export-aws.md), so From
	// must be recent enough for the late horizon to reach it
	// (CheckExportCustomerFrom).
	From      time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// FirstHour is the first UTC hour whose usage is exported for the
// subject: From if set, else the hour CreatedAt falls in.
func (c *ExportCustomer) FirstHour() time.Time {
	if !c.From.IsZero() {
		return c.From.UTC()
	}
	return c.CreatedAt.UTC().Truncate(time.Hour)
}

// ExportStatus is where an outbox record stands.
type ExportStatus string

const (
	ExportPending       ExportStatus = "pending"        // to be sent
	ExportAccepted      ExportStatus = "accepted"       // AWS metered it (MeteringRecordID)
	ExportDuplicate     ExportStatus = "duplicate"      // AWS had it already: delivered
	ExportNotSubscribed ExportStatus = "not_subscribed" // terminal; alert
	ExportRejected      ExportStatus = "rejected"       // terminal; Reason says why
	ExportExpired       ExportStatus = "expired"        // its time window passed unsent
	ExportEmpty         ExportStatus = "empty"          // quantity 0 and zero records off: nothing to send
)

// Terminal reports whether a record in this status is never sent again.
func (s ExportStatus) Terminal() bool { return s != ExportPending }

// ExportRecord is one (subject, dimension, hour) of a destination in the
// outbox. What is sent (customer, dimension, hour, quantity) is frozen
// when the record is written and never changes, so every resend is
// byte-identical.
type ExportRecord struct {
	Namespace   string
	Destination string
	Subject     string
	Dimension   string
	Hour        time.Time // UTC hour start; the record's timestamp
	// The customer, frozen from the mapping at the freeze.
	CustomerID   string
	AWSAccountID string
	LicenseArn   string
	Quantity     int64 // may exceed int32: then rejected locally
	// Usage is the hour's own usage at the freeze; Accounted is the hour's
	// usage counted so far: Usage plus late usage that later records
	// carried. Late is the late usage of earlier hours this record
	// carries, listed in LateHours (the audit trail).
	Usage     Decimal
	Accounted Decimal
	Late      Decimal
	LateHours []ExportLate
	// Carry is what the conversion left for the next hour, after this
	// record (package export).
	Carry            Decimal
	Status           ExportStatus
	MeteringRecordID string
	Reason           string // why rejected, expired or not subscribed
	Attempts         int
	NextAttemptAt    time.Time // when a pending record may be sent
	FrozenAt         time.Time
	UpdatedAt        time.Time
}

// ExportLate is late usage of an earlier Hour carried into a record.
type ExportLate struct {
	Hour  time.Time `json:"hour"`
	Usage Decimal   `json:"usage"`
}

// ExportAccount is the running state of one (subject, dimension) of a
// destination: the carry after its last record.
type ExportAccount struct {
	Subject   string
	Dimension string
	Carry     Decimal
	LastHour  time.Time
}

// ExportAccounted raises Accounted of the record (Subject, Dimension, Hour)
// to Accounted, because a later record carried its late usage.
type ExportAccounted struct {
	Subject   string
	Dimension string
	Hour      time.Time
	Accounted Decimal
}

// ExportFreeze is everything freezing one hour of a destination writes.
type ExportFreeze struct {
	Namespace   string
	Destination string
	Hour        time.Time
	// Records are the new records: those of Hour, and empty records of
	// earlier hours that had none, which account late usage carried into
	// Hour.
	Records   []*ExportRecord
	Accounted []ExportAccounted // raises on earlier records
	Accounts  []ExportAccount   // new carries
}

// ExportRecordFilter selects outbox records, ordered by Hour, then
// Subject, then Dimension.
type ExportRecordFilter struct {
	Namespace   string
	Destination string
	Status      []ExportStatus // empty = any
	Subject     string         // "" = any
	Dimension   string         // "" = any
	From, To    time.Time      // on Hour, [From, To); zero = unbounded
	// DueBy, when set, keeps pending records with NextAttemptAt ≤ DueBy.
	DueBy time.Time
	Limit int // > 0
}

// ExportSummary counts a destination's records per hour, dimension and
// status, with their quantities.
type ExportSummary struct {
	Hour      time.Time
	Dimension string
	Status    ExportStatus
	Records   int64
	Quantity  int64
	// InFlight counts the pending records sent at least once: waiting for
	// a resend after a backoff (unprocessed, throttled, or an outcome lost).
	InFlight int64
}

// ExportStore keeps export destinations, customer mappings and the outbox.
type ExportStore interface {
	// PutExportDestination creates the destination or replaces its
	// definition; FrozenThrough and CreatedAt of an existing one are kept.
	// It reports whether it was created. EINVALID if a Multiply or Divide
	// is beyond the limits of event values (ParseValue).
	PutExportDestination(ctx context.Context, d *ExportDestination) (created bool, err error)
	// FindExportDestination returns it; ENOTFOUND if missing.
	FindExportDestination(ctx context.Context, namespace, name string) (*ExportDestination, error)
	// ListExportDestinations returns a namespace's destinations by name;
	// namespace "" lists every namespace's.
	ListExportDestinations(ctx context.Context, namespace string) ([]*ExportDestination, error)
	// DeleteExportDestination removes the destination with its customers,
	// accounts and records. ENOTFOUND if missing.
	DeleteExportDestination(ctx context.Context, namespace, name string) error

	// PutExportCustomer creates or replaces the subject's mapping
	// (CreatedAt of an existing one is kept; From is replaced, zero
	// included). ENOTFOUND if the destination is missing. It does not
	// check From: callers do (CheckExportCustomerFrom).
	PutExportCustomer(ctx context.Context, c *ExportCustomer) error
	// DeleteExportCustomer removes it; ENOTFOUND if missing.
	DeleteExportCustomer(ctx context.Context, namespace, destination, subject string) error
	// ListExportCustomers returns the destination's mappings by subject.
	ListExportCustomers(ctx context.Context, namespace, destination string) ([]*ExportCustomer, error)
	// ListExportAccounts returns the destination's accounts.
	ListExportAccounts(ctx context.Context, namespace, destination string) ([]ExportAccount, error)

	// FreezeExportHour writes f in one transaction: it inserts the
	// records, raises Accounted of earlier records, upserts the accounts
	// and moves the destination's FrozenThrough from f.Hour to f.Hour +
	// 1 h. ECONFLICT if FrozenThrough is not f.Hour (zero FrozenThrough
	// matches any hour), so an hour is frozen once; ENOTFOUND if the
	// destination or a record to raise is missing. EINVALID if f.Hour is
	// not a whole UTC hour, a record is not of f's destination or is after
	// f.Hour, or a decimal is beyond the limits of event values
	// (ParseValue), save carries, which may have 36 fraction digits (usage
	// × Multiply).
	FreezeExportHour(ctx context.Context, f *ExportFreeze) error
	// ListExportRecords returns the records matching f.
	ListExportRecords(ctx context.Context, f ExportRecordFilter) ([]*ExportRecord, error)
	// UpdateExportRecords stores the Status, MeteringRecordID, Reason,
	// Attempts, NextAttemptAt and UpdatedAt of existing records (by
	// namespace, destination, subject, dimension and hour), all in one
	// transaction. ENOTFOUND if one is missing.
	UpdateExportRecords(ctx context.Context, recs []*ExportRecord) error
	// SummarizeExportRecords counts the destination's records with Hour in
	// [from, to) (zero = unbounded) by hour, dimension and status, ordered
	// that way.
	SummarizeExportRecords(ctx context.Context, namespace, destination string, from, to time.Time) ([]ExportSummary, error)

	// TryLockExporter makes the caller the one exporter among the
	// processes sharing the store, if no other holds the lock; ok reports
	// whether it did. unlock releases it (call it before closing the
	// store; calling it again does nothing). The lock spares work, it does
	// not guard correctness: FreezeExportHour freezes an hour once, and a
	// frozen record sent twice is answered DuplicateRecord.
	TryLockExporter(ctx context.Context) (unlock func(), ok bool, err error)
}

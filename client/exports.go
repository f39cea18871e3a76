package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Usage export to AWS Marketplace (docs/export-aws.md): destinations, the
// subject → customer mappings, and the outbox's records and status.

// ExportDestination reports usage to an AWS Marketplace product. On
// PutExport, zero settings take the server's defaults (delay 15m, window
// 6h, late horizon 24h) and a zero StartHour keeps the destination's (or
// is the current hour for a new one); Name, CreatedAt, UpdatedAt and
// FrozenThrough are read-only.
type ExportDestination struct {
	Name        string
	ProductCode string
	Region      string // AWS region; "" is the account's, else the AWS SDK's default chain
	// Account names the AWS account, declared by the server's operator,
	// that the records are sent with; "" on PutExport is the only one
	// granted to the namespace. The operator grants each namespace its
	// accounts and product codes: PutExport of another one fails with a
	// 403 Problem naming account or productCode.
	Account     string
	StartHour   time.Time
	Delay       time.Duration // after an hour ends, until it is frozen
	Window      time.Duration // after an hour starts, while its record may be sent
	LateHorizon time.Duration // how far back late usage is looked for
	ZeroRecords bool          // send zero records for customers without usage
	DryRun      bool          // freeze records but never send them
	Dimensions  []ExportDimension
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// FrozenThrough is the end of the last frozen hour; nil before the
	// first.
	FrozenThrough *time.Time
}

// ExportDimension maps a SUM or COUNT meter's usage to an AWS dimension:
// usage × Multiply / Divide, rounded by Rounding (DOWN or HALF_UP), the
// remainder carried into the next hour. Multiply and Divide are exact
// decimal text; empty is 1.
type ExportDimension struct {
	Dimension string            `json:"dimension"`
	MeterSlug string            `json:"meterSlug"`
	GroupBy   map[string]string `json:"groupBy,omitempty"` // only usage with these group-by values
	Multiply  json.Number       `json:"multiply,omitempty"`
	Divide    json.Number       `json:"divide,omitempty"`
	Rounding  string            `json:"rounding,omitempty"`
}

// exportDestinationJSON is ExportDestination on the wire: durations as Go
// duration text.
type exportDestinationJSON struct {
	Name          string            `json:"name,omitempty"`
	ProductCode   string            `json:"productCode"`
	Region        string            `json:"region,omitempty"`
	Account       string            `json:"account,omitempty"`
	StartHour     *time.Time        `json:"startHour,omitempty"`
	Delay         string            `json:"delay,omitempty"`
	Window        string            `json:"window,omitempty"`
	LateHorizon   string            `json:"lateHorizon,omitempty"`
	ZeroRecords   bool              `json:"zeroRecords"`
	DryRun        bool              `json:"dryRun"`
	Dimensions    []ExportDimension `json:"dimensions"`
	CreatedAt     *time.Time        `json:"createdAt,omitempty"`
	UpdatedAt     *time.Time        `json:"updatedAt,omitempty"`
	FrozenThrough *time.Time        `json:"frozenThrough,omitempty"`
}

// MarshalJSON writes d as the API takes it.
func (d ExportDestination) MarshalJSON() ([]byte, error) {
	w := exportDestinationJSON{Name: d.Name, ProductCode: d.ProductCode, Region: d.Region, Account: d.Account,
		ZeroRecords: d.ZeroRecords, DryRun: d.DryRun, Dimensions: d.Dimensions, FrozenThrough: d.FrozenThrough}
	for _, t := range []struct {
		v   time.Time
		out **time.Time
	}{{d.StartHour, &w.StartHour}, {d.CreatedAt, &w.CreatedAt}, {d.UpdatedAt, &w.UpdatedAt}} {
		if !t.v.IsZero() {
			v := t.v
			*t.out = &v
		}
	}
	for _, f := range []struct {
		v   time.Duration
		out *string
	}{{d.Delay, &w.Delay}, {d.Window, &w.Window}, {d.LateHorizon, &w.LateHorizon}} {
		if f.v != 0 {
			*f.out = f.v.String()
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a destination as the API writes it.
func (d *ExportDestination) UnmarshalJSON(b []byte) error {
	var w exportDestinationJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*d = ExportDestination{Name: w.Name, ProductCode: w.ProductCode, Region: w.Region, Account: w.Account,
		ZeroRecords: w.ZeroRecords, DryRun: w.DryRun, Dimensions: w.Dimensions, FrozenThrough: w.FrozenThrough}
	for _, t := range []struct {
		v   *time.Time
		out *time.Time
	}{{w.StartHour, &d.StartHour}, {w.CreatedAt, &d.CreatedAt}, {w.UpdatedAt, &d.UpdatedAt}} {
		if t.v != nil {
			*t.out = *t.v
		}
	}
	for _, f := range []struct {
		name string
		v    string
		out  *time.Duration
	}{{"delay", w.Delay, &d.Delay}, {"window", w.Window, &d.Window}, {"lateHorizon", w.LateHorizon, &d.LateHorizon}} {
		if f.v == "" {
			continue
		}
		v, err := time.ParseDuration(f.v)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.out = v
	}
	return nil
}

// ExportCustomer maps a subject to an AWS customer: CustomerID (the
// CustomerIdentifier) alone, or AWSAccountID with LicenseArn.
//
// From is the first UTC hour whose usage is exported for the subject; zero
// means the hour the mapping was created in. Usage of hours from From that
// were reported before the mapping existed is sent as late usage. The
// server refuses a From that is not a whole hour, is after the current
// hour, is before the destination's StartHour, or is more than its
// LateHorizon before the current hour (docs/export-aws.md).
type ExportCustomer struct {
	Subject      string    `json:"subject"`
	CustomerID   string    `json:"customerId,omitempty"`
	AWSAccountID string    `json:"awsAccountId,omitempty"`
	LicenseArn   string    `json:"licenseArn,omitempty"`
	From         time.Time `json:"from,omitzero"`
	CreatedAt    time.Time `json:"createdAt,omitzero"`
	UpdatedAt    time.Time `json:"updatedAt,omitzero"`
}

// Export record statuses.
const (
	ExportPending       = "pending"        // to be sent (a dry run's stay so)
	ExportAccepted      = "accepted"       // AWS metered it
	ExportDuplicate     = "duplicate"      // AWS had it already: delivered
	ExportNotSubscribed = "not_subscribed" // the customer is not subscribed
	ExportRejected      = "rejected"       // Reason says why
	ExportExpired       = "expired"        // its time window passed unsent
	ExportEmpty         = "empty"          // quantity 0, nothing to send
)

// ExportRecord is one (subject, dimension, hour) of a destination's
// outbox. What is sent (customer, dimension, hour, quantity) never changes
// once frozen. Decimals are the server's exact decimal text.
type ExportRecord struct {
	Subject          string       `json:"subject"`
	Dimension        string       `json:"dimension"`
	Hour             time.Time    `json:"hour"`
	CustomerID       string       `json:"customerId,omitempty"`
	AWSAccountID     string       `json:"awsAccountId,omitempty"`
	LicenseArn       string       `json:"licenseArn,omitempty"`
	Quantity         int64        `json:"quantity"`
	Usage            json.Number  `json:"usage"`     // the hour's own usage at the freeze
	Accounted        json.Number  `json:"accounted"` // the hour's usage counted so far
	Late             json.Number  `json:"late"`      // late usage of earlier hours carried
	LateHours        []ExportLate `json:"lateHours"`
	Carry            json.Number  `json:"carry"` // left for the next hour, in 1/divide units
	Status           string       `json:"status"`
	MeteringRecordID string       `json:"meteringRecordId,omitempty"`
	Reason           string       `json:"reason,omitempty"`
	Attempts         int          `json:"attempts"`
	NextAttemptAt    *time.Time   `json:"nextAttemptAt,omitempty"`
	FrozenAt         time.Time    `json:"frozenAt"`
	UpdatedAt        time.Time    `json:"updatedAt"`
}

// ExportLate is late usage of an earlier hour that a record carries.
type ExportLate struct {
	Hour  time.Time   `json:"hour"`
	Usage json.Number `json:"usage"`
}

// ExportRecordsQuery selects records; zero fields select all.
type ExportRecordsQuery struct {
	Status    []string  // e.g. ExportPending
	From, To  time.Time // [From, To) on the record's hour
	Subject   string
	Dimension string
	Limit     int // 0: the server's default (100); at most 1000
}

// ExportStatusReport counts a destination's records by hour, dimension and
// status over [From, To).
type ExportStatusReport struct {
	Destination   string             `json:"destination"`
	FrozenThrough *time.Time         `json:"frozenThrough"`
	From          time.Time          `json:"from"`
	To            time.Time          `json:"to"`
	Hours         []ExportHourStatus `json:"hours"`
}

// ExportHourStatus counts one hour's records of one dimension by status.
// QuantityAccepted is the quantity AWS metered (accepted and duplicate
// records).
type ExportHourStatus struct {
	Hour             time.Time `json:"hour"`
	Dimension        string    `json:"dimension"`
	Pending          int64     `json:"pending"`
	InFlight         int64     `json:"inFlight"` // of the pending: sent at least once
	Accepted         int64     `json:"accepted"`
	Duplicate        int64     `json:"duplicate"`
	NotSubscribed    int64     `json:"notSubscribed"`
	Rejected         int64     `json:"rejected"`
	Expired          int64     `json:"expired"`
	Empty            int64     `json:"empty"`
	QuantityAccepted int64     `json:"quantityAccepted"`
}

func exportPath(destination string) string { return "/api/v1/exports/" + url.PathEscape(destination) }

// PutExport creates the destination named name, or replaces its
// definition (what has been frozen stays), and returns it as stored;
// created reports which. A *Problem with status 400 names every bad field.
func (c *Client) PutExport(ctx context.Context, name string, d ExportDestination) (out *ExportDestination, created bool, err error) {
	d.Name, d.CreatedAt, d.UpdatedAt, d.FrozenThrough = "", time.Time{}, time.Time{}, nil
	body, err := json.Marshal(d)
	if err != nil {
		return nil, false, fmt.Errorf("put export %q: %w", name, err)
	}
	var res ExportDestination
	st, err := c.put(ctx, exportPath(name), body, &res)
	if err != nil {
		return nil, false, fmt.Errorf("put export %q: %w", name, err)
	}
	return &res, st == http.StatusCreated, nil
}

// put sends a JSON body with PUT and decodes a 2xx answer into out, as do
// does, and returns the status, which tells a creation (201) from a
// replacement (200).
func (c *Client) put(ctx context.Context, path string, body []byte, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.baseURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", "odometer-go-client")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, decodeProblem(resp)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return resp.StatusCode, fmt.Errorf("decode %d response: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, nil
}

// GetExport returns the destination, or a *Problem with status 404.
func (c *Client) GetExport(ctx context.Context, name string) (*ExportDestination, error) {
	var d ExportDestination
	if err := c.do(ctx, http.MethodGet, exportPath(name), nil, "", nil, "application/json", &d); err != nil {
		return nil, fmt.Errorf("get export %q: %w", name, err)
	}
	return &d, nil
}

// ListExports returns every destination, by name.
func (c *Client) ListExports(ctx context.Context) ([]ExportDestination, error) {
	var ds []ExportDestination
	if err := c.do(ctx, http.MethodGet, "/api/v1/exports", nil, "", nil, "application/json", &ds); err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	return ds, nil
}

// DeleteExport deletes the destination with its customers and records; a
// *Problem with status 404 if there is none.
func (c *Client) DeleteExport(ctx context.Context, name string) error {
	if err := c.do(ctx, http.MethodDelete, exportPath(name), nil, "", nil, "application/json", &bytes.Buffer{}); err != nil {
		return fmt.Errorf("delete export %q: %w", name, err)
	}
	return nil
}

// PutExportCustomer maps cust.Subject to its AWS customer in the
// destination, replacing an earlier mapping, and returns it as stored. A
// zero cust.From keeps the mapping's From. A *Problem with status 409 if
// another subject has that customer, or 400 naming "from" if the server
// refuses cust.From.
func (c *Client) PutExportCustomer(ctx context.Context, destination string, cust ExportCustomer) (*ExportCustomer, error) {
	body, err := json.Marshal(struct {
		CustomerID   string    `json:"customerId,omitempty"`
		AWSAccountID string    `json:"awsAccountId,omitempty"`
		LicenseArn   string    `json:"licenseArn,omitempty"`
		From         time.Time `json:"from,omitzero"`
	}{cust.CustomerID, cust.AWSAccountID, cust.LicenseArn, cust.From.UTC()})
	if err != nil {
		return nil, err
	}
	var out ExportCustomer
	path := exportPath(destination) + "/customers/" + url.PathEscape(cust.Subject)
	if err := c.do(ctx, http.MethodPut, path, nil, "application/json", body, "application/json", &out); err != nil {
		return nil, fmt.Errorf("put customer %q of export %q: %w", cust.Subject, destination, err)
	}
	return &out, nil
}

// ListExportCustomers returns the destination's mappings, by subject.
func (c *Client) ListExportCustomers(ctx context.Context, destination string) ([]ExportCustomer, error) {
	var cs []ExportCustomer
	if err := c.do(ctx, http.MethodGet, exportPath(destination)+"/customers", nil, "", nil, "application/json", &cs); err != nil {
		return nil, fmt.Errorf("list customers of export %q: %w", destination, err)
	}
	return cs, nil
}

// DeleteExportCustomer removes the subject's mapping; a *Problem with
// status 404 if there is none.
func (c *Client) DeleteExportCustomer(ctx context.Context, destination, subject string) error {
	path := exportPath(destination) + "/customers/" + url.PathEscape(subject)
	if err := c.do(ctx, http.MethodDelete, path, nil, "", nil, "application/json", &bytes.Buffer{}); err != nil {
		return fmt.Errorf("delete customer %q of export %q: %w", subject, destination, err)
	}
	return nil
}

// ExportRecords returns the destination's outbox records matching q, by
// hour, subject and dimension. A dry run's records are what would be sent.
func (c *Client) ExportRecords(ctx context.Context, destination string, q ExportRecordsQuery) ([]ExportRecord, error) {
	v := url.Values{}
	if len(q.Status) > 0 {
		v.Set("status", strings.Join(q.Status, ","))
	}
	setTime(v, "from", q.From)
	setTime(v, "to", q.To)
	if q.Subject != "" {
		v.Set("subject", q.Subject)
	}
	if q.Dimension != "" {
		v.Set("dimension", q.Dimension)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var res struct {
		Records []ExportRecord `json:"records"`
	}
	if err := c.do(ctx, http.MethodGet, exportPath(destination)+"/records", v, "", nil, "application/json", &res); err != nil {
		return nil, fmt.Errorf("records of export %q: %w", destination, err)
	}
	return res.Records, nil
}

// ExportStatus counts the destination's records by hour, dimension and
// status over [from, to). A zero to is the end of the last frozen hour, a
// zero from 48 hours before to.
func (c *Client) ExportStatus(ctx context.Context, destination string, from, to time.Time) (*ExportStatusReport, error) {
	v := url.Values{}
	setTime(v, "from", from)
	setTime(v, "to", to)
	var res ExportStatusReport
	if err := c.do(ctx, http.MethodGet, exportPath(destination)+"/status", v, "", nil, "application/json", &res); err != nil {
		return nil, fmt.Errorf("status of export %q: %w", destination, err)
	}
	return &res, nil
}

func setTime(v url.Values, name string, t time.Time) {
	if !t.IsZero() {
		v.Set(name, t.UTC().Format(time.RFC3339Nano))
	}
}

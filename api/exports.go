package api

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export"
)

// The export routes (docs/export-aws.md, "Configuring a destination" and
// "Watching exports"): destinations, their customer mappings, and the
// outbox's records and status. Decimals travel as strings, durations as Go
// duration strings ("15m", "6h").

// destinationDoc is a destination on the wire.
type destinationDoc struct {
	Name        string         `json:"name"`
	ProductCode string         `json:"productCode"`
	Region      string         `json:"region,omitempty"`
	Account     string         `json:"account"`
	StartHour   time.Time      `json:"startHour"`
	Delay       string         `json:"delay"`
	Window      string         `json:"window"`
	LateHorizon string         `json:"lateHorizon"`
	ZeroRecords bool           `json:"zeroRecords"`
	DryRun      bool           `json:"dryRun"`
	Dimensions  []dimensionDoc `json:"dimensions"`
	CreatedAt   time.Time      `json:"createdAt"`
	UpdatedAt   time.Time      `json:"updatedAt"`
	// FrozenThrough is the end of the last frozen hour; null before the
	// first.
	FrozenThrough *time.Time `json:"frozenThrough"`
}

type dimensionDoc struct {
	Dimension string            `json:"dimension"`
	MeterSlug string            `json:"meterSlug"`
	GroupBy   map[string]string `json:"groupBy,omitempty"`
	Multiply  string            `json:"multiply"`
	Divide    string            `json:"divide"`
	Rounding  string            `json:"rounding"`
}

func newDestinationDoc(d *odometer.ExportDestination) destinationDoc {
	doc := destinationDoc{Name: d.Name, ProductCode: d.ProductCode, Region: d.Region, Account: d.Account,
		StartHour: d.StartHour.UTC(), Delay: odometer.FormatDuration(d.Delay), Window: odometer.FormatDuration(d.Window),
		LateHorizon: odometer.FormatDuration(d.LateHorizon), ZeroRecords: d.ZeroRecords, DryRun: d.DryRun,
		Dimensions: make([]dimensionDoc, len(d.Dimensions)), CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC()}
	for i, dim := range d.Dimensions {
		doc.Dimensions[i] = dimensionDoc{Dimension: dim.Dimension, MeterSlug: dim.MeterSlug, GroupBy: dim.GroupBy,
			Multiply: dim.Multiply.String(), Divide: dim.Divide.String(), Rounding: dim.Rounding}
	}
	if !d.FrozenThrough.IsZero() {
		t := d.FrozenThrough.UTC()
		doc.FrozenThrough = &t
	}
	return doc
}

// putExport handles PUT /api/v1/exports/{destination}: it creates the
// destination (201) or replaces its definition (200), keeping what has
// been frozen. A startHour left out keeps the existing destination's, or is
// the current hour for a new one. The namespace must be granted the AWS
// account and product code by the operator (export.Accounts.Authorize);
// an account left out is the only one granted, and is stored by name.
// Where requests go is the operator's (the config file's
// aws.accounts[].endpoint): an endpoint is refused.
func (h *handler) putExport(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	ns, name := namespace(r), r.PathValue("destination")
	var in struct {
		ProductCode string `json:"productCode"`
		Region      string `json:"region"`
		Account     string `json:"account"`
		// Endpoint is refused unless null or "": destinations made before
		// accounts existed may carry it, as may a client's habit.
		Endpoint    json.RawMessage `json:"endpoint"`
		StartHour   *string         `json:"startHour"`
		Delay       *string         `json:"delay"`
		Window      *string         `json:"window"`
		LateHorizon *string         `json:"lateHorizon"`
		ZeroRecords bool            `json:"zeroRecords"`
		DryRun      bool            `json:"dryRun"`
		Dimensions  []struct {
			Dimension string          `json:"dimension"`
			MeterSlug string          `json:"meterSlug"`
			GroupBy   json.RawMessage `json:"groupBy"`
			Multiply  json.RawMessage `json:"multiply"`
			Divide    json.RawMessage `json:"divide"`
			Rounding  string          `json:"rounding"`
		} `json:"dimensions"`

		// Read-only fields, accepted so that a destination fetched from
		// the API can be sent back; name must be the path's.
		Name          *string         `json:"name"`
		CreatedAt     json.RawMessage `json:"createdAt"`
		UpdatedAt     json.RawMessage `json:"updatedAt"`
		FrozenThrough json.RawMessage `json:"frozenThrough"`
	}
	if err := h.readJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	bad := func(field, format string, args ...any) {
		fields = append(fields, odometer.FieldError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if in.Name != nil && *in.Name != name {
		bad("name", "is %q but the path names %q", *in.Name, name)
	}
	if e := string(in.Endpoint); e != "" && e != "null" && e != `""` {
		bad("endpoint", "set by the operator in the config file: aws.accounts[].endpoint; a destination cannot choose where its requests go")
	}
	now := h.clock()
	d := &odometer.ExportDestination{Namespace: ns, Name: name, ProductCode: in.ProductCode, Region: in.Region,
		Account: in.Account, ZeroRecords: in.ZeroRecords, DryRun: in.DryRun, CreatedAt: now, UpdatedAt: now,
		StartHour: bodyTime(&fields, "startHour", in.StartHour)}
	delaySet := bodyDuration(&fields, "delay", in.Delay, &d.Delay)
	windowSet := bodyDuration(&fields, "window", in.Window, &d.Window)
	horizonSet := bodyDuration(&fields, "lateHorizon", in.LateHorizon, &d.LateHorizon)
	for i, dim := range in.Dimensions {
		f := fmt.Sprintf("dimensions[%d].", i)
		ed := odometer.ExportDimension{Dimension: dim.Dimension, MeterSlug: dim.MeterSlug, Rounding: dim.Rounding,
			GroupBy: decodeMap[string](dim.GroupBy, f+"groupBy", "a string", &fields)}
		if v := bodyDecimal(&fields, f+"multiply", dim.Multiply); v != nil {
			ed.Multiply = *v
			givenZero(&fields, f+"multiply", v.IsZero(), "must be positive; got 0 (leave it out for 1)")
		}
		if v := bodyDecimal(&fields, f+"divide", dim.Divide); v != nil {
			ed.Divide = *v
			givenZero(&fields, f+"divide", v.IsZero(), "must be positive; got 0 (leave it out for 1)")
		}
		d.Dimensions = append(d.Dimensions, ed)
	}
	// Normalize takes a zero for "unset"; a zero given is refused instead
	// of silently becoming the default.
	givenZero(&fields, "delay", delaySet && d.Delay == 0,
		"must be positive; got 0 (leave it out for the default %s)", odometer.FormatDuration(export.DefaultDelay))
	givenZero(&fields, "window", windowSet && d.Window == 0,
		"must be above 0 and at most %s; got 0 (leave it out for the default %s)", odometer.FormatDuration(export.MaxWindow), odometer.FormatDuration(export.DefaultWindow))
	givenZero(&fields, "lateHorizon", horizonSet && d.LateHorizon == 0,
		"must be from %s to %s; got 0 (leave it out for the default %s)", odometer.FormatDuration(export.MinLateHorizon),
		odometer.FormatDuration(export.MaxLateHorizon), odometer.FormatDuration(export.DefaultLateHorizon))

	if in.StartHour == nil || *in.StartHour == "" {
		// Keep the start of an existing destination: moving it to now on
		// every PUT would skip the hours not frozen yet.
		old, err := h.store.FindExportDestination(r.Context(), ns, name)
		switch {
		case err == nil:
			d.StartHour = old.StartHour
		case odometer.ErrorCode(err) != odometer.ENOTFOUND:
			return fmt.Errorf("find export destination %q: %w", name, err)
		}
	}
	if err := export.Normalize(d, now); err != nil {
		if odometer.ErrorCode(err) != odometer.EINVALID {
			return err
		}
		fields = append(fields, odometer.ErrorFields(err)...)
	}
	if err := export.CheckMeters(r.Context(), d, h.store); err != nil {
		if odometer.ErrorCode(err) != odometer.EINVALID {
			return err
		}
		fields = append(fields, odometer.ErrorFields(err)...)
	}
	if err := fieldsError("invalid export destination", fields); err != nil {
		return err
	}
	acct, err := h.accounts.Authorize(ns, d.Account, d.ProductCode, d.Region)
	if err != nil {
		return err
	}
	d.Account = acct.Name
	created, err := h.store.PutExportDestination(r.Context(), d)
	if err != nil {
		return fmt.Errorf("put export destination %q: %w", name, err)
	}
	stored, err := h.findDestination(r)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/v1/exports/"+url.PathEscape(name))
	}
	return writeJSON(w, status, newDestinationDoc(stored))
}

// givenZero adds a problem when zero holds: the member was sent as 0.
func givenZero(fields *[]odometer.FieldError, name string, zero bool, format string, args ...any) {
	if zero {
		*fields = append(*fields, odometer.FieldError{Index: -1, Field: name, Reason: fmt.Sprintf(format, args...)})
	}
}

// bodyDuration parses an optional Go duration member of a body ("15m")
// into d and reports whether it was given and valid; a bad one adds a
// problem.
func bodyDuration(fields *[]odometer.FieldError, name string, s *string, d *time.Duration) bool {
	if s == nil {
		return false
	}
	v, err := time.ParseDuration(*s)
	if err != nil {
		*fields = append(*fields, odometer.FieldError{Index: -1, Field: name,
			Reason: fmt.Sprintf("must be a duration such as \"15m\" or \"6h\"; got %q", *s)})
		return false
	}
	*d = v
	return true
}

// findDestination loads the destination named by the request's path.
func (h *handler) findDestination(r *http.Request) (*odometer.ExportDestination, error) {
	name := r.PathValue("destination")
	d, err := h.store.FindExportDestination(r.Context(), namespace(r), name)
	if err != nil {
		return nil, fmt.Errorf("find export destination %q: %w", name, err)
	}
	return d, nil
}

// listExports handles GET /api/v1/exports: every destination, by name.
func (h *handler) listExports(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	ds, err := h.store.ListExportDestinations(r.Context(), namespace(r))
	if err != nil {
		return fmt.Errorf("list export destinations: %w", err)
	}
	out := make([]destinationDoc, len(ds))
	for i, d := range ds {
		out[i] = newDestinationDoc(d)
	}
	return writeJSON(w, http.StatusOK, out)
}

// getExport handles GET /api/v1/exports/{destination}.
func (h *handler) getExport(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	d, err := h.findDestination(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newDestinationDoc(d))
}

// deleteExport handles DELETE /api/v1/exports/{destination}: the
// destination goes with its customers and its records.
func (h *handler) deleteExport(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	name := r.PathValue("destination")
	if err := h.store.DeleteExportDestination(r.Context(), namespace(r), name); err != nil {
		return fmt.Errorf("delete export destination %q: %w", name, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// customerDoc is a customer mapping on the wire. From is the first hour
// exported, left out when the mapping starts in the hour it was created.
type customerDoc struct {
	Subject      string     `json:"subject"`
	CustomerID   string     `json:"customerId,omitempty"`
	AWSAccountID string     `json:"awsAccountId,omitempty"`
	LicenseArn   string     `json:"licenseArn,omitempty"`
	From         *time.Time `json:"from,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
}

func newCustomerDoc(c *odometer.ExportCustomer) customerDoc {
	doc := customerDoc{Subject: c.Subject, CustomerID: c.CustomerID, AWSAccountID: c.AWSAccountID, LicenseArn: c.LicenseArn,
		CreatedAt: c.CreatedAt.UTC(), UpdatedAt: c.UpdatedAt.UTC()}
	if !c.From.IsZero() {
		from := c.From.UTC()
		doc.From = &from
	}
	return doc
}

// putExportCustomer handles PUT
// /api/v1/exports/{destination}/customers/{subject}: it maps the subject
// to a customer, replacing its earlier mapping. 409 if another subject has
// the customer: AWS would take the records of only one of them. A from
// left out (or null) keeps the mapping's; a new from must pass
// odometer.CheckExportCustomerFrom.
func (h *handler) putExportCustomer(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	ns, dest, subject := namespace(r), r.PathValue("destination"), r.PathValue("subject")
	var in struct {
		CustomerID   string  `json:"customerId"`
		AWSAccountID string  `json:"awsAccountId"`
		LicenseArn   string  `json:"licenseArn"`
		From         *string `json:"from"`
		// Read-only fields, accepted so that a mapping fetched from the
		// API can be sent back; subject must be the path's.
		Subject   *string         `json:"subject"`
		CreatedAt json.RawMessage `json:"createdAt"`
		UpdatedAt json.RawMessage `json:"updatedAt"`
	}
	if err := h.readJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	if in.Subject != nil && *in.Subject != subject {
		fields = append(fields, odometer.FieldError{Index: -1, Field: "subject", Reason: fmt.Sprintf("is %q but the path names %q", *in.Subject, subject)})
	}
	now := h.clock()
	c := &odometer.ExportCustomer{Namespace: ns, Destination: dest, Subject: subject, CustomerID: in.CustomerID,
		AWSAccountID: in.AWSAccountID, LicenseArn: in.LicenseArn, From: bodyTime(&fields, "from", in.From),
		CreatedAt: now, UpdatedAt: now}
	if err := export.CheckCustomer(c); err != nil {
		fields = append(fields, odometer.ErrorFields(err)...)
	}
	if err := fieldsError("invalid export customer", fields); err != nil {
		return err
	}
	d, err := h.findDestination(r)
	if err != nil {
		return err
	}
	existing, err := h.store.ListExportCustomers(r.Context(), ns, dest)
	if err != nil {
		return fmt.Errorf("list customers of export destination %q: %w", dest, err)
	}
	var prev *odometer.ExportCustomer
	if i := slices.IndexFunc(existing, func(o *odometer.ExportCustomer) bool { return o.Subject == subject }); i >= 0 {
		prev = existing[i]
	}
	if c.From.IsZero() && prev != nil {
		// Left out: the mapping keeps its first hour, as a destination
		// keeps its startHour.
		c.From = prev.From
	}
	if err := odometer.CheckExportCustomerFrom(c, prev, d, now); err != nil {
		return fieldsError("invalid export customer", odometer.ErrorFields(err))
	}
	if err := export.CheckCustomerUnique(c, existing); err != nil {
		return err
	}
	if err := h.store.PutExportCustomer(r.Context(), c); err != nil {
		return fmt.Errorf("put customer %q of export destination %q: %w", subject, dest, err)
	}
	// Read it back for the CreatedAt of a mapping that existed.
	if cs, err := h.store.ListExportCustomers(r.Context(), ns, dest); err == nil {
		if i := slices.IndexFunc(cs, func(s *odometer.ExportCustomer) bool { return s.Subject == subject }); i >= 0 {
			c = cs[i]
		}
	}
	return writeJSON(w, http.StatusOK, newCustomerDoc(c))
}

// listExportCustomers handles GET /api/v1/exports/{destination}/customers:
// the mappings by subject.
func (h *handler) listExportCustomers(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	d, err := h.findDestination(r)
	if err != nil {
		return err
	}
	cs, err := h.store.ListExportCustomers(r.Context(), d.Namespace, d.Name)
	if err != nil {
		return fmt.Errorf("list customers of export destination %q: %w", d.Name, err)
	}
	out := make([]customerDoc, len(cs))
	for i, c := range cs {
		out[i] = newCustomerDoc(c)
	}
	return writeJSON(w, http.StatusOK, out)
}

// deleteExportCustomer handles DELETE
// /api/v1/exports/{destination}/customers/{subject}. Records frozen for the
// subject keep their customer.
func (h *handler) deleteExportCustomer(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	dest, subject := r.PathValue("destination"), r.PathValue("subject")
	if err := h.store.DeleteExportCustomer(r.Context(), namespace(r), dest, subject); err != nil {
		return fmt.Errorf("delete customer %q of export destination %q: %w", subject, dest, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// recordDoc is an outbox record on the wire.
type recordDoc struct {
	Subject          string        `json:"subject"`
	Dimension        string        `json:"dimension"`
	Hour             time.Time     `json:"hour"`
	CustomerID       string        `json:"customerId,omitempty"`
	AWSAccountID     string        `json:"awsAccountId,omitempty"`
	LicenseArn       string        `json:"licenseArn,omitempty"`
	Quantity         int64         `json:"quantity"`
	Usage            string        `json:"usage"`
	Accounted        string        `json:"accounted"`
	Late             string        `json:"late"`
	LateHours        []lateHourDoc `json:"lateHours"`
	Carry            string        `json:"carry"`
	Status           string        `json:"status"`
	MeteringRecordID string        `json:"meteringRecordId,omitempty"`
	Reason           string        `json:"reason,omitempty"`
	Attempts         int           `json:"attempts"`
	NextAttemptAt    *time.Time    `json:"nextAttemptAt,omitempty"`
	FrozenAt         time.Time     `json:"frozenAt"`
	UpdatedAt        time.Time     `json:"updatedAt"`
}

type lateHourDoc struct {
	Hour  time.Time `json:"hour"`
	Usage string    `json:"usage"`
}

func newRecordDoc(rec *odometer.ExportRecord) recordDoc {
	d := recordDoc{Subject: rec.Subject, Dimension: rec.Dimension, Hour: rec.Hour.UTC(), CustomerID: rec.CustomerID,
		AWSAccountID: rec.AWSAccountID, LicenseArn: rec.LicenseArn, Quantity: rec.Quantity, Usage: rec.Usage.String(),
		Accounted: rec.Accounted.String(), Late: rec.Late.String(), LateHours: make([]lateHourDoc, len(rec.LateHours)),
		Carry: rec.Carry.String(), Status: string(rec.Status), MeteringRecordID: rec.MeteringRecordID, Reason: rec.Reason,
		Attempts: rec.Attempts, FrozenAt: rec.FrozenAt.UTC(), UpdatedAt: rec.UpdatedAt.UTC()}
	for i, l := range rec.LateHours {
		d.LateHours[i] = lateHourDoc{Hour: l.Hour.UTC(), Usage: l.Usage.String()}
	}
	if !rec.NextAttemptAt.IsZero() {
		t := rec.NextAttemptAt.UTC()
		d.NextAttemptAt = &t
	}
	return d
}

// exportStatuses lists every record status, in the order reports show them.
var exportStatuses = []odometer.ExportStatus{odometer.ExportPending, odometer.ExportAccepted, odometer.ExportDuplicate,
	odometer.ExportNotSubscribed, odometer.ExportRejected, odometer.ExportExpired, odometer.ExportEmpty}

// listExportRecords handles GET /api/v1/exports/{destination}/records:
// the outbox records by hour, subject and dimension; status (a comma
// separated list), [from, to) on the hour, subject, dimension, and limit
// (default 100, at most 1000).
func (h *handler) listExportRecords(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"status", "from", "to", "subject", "dimension", "limit"})
	f := odometer.ExportRecordFilter{Namespace: namespace(r), Destination: r.PathValue("destination"),
		Subject: p.one("subject"), Dimension: p.one("dimension"), From: p.time("from"), To: p.time("to"),
		Limit: p.int("limit", 100, 1, 1000)}
	if s := p.one("status"); s != "" {
		for v := range strings.SplitSeq(s, ",") {
			st := odometer.ExportStatus(strings.TrimSpace(v))
			if !slices.Contains(exportStatuses, st) {
				p.bad("status", "%q is not a status (statuses: %s)", st, statusList())
				continue
			}
			if !slices.Contains(f.Status, st) {
				f.Status = append(f.Status, st)
			}
		}
	}
	p.fields = checkRange(p.fields, "from", f.From, "to", f.To)
	if err := p.err(); err != nil {
		return err
	}
	if _, err := h.findDestination(r); err != nil {
		return err
	}
	recs, err := h.store.ListExportRecords(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list records of export destination %q: %w", f.Destination, err)
	}
	out := struct {
		Records []recordDoc `json:"records"`
	}{Records: make([]recordDoc, len(recs))}
	for i, rec := range recs {
		out.Records[i] = newRecordDoc(rec)
	}
	return writeJSON(w, http.StatusOK, out)
}

func statusList() string {
	s := make([]string, len(exportStatuses))
	for i, st := range exportStatuses {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

// statusDoc answers GET /api/v1/exports/{destination}/status.
type statusDoc struct {
	Destination   string          `json:"destination"`
	FrozenThrough *time.Time      `json:"frozenThrough"`
	From          time.Time       `json:"from"`
	To            time.Time       `json:"to"`
	Hours         []hourStatusDoc `json:"hours"`
}

// hourStatusDoc counts one hour's records of one dimension by status.
// QuantityAccepted is the quantity AWS has metered: that of the accepted
// and the duplicate records (a duplicate is a resend of a record AWS had).
type hourStatusDoc struct {
	Hour             time.Time `json:"hour"`
	Dimension        string    `json:"dimension"`
	Pending          int64     `json:"pending"`
	InFlight         int64     `json:"inFlight"` // of the pending: sent at least once, to be resent
	Accepted         int64     `json:"accepted"`
	Duplicate        int64     `json:"duplicate"`
	NotSubscribed    int64     `json:"notSubscribed"`
	Rejected         int64     `json:"rejected"`
	Expired          int64     `json:"expired"`
	Empty            int64     `json:"empty"`
	QuantityAccepted int64     `json:"quantityAccepted"`
}

// statusWindow is the default range of the status route: the 48 hours
// before the end of the last frozen hour.
const statusWindow = 48 * time.Hour

// exportStatus handles GET /api/v1/exports/{destination}/status: the
// records counted by hour, dimension and status over [from, to) on the
// hour. to defaults to the end of the last frozen hour (or the current
// hour if none is), from to 48 hours before to.
func (h *handler) exportStatus(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"from", "to"})
	from, to := p.time("from"), p.time("to")
	if err := p.err(); err != nil {
		return err
	}
	d, err := h.findDestination(r)
	if err != nil {
		return err
	}
	if to.IsZero() {
		to = d.FrozenThrough
		if to.IsZero() {
			to = h.clock().Truncate(time.Hour)
		}
		if !from.IsZero() && !from.Before(to) {
			to = from.Add(statusWindow)
		}
	}
	if from.IsZero() {
		from = to.Add(-statusWindow)
	}
	if err := fieldsError("invalid query parameters", checkRange(nil, "from", from, "to", to)); err != nil {
		return err
	}
	sums, err := h.store.SummarizeExportRecords(r.Context(), d.Namespace, d.Name, from, to)
	if err != nil {
		return fmt.Errorf("summarize export destination %q: %w", d.Name, err)
	}
	out := statusDoc{Destination: d.Name, From: from.UTC(), To: to.UTC(), Hours: []hourStatusDoc{}}
	if !d.FrozenThrough.IsZero() {
		t := d.FrozenThrough.UTC()
		out.FrozenThrough = &t
	}
	type key struct {
		hour      int64
		dimension string
	}
	rows := map[key]int{}
	for _, s := range sums {
		k := key{s.Hour.Unix(), s.Dimension}
		i, ok := rows[k]
		if !ok {
			i = len(out.Hours)
			rows[k] = i
			out.Hours = append(out.Hours, hourStatusDoc{Hour: s.Hour.UTC(), Dimension: s.Dimension})
		}
		row := &out.Hours[i]
		switch s.Status {
		case odometer.ExportPending:
			row.Pending += s.Records
			row.InFlight += s.InFlight
		case odometer.ExportAccepted:
			row.Accepted += s.Records
			row.QuantityAccepted += s.Quantity
		case odometer.ExportDuplicate:
			row.Duplicate += s.Records
			row.QuantityAccepted += s.Quantity
		case odometer.ExportNotSubscribed:
			row.NotSubscribed += s.Records
		case odometer.ExportRejected:
			row.Rejected += s.Records
		case odometer.ExportExpired:
			row.Expired += s.Records
		case odometer.ExportEmpty:
			row.Empty += s.Records
		}
	}
	slices.SortStableFunc(out.Hours, func(a, b hourStatusDoc) int {
		return cmp.Or(a.Hour.Compare(b.Hour), cmp.Compare(a.Dimension, b.Dimension))
	})
	return writeJSON(w, http.StatusOK, out)
}

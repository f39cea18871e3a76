// Package exporter reports usage to AWS Marketplace exactly once, through
// a durable outbox (docs/export-aws.md). Each round it freezes every closed
// hour into outbox records, in one store transaction per hour, and then
// sends the pending records, storing each outcome. Nothing is sent before
// it is committed, so a resend after a crash is byte-identical and AWS
// answers it DuplicateRecord.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/export/awsmp"
	"github.com/odometerhq/odometer/usage"
)

// Config configures an Exporter. Store is required.
type Config struct {
	Store   odometer.Store
	Rollups *usage.Rollups // nil: usage is read from events
	// Accounts are the operator's AWS accounts (nil:
	// export.DefaultAccounts()). Every round checks each destination
	// against them (Accounts.Authorize): a destination whose namespace may
	// not use its account or product code is frozen but not sent, and
	// its records stay pending until the grant is back or they expire.
	Accounts *export.Accounts
	// NewSender builds the sender of a product code in a region with an
	// account. nil: NewAWSSender, the AWS SDK with the account's
	// credentials and endpoints. It is called once per (account, product
	// code, region) for the Exporter's life.
	NewSender func(ctx context.Context, a *export.Account, productCode, region string) (*awsmp.Sender, error)
	Now       func() time.Time // nil: time.Now
	Interval  time.Duration    // between rounds; default 30 s
	// Backoff of records AWS left unprocessed and of calls that failed
	// retryably: MinBackoff doubling per attempt up to MaxBackoff, with
	// jitter. Defaults 15 s and 10 min.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	Registerer             prometheus.Registerer // nil: no metrics
}

// Exporter runs the export rounds. Run it on every node: rounds take the
// store's exporter lock, so with several nodes on one PostgreSQL only one
// exports at a time.
type Exporter struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu      sync.Mutex
	senders map[senderKey]*awsmp.Sender
}

// senderKey is what a sender is built for. Accounts do not change during
// an Exporter's life (the config file is read at start-up), so a sender
// is built once.
type senderKey struct{ account, productCode, region string }

// New returns an Exporter; its metrics are registered on cfg.Registerer.
func New(cfg Config) (*Exporter, error) {
	if cfg.Store == nil {
		return nil, errors.New("exporter: no store")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 15 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(cfg.MinBackoff, 10*time.Minute)
	}
	if cfg.NewSender == nil {
		cfg.NewSender = NewAWSSender
	}
	if cfg.Accounts == nil {
		cfg.Accounts = export.DefaultAccounts()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Exporter{cfg: cfg, log: log, metrics: m, senders: map[senderKey]*awsmp.Sender{}}, nil
}

// Run runs a round every Interval until ctx ends. A failed round is
// logged and the next one tries again.
func (e *Exporter) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		if err := e.Round(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("export round failed; retrying next round", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round freezes every destination's closed hours and sends its due
// records, if this process gets the exporter lock. It reports whether it
// did.
func (e *Exporter) Round(ctx context.Context) error {
	unlock, ok, err := e.cfg.Store.TryLockExporter(ctx)
	if err != nil {
		return fmt.Errorf("take the exporter lock: %w", err)
	}
	e.metrics.active.Set(boolGauge(ok))
	if !ok {
		return nil
	}
	defer unlock()
	dests, err := e.cfg.Store.ListExportDestinations(ctx, "")
	if err != nil {
		return fmt.Errorf("list export destinations: %w", err)
	}
	var errs []error
	for _, d := range dests {
		if err := e.destination(ctx, d); err != nil {
			errs = append(errs, fmt.Errorf("destination %q of namespace %q: %w", d.Name, d.Namespace, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Exporter) destination(ctx context.Context, d *odometer.ExportDestination) error {
	// The grant is checked at every round, against the accounts of now:
	// what the API or the config file checked when the destination was
	// stored may have been taken away since (or the destination was
	// stored before accounts existed).
	acct, err := e.cfg.Accounts.Authorize(d.Namespace, d.Account, d.ProductCode, d.Region)
	if err != nil {
		e.metrics.forbidden.WithLabelValues(label(d)).Set(1)
		e.log.Error("ALERT: export destination not sent: the operator's AWS accounts do not allow it; its records stay pending",
			"destination", label(d), "account", d.Account, "productCode", d.ProductCode, "reason", odometer.ErrorMessage(err))
	} else {
		e.metrics.forbidden.WithLabelValues(label(d)).Set(0)
	}
	// Freezing stays local: hours keep being frozen, so that nothing is
	// skipped when the grant is back.
	freezeErr := e.freezeDue(ctx, d)
	// Records frozen earlier are sent even if this round cannot freeze.
	return errors.Join(freezeErr, e.sendDue(ctx, d, acct))
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// label names a destination in metrics and logs.
func label(d *odometer.ExportDestination) string { return d.Namespace + "/" + d.Name }

// freezeDue freezes the destination's hours that closed: hour K closes
// once K + 1 h + Delay has passed.
func (e *Exporter) freezeDue(ctx context.Context, d *odometer.ExportDestination) error {
	next := d.FrozenThrough
	if next.IsZero() {
		next = d.StartHour
	}
	for {
		now := e.cfg.Now()
		if now.Before(next.Add(time.Hour + d.Delay)) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := e.freezeHour(ctx, d, next, now); err != nil {
			if odometer.ErrorCode(err) == odometer.ECONFLICT {
				// Another exporter froze it (the lock was lost for a
				// moment); the next round starts from the store's state.
				e.log.Warn("export hour frozen by another exporter", "destination", label(d), "hour", next)
				return nil
			}
			return fmt.Errorf("freeze hour %s: %w", next.Format(time.RFC3339), err)
		}
		next = next.Add(time.Hour)
		d.FrozenThrough = next
		e.metrics.frozenThrough.WithLabelValues(label(d)).Set(float64(next.Unix()))
	}
}

type recKey struct {
	subject, dimension string
	hour               int64
}

type acctKey struct{ subject, dimension string }

// maxRecords bounds the records read for one hour's freeze.
const maxRecords = 1 << 30

// freezeHour writes hour K's records, with the late usage of earlier hours
// carried into them, in one store transaction.
func (e *Exporter) freezeHour(ctx context.Context, d *odometer.ExportDestination, k, now time.Time) error {
	st := e.cfg.Store
	customers, err := st.ListExportCustomers(ctx, d.Namespace, d.Name)
	if err != nil {
		return err
	}
	accounts, err := st.ListExportAccounts(ctx, d.Namespace, d.Name)
	if err != nil {
		return err
	}
	carries := make(map[acctKey]odometer.Decimal, len(accounts))
	for _, a := range accounts {
		carries[acctKey{a.Subject, a.Dimension}] = a.Carry
	}
	lateFrom := k.Add(-d.LateHorizon)
	if lateFrom.Before(d.StartHour) {
		lateFrom = d.StartHour
	}
	earlier, err := st.ListExportRecords(ctx, odometer.ExportRecordFilter{
		Namespace: d.Namespace, Destination: d.Name, From: lateFrom, To: k, Limit: maxRecords,
	})
	if err != nil {
		return err
	}
	known := make(map[recKey]*odometer.ExportRecord, len(earlier))
	for _, r := range earlier {
		known[recKey{r.Subject, r.Dimension, r.Hour.Unix()}] = r
	}
	// A customer's usage counts from its first hour: the mapping's From,
	// or the hour it was created in. The hours from there that were frozen
	// before the mapping existed have no record of it, so freezeRecord
	// carries their usage into k as late usage, as far back as lateFrom.
	first := make(map[string]time.Time, len(customers))
	var subjects []string
	for _, c := range customers {
		h := c.FirstHour()
		if h.After(k) {
			continue
		}
		first[c.Subject] = h
		subjects = append(subjects, c.Subject)
	}
	f := &odometer.ExportFreeze{Namespace: d.Namespace, Destination: d.Name, Hour: k}
	view := e.cfg.Rollups.View(st, now)
	for _, dim := range d.Dimensions {
		usage, err := e.hourlyUsage(ctx, view, d, dim, subjects, lateFrom, k.Add(time.Hour))
		if err != nil {
			return fmt.Errorf("dimension %q: %w", dim.Dimension, err)
		}
		conv := export.Conversion{Multiply: dim.Multiply, Divide: dim.Divide, Rounding: export.Rounding(dim.Rounding)}
		for _, c := range customers {
			from, ok := first[c.Subject]
			if !ok {
				continue
			}
			e.freezeRecord(f, d, dim, conv, c, usage[c.Subject], known, carries, later(from, lateFrom), k, now)
		}
	}
	if err := st.FreezeExportHour(ctx, f); err != nil {
		return err
	}
	for _, r := range f.Records {
		if r.Hour.Equal(k) {
			e.metrics.records.WithLabelValues(label(d), string(r.Status)).Inc()
		}
		if r.Status == odometer.ExportRejected {
			e.log.Error("ALERT: export record rejected locally", "destination", label(d), "subject", r.Subject,
				"dimension", r.Dimension, "hour", r.Hour, "quantity", r.Quantity, "reason", r.Reason)
		}
		if d.DryRun && r.Status == odometer.ExportPending {
			e.log.Info("dry run: would send", "destination", label(d), "customer", customerOf(r),
				"dimension", r.Dimension, "hour", r.Hour, "quantity", r.Quantity)
		}
	}
	return nil
}

// freezeRecord adds to f the record of (customer, dim) for hour k: its own
// usage plus the late usage found for hours [from, k), converted with the
// carry of the previous record.
func (e *Exporter) freezeRecord(f *odometer.ExportFreeze, d *odometer.ExportDestination, dim odometer.ExportDimension,
	conv export.Conversion, c *odometer.ExportCustomer, usage map[int64]odometer.Decimal,
	known map[recKey]*odometer.ExportRecord, carries map[acctKey]odometer.Decimal, from, k, now time.Time) {
	var late odometer.Decimal
	var lateHours []odometer.ExportLate
	for h := from; h.Before(k); h = h.Add(time.Hour) {
		u := usage[h.Unix()]
		r := known[recKey{c.Subject, dim.Dimension, h.Unix()}]
		var accounted odometer.Decimal
		if r != nil {
			accounted = r.Accounted
		}
		diff := u.Sub(accounted)
		if diff.IsZero() {
			continue
		}
		late = late.Add(diff)
		lateHours = append(lateHours, odometer.ExportLate{Hour: h, Usage: diff})
		if r != nil {
			f.Accounted = append(f.Accounted, odometer.ExportAccounted{Subject: c.Subject, Dimension: dim.Dimension, Hour: h, Accounted: u})
			continue
		}
		// The hour had no usage when it was frozen, so it has no record:
		// an empty one keeps what is accounted for it now.
		f.Records = append(f.Records, &odometer.ExportRecord{
			Namespace: d.Namespace, Destination: d.Name, Subject: c.Subject, Dimension: dim.Dimension, Hour: h,
			CustomerID: c.CustomerID, AWSAccountID: c.AWSAccountID, LicenseArn: c.LicenseArn,
			Accounted: u, Carry: carries[acctKey{c.Subject, dim.Dimension}],
			Status: odometer.ExportEmpty, Reason: "no usage when its hour was frozen; late usage carried into " + k.Format(time.RFC3339),
			FrozenAt: now, UpdatedAt: now, NextAttemptAt: now,
		})
	}
	own := usage[k.Unix()]
	if own.IsZero() && late.IsZero() && !d.ZeroRecords {
		return
	}
	ak := acctKey{c.Subject, dim.Dimension}
	q, carry, err := conv.Quantity(own.Add(late), carries[ak])
	r := &odometer.ExportRecord{
		Namespace: d.Namespace, Destination: d.Name, Subject: c.Subject, Dimension: dim.Dimension, Hour: k,
		CustomerID: c.CustomerID, AWSAccountID: c.AWSAccountID, LicenseArn: c.LicenseArn,
		Quantity: q, Usage: own, Accounted: own, Late: late, LateHours: lateHours, Carry: carry,
		Status: odometer.ExportPending, FrozenAt: now, UpdatedAt: now, NextAttemptAt: now,
	}
	switch {
	case err != nil:
		// Beyond 64 bits: nothing sensible can be carried either.
		r.Quantity, r.Carry = 0, odometer.Decimal{}
		r.Status, r.Reason = odometer.ExportRejected, err.Error()
	case q > math.MaxInt32:
		r.Status = odometer.ExportRejected
		r.Reason = fmt.Sprintf("quantity %d exceeds AWS's limit of %d", q, math.MaxInt32)
	case q == 0 && !d.ZeroRecords:
		r.Status = odometer.ExportEmpty
	}
	f.Records = append(f.Records, r)
	f.Accounts = append(f.Accounts, odometer.ExportAccount{Subject: c.Subject, Dimension: dim.Dimension, Carry: r.Carry, LastHour: k})
}

// hourlyUsage returns dim's usage per subject and UTC hour in [from, to).
func (e *Exporter) hourlyUsage(ctx context.Context, view *usage.UsageView, d *odometer.ExportDestination,
	dim odometer.ExportDimension, subjects []string, from, to time.Time) (map[string]map[int64]odometer.Decimal, error) {
	out := map[string]map[int64]odometer.Decimal{}
	if len(subjects) == 0 {
		return out, nil
	}
	m, err := e.cfg.Store.FindMeter(ctx, d.Namespace, dim.MeterSlug)
	if err != nil {
		return nil, err
	}
	if m.Aggregation != odometer.Sum && m.Aggregation != odometer.Count {
		return nil, fmt.Errorf("meter %q aggregates with %s; exports need SUM or COUNT", m.Slug, m.Aggregation)
	}
	cm, err := m.Compile()
	if err != nil {
		return nil, err
	}
	var filter map[string][]string
	if len(dim.GroupBy) > 0 {
		filter = make(map[string][]string, len(dim.GroupBy))
		for k, v := range dim.GroupBy {
			filter[k] = []string{v}
		}
	}
	res, err := view.Query(ctx, cm, odometer.UsageQuery{
		From: from, To: to, WindowSize: odometer.Hour, TimeZone: time.UTC,
		Subjects: subjects, FilterGroupBy: filter,
	})
	if err != nil {
		return nil, err
	}
	for _, row := range res.Data {
		if row.Subject == nil {
			continue
		}
		byHour := out[*row.Subject]
		if byHour == nil {
			byHour = map[int64]odometer.Decimal{}
			out[*row.Subject] = byHour
		}
		h := row.WindowStart.UTC().Unix()
		byHour[h] = byHour[h].Add(row.Value)
	}
	return out, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func customerOf(r *odometer.ExportRecord) string {
	if r.CustomerID != "" {
		return r.CustomerID
	}
	return "account " + r.AWSAccountID
}

// sendBatch is how many due records one read takes.
const sendBatch = 10 * awsmp.MaxBatch

// sendDue sends the destination's due pending records with acct, in calls
// of up to 25, and stores each outcome; records past their time window
// expire. With acct nil (not allowed) nothing is sent: the records stay
// pending, and those past their window expire.
func (e *Exporter) sendDue(ctx context.Context, d *odometer.ExportDestination, acct *export.Account) error {
	if d.DryRun {
		return nil
	}
	for {
		now := e.cfg.Now()
		recs, err := e.cfg.Store.ListExportRecords(ctx, odometer.ExportRecordFilter{
			Namespace: d.Namespace, Destination: d.Name,
			Status: []odometer.ExportStatus{odometer.ExportPending}, DueBy: now, Limit: sendBatch,
		})
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		var sendable, expired []*odometer.ExportRecord
		for _, r := range recs {
			if export.Expired(r.Hour, now, d.Window) {
				r.Status = odometer.ExportExpired
				r.Reason = "not sent before its time window ended at " + export.Deadline(r.Hour, d.Window).Format(time.RFC3339)
				r.UpdatedAt = now
				expired = append(expired, r)
				continue
			}
			sendable = append(sendable, r)
		}
		if len(expired) > 0 {
			if err := e.cfg.Store.UpdateExportRecords(ctx, expired); err != nil {
				return err
			}
			for _, r := range expired {
				e.metrics.records.WithLabelValues(label(d), string(r.Status)).Inc()
				e.log.Error("ALERT: export record expired unsent", "destination", label(d), "customer", customerOf(r),
					"dimension", r.Dimension, "hour", r.Hour, "quantity", r.Quantity)
			}
		}
		if acct == nil {
			// Records are read oldest first: once one has not expired,
			// none after it has.
			if len(sendable) > 0 || len(recs) < sendBatch {
				return nil
			}
			continue
		}
		for batch := range slices.Chunk(sendable, awsmp.MaxBatch) {
			stop, err := e.send(ctx, d, acct, batch)
			if err != nil || stop {
				return err
			}
		}
		if len(recs) < sendBatch {
			return nil
		}
	}
}

// send sends one batch and stores its outcomes. stop reports a retryable
// failure: the rest waits for the backoff.
func (e *Exporter) send(ctx context.Context, d *odometer.ExportDestination, acct *export.Account, batch []*odometer.ExportRecord) (stop bool, err error) {
	sender, err := e.sender(ctx, acct, d.ProductCode, acct.DestinationRegion(d.Region))
	if err != nil {
		return true, err
	}
	wire := make([]awsmp.Record, len(batch))
	for i, r := range batch {
		wire[i] = awsmp.Record{
			CustomerIdentifier: r.CustomerID, CustomerAWSAccountID: r.AWSAccountID, LicenseArn: r.LicenseArn,
			Dimension: r.Dimension, Hour: r.Hour, Quantity: int32(r.Quantity),
		}
	}
	out, done, sendErr := sender.SendIsolating(ctx, wire)
	now := e.cfg.Now()
	lbl := label(d)
	switch {
	case sendErr == nil:
		e.metrics.calls.WithLabelValues(lbl, "ok").Inc()
	case awsmp.Retryable(sendErr):
		e.metrics.calls.WithLabelValues(lbl, "retryable").Inc()
		e.log.Warn("export call failed; backing off", "destination", lbl, "err", sendErr)
	default:
		e.metrics.calls.WithLabelValues(lbl, "error").Inc()
	}
	for i, r := range batch {
		r.UpdatedAt = now
		if !done[i] {
			e.backoff(r, now)
			continue
		}
		o := out[i]
		switch o.Status {
		case awsmp.Accepted:
			r.Status, r.MeteringRecordID = odometer.ExportAccepted, o.MeteringRecordID
			r.Attempts++
		case awsmp.DuplicateRecord:
			// AWS has this (customer, dimension, hour): delivered, by an
			// earlier send whose outcome was not stored, or by someone
			// else.
			r.Status, r.Reason = odometer.ExportDuplicate, "AWS answered DuplicateRecord"
			r.Attempts++
		case awsmp.CustomerNotSubscribed:
			r.Status, r.Reason = odometer.ExportNotSubscribed, "AWS answered CustomerNotSubscribed"
			r.Attempts++
		case awsmp.Rejection:
			r.Status, r.Reason = odometer.ExportRejected, strings.TrimSpace(o.Code+": "+o.Message)
			r.Attempts++
		default: // unprocessed
			e.backoff(r, now)
			continue
		}
		e.metrics.records.WithLabelValues(lbl, string(r.Status)).Inc()
		if r.Status != odometer.ExportAccepted {
			e.log.Error("ALERT: export record not metered", "destination", lbl, "status", r.Status, "customer", customerOf(r),
				"dimension", r.Dimension, "hour", r.Hour, "quantity", r.Quantity, "reason", r.Reason)
		}
	}
	if err := e.cfg.Store.UpdateExportRecords(ctx, batch); err != nil {
		return true, fmt.Errorf("store the outcomes of %d sent records: %w", len(batch), err)
	}
	if sendErr != nil && !awsmp.Retryable(sendErr) {
		return true, sendErr
	}
	return sendErr != nil, nil
}

// backoff leaves r pending until after a jittered, doubling delay.
func (e *Exporter) backoff(r *odometer.ExportRecord, now time.Time) {
	r.Attempts++
	d := e.cfg.MinBackoff
	for i := 1; i < r.Attempts && d < e.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, e.cfg.MaxBackoff)
	// Equal jitter: half fixed, half random, so retries of many records
	// spread out but never come sooner than half the delay.
	d = d/2 + rand.N(d/2+1)
	r.NextAttemptAt = now.Add(d)
	e.metrics.retries.WithLabelValues(r.Namespace + "/" + r.Destination).Inc()
}

// sender returns the sender of productCode in region with acct, built
// at its first use.
func (e *Exporter) sender(ctx context.Context, acct *export.Account, productCode, region string) (*awsmp.Sender, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := senderKey{acct.Name, productCode, region}
	if s, ok := e.senders[key]; ok {
		return s, nil
	}
	s, err := e.cfg.NewSender(ctx, acct, productCode, region)
	if err != nil {
		return nil, fmt.Errorf("AWS account %q: %w", acct.Name, err)
	}
	e.senders[key] = s
	return s, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/odometerhq/odometer"
)

// The records of usage export (odometer.ExportStore). As for credits, every
// write runs in one transaction on the single writer connection, which
// BEGINs IMMEDIATE: the transaction holds SQLite's write lock from its first
// statement, so the destination's FrozenThrough that FreezeExportHour checks
// cannot change before it commits, in this process or any other. Two
// freezes of the same hour therefore run one after the other, and the second
// finds the hour frozen.

// PutExportDestination creates the destination or replaces its definition,
// keeping the CreatedAt and FrozenThrough of an existing one; a new one
// starts with no hour frozen, whatever d.FrozenThrough says. It reports
// whether it created the destination. EINVALID if a dimension's Multiply or
// Divide is beyond the limits of odometer values.
func (s *Store) PutExportDestination(ctx context.Context, d *odometer.ExportDestination) (created bool, err error) {
	op := fmt.Sprintf("put export destination %q", d.Name)
	dims, err := dimensionsColumn(d.Dimensions)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM export_destinations WHERE namespace = ? AND name = ?`,
			d.Namespace, d.Name).Scan(&n); err != nil {
			return err
		}
		created = n == 0
		if created {
			// endpoint is a column of old, never read (0007): '' fills it.
			_, err := tx.ExecContext(ctx, `INSERT INTO export_destinations (endpoint, `+destinationColumns+`)
				VALUES ('', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
				d.Namespace, d.Name, d.ProductCode, d.Region, d.Account, dims, d.StartHour.UnixMicro(),
				int64(d.Delay), int64(d.Window), int64(d.LateHorizon), d.ZeroRecords, d.DryRun,
				d.CreatedAt.UnixMicro(), d.UpdatedAt.UnixMicro())
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE export_destinations SET product_code = ?, region = ?, account = ?,
			dimensions = ?, start_hour = ?, delay_ns = ?, window_ns = ?, late_horizon_ns = ?, zero_records = ?,
			dry_run = ?, updated_at = ?
			WHERE namespace = ? AND name = ?`,
			d.ProductCode, d.Region, d.Account, dims, d.StartHour.UnixMicro(),
			int64(d.Delay), int64(d.Window), int64(d.LateHorizon), d.ZeroRecords, d.DryRun, d.UpdatedAt.UnixMicro(),
			d.Namespace, d.Name)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return created, nil
}

// FindExportDestination returns the namespace's destination with this
// name. ENOTFOUND if there is none.
func (s *Store) FindExportDestination(ctx context.Context, namespace, name string) (*odometer.ExportDestination, error) {
	op := fmt.Sprintf("find export destination %q", name)
	rows, err := s.query(ctx, `SELECT `+destinationColumns+` FROM export_destinations
		WHERE namespace = ? AND name = ?`, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ds, err := scanDestinations(rows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(ds) == 0 {
		return nil, odometer.ErrExportDestinationNotFound(name)
	}
	return ds[0], nil
}

// ListExportDestinations returns the namespace's destinations ordered by
// name, or with namespace "" every namespace's, ordered by namespace and
// then name; an empty, non-nil slice if there are none.
func (s *Store) ListExportDestinations(ctx context.Context, namespace string) ([]*odometer.ExportDestination, error) {
	q := `SELECT ` + destinationColumns + ` FROM export_destinations`
	var args []any
	if namespace != "" {
		q += ` WHERE namespace = ?`
		args = append(args, namespace)
	}
	rows, err := s.query(ctx, q+` ORDER BY namespace, name`, args...)
	if err != nil {
		return nil, fmt.Errorf("list export destinations: %w", err)
	}
	ds, err := scanDestinations(rows)
	if err != nil {
		return nil, fmt.Errorf("list export destinations: %w", err)
	}
	return ds, nil
}

// DeleteExportDestination removes the destination; its customers, accounts
// and records go with it (ON DELETE CASCADE). ENOTFOUND if there is none.
func (s *Store) DeleteExportDestination(ctx context.Context, namespace, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM export_destinations WHERE namespace = ? AND name = ?`, namespace, name)
		if err != nil {
			return err
		}
		return mustAffect(res, odometer.ErrExportDestinationNotFound(name))
	})
	return wrapOp(fmt.Sprintf("delete export destination %q", name), err)
}

// destinationColumns are the columns of an ExportDestination. The legacy
// endpoint column is not among them: it is never read (0007).
const destinationColumns = `namespace, name, product_code, region, account, dimensions, start_hour,
	delay_ns, window_ns, late_horizon_ns, zero_records, dry_run, created_at, updated_at, frozen_through`

func scanDestinations(rows *sql.Rows) ([]*odometer.ExportDestination, error) {
	defer rows.Close()
	ds := []*odometer.ExportDestination{}
	for rows.Next() {
		var d odometer.ExportDestination
		var dims sql.NullString
		var start, delay, window, horizon, created, updated int64
		var frozen sql.NullInt64
		if err := rows.Scan(&d.Namespace, &d.Name, &d.ProductCode, &d.Region, &d.Account, &dims, &start,
			&delay, &window, &horizon, &d.ZeroRecords, &d.DryRun, &created, &updated, &frozen); err != nil {
			return nil, err
		}
		var err error
		if d.Dimensions, err = parseDimensions(dims); err != nil {
			return nil, fmt.Errorf("export destination %q: dimensions: %w", d.Name, err)
		}
		d.StartHour, d.CreatedAt, d.UpdatedAt = fromMicros(start), fromMicros(created), fromMicros(updated)
		d.Delay, d.Window, d.LateHorizon = time.Duration(delay), time.Duration(window), time.Duration(horizon)
		if frozen.Valid {
			d.FrozenThrough = fromMicros(frozen.Int64)
		}
		ds = append(ds, &d)
	}
	return ds, rows.Err()
}

// PutExportCustomer creates or replaces the subject's mapping, keeping the
// CreatedAt of an existing one; a zero From is stored as NULL. ENOTFOUND if
// the destination is missing.
func (s *Store) PutExportCustomer(ctx context.Context, c *odometer.ExportCustomer) error {
	var from any
	if !c.From.IsZero() {
		from = c.From.UnixMicro()
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO export_customers (namespace, destination, subject,
			customer_id, aws_account_id, license_arn, from_hour, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (namespace, destination, subject) DO UPDATE SET customer_id = excluded.customer_id,
				aws_account_id = excluded.aws_account_id, license_arn = excluded.license_arn,
				from_hour = excluded.from_hour, updated_at = excluded.updated_at`,
			c.Namespace, c.Destination, c.Subject, c.CustomerID, c.AWSAccountID, c.LicenseArn, from,
			c.CreatedAt.UnixMicro(), c.UpdatedAt.UnixMicro())
		if isForeignKeyViolation(err) {
			return odometer.ErrExportDestinationNotFound(c.Destination)
		}
		return err
	})
	return wrapOp(fmt.Sprintf("put export customer %q of destination %q", c.Subject, c.Destination), err)
}

// DeleteExportCustomer removes the subject's mapping. ENOTFOUND if there is
// none.
func (s *Store) DeleteExportCustomer(ctx context.Context, namespace, destination, subject string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM export_customers
			WHERE namespace = ? AND destination = ? AND subject = ?`, namespace, destination, subject)
		if err != nil {
			return err
		}
		return mustAffect(res, odometer.Errorf(odometer.ENOTFOUND,
			"export customer %q of destination %q not found", subject, destination))
	})
	return wrapOp(fmt.Sprintf("delete export customer %q of destination %q", subject, destination), err)
}

// ListExportCustomers returns the destination's mappings ordered by
// subject; an empty, non-nil slice if there are none or the destination is
// missing.
func (s *Store) ListExportCustomers(ctx context.Context, namespace, destination string) ([]*odometer.ExportCustomer, error) {
	op := fmt.Sprintf("list export customers of destination %q", destination)
	rows, err := s.query(ctx, `SELECT namespace, destination, subject, customer_id, aws_account_id, license_arn,
		from_hour, created_at, updated_at FROM export_customers
		WHERE namespace = ? AND destination = ? ORDER BY subject`, namespace, destination)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	cs := []*odometer.ExportCustomer{}
	for rows.Next() {
		var c odometer.ExportCustomer
		var from sql.NullInt64
		var created, updated int64
		if err := rows.Scan(&c.Namespace, &c.Destination, &c.Subject, &c.CustomerID, &c.AWSAccountID, &c.LicenseArn,
			&from, &created, &updated); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if from.Valid {
			c.From = fromMicros(from.Int64)
		}
		c.CreatedAt, c.UpdatedAt = fromMicros(created), fromMicros(updated)
		cs = append(cs, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return cs, nil
}

// ListExportAccounts returns the destination's accounts ordered by subject,
// then dimension; an empty, non-nil slice if there are none or the
// destination is missing.
func (s *Store) ListExportAccounts(ctx context.Context, namespace, destination string) ([]odometer.ExportAccount, error) {
	op := fmt.Sprintf("list export accounts of destination %q", destination)
	rows, err := s.query(ctx, `SELECT subject, dimension, carry, last_hour FROM export_accounts
		WHERE namespace = ? AND destination = ? ORDER BY subject, dimension`, namespace, destination)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	as := []odometer.ExportAccount{}
	for rows.Next() {
		var a odometer.ExportAccount
		var carry string
		var last int64
		if err := rows.Scan(&a.Subject, &a.Dimension, &carry, &last); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if a.Carry, err = odometer.ParseDecimal(carry); err != nil {
			return nil, fmt.Errorf("%s: account (%q, %q): carry: %w", op, a.Subject, a.Dimension, err)
		}
		a.LastHour = fromMicros(last)
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return as, nil
}

// FreezeExportHour writes f in one transaction: the records, the raises of
// earlier records' Accounted, the accounts, and FrozenThrough moved to
// f.Hour + 1 h. On error nothing is written. ENOTFOUND if the destination
// or a record to raise is missing; ECONFLICT if the destination's
// FrozenThrough is neither zero nor f.Hour, or a record exists already;
// EINVALID if f.Hour is not a whole hour, a record is not of f's
// destination or is of a later hour, a status is unknown or a decimal is
// beyond the limits (see checkFreeze).
func (s *Store) FreezeExportHour(ctx context.Context, f *odometer.ExportFreeze) error {
	op := fmt.Sprintf("freeze hour %s of export destination %q", f.Hour.UTC().Format(time.RFC3339), f.Destination)
	if err := f.CheckStorable(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	records := make([][]any, len(f.Records))
	for i, r := range f.Records {
		a, err := recordArgs(r)
		if err != nil {
			return fmt.Errorf("%s: record %d: %w", op, i, err)
		}
		records[i] = a
	}
	hour := f.Hour.UnixMicro()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var frozen sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT frozen_through FROM export_destinations WHERE namespace = ? AND name = ?`,
			f.Namespace, f.Destination).Scan(&frozen)
		if errors.Is(err, sql.ErrNoRows) {
			return odometer.ErrExportDestinationNotFound(f.Destination)
		}
		if err != nil {
			return err
		}
		if frozen.Valid && frozen.Int64 != hour {
			return odometer.ErrExportFrozenThrough(f.Destination, fromMicros(frozen.Int64), f.Hour)
		}
		if len(records) > 0 {
			insert, err := tx.PrepareContext(ctx, insertRecordSQL)
			if err != nil {
				return err
			}
			defer insert.Close()
			for i, a := range records {
				_, err := insert.ExecContext(ctx, a...)
				if isUniqueViolation(err) {
					return odometer.ErrExportRecordExists(f.Records[i].Subject, f.Records[i].Dimension, f.Records[i].Hour)
				}
				if err != nil {
					return err
				}
			}
		}
		for _, a := range f.Accounted {
			res, err := tx.ExecContext(ctx, `UPDATE export_records SET accounted = ?
				WHERE namespace = ? AND destination = ? AND subject = ? AND dimension = ? AND hour = ?`,
				a.Accounted.String(), f.Namespace, f.Destination, a.Subject, a.Dimension, a.Hour.UnixMicro())
			if err != nil {
				return err
			}
			if err := mustAffect(res, odometer.ErrExportRecordNotFound(a.Subject, a.Dimension, a.Hour)); err != nil {
				return err
			}
		}
		for _, a := range f.Accounts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO export_accounts (namespace, destination, subject, dimension, carry, last_hour)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (namespace, destination, subject, dimension) DO UPDATE SET
					carry = excluded.carry, last_hour = excluded.last_hour`,
				f.Namespace, f.Destination, a.Subject, a.Dimension, a.Carry.String(), a.LastHour.UnixMicro()); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE export_destinations SET frozen_through = ? WHERE namespace = ? AND name = ?`,
			f.Hour.Add(time.Hour).UnixMicro(), f.Namespace, f.Destination)
		return err
	})
	return wrapOp(op, err)
}

// UpdateExportRecords stores the sending state (Status, MeteringRecordID,
// Reason, Attempts, NextAttemptAt, UpdatedAt) of existing records, in one
// transaction. ENOTFOUND, with nothing stored, if a record is missing;
// EINVALID if a status is unknown.
func (s *Store) UpdateExportRecords(ctx context.Context, recs []*odometer.ExportRecord) error {
	const op = "update export records"
	for i, r := range recs {
		if err := odometer.CheckExportStatus(fmt.Sprintf("records[%d].status", i), r.Status); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		update, err := tx.PrepareContext(ctx, `UPDATE export_records SET status = ?, metering_record_id = ?,
			reason = ?, attempts = ?, next_attempt_at = ?, updated_at = ?
			WHERE namespace = ? AND destination = ? AND subject = ? AND dimension = ? AND hour = ?`)
		if err != nil {
			return err
		}
		defer update.Close()
		for _, r := range recs {
			res, err := update.ExecContext(ctx, string(r.Status), r.MeteringRecordID, r.Reason, r.Attempts,
				r.NextAttemptAt.UnixMicro(), r.UpdatedAt.UnixMicro(),
				r.Namespace, r.Destination, r.Subject, r.Dimension, r.Hour.UnixMicro())
			if err != nil {
				return err
			}
			if err := mustAffect(res, odometer.ErrExportRecordNotFound(r.Subject, r.Dimension, r.Hour)); err != nil {
				return fmt.Errorf("destination %q: %w", r.Destination, err)
			}
		}
		return nil
	})
	return wrapOp(op, err)
}

// ListExportRecords returns the records matching f ordered by hour, then
// subject, then dimension (byte order); an empty, non-nil slice if none
// match. EINVALID unless f.Limit > 0.
func (s *Store) ListExportRecords(ctx context.Context, f odometer.ExportRecordFilter) ([]*odometer.ExportRecord, error) {
	op := fmt.Sprintf("list export records of destination %q", f.Destination)
	if f.Limit <= 0 {
		return nil, odometer.FieldErrorf("limit", "must be positive, got %d", f.Limit)
	}
	var q strings.Builder
	q.WriteString(`SELECT ` + recordColumns + ` FROM export_records WHERE namespace = ? AND destination = ?`)
	args := []any{f.Namespace, f.Destination}
	cond := func(sql string, arg any) {
		q.WriteString(" AND ")
		q.WriteString(sql)
		args = append(args, arg)
	}
	if len(f.Status) > 0 {
		// One statement text for any number of statuses, for the cache.
		b, err := json.Marshal(f.Status)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		cond("status IN (SELECT value FROM json_each(?))", string(b))
	}
	if f.Subject != "" {
		cond("subject = ?", f.Subject)
	}
	if f.Dimension != "" {
		cond("dimension = ?", f.Dimension)
	}
	if !f.From.IsZero() {
		cond("hour >= ?", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		cond("hour < ?", f.To.UnixMicro())
	}
	if !f.DueBy.IsZero() {
		cond("status = 'pending' AND next_attempt_at <= ?", f.DueBy.UnixMicro())
	}
	q.WriteString(" ORDER BY hour, subject, dimension LIMIT ?")
	args = append(args, f.Limit)
	rows, err := s.query(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	rs, err := scanRecords(rows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return rs, nil
}

// SummarizeExportRecords counts the destination's records with Hour in
// [from, to) (zero: unbounded) by hour, dimension and status, in that order,
// with the sum of their quantities; an empty, non-nil slice if there are
// none.
func (s *Store) SummarizeExportRecords(ctx context.Context, namespace, destination string, from, to time.Time) ([]odometer.ExportSummary, error) {
	op := fmt.Sprintf("summarize export records of destination %q", destination)
	q := `SELECT hour, dimension, status, count(*), sum(quantity), sum(attempts > 0) FROM export_records
		WHERE namespace = ? AND destination = ?`
	args := []any{namespace, destination}
	if !from.IsZero() {
		q += ` AND hour >= ?`
		args = append(args, from.UnixMicro())
	}
	if !to.IsZero() {
		q += ` AND hour < ?`
		args = append(args, to.UnixMicro())
	}
	rows, err := s.query(ctx, q+` GROUP BY hour, dimension, status ORDER BY hour, dimension, status`, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	sums := []odometer.ExportSummary{}
	for rows.Next() {
		var sum odometer.ExportSummary
		var hour int64
		if err := rows.Scan(&hour, &sum.Dimension, &sum.Status, &sum.Records, &sum.Quantity, &sum.InFlight); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		sum.Hour = fromMicros(hour)
		sums = append(sums, sum)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return sums, nil
}

// TryLockExporter takes the exporter lock of this Store, if it is free. One
// process owns the database file (the embedded store runs one node), so
// the lock is a mutex in the Store: it does not exclude another process
// that opened the same file. unlock releases it; calling it again does
// nothing.
func (s *Store) TryLockExporter(ctx context.Context) (unlock func(), ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("lock exporter: %w", err)
	}
	if !s.exporter.TryLock() {
		return nil, false, nil
	}
	var once sync.Once
	return func() { once.Do(s.exporter.Unlock) }, true, nil
}

const recordColumns = `namespace, destination, subject, dimension, hour, customer_id, aws_account_id, license_arn,
	quantity, usage, accounted, late, late_hours, carry, status, metering_record_id, reason, attempts,
	next_attempt_at, frozen_at, updated_at`

var insertRecordSQL = `INSERT INTO export_records (` + recordColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// recordArgs returns r's columns in recordColumns order.
func recordArgs(r *odometer.ExportRecord) ([]any, error) {
	late, err := lateHoursColumn(r.LateHours)
	if err != nil {
		return nil, err
	}
	return []any{r.Namespace, r.Destination, r.Subject, r.Dimension, r.Hour.UnixMicro(),
		r.CustomerID, r.AWSAccountID, r.LicenseArn, r.Quantity, r.Usage.String(), r.Accounted.String(),
		r.Late.String(), late, r.Carry.String(), string(r.Status), r.MeteringRecordID, r.Reason, r.Attempts,
		r.NextAttemptAt.UnixMicro(), r.FrozenAt.UnixMicro(), r.UpdatedAt.UnixMicro()}, nil
}

func scanRecords(rows *sql.Rows) ([]*odometer.ExportRecord, error) {
	defer rows.Close()
	rs := []*odometer.ExportRecord{}
	for rows.Next() {
		var r odometer.ExportRecord
		var hour, next, frozen, updated int64
		var usage, accounted, late, carry string
		var lateHours sql.NullString
		if err := rows.Scan(&r.Namespace, &r.Destination, &r.Subject, &r.Dimension, &hour,
			&r.CustomerID, &r.AWSAccountID, &r.LicenseArn, &r.Quantity, &usage, &accounted,
			&late, &lateHours, &carry, &r.Status, &r.MeteringRecordID, &r.Reason, &r.Attempts,
			&next, &frozen, &updated); err != nil {
			return nil, err
		}
		r.Hour, r.NextAttemptAt, r.FrozenAt, r.UpdatedAt = fromMicros(hour), fromMicros(next), fromMicros(frozen), fromMicros(updated)
		what := func(column string) string {
			return fmt.Sprintf("record (%q, %q, %s): %s", r.Subject, r.Dimension, r.Hour.Format(time.RFC3339), column)
		}
		var err error
		for _, d := range []struct {
			column string
			text   string
			dst    *odometer.Decimal
		}{{"usage", usage, &r.Usage}, {"accounted", accounted, &r.Accounted}, {"late", late, &r.Late}, {"carry", carry, &r.Carry}} {
			if *d.dst, err = odometer.ParseDecimal(d.text); err != nil {
				return nil, fmt.Errorf("%s: %w", what(d.column), err)
			}
		}
		if lateHours.Valid {
			if r.LateHours, err = odometer.UnmarshalExportLate([]byte(lateHours.String)); err != nil {
				return nil, fmt.Errorf("%s: %w", what("late_hours"), err)
			}
		}
		rs = append(rs, &r)
	}
	return rs, rows.Err()
}

// mustAffect returns notFound if res changed no row.
func mustAffect(res sql.Result, notFound error) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound
	}
	return nil
}

// dimensionsColumn encodes dimensions as JSON text (see exportcheck.go), or
// NULL for nil.
func dimensionsColumn(dims []odometer.ExportDimension) (any, error) {
	b, err := odometer.MarshalExportDimensions(dims)
	if err != nil || b == nil {
		return nil, err
	}
	return string(b), nil
}

func parseDimensions(v sql.NullString) ([]odometer.ExportDimension, error) {
	if !v.Valid {
		return nil, nil
	}
	return odometer.UnmarshalExportDimensions([]byte(v.String))
}

// lateHoursColumn encodes late hours as JSON text, or NULL for nil.
func lateHoursColumn(late []odometer.ExportLate) (any, error) {
	b, err := odometer.MarshalExportLate(late)
	if err != nil || b == nil {
		return nil, err
	}
	return string(b), nil
}

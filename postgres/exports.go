package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/odometerhq/odometer"
)

// The records of usage export (odometer.ExportStore).
//
// # Freezes
//
// FreezeExportHour runs in one READ COMMITTED transaction that first locks
// the destination's row (SELECT … FOR UPDATE) and checks its
// frozen_through, then writes the records, the raises, the accounts and the
// new frozen_through. Freezes of one destination therefore commit one at a
// time, on every node: a freeze that waited for the lock reads
// frozen_through as the previous holder committed it, so of two freezes of
// the same hour the second finds the hour frozen (ECONFLICT).
//
// # Deadlocks
//
// Raising Accounted (in a freeze) and storing outcomes (UpdateExportRecords)
// both update existing records, possibly the same ones at once. Both update
// them in key order (byte order, as COLLATE "C" compares), so that waits
// only go from smaller to larger keys and cannot form a cycle.
//
// # The exporter lock
//
// TryLockExporter takes a session-level advisory lock on a connection that
// it keeps out of the pool until unlock, so that one node exports at a
// time. Should the session end (the server restarted, the connection broke),
// the lock is gone; the next TryLockExporter of any node takes it again.
// The lock spares work only: FreezeExportHour is what freezes an hour once.

// exporterLockKey is the advisory lock that makes one node the exporter:
// "exporter" in ASCII. Advisory locks are per database, so Odometer
// databases on one server do not exclude each other's exporters.
const exporterLockKey int64 = 0x6578706f72746572

// unlockTimeout bounds how long unlock waits for pg_advisory_unlock; past
// it the connection is closed, which releases the lock too.
const unlockTimeout = 5 * time.Second

// PutExportDestination creates the destination or replaces its definition,
// keeping the CreatedAt and FrozenThrough of an existing one; a new one
// starts with no hour frozen, whatever d.FrozenThrough says. It reports
// whether it created the destination. EINVALID if a dimension's Multiply or
// Divide is beyond the limits of odometer values.
func (s *Store) PutExportDestination(ctx context.Context, d *odometer.ExportDestination) (created bool, err error) {
	op := fmt.Sprintf("put export destination %q", d.Name)
	dims, err := odometer.MarshalExportDimensions(d.Dimensions)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	err = s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		// ON CONFLICT DO NOTHING waits for a concurrent create of the same
		// destination; the UPDATE then finds it. Only a delete between the
		// two statements sends the loop round again.
		for range 10 {
			tag, err := tx.Exec(ctx, `INSERT INTO export_destinations (`+destinationColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL)
				ON CONFLICT (namespace, name) DO NOTHING`,
				d.Namespace, d.Name, d.ProductCode, d.Region, d.Account, dims, d.StartHour,
				int64(d.Delay), int64(d.Window), int64(d.LateHorizon), d.ZeroRecords, d.DryRun, d.CreatedAt, d.UpdatedAt)
			if err != nil {
				return err
			}
			if created = tag.RowsAffected() == 1; created {
				return nil
			}
			tag, err = tx.Exec(ctx, `UPDATE export_destinations SET product_code = $3, region = $4, account = $5,
				dimensions = $6, start_hour = $7, delay_ns = $8, window_ns = $9, late_horizon_ns = $10,
				zero_records = $11, dry_run = $12, updated_at = $13
				WHERE namespace = $1 AND name = $2`,
				d.Namespace, d.Name, d.ProductCode, d.Region, d.Account, dims, d.StartHour,
				int64(d.Delay), int64(d.Window), int64(d.LateHorizon), d.ZeroRecords, d.DryRun, d.UpdatedAt)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				return nil
			}
		}
		return &noRetryError{errors.New("the destination was deleted and created again 10 times during the put")}
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// FindExportDestination returns the namespace's destination with this
// name. ENOTFOUND if there is none.
func (s *Store) FindExportDestination(ctx context.Context, namespace, name string) (*odometer.ExportDestination, error) {
	var ds []*odometer.ExportDestination
	err := s.read(ctx, fmt.Sprintf("find export destination %q", name), func(ctx context.Context) (err error) {
		ds, err = scanDestinations(s.pool.Query(ctx, `SELECT `+destinationColumns+` FROM export_destinations
			WHERE namespace = $1 AND name = $2`, namespace, name))
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, odometer.ErrExportDestinationNotFound(name)
	}
	return ds[0], nil
}

// ListExportDestinations returns the namespace's destinations ordered by
// name (byte order), or with namespace "" every namespace's, ordered by
// namespace and then name; an empty, non-nil slice if there are none.
func (s *Store) ListExportDestinations(ctx context.Context, namespace string) ([]*odometer.ExportDestination, error) {
	q := `SELECT ` + destinationColumns + ` FROM export_destinations`
	var args []any
	if namespace != "" {
		q += ` WHERE namespace = $1`
		args = append(args, namespace)
	}
	q += ` ORDER BY namespace, name`
	var ds []*odometer.ExportDestination
	err := s.read(ctx, "list export destinations", func(ctx context.Context) (err error) {
		ds, err = scanDestinations(s.pool.Query(ctx, q, args...))
		return err
	})
	return ds, err
}

// DeleteExportDestination removes the destination; its customers, accounts
// and records go with it (ON DELETE CASCADE). ENOTFOUND if there is none.
func (s *Store) DeleteExportDestination(ctx context.Context, namespace, name string) error {
	return s.inTx(ctx, fmt.Sprintf("delete export destination %q", name), func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM export_destinations WHERE namespace = $1 AND name = $2`, namespace, name)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return odometer.ErrExportDestinationNotFound(name)
		}
		return nil
	})
}

// destinationColumns are the columns of an ExportDestination. The legacy
// endpoint column is not among them: it is never read, and new rows get
// its default (0007).
const destinationColumns = `namespace, name, product_code, region, account, dimensions, start_hour,
	delay_ns, window_ns, late_horizon_ns, zero_records, dry_run, created_at, updated_at, frozen_through`

func scanDestinations(rows pgx.Rows, err error) ([]*odometer.ExportDestination, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ds := []*odometer.ExportDestination{}
	for rows.Next() {
		var d odometer.ExportDestination
		var dims []byte
		var delay, window, horizon int64
		var frozen *time.Time
		if err := rows.Scan(&d.Namespace, &d.Name, &d.ProductCode, &d.Region, &d.Account, &dims, &d.StartHour,
			&delay, &window, &horizon, &d.ZeroRecords, &d.DryRun, &d.CreatedAt, &d.UpdatedAt, &frozen); err != nil {
			return nil, &noRetryError{err}
		}
		if dims != nil {
			var err error
			if d.Dimensions, err = odometer.UnmarshalExportDimensions(dims); err != nil {
				return nil, &noRetryError{fmt.Errorf("export destination %q: dimensions: %w", d.Name, err)}
			}
		}
		d.StartHour, d.CreatedAt, d.UpdatedAt = d.StartHour.UTC(), d.CreatedAt.UTC(), d.UpdatedAt.UTC()
		d.Delay, d.Window, d.LateHorizon = time.Duration(delay), time.Duration(window), time.Duration(horizon)
		if frozen != nil {
			d.FrozenThrough = frozen.UTC()
		}
		ds = append(ds, &d)
	}
	return ds, rows.Err()
}

// PutExportCustomer creates or replaces the subject's mapping, keeping the
// CreatedAt of an existing one; a zero From is stored as NULL. ENOTFOUND if
// the destination is missing.
func (s *Store) PutExportCustomer(ctx context.Context, c *odometer.ExportCustomer) error {
	op := fmt.Sprintf("put export customer %q of destination %q", c.Subject, c.Destination)
	var from *time.Time
	if !c.From.IsZero() {
		from = &c.From
	}
	return s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO export_customers (namespace, destination, subject,
			customer_id, aws_account_id, license_arn, from_hour, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (namespace, destination, subject) DO UPDATE SET customer_id = EXCLUDED.customer_id,
				aws_account_id = EXCLUDED.aws_account_id, license_arn = EXCLUDED.license_arn,
				from_hour = EXCLUDED.from_hour, updated_at = EXCLUDED.updated_at`,
			c.Namespace, c.Destination, c.Subject, c.CustomerID, c.AWSAccountID, c.LicenseArn, from, c.CreatedAt, c.UpdatedAt)
		if foreignKeyViolation(err) {
			return odometer.ErrExportDestinationNotFound(c.Destination)
		}
		return err
	})
}

// DeleteExportCustomer removes the subject's mapping. ENOTFOUND if there is
// none.
func (s *Store) DeleteExportCustomer(ctx context.Context, namespace, destination, subject string) error {
	op := fmt.Sprintf("delete export customer %q of destination %q", subject, destination)
	return s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM export_customers
			WHERE namespace = $1 AND destination = $2 AND subject = $3`, namespace, destination, subject)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return odometer.Errorf(odometer.ENOTFOUND, "export customer %q of destination %q not found", subject, destination)
		}
		return nil
	})
}

// ListExportCustomers returns the destination's mappings ordered by
// subject (byte order); an empty, non-nil slice if there are none or the
// destination is missing.
func (s *Store) ListExportCustomers(ctx context.Context, namespace, destination string) ([]*odometer.ExportCustomer, error) {
	var cs []*odometer.ExportCustomer
	err := s.read(ctx, fmt.Sprintf("list export customers of destination %q", destination), func(ctx context.Context) error {
		cs = []*odometer.ExportCustomer{}
		rows, err := s.pool.Query(ctx, `SELECT namespace, destination, subject, customer_id, aws_account_id, license_arn,
			from_hour, created_at, updated_at FROM export_customers
			WHERE namespace = $1 AND destination = $2 ORDER BY subject`, namespace, destination)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c odometer.ExportCustomer
			var from *time.Time
			if err := rows.Scan(&c.Namespace, &c.Destination, &c.Subject, &c.CustomerID, &c.AWSAccountID, &c.LicenseArn,
				&from, &c.CreatedAt, &c.UpdatedAt); err != nil {
				return &noRetryError{err}
			}
			if from != nil {
				c.From = from.UTC()
			}
			c.CreatedAt, c.UpdatedAt = c.CreatedAt.UTC(), c.UpdatedAt.UTC()
			cs = append(cs, &c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return cs, nil
}

// ListExportAccounts returns the destination's accounts ordered by subject,
// then dimension (byte order); an empty, non-nil slice if there are none or
// the destination is missing.
func (s *Store) ListExportAccounts(ctx context.Context, namespace, destination string) ([]odometer.ExportAccount, error) {
	var as []odometer.ExportAccount
	err := s.read(ctx, fmt.Sprintf("list export accounts of destination %q", destination), func(ctx context.Context) error {
		as = []odometer.ExportAccount{}
		rows, err := s.pool.Query(ctx, `SELECT subject, dimension, carry::text, last_hour FROM export_accounts
			WHERE namespace = $1 AND destination = $2 ORDER BY subject, dimension`, namespace, destination)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a odometer.ExportAccount
			var carry string
			if err := rows.Scan(&a.Subject, &a.Dimension, &carry, &a.LastHour); err != nil {
				return &noRetryError{err}
			}
			if a.Carry, err = odometer.ParseDecimal(carry); err != nil {
				return &noRetryError{fmt.Errorf("account (%q, %q): carry: %w", a.Subject, a.Dimension, err)}
			}
			a.LastHour = a.LastHour.UTC()
			as = append(as, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return as, nil
}

// FreezeExportHour writes f in one transaction: the records, the raises of
// earlier records' Accounted, the accounts, and FrozenThrough moved to
// f.Hour + 1 h, with the destination's row locked (see "Freezes" above). On
// error nothing is written. ENOTFOUND if the destination or a record to
// raise is missing; ECONFLICT if the destination's FrozenThrough is neither
// zero nor f.Hour, or a record exists already; EINVALID if f.Hour is not a
// whole hour, a record is not of f's destination or is of a later hour, a
// status is unknown or a decimal is beyond the limits (see checkFreeze).
//
// A freeze whose commit was not confirmed (EUNAVAILABLE) may have been
// made: repeating it then fails with ECONFLICT, and FindExportDestination
// tells which.
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
	raises := slices.Clone(f.Accounted)
	slices.SortFunc(raises, func(a, b odometer.ExportAccounted) int {
		return recordKeyCompare(a.Subject, a.Dimension, a.Hour, b.Subject, b.Dimension, b.Hour)
	})
	return s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		var frozen *time.Time
		err := tx.QueryRow(ctx, `SELECT frozen_through FROM export_destinations
			WHERE namespace = $1 AND name = $2 FOR UPDATE`, f.Namespace, f.Destination).Scan(&frozen)
		if errors.Is(err, pgx.ErrNoRows) {
			return odometer.ErrExportDestinationNotFound(f.Destination)
		}
		if err != nil {
			return err
		}
		if frozen != nil && !frozen.Equal(f.Hour) {
			return odometer.ErrExportFrozenThrough(f.Destination, *frozen, f.Hour)
		}

		// Everything else in one round trip; each result in queue order.
		var b pgx.Batch
		for _, a := range records {
			b.Queue(insertRecordSQL, a...)
		}
		for _, a := range raises {
			b.Queue(`UPDATE export_records SET accounted = $6
				WHERE namespace = $1 AND destination = $2 AND subject = $3 AND dimension = $4 AND hour = $5`,
				f.Namespace, f.Destination, a.Subject, a.Dimension, a.Hour, a.Accounted.String())
		}
		for _, a := range f.Accounts {
			b.Queue(`INSERT INTO export_accounts (namespace, destination, subject, dimension, carry, last_hour)
				VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (namespace, destination, subject, dimension) DO UPDATE SET
					carry = EXCLUDED.carry, last_hour = EXCLUDED.last_hour`,
				f.Namespace, f.Destination, a.Subject, a.Dimension, a.Carry.String(), a.LastHour)
		}
		b.Queue(`UPDATE export_destinations SET frozen_through = $3 WHERE namespace = $1 AND name = $2`,
			f.Namespace, f.Destination, f.Hour.Add(time.Hour))
		br := tx.SendBatch(ctx, &b)
		defer br.Close()
		for _, r := range f.Records {
			_, err := br.Exec()
			if uniqueViolation(err) != "" {
				return odometer.ErrExportRecordExists(r.Subject, r.Dimension, r.Hour)
			}
			if err != nil {
				return err
			}
		}
		for _, a := range raises {
			tag, err := br.Exec()
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return odometer.ErrExportRecordNotFound(a.Subject, a.Dimension, a.Hour)
			}
		}
		for range f.Accounts {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.Close()
	})
}

// UpdateExportRecords stores the sending state (Status, MeteringRecordID,
// Reason, Attempts, NextAttemptAt, UpdatedAt) of existing records, in one
// transaction and in key order (see "Deadlocks" above). ENOTFOUND, with
// nothing stored, if a record is missing; EINVALID if a status is unknown.
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
	sorted := slices.Clone(recs)
	slices.SortFunc(sorted, func(a, b *odometer.ExportRecord) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Destination, b.Destination),
			recordKeyCompare(a.Subject, a.Dimension, a.Hour, b.Subject, b.Dimension, b.Hour))
	})
	return s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		var b pgx.Batch
		for _, r := range sorted {
			b.Queue(`UPDATE export_records SET status = $6, metering_record_id = $7, reason = $8, attempts = $9,
				next_attempt_at = $10, updated_at = $11
				WHERE namespace = $1 AND destination = $2 AND subject = $3 AND dimension = $4 AND hour = $5`,
				r.Namespace, r.Destination, r.Subject, r.Dimension, r.Hour,
				string(r.Status), r.MeteringRecordID, r.Reason, r.Attempts, r.NextAttemptAt, r.UpdatedAt)
		}
		br := tx.SendBatch(ctx, &b)
		defer br.Close()
		for _, r := range sorted {
			tag, err := br.Exec()
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				return odometer.ErrExportRecordNotFound(r.Subject, r.Dimension, r.Hour)
			}
		}
		return br.Close()
	})
}

// ListExportRecords returns the records matching f ordered by hour, then
// subject, then dimension (byte order); an empty, non-nil slice if none
// match. EINVALID unless f.Limit > 0.
func (s *Store) ListExportRecords(ctx context.Context, f odometer.ExportRecordFilter) ([]*odometer.ExportRecord, error) {
	if f.Limit <= 0 {
		return nil, odometer.FieldErrorf("limit", "must be positive, got %d", f.Limit)
	}
	var q strings.Builder
	q.WriteString(`SELECT ` + recordSelect + ` FROM export_records WHERE namespace = $1 AND destination = $2`)
	args := []any{f.Namespace, f.Destination}
	cond := func(sql string, arg any) {
		args = append(args, arg)
		fmt.Fprintf(&q, " AND "+sql, len(args))
	}
	if len(f.Status) > 0 {
		statuses := make([]string, len(f.Status))
		for i, st := range f.Status {
			statuses[i] = string(st)
		}
		cond("status = ANY($%d)", statuses)
	}
	if f.Subject != "" {
		cond("subject = $%d", f.Subject)
	}
	if f.Dimension != "" {
		cond("dimension = $%d", f.Dimension)
	}
	if !f.From.IsZero() {
		cond("hour >= $%d", f.From)
	}
	if !f.To.IsZero() {
		cond("hour < $%d", f.To)
	}
	if !f.DueBy.IsZero() {
		cond("status = 'pending' AND next_attempt_at <= $%d", f.DueBy)
	}
	args = append(args, int64(f.Limit))
	fmt.Fprintf(&q, " ORDER BY hour, subject, dimension LIMIT $%d", len(args))
	var rs []*odometer.ExportRecord
	err := s.read(ctx, fmt.Sprintf("list export records of destination %q", f.Destination), func(ctx context.Context) (err error) {
		rs, err = scanRecords(s.pool.Query(ctx, q.String(), args...))
		return err
	})
	return rs, err
}

// SummarizeExportRecords counts the destination's records with Hour in
// [from, to) (zero: unbounded) by hour, dimension and status, in that order,
// with the sum of their quantities; an empty, non-nil slice if there are
// none.
func (s *Store) SummarizeExportRecords(ctx context.Context, namespace, destination string, from, to time.Time) ([]odometer.ExportSummary, error) {
	q := `SELECT hour, dimension, status, count(*), sum(quantity)::bigint, count(*) FILTER (WHERE attempts > 0) FROM export_records
		WHERE namespace = $1 AND destination = $2`
	args := []any{namespace, destination}
	if !from.IsZero() {
		args = append(args, from)
		q += fmt.Sprintf(` AND hour >= $%d`, len(args))
	}
	if !to.IsZero() {
		args = append(args, to)
		q += fmt.Sprintf(` AND hour < $%d`, len(args))
	}
	q += ` GROUP BY hour, dimension, status ORDER BY hour, dimension, status`
	var sums []odometer.ExportSummary
	err := s.read(ctx, fmt.Sprintf("summarize export records of destination %q", destination), func(ctx context.Context) error {
		sums = []odometer.ExportSummary{}
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var sum odometer.ExportSummary
			var status string
			if err := rows.Scan(&sum.Hour, &sum.Dimension, &status, &sum.Records, &sum.Quantity, &sum.InFlight); err != nil {
				return &noRetryError{err}
			}
			sum.Hour, sum.Status = sum.Hour.UTC(), odometer.ExportStatus(status)
			sums = append(sums, sum)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return sums, nil
}

// TryLockExporter takes the exporter's advisory lock (exporterLockKey) on
// a connection of its own, if no session holds it; see "The exporter lock"
// above. unlock releases the lock and returns the connection to the pool;
// calling it again does nothing, and it works after ctx is done. unlock
// must be called before Close, which waits for the connection.
func (s *Store) TryLockExporter(ctx context.Context) (unlock func(), ok bool, err error) {
	const op = "lock exporter"
	if s.closed.Load() {
		return nil, false, fmt.Errorf("%s: %w", op, errClosed)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, false, storeError(op, err)
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, exporterLockKey).Scan(&locked); err != nil {
		// The answer may have been lost after the lock was taken: the
		// session goes, and any lock with it.
		discard(conn)
		return nil, false, storeError(op, err)
	}
	if !locked {
		conn.Release()
		return nil, false, nil
	}
	var once sync.Once
	return func() { once.Do(func() { s.unlockExporter(conn) }) }, true, nil
}

// unlockExporter releases the exporter lock held by conn's session and
// returns conn to the pool; if that fails, it closes the connection, which
// releases the lock as well.
func (s *Store) unlockExporter(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	var released bool
	err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, exporterLockKey).Scan(&released)
	if err != nil || !released {
		// Never give the pool a session that may hold the lock.
		s.log.Warn("postgres: unlock exporter failed; closing its connection", "released", released, "err", err)
		discard(conn)
		return
	}
	conn.Release()
}

// discard closes a connection taken from the pool instead of returning it.
func discard(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	_ = conn.Hijack().Close(ctx)
}

// recordKeyCompare orders records of one destination by key (subject,
// dimension, hour), in byte order as the primary key compares.
func recordKeyCompare(subjectA, dimensionA string, hourA time.Time, subjectB, dimensionB string, hourB time.Time) int {
	return cmp.Or(strings.Compare(subjectA, subjectB), strings.Compare(dimensionA, dimensionB), hourA.Compare(hourB))
}

// recordColumns names the columns in the order recordArgs gives them;
// recordSelect reads them back, with decimals as text so that they reach
// odometer.ParseDecimal exactly as stored.
const (
	recordColumns = `namespace, destination, subject, dimension, hour, customer_id, aws_account_id, license_arn,
	quantity, usage, accounted, late, late_hours, carry, status, metering_record_id, reason, attempts,
	next_attempt_at, frozen_at, updated_at`
	recordSelect = `namespace, destination, subject, dimension, hour, customer_id, aws_account_id, license_arn,
	quantity, usage::text, accounted::text, late::text, late_hours, carry::text, status, metering_record_id, reason, attempts,
	next_attempt_at, frozen_at, updated_at`
	insertRecordSQL = `INSERT INTO export_records (` + recordColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`
)

// recordArgs returns r's columns in recordColumns order; decimals as their
// canonical text.
func recordArgs(r *odometer.ExportRecord) ([]any, error) {
	late, err := odometer.MarshalExportLate(r.LateHours)
	if err != nil {
		return nil, err
	}
	return []any{r.Namespace, r.Destination, r.Subject, r.Dimension, r.Hour,
		r.CustomerID, r.AWSAccountID, r.LicenseArn, r.Quantity, r.Usage.String(), r.Accounted.String(),
		r.Late.String(), late, r.Carry.String(), string(r.Status), r.MeteringRecordID, r.Reason, r.Attempts,
		r.NextAttemptAt, r.FrozenAt, r.UpdatedAt}, nil
}

func scanRecords(rows pgx.Rows, err error) ([]*odometer.ExportRecord, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	rs := []*odometer.ExportRecord{}
	for rows.Next() {
		var r odometer.ExportRecord
		var usage, accounted, late, carry, status string
		var lateHours []byte
		if err := rows.Scan(&r.Namespace, &r.Destination, &r.Subject, &r.Dimension, &r.Hour,
			&r.CustomerID, &r.AWSAccountID, &r.LicenseArn, &r.Quantity, &usage, &accounted,
			&late, &lateHours, &carry, &status, &r.MeteringRecordID, &r.Reason, &r.Attempts,
			&r.NextAttemptAt, &r.FrozenAt, &r.UpdatedAt); err != nil {
			return nil, &noRetryError{err}
		}
		r.Status = odometer.ExportStatus(status)
		r.Hour, r.NextAttemptAt, r.FrozenAt, r.UpdatedAt = r.Hour.UTC(), r.NextAttemptAt.UTC(), r.FrozenAt.UTC(), r.UpdatedAt.UTC()
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
				return nil, &noRetryError{fmt.Errorf("%s: %w", what(d.column), err)}
			}
		}
		if lateHours != nil {
			if r.LateHours, err = odometer.UnmarshalExportLate(lateHours); err != nil {
				return nil, &noRetryError{fmt.Errorf("%s: %w", what("late_hours"), err)}
			}
		}
		rs = append(rs, &r)
	}
	return rs, rows.Err()
}

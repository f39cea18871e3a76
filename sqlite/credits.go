package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/odometerhq/odometer"
)

// The credit records (odometer.CreditStore). Every write runs in one
// transaction on the single writer connection, which BEGINs IMMEDIATE: the
// transaction holds SQLite's write lock from its first statement, so the
// state it reads (a ledger's version, its last reset, a feature's archive
// time) cannot change before it commits, in this process or any other. That
// is what serializes a ledger's changes; the checks that depend on the
// ledger's state therefore run inside the transaction that writes.

// CreateFeature stores f. ECONFLICT if an unarchived feature of the
// namespace has f's key, or a feature has f's ID; EINVALID without an ID.
func (s *Store) CreateFeature(ctx context.Context, f *odometer.Feature) error {
	op := fmt.Sprintf("create feature %q", f.Key)
	if f.ID == "" {
		return fmt.Errorf("%s: %w", op, odometer.FieldErrorf("id", "required"))
	}
	filters, err := jsonColumn(f.MeterGroupByFilters == nil, f.MeterGroupByFilters)
	if err != nil {
		return fmt.Errorf("%s: meterGroupByFilters: %w", op, err)
	}
	metadata, err := jsonColumn(f.Metadata == nil, f.Metadata)
	if err != nil {
		return fmt.Errorf("%s: metadata: %w", op, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO features (`+featureColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			f.Namespace, f.ID, f.Key, f.Name, f.MeterSlug, filters, metadata,
			f.CreatedAt.UnixMicro(), f.UpdatedAt.UnixMicro(), microsOrNull(f.ArchivedAt))
		if !isUniqueViolation(err) {
			return err
		}
		// The unique indexes are the check; this only names which one. A
		// failed statement leaves the transaction usable in SQLite.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM features
			WHERE namespace = ? AND key = ? AND archived_at IS NULL`, f.Namespace, f.Key).Scan(&n); err != nil {
			return err
		}
		if n > 0 && f.ArchivedAt == nil {
			return odometer.Errorf(odometer.ECONFLICT, "a feature with key %q already exists", f.Key)
		}
		return odometer.Errorf(odometer.ECONFLICT, "a feature with id %q already exists", f.ID)
	})
	return wrapOp(op, err)
}

// FindFeature returns the namespace's feature with ID idOrKey (archived or
// not), or else its unarchived feature with key idOrKey. ENOTFOUND if none.
func (s *Store) FindFeature(ctx context.Context, namespace, idOrKey string) (*odometer.Feature, error) {
	// A key may look like an ID; the ID wins.
	rows, err := s.query(ctx, `SELECT `+featureColumns+` FROM features
		WHERE namespace = ? AND (id = ? OR (key = ? AND archived_at IS NULL))
		ORDER BY id = ? DESC LIMIT 1`, namespace, idOrKey, idOrKey, idOrKey)
	if err != nil {
		return nil, fmt.Errorf("find feature %q: %w", idOrKey, err)
	}
	fs, err := scanFeatures(rows)
	if err != nil {
		return nil, fmt.Errorf("find feature %q: %w", idOrKey, err)
	}
	if len(fs) == 0 {
		return nil, odometer.Errorf(odometer.ENOTFOUND, "feature %q not found", idOrKey)
	}
	return fs[0], nil
}

// ListFeatures returns the namespace's features ordered by key, then
// creation time, then ID; archived ones only if includeArchived. An empty,
// non-nil slice if there are none.
func (s *Store) ListFeatures(ctx context.Context, namespace string, includeArchived bool) ([]*odometer.Feature, error) {
	q := `SELECT ` + featureColumns + ` FROM features WHERE namespace = ?`
	if !includeArchived {
		q += ` AND archived_at IS NULL`
	}
	rows, err := s.query(ctx, q+` ORDER BY key, created_at, id`, namespace)
	if err != nil {
		return nil, fmt.Errorf("list features: %w", err)
	}
	fs, err := scanFeatures(rows)
	if err != nil {
		return nil, fmt.Errorf("list features: %w", err)
	}
	return fs, nil
}

// ArchiveFeature sets the feature's ArchivedAt to at and returns it.
// ENOTFOUND if the namespace has no feature with this ID; ECONFLICT if it is
// archived already.
func (s *Store) ArchiveFeature(ctx context.Context, namespace, id string, at time.Time) (*odometer.Feature, error) {
	var f *odometer.Feature
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE features SET archived_at = ?
			WHERE namespace = ? AND id = ? AND archived_at IS NULL
			RETURNING `+featureColumns, at.UnixMicro(), namespace, id)
		if err != nil {
			return err
		}
		fs, err := scanFeatures(rows)
		if err != nil {
			return err
		}
		if len(fs) == 1 {
			f = fs[0]
			return nil
		}
		var archived sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT archived_at FROM features WHERE namespace = ? AND id = ?`,
			namespace, id).Scan(&archived)
		if errors.Is(err, sql.ErrNoRows) {
			return odometer.Errorf(odometer.ENOTFOUND, "feature %q not found", id)
		}
		if err != nil {
			return err
		}
		return odometer.Errorf(odometer.ECONFLICT, "feature %q is archived already (at %s)",
			id, fromMicros(archived.Int64).Format(time.RFC3339Nano))
	})
	if err != nil {
		return nil, fmt.Errorf("archive feature %q: %w", id, err)
	}
	return f, nil
}

// DeleteFeature removes the feature if no grant refers to it. ENOTFOUND if
// the namespace has no feature with this ID; ECONFLICT if a grant refers to
// it (the feature should be archived instead).
func (s *Store) DeleteFeature(ctx context.Context, namespace, id string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var exists, used int
		if err := tx.QueryRowContext(ctx, `SELECT
			EXISTS (SELECT 1 FROM features WHERE namespace = ? AND id = ?),
			EXISTS (SELECT 1 FROM grants WHERE namespace = ? AND feature_id = ?)`,
			namespace, id, namespace, id).Scan(&exists, &used); err != nil {
			return err
		}
		if exists == 0 {
			return odometer.Errorf(odometer.ENOTFOUND, "feature %q not found", id)
		}
		if used == 1 {
			return odometer.ErrFeatureInUse(id)
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM features WHERE namespace = ? AND id = ?`, namespace, id)
		if isForeignKeyViolation(err) {
			return odometer.ErrFeatureInUse(id) // the foreign key agrees with the check above
		}
		return err
	})
	return wrapOp(fmt.Sprintf("delete feature %q", id), err)
}

const featureColumns = `namespace, id, key, name, meter_slug, meter_group_by_filters, metadata,
	created_at, updated_at, archived_at`

func scanFeatures(rows *sql.Rows) ([]*odometer.Feature, error) {
	defer rows.Close()
	fs := []*odometer.Feature{}
	for rows.Next() {
		var f odometer.Feature
		var filters, metadata sql.NullString
		var created, updated int64
		var archived sql.NullInt64
		if err := rows.Scan(&f.Namespace, &f.ID, &f.Key, &f.Name, &f.MeterSlug, &filters, &metadata,
			&created, &updated, &archived); err != nil {
			return nil, err
		}
		if err := unmarshalNullable(filters, &f.MeterGroupByFilters); err != nil {
			return nil, fmt.Errorf("feature %q: meter_group_by_filters: %w", f.ID, err)
		}
		if err := unmarshalNullable(metadata, &f.Metadata); err != nil {
			return nil, fmt.Errorf("feature %q: metadata: %w", f.ID, err)
		}
		f.CreatedAt, f.UpdatedAt, f.ArchivedAt = fromMicros(created), fromMicros(updated), timeOrNil(archived)
		fs = append(fs, &f)
	}
	return fs, rows.Err()
}

// CreateLedger stores l with Version 0 (and sets l.Version to 0).
// ECONFLICT if the subject has a ledger in the namespace already, with a
// message that names that ledger's ID, or if a ledger has l's ID.
func (s *Store) CreateLedger(ctx context.Context, l *odometer.Ledger) error {
	op := fmt.Sprintf("create ledger for subject %q", l.Subject)
	if l.ID == "" {
		return fmt.Errorf("%s: %w", op, odometer.FieldErrorf("id", "required"))
	}
	metadata, err := jsonColumn(l.Metadata == nil, l.Metadata)
	if err != nil {
		return fmt.Errorf("%s: metadata: %w", op, err)
	}
	var interval, zone, anchor any
	if rs := l.ResetSchedule; rs != nil {
		interval, zone, anchor = rs.Interval, rs.TimeZone, rs.Anchor.UnixMicro()
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO ledgers (`+ledgerColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`,
			l.Namespace, l.ID, l.Subject, metadata, interval, anchor, zone, l.CreatedAt.UnixMicro())
		if !isUniqueViolation(err) {
			return err
		}
		var existing string
		err = tx.QueryRowContext(ctx, `SELECT id FROM ledgers WHERE namespace = ? AND subject = ?`,
			l.Namespace, l.Subject).Scan(&existing)
		if errors.Is(err, sql.ErrNoRows) {
			return odometer.Errorf(odometer.ECONFLICT, "a ledger with id %q already exists", l.ID)
		}
		if err != nil {
			return err
		}
		return odometer.ErrSubjectHasLedger(l.Subject, existing)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.Version = 0
	return nil
}

// FindLedger returns the namespace's ledger with this ID. ENOTFOUND if none.
func (s *Store) FindLedger(ctx context.Context, namespace, id string) (*odometer.Ledger, error) {
	rows, err := s.query(ctx, `SELECT `+ledgerColumns+` FROM ledgers
		WHERE namespace = ? AND id = ?`, namespace, id)
	if err != nil {
		return nil, fmt.Errorf("find ledger %q: %w", id, err)
	}
	ls, err := scanLedgers(rows)
	if err != nil {
		return nil, fmt.Errorf("find ledger %q: %w", id, err)
	}
	if len(ls) == 0 {
		return nil, odometer.ErrLedgerNotFound(id)
	}
	return ls[0], nil
}

// ListLedgers returns the ledgers matching f ordered by subject (byte
// order), ascending or descending, then by ID the same way. SubjectLike
// matches a substring literally and case-sensitively. EINVALID unless
// f.Limit > 0 and f.Offset >= 0.
func (s *Store) ListLedgers(ctx context.Context, f odometer.LedgerFilter) ([]*odometer.Ledger, error) {
	if f.Limit <= 0 {
		return nil, odometer.FieldErrorf("limit", "must be positive, got %d", f.Limit)
	}
	if f.Offset < 0 {
		return nil, odometer.FieldErrorf("offset", "must not be negative, got %d", f.Offset)
	}
	q := `SELECT ` + ledgerColumns + ` FROM ledgers WHERE namespace = ?`
	args := []any{f.Namespace}
	if f.Subject != "" {
		q += ` AND subject = ?`
		args = append(args, f.Subject)
	}
	// instr, not LIKE: LIKE would need its wildcards escaped and is
	// case-insensitive for ASCII.
	if f.SubjectLike != "" {
		q += ` AND instr(subject, ?) > 0`
		args = append(args, f.SubjectLike)
	}
	if f.Descending {
		q += ` ORDER BY subject DESC, id DESC`
	} else {
		q += ` ORDER BY subject, id`
	}
	q += ` LIMIT ? OFFSET ?`
	args = append(args, f.Limit, f.Offset)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list ledgers: %w", err)
	}
	ls, err := scanLedgers(rows)
	if err != nil {
		return nil, fmt.Errorf("list ledgers: %w", err)
	}
	return ls, nil
}

const ledgerColumns = `namespace, id, subject, metadata, reset_interval, reset_anchor, reset_time_zone,
	created_at, version`

func scanLedgers(rows *sql.Rows) ([]*odometer.Ledger, error) {
	defer rows.Close()
	ls := []*odometer.Ledger{}
	for rows.Next() {
		var l odometer.Ledger
		var metadata, interval, zone sql.NullString
		var anchor sql.NullInt64
		var created int64
		if err := rows.Scan(&l.Namespace, &l.ID, &l.Subject, &metadata, &interval, &anchor, &zone,
			&created, &l.Version); err != nil {
			return nil, err
		}
		if err := unmarshalNullable(metadata, &l.Metadata); err != nil {
			return nil, fmt.Errorf("ledger %q: metadata: %w", l.ID, err)
		}
		if interval.Valid {
			l.ResetSchedule = &odometer.ResetSchedule{Interval: interval.String, Anchor: fromMicros(anchor.Int64), TimeZone: zone.String}
		}
		l.CreatedAt = fromMicros(created)
		ls = append(ls, &l)
	}
	return ls, rows.Err()
}

// ledgerState is what a ledger's changes are checked against: read inside
// the writing transaction, which holds the write lock.
type ledgerState struct {
	version   int64
	lastReset sql.NullInt64 // microseconds; NULL before the first reset
}

// lockLedger reads the ledger's state in tx. ENOTFOUND if there is no such
// ledger. The transaction already holds the database's write lock (BEGIN
// IMMEDIATE), so nothing changes the state until it ends.
func lockLedger(ctx context.Context, tx *sql.Tx, namespace, id string) (ledgerState, error) {
	var st ledgerState
	err := tx.QueryRowContext(ctx, `SELECT version,
		(SELECT max(effective_at) FROM resets WHERE namespace = ledgers.namespace AND ledger_id = ledgers.id)
		FROM ledgers WHERE namespace = ? AND id = ?`, namespace, id).Scan(&st.version, &st.lastReset)
	if errors.Is(err, sql.ErrNoRows) {
		return st, odometer.ErrLedgerNotFound(id)
	}
	return st, err
}

// checkNotBefore returns an ECONFLICT error if t is before the ledger's
// last reset: what a period has closed cannot change.
func (st ledgerState) checkNotBefore(what string, t time.Time) error {
	if st.lastReset.Valid && t.UnixMicro() < st.lastReset.Int64 {
		return odometer.ErrBeforeLastReset(what, t, fromMicros(st.lastReset.Int64))
	}
	return nil
}

// bumpVersion counts one change of the ledger.
func bumpVersion(ctx context.Context, tx *sql.Tx, namespace, id string) error {
	_, err := tx.ExecContext(ctx, `UPDATE ledgers SET version = version + 1 WHERE namespace = ? AND id = ?`, namespace, id)
	return err
}

// CreateGrant stores g and increments its ledger's Version, in one
// transaction. ENOTFOUND if the ledger or the feature is missing; ECONFLICT
// if g.EffectiveAt is before the ledger's last reset, the feature is
// archived, or a grant has g's ID; EINVALID without an ID, with ParentID or
// ResetID set (only CreateReset stores those) or with an amount outside
// the decimal limits.
func (s *Store) CreateGrant(ctx context.Context, g *odometer.Grant) error {
	op := fmt.Sprintf("create grant %q in ledger %q", g.ID, g.LedgerID)
	if err := g.CheckStorable(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if g.ParentID != "" || g.ResetID != "" {
		return fmt.Errorf("%s: %w", op, odometer.FieldErrorf("parentId",
			"only a reset's rollover makes grants with a parent or a reset (CreateReset)"))
	}
	args, err := grantArgs(g)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := lockLedger(ctx, tx, g.Namespace, g.LedgerID)
		if err != nil {
			return err
		}
		var archived sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT archived_at FROM features WHERE namespace = ? AND id = ?`,
			g.Namespace, g.FeatureID).Scan(&archived)
		if errors.Is(err, sql.ErrNoRows) {
			return odometer.Errorf(odometer.ENOTFOUND, "feature %q not found", g.FeatureID)
		}
		if err != nil {
			return err
		}
		if archived.Valid {
			return odometer.Errorf(odometer.ECONFLICT, "feature %q is archived: it takes no new grants", g.FeatureID)
		}
		if err := st.checkNotBefore("effectiveAt", g.EffectiveAt); err != nil {
			return err
		}
		if err := insertGrant(ctx, tx, g, args); err != nil {
			return err
		}
		return bumpVersion(ctx, tx, g.Namespace, g.LedgerID)
	})
	return wrapOp(op, err)
}

func insertGrant(ctx context.Context, tx *sql.Tx, g *odometer.Grant, args []any) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO grants (`+grantColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	if isUniqueViolation(err) {
		return odometer.Errorf(odometer.ECONFLICT, "a grant with id %q already exists", g.ID)
	}
	return err
}

// VoidGrant sets the grant's VoidedAt to at, increments its ledger's
// Version, and returns the grant. ENOTFOUND if the ledger or the grant (in
// that ledger) is missing; ECONFLICT if the grant is voided already or at is
// before the ledger's last reset.
func (s *Store) VoidGrant(ctx context.Context, namespace, ledgerID, grantID string, at time.Time) (*odometer.Grant, error) {
	var g *odometer.Grant
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := lockLedger(ctx, tx, namespace, ledgerID)
		if err != nil {
			return err
		}
		var voided sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT voided_at FROM grants WHERE namespace = ? AND ledger_id = ? AND id = ?`,
			namespace, ledgerID, grantID).Scan(&voided)
		if errors.Is(err, sql.ErrNoRows) {
			return odometer.ErrGrantNotFound(grantID, ledgerID)
		}
		if err != nil {
			return err
		}
		if voided.Valid {
			return odometer.Errorf(odometer.ECONFLICT, "grant %q is voided already (at %s)",
				grantID, fromMicros(voided.Int64).Format(time.RFC3339Nano))
		}
		if err := st.checkNotBefore("voidedAt", at); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `UPDATE grants SET voided_at = ?
			WHERE namespace = ? AND ledger_id = ? AND id = ? RETURNING `+grantColumns,
			at.UnixMicro(), namespace, ledgerID, grantID)
		if err != nil {
			return err
		}
		gs, err := scanGrants(rows)
		if err != nil {
			return err
		}
		if len(gs) != 1 {
			return fmt.Errorf("the update returned %d grants, want 1", len(gs))
		}
		g = gs[0]
		return bumpVersion(ctx, tx, namespace, ledgerID)
	})
	if err != nil {
		return nil, fmt.Errorf("void grant %q in ledger %q: %w", grantID, ledgerID, err)
	}
	return g, nil
}

// FindGrant returns the grant with this ID in the ledger. ENOTFOUND if
// there is none.
func (s *Store) FindGrant(ctx context.Context, namespace, ledgerID, grantID string) (*odometer.Grant, error) {
	rows, err := s.query(ctx, `SELECT `+grantColumns+` FROM grants
		WHERE namespace = ? AND ledger_id = ? AND id = ?`, namespace, ledgerID, grantID)
	if err != nil {
		return nil, fmt.Errorf("find grant %q: %w", grantID, err)
	}
	gs, err := scanGrants(rows)
	if err != nil {
		return nil, fmt.Errorf("find grant %q: %w", grantID, err)
	}
	if len(gs) == 0 {
		return nil, odometer.ErrGrantNotFound(grantID, ledgerID)
	}
	return gs[0], nil
}

// ListGrants returns the ledger's grants matching f, ordered by
// EffectiveAt, then CreatedAt, then ID; an empty, non-nil slice if none
// match. ENOTFOUND if the ledger is missing.
func (s *Store) ListGrants(ctx context.Context, f odometer.GrantFilter) ([]*odometer.Grant, error) {
	q := `SELECT ` + grantColumns + ` FROM grants WHERE namespace = ? AND ledger_id = ?`
	args := []any{f.Namespace, f.LedgerID}
	if f.FeatureID != "" {
		q += ` AND feature_id = ?`
		args = append(args, f.FeatureID)
	}
	if !f.IncludeVoid {
		q += ` AND voided_at IS NULL`
	}
	if !f.From.IsZero() {
		q += ` AND effective_at >= ?`
		args = append(args, f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		q += ` AND effective_at < ?`
		args = append(args, f.To.UnixMicro())
	}
	q += ` ORDER BY effective_at, created_at, id`
	op := fmt.Sprintf("list grants of ledger %q", f.LedgerID)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	gs, err := scanGrants(rows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(gs) == 0 {
		if err := s.ledgerExists(ctx, op, f.Namespace, f.LedgerID); err != nil {
			return nil, err
		}
	}
	return gs, nil
}

// ledgerExists returns ENOTFOUND if the ledger is missing, so that a
// mistyped ledger ID is not mistaken for an empty ledger. Ledgers are never
// deleted, so checking after an empty listing is as good as before it.
func (s *Store) ledgerExists(ctx context.Context, op, namespace, id string) error {
	var n int
	if err := s.queryRow(ctx, `SELECT count(*) FROM ledgers WHERE namespace = ? AND id = ?`,
		namespace, id).Scan(&n); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, odometer.ErrLedgerNotFound(id))
	}
	return nil
}

const grantColumns = `namespace, id, ledger_id, feature_id, amount, priority, effective_at,
	expiration_count, expiration_duration, expires_at, rollover_type, rollover_max_amount,
	recurrence_interval, recurrence_anchor, parent_id, reset_id, start_balance, metadata,
	created_at, voided_at`

// grantArgs returns g's columns in grantColumns order. Decimals are stored
// as their canonical text, "" references as NULL (for the foreign keys).
func grantArgs(g *odometer.Grant) ([]any, error) {
	metadata, err := jsonColumn(g.Metadata == nil, g.Metadata)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return []any{g.Namespace, g.ID, g.LedgerID, g.FeatureID, g.Amount.String(), g.Priority,
		g.EffectiveAt.UnixMicro(), g.ExpirationCount, g.ExpirationDuration, microsOrNull(g.ExpiresAt),
		g.RolloverType, decimalOrNull(g.RolloverMaxAmount), g.RecurrenceInterval, microsOrNull(g.RecurrenceAnchor),
		textOrNull(g.ParentID), textOrNull(g.ResetID), decimalOrNull(g.StartBalance), metadata,
		g.CreatedAt.UnixMicro(), microsOrNull(g.VoidedAt)}, nil
}

func scanGrants(rows *sql.Rows) ([]*odometer.Grant, error) {
	defer rows.Close()
	gs := []*odometer.Grant{}
	for rows.Next() {
		var g odometer.Grant
		var amount string
		var maxAmount, parent, reset, start, metadata sql.NullString
		var effective, created int64
		var expires, anchor, voided sql.NullInt64
		if err := rows.Scan(&g.Namespace, &g.ID, &g.LedgerID, &g.FeatureID, &amount, &g.Priority, &effective,
			&g.ExpirationCount, &g.ExpirationDuration, &expires, &g.RolloverType, &maxAmount,
			&g.RecurrenceInterval, &anchor, &parent, &reset, &start, &metadata,
			&created, &voided); err != nil {
			return nil, err
		}
		var err error
		if g.Amount, err = odometer.ParseDecimal(amount); err != nil {
			return nil, fmt.Errorf("grant %q: amount: %w", g.ID, err)
		}
		if g.RolloverMaxAmount, err = decimalOrNil(maxAmount); err != nil {
			return nil, fmt.Errorf("grant %q: rollover_max_amount: %w", g.ID, err)
		}
		if g.StartBalance, err = decimalOrNil(start); err != nil {
			return nil, fmt.Errorf("grant %q: start_balance: %w", g.ID, err)
		}
		if err := unmarshalNullable(metadata, &g.Metadata); err != nil {
			return nil, fmt.Errorf("grant %q: metadata: %w", g.ID, err)
		}
		g.ParentID, g.ResetID = parent.String, reset.String
		g.EffectiveAt, g.CreatedAt = fromMicros(effective), fromMicros(created)
		g.ExpiresAt, g.RecurrenceAnchor, g.VoidedAt = timeOrNil(expires), timeOrNil(anchor), timeOrNil(voided)
		gs = append(gs, &g)
	}
	return gs, rows.Err()
}

// CreateReset stores r and its rollover grants and increments the
// ledger's Version once, all in one transaction: on error nothing is
// stored. ENOTFOUND if the ledger, or a rollover grant's parent (in the
// ledger) or feature, is missing; ECONFLICT if the ledger's Version is not
// version, r.EffectiveAt is not after the ledger's last reset, or an ID is
// taken; EINVALID if a rollover grant does not belong to r (see
// checkRollover).
func (s *Store) CreateReset(ctx context.Context, r *odometer.Reset, rollover []*odometer.Grant, version int64) error {
	op := fmt.Sprintf("create reset of ledger %q at %s", r.LedgerID, r.EffectiveAt.UTC().Format(time.RFC3339))
	if err := odometer.CheckRollover(r, rollover); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	args := make([][]any, len(rollover))
	for i, g := range rollover {
		a, err := grantArgs(g)
		if err != nil {
			return fmt.Errorf("%s: rollover grant %q: %w", op, g.ID, err)
		}
		args[i] = a
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st, err := lockLedger(ctx, tx, r.Namespace, r.LedgerID)
		if err != nil {
			return err
		}
		if st.version != version {
			return odometer.ErrStaleLedger(r.LedgerID, st.version, version)
		}
		if st.lastReset.Valid && r.EffectiveAt.UnixMicro() <= st.lastReset.Int64 {
			return odometer.ErrResetNotAfterLast(r.EffectiveAt, fromMicros(st.lastReset.Int64))
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO resets (namespace, id, ledger_id, effective_at, created_at, automatic)
			VALUES (?, ?, ?, ?, ?, ?)`, r.Namespace, r.ID, r.LedgerID, r.EffectiveAt.UnixMicro(), r.CreatedAt.UnixMicro(), r.Automatic)
		if isUniqueViolation(err) {
			return odometer.Errorf(odometer.ECONFLICT, "a reset with id %q already exists", r.ID)
		}
		if err != nil {
			return err
		}
		for i, g := range rollover {
			var parent, feature int
			if err := tx.QueryRowContext(ctx, `SELECT
				EXISTS (SELECT 1 FROM grants WHERE namespace = ? AND ledger_id = ? AND id = ?),
				EXISTS (SELECT 1 FROM features WHERE namespace = ? AND id = ?)`,
				g.Namespace, g.LedgerID, g.ParentID, g.Namespace, g.FeatureID).Scan(&parent, &feature); err != nil {
				return err
			}
			if parent == 0 {
				return odometer.Errorf(odometer.ENOTFOUND, "rollover grant %q: parent grant %q not found in ledger %q",
					g.ID, g.ParentID, g.LedgerID)
			}
			// Archived features are fine: their grants keep burning, and
			// a rollover continues a grant.
			if feature == 0 {
				return odometer.Errorf(odometer.ENOTFOUND, "rollover grant %q: feature %q not found", g.ID, g.FeatureID)
			}
			if err := insertGrant(ctx, tx, g, args[i]); err != nil {
				return err
			}
		}
		return bumpVersion(ctx, tx, r.Namespace, r.LedgerID)
	})
	return wrapOp(op, err)
}

// ListResets returns the ledger's resets ordered by EffectiveAt; an empty,
// non-nil slice if there are none. ENOTFOUND if the ledger is missing.
func (s *Store) ListResets(ctx context.Context, namespace, ledgerID string) ([]*odometer.Reset, error) {
	op := fmt.Sprintf("list resets of ledger %q", ledgerID)
	rows, err := s.query(ctx, `SELECT namespace, id, ledger_id, effective_at, created_at, automatic
		FROM resets WHERE namespace = ? AND ledger_id = ? ORDER BY effective_at`, namespace, ledgerID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	rs := []*odometer.Reset{}
	for rows.Next() {
		var r odometer.Reset
		var effective, created int64
		if err := rows.Scan(&r.Namespace, &r.ID, &r.LedgerID, &effective, &created, &r.Automatic); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		r.EffectiveAt, r.CreatedAt = fromMicros(effective), fromMicros(created)
		rs = append(rs, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(rs) == 0 {
		if err := s.ledgerExists(ctx, op, namespace, ledgerID); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// inTx runs fn in a write transaction and commits it if fn succeeds.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// wrapOp puts op in front of a non-nil error.
func wrapOp(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}

func textOrNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func decimalOrNull(d *odometer.Decimal) any {
	if d == nil {
		return nil
	}
	return d.String()
}

func decimalOrNil(v sql.NullString) (*odometer.Decimal, error) {
	if !v.Valid {
		return nil, nil
	}
	d, err := odometer.ParseDecimal(v.String)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// unmarshalNullable decodes a JSON column into dst, leaving it nil for NULL.
func unmarshalNullable(v sql.NullString, dst any) error {
	if !v.Valid {
		return nil
	}
	return json.Unmarshal([]byte(v.String), dst)
}

func isForeignKeyViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintForeignKey
}

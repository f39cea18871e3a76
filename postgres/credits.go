package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/odometerhq/odometer"
)

// The credit records (odometer.CreditStore).
//
// # Per-ledger serialization
//
// Every change of a ledger (a grant, a void, a reset) runs in one READ
// COMMITTED transaction that first locks the ledger's row (SELECT … FOR
// UPDATE), then reads the ledger's last reset in a statement of its own,
// checks the change against both, writes it, and increments the ledger's
// version. Changes of one ledger therefore commit one at a time, on every
// node, and each checks the state that the one before it left: a
// transaction that waited for the lock reads the row as the previous holder
// committed it, and its following statements see everything that holder
// committed. (A subquery in the locking statement would not: it would read
// the snapshot taken before the wait.)
//
// A grant also takes a share lock on its feature's row, so that archiving
// or deleting the feature waits for the grant to commit (and then sees it),
// or the grant waits for the archive (and then refuses the feature).
//
// # Retries
//
// As for events (see the package comment): a transient failure before
// COMMIT is retried in a new transaction, and a commit whose answer was
// lost is an EUNAVAILABLE error whose outcome is unknown. Retrying such a
// change is safe: a grant or reset that was stored makes the retry fail
// with ECONFLICT (its ID is taken, or the version moved on), which the
// caller can tell from a change that was refused by reading the ledger.

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
	return s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO features (`+featureColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			f.Namespace, f.ID, f.Key, f.Name, f.MeterSlug, filters, metadata, f.CreatedAt, f.UpdatedAt, f.ArchivedAt)
		// The unique indexes are the check, so two creates, on any nodes,
		// cannot race past it.
		switch uniqueViolation(err) {
		case "":
			return err
		case "features_key":
			return odometer.Errorf(odometer.ECONFLICT, "a feature with key %q already exists", f.Key)
		default:
			return odometer.Errorf(odometer.ECONFLICT, "a feature with id %q already exists", f.ID)
		}
	})
}

// FindFeature returns the namespace's feature with ID idOrKey (archived or
// not), or else its unarchived feature with key idOrKey. ENOTFOUND if none.
func (s *Store) FindFeature(ctx context.Context, namespace, idOrKey string) (*odometer.Feature, error) {
	op := fmt.Sprintf("find feature %q", idOrKey)
	var fs []*odometer.Feature
	// A key may look like an ID; the ID wins.
	err := s.read(ctx, op, func(ctx context.Context) (err error) {
		fs, err = scanFeatures(s.pool.Query(ctx, `SELECT `+featureColumns+` FROM features
			WHERE namespace = $1 AND (id = $2 OR (key = $2 AND archived_at IS NULL))
			ORDER BY id = $2 DESC LIMIT 1`, namespace, idOrKey))
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(fs) == 0 {
		return nil, odometer.Errorf(odometer.ENOTFOUND, "feature %q not found", idOrKey)
	}
	return fs[0], nil
}

// ListFeatures returns the namespace's features ordered by key (byte
// order), then creation time, then ID; archived ones only if
// includeArchived. An empty, non-nil slice if there are none.
func (s *Store) ListFeatures(ctx context.Context, namespace string, includeArchived bool) ([]*odometer.Feature, error) {
	q := `SELECT ` + featureColumns + ` FROM features WHERE namespace = $1`
	if !includeArchived {
		q += ` AND archived_at IS NULL`
	}
	q += ` ORDER BY key, created_at, id`
	var fs []*odometer.Feature
	err := s.read(ctx, "list features", func(ctx context.Context) (err error) {
		fs, err = scanFeatures(s.pool.Query(ctx, q, namespace))
		return err
	})
	return fs, err
}

// ArchiveFeature sets the feature's ArchivedAt to at and returns it.
// ENOTFOUND if the namespace has no feature with this ID; ECONFLICT if it is
// archived already.
func (s *Store) ArchiveFeature(ctx context.Context, namespace, id string, at time.Time) (*odometer.Feature, error) {
	var f *odometer.Feature
	err := s.inTx(ctx, fmt.Sprintf("archive feature %q", id), func(ctx context.Context, tx pgx.Tx) error {
		// Waits for grants being created for the feature (they hold a
		// share lock on its row); a concurrent archive makes the WHERE
		// false once it commits.
		fs, err := scanFeatures(tx.Query(ctx, `UPDATE features SET archived_at = $3
			WHERE namespace = $1 AND id = $2 AND archived_at IS NULL
			RETURNING `+featureColumns, namespace, id, at))
		if err != nil {
			return err
		}
		if len(fs) == 1 {
			f = fs[0]
			return nil
		}
		var archived *time.Time
		err = tx.QueryRow(ctx, `SELECT archived_at FROM features WHERE namespace = $1 AND id = $2`,
			namespace, id).Scan(&archived)
		if errors.Is(err, pgx.ErrNoRows) {
			return odometer.Errorf(odometer.ENOTFOUND, "feature %q not found", id)
		}
		if err != nil {
			return err
		}
		return odometer.Errorf(odometer.ECONFLICT, "feature %q is archived already (at %s)",
			id, archived.UTC().Format(time.RFC3339Nano))
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// DeleteFeature removes the feature if no grant refers to it. ENOTFOUND if
// the namespace has no feature with this ID; ECONFLICT if a grant refers to
// it (the feature should be archived instead).
func (s *Store) DeleteFeature(ctx context.Context, namespace, id string) error {
	return s.inTx(ctx, fmt.Sprintf("delete feature %q", id), func(ctx context.Context, tx pgx.Tx) error {
		// The row lock waits for grants being created for the feature, so
		// that the check below, a statement of its own, sees them.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM features WHERE namespace = $1 AND id = $2 FOR UPDATE`,
			namespace, id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return odometer.Errorf(odometer.ENOTFOUND, "feature %q not found", id)
		}
		if err != nil {
			return err
		}
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM grants WHERE namespace = $1 AND feature_id = $2)`,
			namespace, id).Scan(&used); err != nil {
			return err
		}
		if used {
			return odometer.ErrFeatureInUse(id)
		}
		_, err = tx.Exec(ctx, `DELETE FROM features WHERE namespace = $1 AND id = $2`, namespace, id)
		if foreignKeyViolation(err) {
			return odometer.ErrFeatureInUse(id) // the foreign key agrees with the check above
		}
		return err
	})
}

const featureColumns = `namespace, id, key, name, meter_slug, meter_group_by_filters, metadata,
	created_at, updated_at, archived_at`

func scanFeatures(rows pgx.Rows, err error) ([]*odometer.Feature, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	fs := []*odometer.Feature{}
	for rows.Next() {
		var f odometer.Feature
		var filters, metadata []byte
		if err := rows.Scan(&f.Namespace, &f.ID, &f.Key, &f.Name, &f.MeterSlug, &filters, &metadata,
			&f.CreatedAt, &f.UpdatedAt, &f.ArchivedAt); err != nil {
			return nil, &noRetryError{err}
		}
		if err := unmarshalNullable(filters, &f.MeterGroupByFilters); err != nil {
			return nil, &noRetryError{fmt.Errorf("feature %q: meter_group_by_filters: %w", f.ID, err)}
		}
		if err := unmarshalNullable(metadata, &f.Metadata); err != nil {
			return nil, &noRetryError{fmt.Errorf("feature %q: metadata: %w", f.ID, err)}
		}
		f.CreatedAt, f.UpdatedAt, f.ArchivedAt = f.CreatedAt.UTC(), f.UpdatedAt.UTC(), utcOrNil(f.ArchivedAt)
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
		interval, zone, anchor = rs.Interval, rs.TimeZone, rs.Anchor
	}
	err = s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		// ON CONFLICT on the subject waits for a concurrent create of the
		// same subject and skips the row if that one commits; the next
		// statement then sees the winner. A taken ID still fails.
		var id string
		err := tx.QueryRow(ctx, `INSERT INTO ledgers (`+ledgerColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0)
			ON CONFLICT (namespace, subject) DO NOTHING
			RETURNING id`,
			l.Namespace, l.ID, l.Subject, metadata, interval, anchor, zone, l.CreatedAt).Scan(&id)
		if uniqueViolation(err) != "" {
			return odometer.Errorf(odometer.ECONFLICT, "a ledger with id %q already exists", l.ID)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT id FROM ledgers WHERE namespace = $1 AND subject = $2`,
			l.Namespace, l.Subject).Scan(&id); err != nil {
			return err
		}
		return odometer.ErrSubjectHasLedger(l.Subject, id)
	})
	if err != nil {
		return err
	}
	l.Version = 0
	return nil
}

// FindLedger returns the namespace's ledger with this ID. ENOTFOUND if none.
func (s *Store) FindLedger(ctx context.Context, namespace, id string) (*odometer.Ledger, error) {
	var ls []*odometer.Ledger
	err := s.read(ctx, fmt.Sprintf("find ledger %q", id), func(ctx context.Context) (err error) {
		ls, err = scanLedgers(s.pool.Query(ctx, `SELECT `+ledgerColumns+` FROM ledgers
			WHERE namespace = $1 AND id = $2`, namespace, id))
		return err
	})
	if err != nil {
		return nil, err
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
	q := `SELECT ` + ledgerColumns + ` FROM ledgers WHERE namespace = $1`
	args := []any{f.Namespace}
	if f.Subject != "" {
		args = append(args, f.Subject)
		q += fmt.Sprintf(` AND subject = $%d`, len(args))
	}
	// strpos, not LIKE: LIKE would need '%', '_' and '\' escaped.
	if f.SubjectLike != "" {
		args = append(args, f.SubjectLike)
		q += fmt.Sprintf(` AND strpos(subject, $%d) > 0`, len(args))
	}
	if f.Descending {
		q += ` ORDER BY subject DESC, id DESC`
	} else {
		q += ` ORDER BY subject, id`
	}
	args = append(args, int64(f.Limit), int64(f.Offset))
	q += fmt.Sprintf(` LIMIT $%d OFFSET $%d`, len(args)-1, len(args))
	var ls []*odometer.Ledger
	err := s.read(ctx, "list ledgers", func(ctx context.Context) (err error) {
		ls, err = scanLedgers(s.pool.Query(ctx, q, args...))
		return err
	})
	return ls, err
}

const ledgerColumns = `namespace, id, subject, metadata, reset_interval, reset_anchor, reset_time_zone,
	created_at, version`

func scanLedgers(rows pgx.Rows, err error) ([]*odometer.Ledger, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ls := []*odometer.Ledger{}
	for rows.Next() {
		var l odometer.Ledger
		var metadata []byte
		var interval, zone *string
		var anchor *time.Time
		if err := rows.Scan(&l.Namespace, &l.ID, &l.Subject, &metadata, &interval, &anchor, &zone,
			&l.CreatedAt, &l.Version); err != nil {
			return nil, &noRetryError{err}
		}
		if err := unmarshalNullable(metadata, &l.Metadata); err != nil {
			return nil, &noRetryError{fmt.Errorf("ledger %q: metadata: %w", l.ID, err)}
		}
		if interval != nil && anchor != nil && zone != nil {
			l.ResetSchedule = &odometer.ResetSchedule{Interval: *interval, Anchor: anchor.UTC(), TimeZone: *zone}
		}
		l.CreatedAt = l.CreatedAt.UTC()
		ls = append(ls, &l)
	}
	return ls, rows.Err()
}

// ledgerState is what a ledger's changes are checked against.
type ledgerState struct {
	version   int64
	lastReset *time.Time // nil before the first reset
}

// lockLedger locks the ledger's row for the rest of tx and reads its state
// (see "Per-ledger serialization" above). ENOTFOUND if there is no such
// ledger.
func lockLedger(ctx context.Context, tx pgx.Tx, namespace, id string) (ledgerState, error) {
	var st ledgerState
	err := tx.QueryRow(ctx, `SELECT version FROM ledgers WHERE namespace = $1 AND id = $2 FOR UPDATE`,
		namespace, id).Scan(&st.version)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, odometer.ErrLedgerNotFound(id)
	}
	if err != nil {
		return st, err
	}
	// A statement of its own, begun with the lock held: it sees every reset
	// committed by an earlier holder of the lock.
	err = tx.QueryRow(ctx, `SELECT max(effective_at) FROM resets WHERE namespace = $1 AND ledger_id = $2`,
		namespace, id).Scan(&st.lastReset)
	return st, err
}

// checkNotBefore returns an ECONFLICT error if t is before the ledger's
// last reset: what a period has closed cannot change.
func (st ledgerState) checkNotBefore(what string, t time.Time) error {
	if st.lastReset != nil && t.UnixMicro() < st.lastReset.UnixMicro() {
		return odometer.ErrBeforeLastReset(what, t, *st.lastReset)
	}
	return nil
}

// bumpVersion counts one change of the ledger, whose row tx has locked.
func bumpVersion(ctx context.Context, tx pgx.Tx, namespace, id string) error {
	_, err := tx.Exec(ctx, `UPDATE ledgers SET version = version + 1 WHERE namespace = $1 AND id = $2`, namespace, id)
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
	return s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		st, err := lockLedger(ctx, tx, g.Namespace, g.LedgerID)
		if err != nil {
			return err
		}
		// FOR SHARE: an archive or delete of the feature waits for this
		// transaction, and this one for theirs (then reading the result).
		var archived *time.Time
		err = tx.QueryRow(ctx, `SELECT archived_at FROM features WHERE namespace = $1 AND id = $2 FOR SHARE`,
			g.Namespace, g.FeatureID).Scan(&archived)
		if errors.Is(err, pgx.ErrNoRows) {
			return odometer.Errorf(odometer.ENOTFOUND, "feature %q not found", g.FeatureID)
		}
		if err != nil {
			return err
		}
		if archived != nil {
			return odometer.Errorf(odometer.ECONFLICT, "feature %q is archived: it takes no new grants", g.FeatureID)
		}
		if err := st.checkNotBefore("effectiveAt", g.EffectiveAt); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, insertGrantSQL, args...)
		if uniqueViolation(err) != "" {
			return odometer.Errorf(odometer.ECONFLICT, "a grant with id %q already exists", g.ID)
		}
		if err != nil {
			return err
		}
		return bumpVersion(ctx, tx, g.Namespace, g.LedgerID)
	})
}

const insertGrantSQL = `INSERT INTO grants (` + grantColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`

// VoidGrant sets the grant's VoidedAt to at, increments its ledger's
// Version, and returns the grant. ENOTFOUND if the ledger or the grant (in
// that ledger) is missing; ECONFLICT if the grant is voided already or at is
// before the ledger's last reset.
func (s *Store) VoidGrant(ctx context.Context, namespace, ledgerID, grantID string, at time.Time) (*odometer.Grant, error) {
	var g *odometer.Grant
	op := fmt.Sprintf("void grant %q in ledger %q", grantID, ledgerID)
	err := s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		st, err := lockLedger(ctx, tx, namespace, ledgerID)
		if err != nil {
			return err
		}
		// Grants change only under their ledger's lock, held now.
		var voided *time.Time
		err = tx.QueryRow(ctx, `SELECT voided_at FROM grants WHERE namespace = $1 AND ledger_id = $2 AND id = $3`,
			namespace, ledgerID, grantID).Scan(&voided)
		if errors.Is(err, pgx.ErrNoRows) {
			return odometer.ErrGrantNotFound(grantID, ledgerID)
		}
		if err != nil {
			return err
		}
		if voided != nil {
			return odometer.Errorf(odometer.ECONFLICT, "grant %q is voided already (at %s)",
				grantID, voided.UTC().Format(time.RFC3339Nano))
		}
		if err := st.checkNotBefore("voidedAt", at); err != nil {
			return err
		}
		gs, err := scanGrants(tx.Query(ctx, `UPDATE grants SET voided_at = $4
			WHERE namespace = $1 AND ledger_id = $2 AND id = $3 RETURNING `+grantSelect,
			namespace, ledgerID, grantID, at))
		if err != nil {
			return err
		}
		if len(gs) != 1 {
			return &noRetryError{fmt.Errorf("the update returned %d grants, want 1", len(gs))}
		}
		g = gs[0]
		return bumpVersion(ctx, tx, namespace, ledgerID)
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// FindGrant returns the grant with this ID in the ledger. ENOTFOUND if
// there is none.
func (s *Store) FindGrant(ctx context.Context, namespace, ledgerID, grantID string) (*odometer.Grant, error) {
	var gs []*odometer.Grant
	err := s.read(ctx, fmt.Sprintf("find grant %q", grantID), func(ctx context.Context) (err error) {
		gs, err = scanGrants(s.pool.Query(ctx, `SELECT `+grantSelect+` FROM grants
			WHERE namespace = $1 AND ledger_id = $2 AND id = $3`, namespace, ledgerID, grantID))
		return err
	})
	if err != nil {
		return nil, err
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
	q := `SELECT ` + grantSelect + ` FROM grants WHERE namespace = $1 AND ledger_id = $2`
	args := []any{f.Namespace, f.LedgerID}
	if f.FeatureID != "" {
		args = append(args, f.FeatureID)
		q += fmt.Sprintf(` AND feature_id = $%d`, len(args))
	}
	if !f.IncludeVoid {
		q += ` AND voided_at IS NULL`
	}
	if !f.From.IsZero() {
		args = append(args, f.From)
		q += fmt.Sprintf(` AND effective_at >= $%d`, len(args))
	}
	if !f.To.IsZero() {
		args = append(args, f.To)
		q += fmt.Sprintf(` AND effective_at < $%d`, len(args))
	}
	q += ` ORDER BY effective_at, created_at, id`
	op := fmt.Sprintf("list grants of ledger %q", f.LedgerID)
	var gs []*odometer.Grant
	err := s.read(ctx, op, func(ctx context.Context) (err error) {
		gs, err = scanGrants(s.pool.Query(ctx, q, args...))
		return err
	})
	if err != nil {
		return nil, err
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
	var exists bool
	err := s.read(ctx, op, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ledgers WHERE namespace = $1 AND id = $2)`,
			namespace, id).Scan(&exists)
	})
	if err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%s: %w", op, odometer.ErrLedgerNotFound(id))
	}
	return nil
}

// grantColumns names the columns in the order grantArgs gives them;
// grantSelect reads them back, with decimals as text so that they reach
// odometer.ParseDecimal exactly as stored.
const (
	grantColumns = `namespace, id, ledger_id, feature_id, amount, priority, effective_at,
	expiration_count, expiration_duration, expires_at, rollover_type, rollover_max_amount,
	recurrence_interval, recurrence_anchor, parent_id, reset_id, start_balance, metadata,
	created_at, voided_at`
	grantSelect = `namespace, id, ledger_id, feature_id, amount::text, priority, effective_at,
	expiration_count, expiration_duration, expires_at, rollover_type, rollover_max_amount::text,
	recurrence_interval, recurrence_anchor, parent_id, reset_id, start_balance::text, metadata,
	created_at, voided_at`
)

// grantArgs returns g's columns in grantColumns order. Decimals are sent as
// their canonical text, "" references as NULL (for the foreign keys).
func grantArgs(g *odometer.Grant) ([]any, error) {
	metadata, err := jsonColumn(g.Metadata == nil, g.Metadata)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return []any{g.Namespace, g.ID, g.LedgerID, g.FeatureID, g.Amount.String(), g.Priority,
		g.EffectiveAt, g.ExpirationCount, g.ExpirationDuration, g.ExpiresAt,
		g.RolloverType, decimalOrNull(g.RolloverMaxAmount), g.RecurrenceInterval, g.RecurrenceAnchor,
		textOrNull(g.ParentID), textOrNull(g.ResetID), decimalOrNull(g.StartBalance), metadata,
		g.CreatedAt, g.VoidedAt}, nil
}

func scanGrants(rows pgx.Rows, err error) ([]*odometer.Grant, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	gs := []*odometer.Grant{}
	for rows.Next() {
		var g odometer.Grant
		var amount string
		var maxAmount, parent, reset, start *string
		var metadata []byte
		if err := rows.Scan(&g.Namespace, &g.ID, &g.LedgerID, &g.FeatureID, &amount, &g.Priority, &g.EffectiveAt,
			&g.ExpirationCount, &g.ExpirationDuration, &g.ExpiresAt, &g.RolloverType, &maxAmount,
			&g.RecurrenceInterval, &g.RecurrenceAnchor, &parent, &reset, &start, &metadata,
			&g.CreatedAt, &g.VoidedAt); err != nil {
			return nil, &noRetryError{err}
		}
		var err error
		if g.Amount, err = odometer.ParseDecimal(amount); err != nil {
			return nil, &noRetryError{fmt.Errorf("grant %q: amount: %w", g.ID, err)}
		}
		if g.RolloverMaxAmount, err = decimalOrNil(maxAmount); err != nil {
			return nil, &noRetryError{fmt.Errorf("grant %q: rollover_max_amount: %w", g.ID, err)}
		}
		if g.StartBalance, err = decimalOrNil(start); err != nil {
			return nil, &noRetryError{fmt.Errorf("grant %q: start_balance: %w", g.ID, err)}
		}
		if err := unmarshalNullable(metadata, &g.Metadata); err != nil {
			return nil, &noRetryError{fmt.Errorf("grant %q: metadata: %w", g.ID, err)}
		}
		if parent != nil {
			g.ParentID = *parent
		}
		if reset != nil {
			g.ResetID = *reset
		}
		g.EffectiveAt, g.CreatedAt = g.EffectiveAt.UTC(), g.CreatedAt.UTC()
		g.ExpiresAt, g.RecurrenceAnchor, g.VoidedAt = utcOrNil(g.ExpiresAt), utcOrNil(g.RecurrenceAnchor), utcOrNil(g.VoidedAt)
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
	var parents, features []string
	for i, g := range rollover {
		a, err := grantArgs(g)
		if err != nil {
			return fmt.Errorf("%s: rollover grant %q: %w", op, g.ID, err)
		}
		args[i] = a
		parents, features = append(parents, g.ParentID), append(features, g.FeatureID)
	}
	return s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		st, err := lockLedger(ctx, tx, r.Namespace, r.LedgerID)
		if err != nil {
			return err
		}
		if st.version != version {
			return odometer.ErrStaleLedger(r.LedgerID, st.version, version)
		}
		if st.lastReset != nil && r.EffectiveAt.UnixMicro() <= st.lastReset.UnixMicro() {
			return odometer.ErrResetNotAfterLast(r.EffectiveAt, *st.lastReset)
		}
		_, err = tx.Exec(ctx, `INSERT INTO resets (namespace, id, ledger_id, effective_at, created_at, automatic)
			VALUES ($1, $2, $3, $4, $5, $6)`, r.Namespace, r.ID, r.LedgerID, r.EffectiveAt, r.CreatedAt, r.Automatic)
		if uniqueViolation(err) != "" {
			return odometer.Errorf(odometer.ECONFLICT, "a reset with id %q already exists", r.ID)
		}
		if err != nil {
			return err
		}
		if len(rollover) > 0 {
			if err := checkReferences(ctx, tx, r, rollover, parents, features); err != nil {
				return err
			}
			if err := insertGrants(ctx, tx, rollover, args); err != nil {
				return err
			}
		}
		return bumpVersion(ctx, tx, r.Namespace, r.LedgerID)
	})
}

// insertGrants inserts grants (with their grantArgs) in one round trip.
func insertGrants(ctx context.Context, tx pgx.Tx, grants []*odometer.Grant, args [][]any) error {
	var b pgx.Batch
	for _, a := range args {
		b.Queue(insertGrantSQL, a...)
	}
	br := tx.SendBatch(ctx, &b)
	for _, g := range grants {
		if _, err := br.Exec(); err != nil {
			br.Close()
			if uniqueViolation(err) != "" {
				return odometer.Errorf(odometer.ECONFLICT, "a grant with id %q already exists", g.ID)
			}
			return err
		}
	}
	return br.Close()
}

// checkReferences returns ENOTFOUND naming the first rollover grant whose
// parent is not a grant of the ledger or whose feature is missing. The
// features are locked FOR KEY SHARE, as the foreign key would lock them,
// but before the inserts: a concurrent DeleteFeature then either finishes
// first (and the feature is missing here) or waits for this transaction,
// instead of the two deadlocking over the inserted rows.
func checkReferences(ctx context.Context, tx pgx.Tx, r *odometer.Reset, rollover []*odometer.Grant, parents, features []string) error {
	collect := func(sql string, args ...any) (map[string]bool, error) {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return nil, err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		found := map[string]bool{}
		for _, id := range ids {
			found[id] = true
		}
		return found, err
	}
	foundParents, err := collect(`SELECT id FROM grants WHERE namespace = $1 AND ledger_id = $2 AND id = ANY($3)`,
		r.Namespace, r.LedgerID, parents)
	if err != nil {
		return err
	}
	// Archived features are fine: their grants keep burning, and a
	// rollover continues a grant.
	foundFeatures, err := collect(`SELECT id FROM features WHERE namespace = $1 AND id = ANY($2) ORDER BY id FOR KEY SHARE`,
		r.Namespace, features)
	if err != nil {
		return err
	}
	for _, g := range rollover {
		if !foundParents[g.ParentID] {
			return odometer.Errorf(odometer.ENOTFOUND, "rollover grant %q: parent grant %q not found in ledger %q",
				g.ID, g.ParentID, g.LedgerID)
		}
		if !foundFeatures[g.FeatureID] {
			return odometer.Errorf(odometer.ENOTFOUND, "rollover grant %q: feature %q not found", g.ID, g.FeatureID)
		}
	}
	return nil
}

// ListResets returns the ledger's resets ordered by EffectiveAt; an empty,
// non-nil slice if there are none. ENOTFOUND if the ledger is missing.
func (s *Store) ListResets(ctx context.Context, namespace, ledgerID string) ([]*odometer.Reset, error) {
	op := fmt.Sprintf("list resets of ledger %q", ledgerID)
	var rs []*odometer.Reset
	err := s.read(ctx, op, func(ctx context.Context) error {
		rs = []*odometer.Reset{}
		rows, err := s.pool.Query(ctx, `SELECT namespace, id, ledger_id, effective_at, created_at, automatic
			FROM resets WHERE namespace = $1 AND ledger_id = $2 ORDER BY effective_at`, namespace, ledgerID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r odometer.Reset
			if err := rows.Scan(&r.Namespace, &r.ID, &r.LedgerID, &r.EffectiveAt, &r.CreatedAt, &r.Automatic); err != nil {
				return &noRetryError{err}
			}
			r.EffectiveAt, r.CreatedAt = r.EffectiveAt.UTC(), r.CreatedAt.UTC()
			rs = append(rs, &r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		if err := s.ledgerExists(ctx, op, namespace, ledgerID); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// inTx runs fn in a transaction and commits it, retrying transient
// failures before COMMIT in a new transaction until ctx ends (fn must only
// change what it closes over in a way that a new attempt overwrites). The
// error is storeError's, except that a lost commit says that the change,
// not events, may or may not have been made.
func (s *Store) inTx(ctx context.Context, op string, fn func(ctx context.Context, tx pgx.Tx) error) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	err := s.retry(ctx, op, func(ctx context.Context) error { return s.attemptTx(ctx, fn) })
	var unknown *commitUnknownError
	if errors.As(err, &unknown) {
		return fmt.Errorf("%w: %w", odometer.Errorf(odometer.EUNAVAILABLE,
			"%s: the database did not confirm the commit (the connection failed or it did not answer), "+
				"so the change may or may not have been made; read it back before retrying", op), err)
	}
	return storeError(op, err)
}

// read runs fn, a query, retrying transient failures until ctx ends. fn
// must start its results afresh on every attempt.
func (s *Store) read(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", op, errClosed)
	}
	return storeError(op, s.retry(ctx, op, fn))
}

// foreignKeyViolation reports whether err is a foreign_key_violation.
func foreignKeyViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23503"
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

func decimalOrNil(v *string) (*odometer.Decimal, error) {
	if v == nil {
		return nil, nil
	}
	d, err := odometer.ParseDecimal(*v)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// unmarshalNullable decodes a JSON column into dst, leaving it nil for NULL.
func unmarshalNullable(b []byte, dst any) error {
	if b == nil {
		return nil
	}
	return json.Unmarshal(b, dst)
}

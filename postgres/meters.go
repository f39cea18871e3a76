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

const meterColumns = `id, namespace, slug, name, description, metadata, aggregation, event_type,
	event_from, value_property, group_by, filters, created_at, updated_at, deleted_at`

// CreateMeter stores m as given; m.ID must be set (odometer.NewID) and
// times are kept to the microsecond. It returns ECONFLICT if a meter that is
// not deleted has m's slug in m's namespace, or if the ID is taken.
func (s *Store) CreateMeter(ctx context.Context, m *odometer.Meter) error {
	if m.ID == "" {
		return odometer.FieldErrorf("id", "required")
	}
	args, err := meterArgs(m)
	if err != nil {
		return fmt.Errorf("create meter %q: %w", m.Slug, err)
	}
	_, err = s.write(ctx, "create meter", `INSERT INTO meters (`+meterColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`, args...)
	// The unique indexes are the check, so two creates, on any nodes,
	// cannot race past it.
	switch uniqueViolation(err) {
	case "":
	case "meters_pkey":
		return odometer.Errorf(odometer.ECONFLICT, "a meter with id %q already exists", m.ID)
	default:
		return odometer.Errorf(odometer.ECONFLICT, "a meter with slug %q already exists", m.Slug)
	}
	return storeError(fmt.Sprintf("create meter %q", m.Slug), err)
}

// UpdateMeter replaces every field of the meter with m's ID in m's
// namespace (except DeletedAt, which only DeleteMeter sets). ENOTFOUND if
// there is no such meter or it is deleted; ECONFLICT if the new slug is
// taken by another meter.
func (s *Store) UpdateMeter(ctx context.Context, m *odometer.Meter) error {
	args, err := meterArgs(m)
	if err != nil {
		return fmt.Errorf("update meter %q: %w", m.ID, err)
	}
	// args[0] and args[1] are the key; the last is deleted_at.
	tag, err := s.write(ctx, "update meter", `UPDATE meters SET
		slug = $3, name = $4, description = $5, metadata = $6, aggregation = $7, event_type = $8,
		event_from = $9, value_property = $10, group_by = $11, filters = $12, created_at = $13, updated_at = $14
		WHERE id = $1 AND namespace = $2 AND deleted_at IS NULL`, args[:len(args)-1]...)
	if uniqueViolation(err) != "" {
		return odometer.Errorf(odometer.ECONFLICT, "a meter with slug %q already exists", m.Slug)
	}
	if err != nil {
		return storeError(fmt.Sprintf("update meter %q", m.ID), err)
	}
	if tag.RowsAffected() == 0 {
		return odometer.Errorf(odometer.ENOTFOUND, "meter %q not found", m.ID)
	}
	return nil
}

// DeleteMeter marks the meter deleted at the given time, freeing its slug.
// ENOTFOUND if there is no such meter in the namespace or it is already
// deleted.
func (s *Store) DeleteMeter(ctx context.Context, namespace, id string, at time.Time) error {
	tag, err := s.write(ctx, "delete meter", `UPDATE meters SET deleted_at = $3
		WHERE id = $1 AND namespace = $2 AND deleted_at IS NULL`, id, namespace, at)
	if err != nil {
		return storeError(fmt.Sprintf("delete meter %q", id), err)
	}
	if tag.RowsAffected() == 0 {
		return odometer.Errorf(odometer.ENOTFOUND, "meter %q not found", id)
	}
	return nil
}

// FindMeter returns the meter of the namespace whose ID, or else whose slug,
// is idOrSlug. Deleted meters are not found. ENOTFOUND if there is none.
func (s *Store) FindMeter(ctx context.Context, namespace, idOrSlug string) (*odometer.Meter, error) {
	// A slug may look like an ID; the ID wins.
	ms, err := s.queryMeters(ctx, "find meter", `SELECT `+meterColumns+` FROM meters
		WHERE namespace = $1 AND deleted_at IS NULL AND (id = $2 OR slug = $2)
		ORDER BY id = $2 DESC LIMIT 1`, namespace, idOrSlug)
	if err != nil {
		return nil, storeError(fmt.Sprintf("find meter %q", idOrSlug), err)
	}
	if len(ms) == 0 {
		return nil, odometer.Errorf(odometer.ENOTFOUND, "meter %q not found", idOrSlug)
	}
	return ms[0], nil
}

// ListMeters returns the namespace's meters that are not deleted, ordered by
// slug (byte order); an empty, non-nil slice if there are none.
func (s *Store) ListMeters(ctx context.Context, namespace string) ([]*odometer.Meter, error) {
	ms, err := s.queryMeters(ctx, "list meters", `SELECT `+meterColumns+` FROM meters
		WHERE (namespace = $1 OR $1 = '') AND deleted_at IS NULL ORDER BY namespace, slug`, namespace)
	if err != nil {
		return nil, storeError("list meters", err)
	}
	return ms, nil
}

// write runs one statement that changes data. It is retried only when it
// failed without changing anything: before it reached the server, or with
// an ERROR answer (the statement rolled back) that is transient. A
// connection lost while the server had it leaves its outcome unknown, and
// a retry could, for example, report a meter that the lost attempt created
// as a conflict with itself.
func (s *Store) write(ctx context.Context, op, sql string, args ...any) (pgconn.CommandTag, error) {
	if s.closed.Load() {
		return pgconn.CommandTag{}, errClosed
	}
	var tag pgconn.CommandTag
	err := s.retry(ctx, op, func(ctx context.Context) error {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		tag, err = conn.Exec(ctx, sql, args...)
		var pgErr *pgconn.PgError
		if err != nil && !pgconn.SafeToRetry(err) && !(errors.As(err, &pgErr) && pgErr.SeverityUnlocalized == "ERROR") {
			return &noRetryError{err}
		}
		return err
	})
	return tag, err
}

// queryMeters runs a query for meter rows, retrying transient failures.
func (s *Store) queryMeters(ctx context.Context, op, sql string, args ...any) ([]*odometer.Meter, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	var ms []*odometer.Meter
	err := s.retry(ctx, op, func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		ms, err = scanMeters(rows)
		return err
	})
	return ms, err
}

// uniqueViolation returns the name of the unique constraint that err
// violated, or "".
func uniqueViolation(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr.ConstraintName
	}
	return ""
}

// meterArgs returns m's columns in meterColumns order.
func meterArgs(m *odometer.Meter) ([]any, error) {
	metadata, err := jsonColumn(m.Metadata == nil, m.Metadata)
	if err != nil {
		return nil, err
	}
	groupBy, err := jsonColumn(m.GroupBy == nil, m.GroupBy)
	if err != nil {
		return nil, err
	}
	filters, err := jsonColumn(m.Filters == nil, m.Filters)
	if err != nil {
		return nil, err
	}
	return []any{m.ID, m.Namespace, m.Slug, m.Name, m.Description, metadata, string(m.Aggregation), m.EventType,
		m.EventFrom, m.ValueProperty, groupBy, filters, m.CreatedAt, m.UpdatedAt, m.DeletedAt}, nil
}

// jsonColumn encodes a map as JSON, or NULL for a nil map, so that nil and
// empty maps survive the round trip as they were.
func jsonColumn(isNil bool, v any) ([]byte, error) {
	if isNil {
		return nil, nil
	}
	return json.Marshal(v)
}

func scanMeters(rows pgx.Rows) ([]*odometer.Meter, error) {
	defer rows.Close()
	ms := []*odometer.Meter{}
	for rows.Next() {
		var m odometer.Meter
		var metadata, groupBy, filters []byte
		var aggregation string
		if err := rows.Scan(&m.ID, &m.Namespace, &m.Slug, &m.Name, &m.Description, &metadata,
			&aggregation, &m.EventType, &m.EventFrom, &m.ValueProperty, &groupBy, &filters,
			&m.CreatedAt, &m.UpdatedAt, &m.DeletedAt); err != nil {
			return nil, &noRetryError{err}
		}
		m.Aggregation = odometer.Aggregation(aggregation)
		for _, c := range []struct {
			col []byte
			dst any
		}{{metadata, &m.Metadata}, {groupBy, &m.GroupBy}, {filters, &m.Filters}} {
			if c.col != nil {
				if err := json.Unmarshal(c.col, c.dst); err != nil {
					return nil, &noRetryError{fmt.Errorf("meter %q: %w", m.ID, err)}
				}
			}
		}
		m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
		m.EventFrom, m.DeletedAt = utcOrNil(m.EventFrom), utcOrNil(m.DeletedAt)
		ms = append(ms, &m)
	}
	return ms, rows.Err()
}

func utcOrNil(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mattn/go-sqlite3"

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
	_, err = s.write.ExecContext(ctx, `INSERT INTO meters (`+meterColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
	if isUniqueViolation(err) {
		// The unique index is the check, so two creates cannot race past it.
		return s.conflict(ctx, m)
	}
	if err != nil {
		return fmt.Errorf("create meter %q: %w", m.Slug, err)
	}
	return nil
}

// conflict names what a unique violation was about: the slug, or else the id.
func (s *Store) conflict(ctx context.Context, m *odometer.Meter) error {
	var n int
	err := s.write.QueryRowContext(ctx, `SELECT count(*) FROM meters
		WHERE namespace = ? AND slug = ? AND deleted_at IS NULL AND id <> ?`, m.Namespace, m.Slug, m.ID).Scan(&n)
	if err == nil && n == 0 {
		return odometer.Errorf(odometer.ECONFLICT, "a meter with id %q already exists", m.ID)
	}
	return odometer.Errorf(odometer.ECONFLICT, "a meter with slug %q already exists", m.Slug)
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
	// The columns from slug to updated_at, then the key.
	args = append(slices.Clone(args[2:len(args)-1]), m.ID, m.Namespace)
	res, err := s.write.ExecContext(ctx, `UPDATE meters SET
		slug = ?, name = ?, description = ?, metadata = ?, aggregation = ?, event_type = ?,
		event_from = ?, value_property = ?, group_by = ?, filters = ?, created_at = ?, updated_at = ?
		WHERE id = ? AND namespace = ? AND deleted_at IS NULL`, args...)
	if isUniqueViolation(err) {
		return odometer.Errorf(odometer.ECONFLICT, "a meter with slug %q already exists", m.Slug)
	}
	if err != nil {
		return fmt.Errorf("update meter %q: %w", m.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update meter %q: %w", m.ID, err)
	} else if n == 0 {
		return odometer.Errorf(odometer.ENOTFOUND, "meter %q not found", m.ID)
	}
	return nil
}

// DeleteMeter marks the meter deleted at the given time, freeing its slug.
// ENOTFOUND if there is no such meter in the namespace or it is already
// deleted.
func (s *Store) DeleteMeter(ctx context.Context, namespace, id string, at time.Time) error {
	res, err := s.write.ExecContext(ctx, `UPDATE meters SET deleted_at = ?
		WHERE id = ? AND namespace = ? AND deleted_at IS NULL`, at.UnixMicro(), id, namespace)
	if err != nil {
		return fmt.Errorf("delete meter %q: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete meter %q: %w", id, err)
	} else if n == 0 {
		return odometer.Errorf(odometer.ENOTFOUND, "meter %q not found", id)
	}
	return nil
}

// FindMeter returns the meter of the namespace whose ID, or else whose slug,
// is idOrSlug. Deleted meters are not found. ENOTFOUND if there is none.
func (s *Store) FindMeter(ctx context.Context, namespace, idOrSlug string) (*odometer.Meter, error) {
	// A slug may look like an ID; the ID wins.
	rows, err := s.query(ctx, `SELECT `+meterColumns+` FROM meters
		WHERE namespace = ? AND deleted_at IS NULL AND (id = ? OR slug = ?)
		ORDER BY id = ? DESC LIMIT 1`, namespace, idOrSlug, idOrSlug, idOrSlug)
	if err != nil {
		return nil, fmt.Errorf("find meter %q: %w", idOrSlug, err)
	}
	ms, err := scanMeters(rows)
	if err != nil {
		return nil, fmt.Errorf("find meter %q: %w", idOrSlug, err)
	}
	if len(ms) == 0 {
		return nil, odometer.Errorf(odometer.ENOTFOUND, "meter %q not found", idOrSlug)
	}
	return ms[0], nil
}

// ListMeters returns the namespace's meters that are not deleted, ordered by
// slug; an empty, non-nil slice if there are none.
func (s *Store) ListMeters(ctx context.Context, namespace string) ([]*odometer.Meter, error) {
	rows, err := s.query(ctx, `SELECT `+meterColumns+` FROM meters
		WHERE (namespace = ? OR ? = '') AND deleted_at IS NULL ORDER BY namespace, slug`, namespace, namespace)
	if err != nil {
		return nil, fmt.Errorf("list meters: %w", err)
	}
	ms, err := scanMeters(rows)
	if err != nil {
		return nil, fmt.Errorf("list meters: %w", err)
	}
	return ms, nil
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
		microsOrNull(m.EventFrom), m.ValueProperty, groupBy, filters,
		m.CreatedAt.UnixMicro(), m.UpdatedAt.UnixMicro(), microsOrNull(m.DeletedAt)}, nil
}

// jsonColumn encodes a map as JSON text, or NULL for a nil map, so that nil
// and empty maps survive the round trip as they were.
func jsonColumn(isNil bool, v any) (any, error) {
	if isNil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func microsOrNull(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func scanMeters(rows *sql.Rows) ([]*odometer.Meter, error) {
	defer rows.Close()
	ms := []*odometer.Meter{}
	for rows.Next() {
		var m odometer.Meter
		var metadata, groupBy, filters sql.NullString
		var eventFrom, deletedAt sql.NullInt64
		var created, updated int64
		if err := rows.Scan(&m.ID, &m.Namespace, &m.Slug, &m.Name, &m.Description, &metadata,
			&m.Aggregation, &m.EventType, &eventFrom, &m.ValueProperty, &groupBy, &filters,
			&created, &updated, &deletedAt); err != nil {
			return nil, err
		}
		for _, c := range []struct {
			col sql.NullString
			dst any
		}{{metadata, &m.Metadata}, {groupBy, &m.GroupBy}, {filters, &m.Filters}} {
			if c.col.Valid {
				if err := json.Unmarshal([]byte(c.col.String), c.dst); err != nil {
					return nil, fmt.Errorf("meter %q: %w", m.ID, err)
				}
			}
		}
		m.EventFrom, m.DeletedAt = timeOrNil(eventFrom), timeOrNil(deletedAt)
		m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
		ms = append(ms, &m)
	}
	return ms, rows.Err()
}

func timeOrNil(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}

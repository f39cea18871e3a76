package ledger

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/odometerhq/odometer"
)

// FeatureInput is what a caller gives to create a feature.
type FeatureInput struct {
	// Key identifies the feature in access checks and grants; the format of
	// meter slugs. Unique among the namespace's unarchived features.
	Key string
	// Name defaults to Key.
	Name string
	// Meter is the slug or id of a SUM or COUNT meter; the feature stores
	// its slug.
	Meter string
	// MeterGroupByFilters restricts the meter to events whose group-by value
	// (by the meter's groupBy key) equals the given one.
	MeterGroupByFilters map[string]string
	Metadata            map[string]string
}

// CreateFeature validates in and stores a new feature. A field error names
// each problem: the key's format, a missing meter, a meter that does not
// add up over time (only SUM and COUNT do), a group-by filter key the meter
// does not have (listing the keys it has). ECONFLICT if an unarchived
// feature has the key.
func (s *Service) CreateFeature(ctx context.Context, ns string, in FeatureInput) (*odometer.Feature, error) {
	var fe fieldErrors
	if !keyRE.MatchString(in.Key) {
		fe.add("key", "must be 1–63 letters, digits, '_' or '-', starting with a letter or digit; got %q", in.Key)
	}
	if in.Name == "" {
		in.Name = in.Key
	}
	if len(in.Name) > maxNameLength {
		fe.add("name", "longer than %d characters", maxNameLength)
	}
	var meter *odometer.Meter
	if in.Meter == "" {
		fe.add("meter", "required: the slug or id of a SUM or COUNT meter")
	} else {
		m, err := s.store.FindMeter(ctx, ns, in.Meter)
		switch {
		case odometer.ErrorCode(err) == odometer.ENOTFOUND:
			fe.add("meter", "no meter %q", in.Meter)
		case err != nil:
			return nil, fmt.Errorf("find meter %q: %w", in.Meter, err)
		case m.Aggregation != odometer.Sum && m.Aggregation != odometer.Count:
			// Burning credits needs usage that adds up: the usage of two
			// adjacent ranges must be the sum of theirs.
			fe.add("meter", "meter %q aggregates with %s; a feature needs a SUM or COUNT meter", m.Slug, m.Aggregation)
		default:
			meter = m
		}
	}
	if meter != nil {
		for _, k := range slices.Sorted(maps.Keys(in.MeterGroupByFilters)) {
			if _, ok := meter.GroupBy[k]; !ok {
				keys := "none"
				if len(meter.GroupBy) > 0 {
					keys = strings.Join(slices.Sorted(maps.Keys(meter.GroupBy)), ", ")
				}
				fe.add("meterGroupByFilters."+k, "meter %q has no group-by key %q (it has: %s)", meter.Slug, k, keys)
			}
		}
	}
	if err := fe.err("invalid feature"); err != nil {
		return nil, err
	}
	now := s.clock()
	f := &odometer.Feature{
		ID:                  odometer.NewID(now),
		Namespace:           ns,
		Key:                 in.Key,
		Name:                in.Name,
		MeterSlug:           meter.Slug,
		MeterGroupByFilters: in.MeterGroupByFilters,
		Metadata:            in.Metadata,
		CreatedAt:           now,
		UpdatedAt:           now,
	}
	if len(f.MeterGroupByFilters) == 0 {
		f.MeterGroupByFilters = nil
	}
	if err := s.store.CreateFeature(ctx, f); err != nil {
		return nil, fmt.Errorf("create feature %q: %w", f.Key, err)
	}
	return f, nil
}

// ListFeatures returns the namespace's features by key; archived ones only
// when asked.
func (s *Service) ListFeatures(ctx context.Context, ns string, includeArchived bool) ([]*odometer.Feature, error) {
	fs, err := s.store.ListFeatures(ctx, ns, includeArchived)
	if err != nil {
		return nil, fmt.Errorf("list features: %w", err)
	}
	return fs, nil
}

// GetFeature returns the feature with this id, or the unarchived one with
// this key. ENOTFOUND if none.
func (s *Service) GetFeature(ctx context.Context, ns, idOrKey string) (*odometer.Feature, error) {
	f, err := s.store.FindFeature(ctx, ns, idOrKey)
	if err != nil {
		return nil, fmt.Errorf("find feature %q: %w", idOrKey, err)
	}
	return f, nil
}

// ArchiveFeature archives the feature (by id or key): it gets no new
// grants, its existing grants keep burning, and its key is free again.
// ECONFLICT if it is archived already.
func (s *Service) ArchiveFeature(ctx context.Context, ns, idOrKey string) (*odometer.Feature, error) {
	f, err := s.GetFeature(ctx, ns, idOrKey)
	if err != nil {
		return nil, err
	}
	a, err := s.store.ArchiveFeature(ctx, ns, f.ID, s.clock())
	if err != nil {
		return nil, fmt.Errorf("archive feature %q: %w", f.Key, err)
	}
	return a, nil
}

// DeleteFeature deletes the feature (by id or key) if no grant refers to
// it; ECONFLICT otherwise (archive it instead).
func (s *Service) DeleteFeature(ctx context.Context, ns, idOrKey string) error {
	f, err := s.GetFeature(ctx, ns, idOrKey)
	if err != nil {
		return err
	}
	if err := s.store.DeleteFeature(ctx, ns, f.ID); err != nil {
		return fmt.Errorf("delete feature %q: %w", f.Key, err)
	}
	return nil
}

// CheckMeterChange refuses a change of a meter that would break the
// features metered by it (archived ones too: their grants keep burning):
// deleting the meter, or a groupBy (newGroupBy) that
// drops a key a feature filters on. ECONFLICT names the features. The check
// reads the features at the time of the change; it is not one transaction
// with it, so a feature created at the same instant can slip through.
func (s *Service) CheckMeterChange(ctx context.Context, ns string, m *odometer.Meter, newGroupBy map[string]string, deleting bool) error {
	fs, err := s.store.ListFeatures(ctx, ns, true)
	if err != nil {
		return fmt.Errorf("check the features of meter %q: %w", m.Slug, err)
	}
	var users, broken []string
	for _, f := range fs {
		if f.MeterSlug != m.Slug {
			continue
		}
		users = append(users, strconv.Quote(f.Key))
		for _, k := range slices.Sorted(maps.Keys(f.MeterGroupByFilters)) {
			if _, ok := newGroupBy[k]; !ok {
				broken = append(broken, fmt.Sprintf("%q (filters on %q)", f.Key, k))
				break
			}
		}
	}
	switch {
	case deleting && len(users) > 0:
		return odometer.Errorf(odometer.ECONFLICT, "meter %q meters the features %s; delete them first (a feature with grants cannot be deleted)",
			m.Slug, strings.Join(users, ", "))
	case !deleting && len(broken) > 0:
		return odometer.Errorf(odometer.ECONFLICT, "meter %q: the new groupBy drops a key that features filter on: %s",
			m.Slug, strings.Join(broken, ", "))
	}
	return nil
}

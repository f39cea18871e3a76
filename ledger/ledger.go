// Package ledger holds the business rules of prepaid credits between the
// stored records (odometer.CreditStore) and the burn-down engine (package
// credit): validation of features, ledgers and grants, the periods that
// resets cut a ledger into, automatic resets, and the balance, history,
// reset and access-check computations that the API serves.
//
// The rules are stated in docs/credits.md ("Rules" for the engine, "API" for
// this package). Every time a caller gives is truncated to the whole minute
// (UTC), the engine's resolution; the clock is injected.
package ledger

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/credit"
	"github.com/odometerhq/odometer/usage"
)

// Service is the credits API on top of a store. It keeps no state of its
// own, so several nodes may serve the same database: the store serializes
// each ledger's changes and refuses stale ones (see odometer.CreditStore).
type Service struct {
	store   odometer.Store
	now     func() time.Time
	rollups *usage.Rollups
}

// New returns a Service on store; now is the clock (nil: time.Now).
// Usage is read through rollups, which may be nil (no cache).
func New(store odometer.Store, now func() time.Time, rollups *usage.Rollups) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now, rollups: rollups}
}

// clock returns the current time at storage precision, for CreatedAt
// fields.
func (s *Service) clock() time.Time {
	return s.now().UTC().Truncate(odometer.TimePrecision)
}

// minute returns the current whole minute: the latest instant the engine
// may compute at. Usage in the current, unfinished minute is counted from
// the next minute on.
func (s *Service) minute() time.Time { return s.now().UTC().Truncate(time.Minute) }

// truncMinute returns t in UTC truncated to the whole minute; the engine
// computes at one-minute resolution (docs/credits.md, rule 1).
func truncMinute(t time.Time) time.Time { return t.UTC().Truncate(time.Minute) }

// Limits of names and amounts.
const (
	maxNameLength = 256
	// maxRetries bounds how often a reset is recomputed after another
	// writer changed the ledger under it.
	maxRetries = 8
)

// keyRE is the format of feature keys: that of meter slugs.
var keyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// fieldErrors collects rejected fields for one EINVALID error.
type fieldErrors []odometer.FieldError

func (f *fieldErrors) add(field, format string, args ...any) {
	*f = append(*f, odometer.FieldError{Index: -1, Field: field, Reason: fmt.Sprintf(format, args...)})
}

// addErr adds the field errors of err, or err's message under field when it
// names none.
func (f *fieldErrors) addErr(field string, err error) {
	if fs := odometer.ErrorFields(err); len(fs) > 0 {
		*f = append(*f, fs...)
		return
	}
	f.add(field, "%s", odometer.ErrorMessage(err))
}

func (f fieldErrors) err(msg string) error {
	if len(f) == 0 {
		return nil
	}
	return &odometer.Error{Code: odometer.EINVALID, Message: msg, Fields: f}
}

// checkAmount checks that an amount is within the range of stored values
// (|v| < 10^21, at most 18 fraction digits: NUMERIC(39,18) in PostgreSQL).
func checkAmount(fe *fieldErrors, field string, d odometer.Decimal, positive bool) {
	switch {
	case positive && d.Sign() <= 0:
		fe.add(field, "must be positive; got %s", d)
	case !positive && d.Sign() < 0:
		fe.add(field, "must not be negative; got %s", d)
	default:
		if _, err := odometer.ParseValue(d.String()); err != nil {
			fe.add(field, "%v", err)
		}
	}
}

// engineGrant converts a stored grant for the engine.
func engineGrant(g *odometer.Grant) credit.Grant {
	c := credit.Grant{
		ID:           g.ID,
		ParentID:     g.ParentID,
		Amount:       g.Amount,
		StartBalance: g.StartBalance,
		Priority:     g.Priority,
		EffectiveAt:  g.EffectiveAt.UTC(),
		CreatedAt:    g.CreatedAt.UTC(),
		Rollover:     credit.RolloverKind(g.RolloverType),
		RolloverMax:  g.RolloverMaxAmount,
	}
	if g.ExpiresAt != nil {
		c.ExpiresAt = g.ExpiresAt.UTC()
	}
	if g.VoidedAt != nil {
		c.VoidedAt = g.VoidedAt.UTC()
	}
	if g.RecurrenceInterval != "" && g.RecurrenceAnchor != nil {
		c.Recurrence = credit.Recurrence{Interval: credit.Interval(g.RecurrenceInterval), Anchor: g.RecurrenceAnchor.UTC()}
	}
	return c
}

// engineGrants converts stored grants for the engine.
func engineGrants(gs []*odometer.Grant) []credit.Grant {
	out := make([]credit.Grant, len(gs))
	for i, g := range gs {
		out[i] = engineGrant(g)
	}
	return out
}

// usageFunc returns the engine's view of a feature's usage for one subject:
// the sum of the feature's meter over [from, to) for the subject, restricted
// to the feature's group-by filters. Sums of exact decimals are exact, so
// splitting a range into segments never changes a total.
func (s *Service) usageFunc(ctx context.Context, f *odometer.Feature, subject string) (credit.UsageFunc, error) {
	m, err := s.store.FindMeter(ctx, f.Namespace, f.MeterSlug)
	if odometer.ErrorCode(err) == odometer.ENOTFOUND {
		return nil, odometer.Errorf(odometer.ECONFLICT, "feature %q is metered by meter %q, which no longer exists; recreate the meter", f.Key, f.MeterSlug)
	}
	if err != nil {
		return nil, fmt.Errorf("find meter %q of feature %q: %w", f.MeterSlug, f.Key, err)
	}
	cm, err := m.Compile()
	if err != nil {
		return nil, fmt.Errorf("compile meter %q of feature %q: %w", m.Slug, f.Key, err)
	}
	var filter map[string][]string
	if len(f.MeterGroupByFilters) > 0 {
		filter = make(map[string][]string, len(f.MeterGroupByFilters))
		for k, v := range f.MeterGroupByFilters {
			filter[k] = []string{v}
		}
	}
	subjects := []string{subject}
	view := s.rollups.View(s.store, s.now())
	return func(ctx context.Context, from, to time.Time) (odometer.Decimal, error) {
		q := odometer.UsageQuery{From: from, To: to, Subjects: subjects, FilterGroupBy: filter}
		res, err := view.Query(ctx, cm, q)
		if err != nil {
			return odometer.Decimal{}, fmt.Errorf("usage of feature %q (meter %q): %w", f.Key, m.Slug, err)
		}
		var sum odometer.Decimal
		for _, r := range res.Data {
			sum = sum.Add(r.Value)
		}
		return sum, nil
	}, nil
}

package ledger

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/credit"
)

// book is one ledger's records as read at one moment, with the features and
// usage functions its computations need, loaded once per request.
type book struct {
	ns     string
	ledger *odometer.Ledger
	resets []*odometer.Reset // by EffectiveAt, as ListResets returns them
	grants []*odometer.Grant // every grant, voided ones too
	byID   map[string]*odometer.Grant

	svc      *Service
	features map[string]*feature // by feature id
}

// feature is a feature with the usage function of the book's subject.
type feature struct {
	*odometer.Feature
	usage credit.UsageFunc
}

// period is a part of a ledger's timeline between resets: [start, end), end
// zero for the current period.
type period struct {
	start, end time.Time
}

func (p period) contains(t time.Time) bool {
	return !t.Before(p.start) && (p.end.IsZero() || t.Before(p.end))
}

// load reads a ledger's records. The ledger (and so its Version) is read
// first: a change made after that read makes a reset computed from these
// records fail with ECONFLICT instead of rolling over a stale state.
func (s *Service) load(ctx context.Context, ns, id string) (*book, error) {
	l, err := s.GetLedger(ctx, ns, id)
	if err != nil {
		return nil, err
	}
	resets, err := s.store.ListResets(ctx, ns, id)
	if err != nil {
		return nil, fmt.Errorf("list resets of ledger %q: %w", id, err)
	}
	grants, err := s.store.ListGrants(ctx, odometer.GrantFilter{Namespace: ns, LedgerID: id, IncludeVoid: true})
	if err != nil {
		return nil, fmt.Errorf("list grants of ledger %q: %w", id, err)
	}
	b := &book{ns: ns, ledger: l, resets: resets, grants: grants, byID: make(map[string]*odometer.Grant, len(grants)),
		svc: s, features: map[string]*feature{}}
	for _, g := range grants {
		b.byID[g.ID] = g
	}
	return b, nil
}

// lastReset returns the latest reset, or nil.
func (b *book) lastReset() *odometer.Reset {
	if len(b.resets) == 0 {
		return nil
	}
	return b.resets[len(b.resets)-1]
}

// everActive reports whether g is active for at least a minute: a grant
// voided at or before its EffectiveAt never was, and does not start a
// period.
func everActive(g *odometer.Grant) bool {
	return g.VoidedAt == nil || g.VoidedAt.After(g.EffectiveAt)
}

// firstStart returns the start of a ledger's first period, the one before
// its first reset (or before `before` when not zero): the ledger's creation
// (to the minute), or the earliest EffectiveAt of the grants that are ever
// active if one is earlier (grants can be back-dated). Usage between the
// creation and the first grant is overage that later grants repay; usage
// before both belongs to no period and is not counted. ok is false when
// the first period would not start before `before`.
func (b *book) firstStart(before time.Time) (start time.Time, ok bool) {
	start = b.ledger.CreatedAt.UTC().Truncate(time.Minute)
	for _, g := range b.grants {
		if everActive(g) && g.EffectiveAt.Before(start) {
			start = g.EffectiveAt
		}
	}
	start = start.UTC()
	return start, before.IsZero() || start.Before(before)
}

// periods returns the ledger's periods in time order: the first one (from
// firstStart to the first reset), if any, then one from each reset to the
// next; the last one is open.
func (b *book) periods() []period {
	var ps []period
	var firstReset time.Time
	if len(b.resets) > 0 {
		firstReset = b.resets[0].EffectiveAt.UTC()
	}
	if start, ok := b.firstStart(firstReset); ok {
		ps = append(ps, period{start: start, end: firstReset})
	}
	for i, r := range b.resets {
		p := period{start: r.EffectiveAt.UTC()}
		if i+1 < len(b.resets) {
			p.end = b.resets[i+1].EffectiveAt.UTC()
		}
		ps = append(ps, p)
	}
	return ps
}

// periodAt returns the period containing t; ok is false when t is before
// the first period.
func (b *book) periodAt(t time.Time) (period, bool) {
	ps := b.periods()
	for i := len(ps) - 1; i >= 0; i-- {
		if !t.Before(ps[i].start) {
			return ps[i], true
		}
	}
	return period{}, false
}

// grantsIn returns the grants of period p, for one feature or ("") all:
// those effective in [p.start, p.end). Grants effective at a reset belong
// to the period it starts.
func (b *book) grantsIn(p period, featureID string) []*odometer.Grant {
	var out []*odometer.Grant
	for _, g := range b.grants {
		if (featureID == "" || g.FeatureID == featureID) && p.contains(g.EffectiveAt) {
			out = append(out, g)
		}
	}
	return out
}

// featuresIn returns the features that have grants in p, by key (then id).
func (b *book) featuresIn(ctx context.Context, p period) ([]*feature, error) {
	var out []*feature
	seen := map[string]bool{}
	for _, g := range b.grantsIn(p, "") {
		if seen[g.FeatureID] {
			continue
		}
		seen[g.FeatureID] = true
		f, err := b.feature(ctx, g.FeatureID)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b *feature) int { return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.ID, b.ID)) })
	return out, nil
}

// feature returns the feature with this id and its usage function for the
// ledger's subject, loading them on first use.
func (b *book) feature(ctx context.Context, id string) (*feature, error) {
	if f := b.features[id]; f != nil {
		return f, nil
	}
	f, err := b.svc.store.FindFeature(ctx, b.ns, id)
	if err != nil {
		return nil, fmt.Errorf("find feature %q of ledger %q: %w", id, b.ledger.ID, err)
	}
	return b.addFeature(ctx, f)
}

// addFeature makes f, already read, the book's feature of its id, with its
// usage function: a caller that has read the feature saves a query.
func (b *book) addFeature(ctx context.Context, f *odometer.Feature) (*feature, error) {
	if ff := b.features[f.ID]; ff != nil {
		return ff, nil
	}
	if f.Namespace == "" {
		f.Namespace = b.ns
	}
	u, err := b.svc.usageFunc(ctx, f, b.ledger.Subject)
	if err != nil {
		return nil, err
	}
	ff := &feature{Feature: f, usage: u}
	b.features[f.ID] = ff
	return ff, nil
}

// run computes feature f in period p from the period start to `to` (within
// p): the state at `to`, its history, and the period's grants of f as the
// engine sees them.
func (b *book) run(ctx context.Context, p period, f *feature, to time.Time) (credit.State, []credit.Entry, []credit.Grant, error) {
	gs := engineGrants(b.grantsIn(p, f.ID))
	s0, err := credit.NewPeriod(p.start, gs)
	if err != nil {
		return credit.State{}, nil, nil, fmt.Errorf("feature %q from %s: %w", f.Key, rfc(p.start), err)
	}
	st, entries, err := credit.Run(ctx, s0, gs, to, f.usage)
	if err != nil {
		return credit.State{}, nil, nil, fmt.Errorf("feature %q from %s to %s: %w", f.Key, rfc(p.start), rfc(to), err)
	}
	return st, entries, gs, nil
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

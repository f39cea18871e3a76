package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/credit"
)

// Balance is a ledger's balance at one instant.
type Balance struct {
	At time.Time
	// PeriodStart is the start of the period containing At: the last reset
	// at or before At, else the ledger's creation or an earlier grant's
	// EffectiveAt (docs/credits.md). Zero when At is before all of them.
	PeriodStart time.Time
	// Features lists the features with grants in the period, by key.
	Features []FeatureBalance
}

// FeatureBalance is one feature's balance.
type FeatureBalance struct {
	Feature *odometer.Feature
	// Balance is what the feature's active grants can still pay; Usage is
	// the usage since the period start; Overage the debt outstanding.
	credit.FeatureBalance
	// Grants lists the period's grants of the feature in burn order, with
	// their balances; inactive ones (not yet effective, expired, voided)
	// report 0.
	Grants []credit.GrantBalance
}

// atOrNow returns at truncated to the minute, or now's minute when zero; a
// field error names field when it is in the future, whose usage is not
// known yet.
func (s *Service) atOrNow(field string, at time.Time) (time.Time, error) {
	now := s.minute()
	if at.IsZero() {
		return now, nil
	}
	at = truncMinute(at)
	if at.After(now) {
		return time.Time{}, odometer.FieldErrorf(field, "%s is in the future (now is %s)", rfc(at), rfc(now))
	}
	return at, nil
}

// Balance returns the ledger's balance at `at` (zero: now), truncated to
// the minute and not in the future. `at` may be any past time, before the
// ledger was created too: grants and usage can be back-dated.
func (s *Service) Balance(ctx context.Context, ns, ledgerID string, at time.Time) (*Balance, error) {
	at, err := s.atOrNow("at", at)
	if err != nil {
		return nil, err
	}
	b, err := s.prepare(ctx, ns, ledgerID)
	if err != nil {
		return nil, err
	}
	res := &Balance{At: at, Features: []FeatureBalance{}}
	p, ok := b.periodAt(at)
	if !ok {
		return res, nil
	}
	res.PeriodStart = p.start
	fs, err := b.featuresIn(ctx, p)
	if err != nil {
		return nil, err
	}
	for _, f := range fs {
		st, _, gs, err := b.run(ctx, p, f, at)
		if err != nil {
			return nil, fmt.Errorf("balance of ledger %q at %s: %w", ledgerID, rfc(at), err)
		}
		res.Features = append(res.Features, FeatureBalance{Feature: f.Feature, FeatureBalance: credit.Balance(st), Grants: credit.GrantBalances(st, gs)})
	}
	return res, nil
}

// Access is the answer to "may the subject use the feature now?".
type Access struct {
	Feature *odometer.Feature
	At      time.Time
	// HasAccess is Balance > 0, or, with a soft limit, that the feature has
	// at least one active grant.
	HasAccess bool
	credit.FeatureBalance
}

// Access checks the ledger's access to a feature (key or id) now. Without
// softLimit, the subject has access while the feature's balance is
// positive; with it, also while at least one grant of the feature is
// active, and usage beyond the grants is reported as overage. A feature
// without grants in the current period gives no access; its usage since the
// period start is all overage. Before the ledger's first period nothing is
// counted. ENOTFOUND if the ledger or the feature is missing.
func (s *Service) Access(ctx context.Context, ns, ledgerID, featureIDOrKey string, softLimit bool) (*Access, error) {
	ft, err := s.GetFeature(ctx, ns, featureIDOrKey)
	if err != nil {
		return nil, err
	}
	at := s.minute()
	b, err := s.prepare(ctx, ns, ledgerID)
	if err != nil {
		return nil, err
	}
	res := &Access{Feature: ft, At: at}
	p, ok := b.periodAt(at)
	if !ok {
		return res, nil
	}
	f, err := b.addFeature(ctx, ft)
	if err != nil {
		return nil, err
	}
	if len(b.grantsIn(p, ft.ID)) == 0 {
		if at.After(p.start) {
			u, err := f.usage(ctx, p.start, at)
			if err != nil {
				return nil, err
			}
			res.Usage, res.Overage = u, u
		}
		return res, nil
	}
	st, _, _, err := b.run(ctx, p, f, at)
	if err != nil {
		return nil, fmt.Errorf("access of ledger %q to feature %q: %w", ledgerID, ft.Key, err)
	}
	res.FeatureBalance = credit.Balance(st)
	res.HasAccess = res.Balance.Sign() > 0 || (softLimit && len(st.Balances) > 0)
	return res, nil
}

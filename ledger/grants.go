package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/credit"
)

// GrantInput is what a caller gives to create a grant. Times are truncated
// to the whole minute (UTC): the engine computes at one-minute resolution.
type GrantInput struct {
	// Feature is the feature's key or id.
	Feature string
	// Amount must be positive.
	Amount odometer.Decimal
	// Priority is 1–255 (lower burns first); nil means 1.
	Priority *int
	// EffectiveAt is when the grant becomes active; zero means now. It may
	// be in the past (not before the ledger's last reset) or the future.
	EffectiveAt time.Time
	Expiration  *Expiration
	Rollover    *Rollover
	Recurrence  *Recurrence
	Metadata    map[string]string
}

// Expiration is "Count × Duration after EffectiveAt".
type Expiration struct {
	Count    int
	Duration string // HOUR, DAY, WEEK, MONTH or YEAR
}

// Rollover is what a grant carries into the next period at a reset.
type Rollover struct {
	Type      string            // ORIGINAL_AMOUNT or REMAINING_AMOUNT
	MaxAmount *odometer.Decimal // cap; nil: none
}

// Recurrence refills a grant to its amount at Anchor + k·Interval.
type Recurrence struct {
	Interval string    // HOUR, DAY, WEEK, MONTH or YEAR
	Anchor   time.Time // zero: the grant's EffectiveAt
}

// CreateGrant validates in and stores a grant in the ledger. Field errors
// name each bad field; the feature must exist and not be archived.
// ECONFLICT if EffectiveAt is before the ledger's last reset (automatic
// resets due by now included).
func (s *Service) CreateGrant(ctx context.Context, ns, ledgerID string, in GrantInput) (*odometer.Grant, error) {
	b, err := s.prepare(ctx, ns, ledgerID)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	var fe fieldErrors
	var f *odometer.Feature
	if in.Feature == "" {
		fe.add("feature", "required: the key or id of a feature")
	} else {
		f, err = s.store.FindFeature(ctx, ns, in.Feature)
		switch {
		case odometer.ErrorCode(err) == odometer.ENOTFOUND:
			fe.add("feature", "no feature %q", in.Feature)
		case err != nil:
			return nil, fmt.Errorf("find feature %q: %w", in.Feature, err)
		case f.ArchivedAt != nil:
			fe.add("feature", "feature %q was archived at %s and gets no new grants", f.Key, rfc(*f.ArchivedAt))
		}
	}
	checkAmount(&fe, "amount", in.Amount, true)
	priority := 1
	if in.Priority != nil {
		priority = *in.Priority
		if priority < 1 || priority > 255 {
			fe.add("priority", "must be between 1 (burns first) and 255; got %d", priority)
		}
	}
	eff := truncMinute(now)
	if !in.EffectiveAt.IsZero() {
		eff = truncMinute(in.EffectiveAt)
	}
	g := &odometer.Grant{
		ID:          odometer.NewID(now),
		Namespace:   ns,
		LedgerID:    b.ledger.ID,
		Amount:      in.Amount,
		Priority:    priority,
		EffectiveAt: eff,
		Metadata:    in.Metadata,
		CreatedAt:   now,
	}
	if f != nil {
		g.FeatureID = f.ID
	}
	if x := in.Expiration; x != nil {
		exp, err := credit.ExpiresAt(eff, x.Count, credit.Interval(x.Duration))
		if err != nil {
			fe.addErr("expiration", err)
		} else {
			g.ExpirationCount, g.ExpirationDuration, g.ExpiresAt = x.Count, x.Duration, &exp
		}
	}
	if ro := in.Rollover; ro != nil {
		switch credit.RolloverKind(ro.Type) {
		case credit.RolloverOriginal, credit.RolloverRemaining:
			g.RolloverType = ro.Type
		default:
			fe.add("rollover.type", "must be ORIGINAL_AMOUNT or REMAINING_AMOUNT; got %q", ro.Type)
		}
		if ro.MaxAmount != nil {
			checkAmount(&fe, "rollover.maxAmount", *ro.MaxAmount, false)
			g.RolloverMaxAmount = ro.MaxAmount
		}
	}
	if rc := in.Recurrence; rc != nil {
		switch credit.Interval(rc.Interval) {
		case credit.Hour, credit.Day, credit.Week, credit.Month, credit.Year:
			g.RecurrenceInterval = rc.Interval
		default:
			fe.add("recurrence.interval", "must be HOUR, DAY, WEEK, MONTH or YEAR; got %q", rc.Interval)
		}
		anchor := eff
		if !rc.Anchor.IsZero() {
			anchor = truncMinute(rc.Anchor)
		}
		g.RecurrenceAnchor = &anchor
	}
	if err := fe.err("invalid grant"); err != nil {
		return nil, err
	}
	// The engine's own check, for anything the rules above missed; its
	// field names are the engine's.
	eg := engineGrant(g)
	if err := eg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid grant: %w", err)
	}
	if err := s.store.CreateGrant(ctx, g); err != nil {
		return nil, fmt.Errorf("create grant in ledger %q: %w", ledgerID, err)
	}
	return g, nil
}

// GrantQuery selects a ledger's grants to list.
type GrantQuery struct {
	Feature     string // key or id; "" = every feature
	IncludeVoid bool
	// [From, To) on EffectiveAt; zero = unbounded.
	From, To time.Time
}

// ListGrants lists the ledger's grants (the rolled-over ones included) by
// EffectiveAt, then CreatedAt, then id. ENOTFOUND if the ledger is missing;
// a field error if the feature is.
func (s *Service) ListGrants(ctx context.Context, ns, ledgerID string, q GrantQuery) ([]*odometer.Grant, error) {
	// Materialize automatic resets: their rolled-over grants belong in the
	// list.
	if _, err := s.prepare(ctx, ns, ledgerID); err != nil {
		return nil, err
	}
	f := odometer.GrantFilter{Namespace: ns, LedgerID: ledgerID, IncludeVoid: q.IncludeVoid, From: q.From, To: q.To}
	if q.Feature != "" {
		ft, err := s.store.FindFeature(ctx, ns, q.Feature)
		if odometer.ErrorCode(err) == odometer.ENOTFOUND {
			return nil, odometer.FieldErrorf("feature", "no feature %q", q.Feature)
		}
		if err != nil {
			return nil, fmt.Errorf("find feature %q: %w", q.Feature, err)
		}
		f.FeatureID = ft.ID
	}
	gs, err := s.store.ListGrants(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list grants of ledger %q: %w", ledgerID, err)
	}
	return gs, nil
}

// GetGrant returns one grant of the ledger. ENOTFOUND if missing.
func (s *Service) GetGrant(ctx context.Context, ns, ledgerID, grantID string) (*odometer.Grant, error) {
	g, err := s.store.FindGrant(ctx, ns, ledgerID, grantID)
	if err != nil {
		return nil, fmt.Errorf("find grant %q of ledger %q: %w", grantID, ledgerID, err)
	}
	return g, nil
}

// VoidGrant voids a grant at `at` (zero: now), truncated to the minute: the
// grant stops being active then and loses its remaining balance; what it
// paid before stays paid. at must not be in the future (EINVALID naming
// "at") nor before the ledger's last reset (ECONFLICT); a grant is voided
// once (ECONFLICT). A grant that a reset rolled over keeps burning in its
// child: void the child (the balance lists the grants active now).
func (s *Service) VoidGrant(ctx context.Context, ns, ledgerID, grantID string, at time.Time) (*odometer.Grant, error) {
	now := s.minute()
	v := now
	if !at.IsZero() {
		v = truncMinute(at)
	}
	if v.After(now) {
		return nil, odometer.FieldErrorf("at", "%s is in the future (now is %s); a void cannot be scheduled", rfc(v), rfc(now))
	}
	if _, err := s.prepare(ctx, ns, ledgerID); err != nil {
		return nil, err
	}
	g, err := s.store.VoidGrant(ctx, ns, ledgerID, grantID, v)
	if err != nil {
		return nil, fmt.Errorf("void grant %q of ledger %q at %s: %w", grantID, ledgerID, rfc(v), err)
	}
	return g, nil
}

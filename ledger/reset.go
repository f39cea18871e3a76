package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/credit"
)

// ResetResult is a reset and the grants its rollover made.
type ResetResult struct {
	Reset *odometer.Reset
	// Grants are the rolled-over grants, each with ParentID (the grant it
	// continues), ResetID and StartBalance set.
	Grants []*odometer.Grant
}

// Reset starts a new period of the ledger at `at` (zero: now), truncated to
// the minute. at must not be in the future (EINVALID naming effectiveAt) and
// must be after the ledger's last reset (ECONFLICT). Every grant active at
// `at` with a rollover gets a child grant in the new period
// (docs/credits.md, rule 8); overage is cleared.
//
// The rollover is computed from the ledger as read, and stored only if the
// ledger has not changed since (its Version): if another writer changed it,
// the reset is computed again, up to a few times.
func (s *Service) Reset(ctx context.Context, ns, ledgerID string, at time.Time) (*ResetResult, error) {
	now := s.minute()
	r := now
	if !at.IsZero() {
		r = truncMinute(at)
	}
	if r.After(now) {
		return nil, odometer.FieldErrorf("effectiveAt", "%s is in the future (now is %s); a reset cannot be scheduled", rfc(r), rfc(now))
	}
	for attempt := 1; ; attempt++ {
		b, err := s.prepare(ctx, ns, ledgerID)
		if err != nil {
			return nil, err
		}
		if last := b.lastReset(); last != nil && !r.After(last.EffectiveAt) {
			reason := fmt.Sprintf("not after the last reset at %s", rfc(last.EffectiveAt))
			return nil, &odometer.Error{Code: odometer.ECONFLICT,
				Message: fmt.Sprintf("cannot reset ledger %q at %s: %s", ledgerID, rfc(r), reason),
				Fields:  []odometer.FieldError{{Index: -1, Field: "effectiveAt", Reason: reason}}}
		}
		res, err := s.createReset(ctx, b, r, false)
		if err == nil {
			return res, nil
		}
		if odometer.ErrorCode(err) != odometer.ECONFLICT || attempt == maxRetries {
			return nil, err
		}
		// Retry only if the conflict was a change of the ledger since it
		// was read; any other conflict would only repeat.
		l, lerr := s.GetLedger(ctx, ns, ledgerID)
		if lerr != nil {
			return nil, lerr
		}
		if l.Version == b.ledger.Version {
			return nil, err
		}
	}
}

// createReset computes the rollover of the period that a reset at r ends
// and stores the reset with its children, at the version b was read at.
func (s *Service) createReset(ctx context.Context, b *book, r time.Time, automatic bool) (*ResetResult, error) {
	now := s.clock()
	reset := &odometer.Reset{ID: odometer.NewID(now), Namespace: b.ns, LedgerID: b.ledger.ID, EffectiveAt: r, CreatedAt: now, Automatic: automatic}
	// The period that r ends: from the last reset, or from the first
	// period's start (the ledger's creation or an earlier grant). Grants
	// effective at r itself belong to the new period (docs/credits.md,
	// "Changes at the reset instant").
	p := period{end: r}
	var ok bool
	if last := b.lastReset(); last != nil {
		p.start, ok = last.EffectiveAt.UTC(), true
	} else {
		p.start, ok = b.firstStart(r)
	}
	var children []*odometer.Grant
	if ok && p.start.Before(r) {
		fs, err := b.featuresIn(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			st, _, gs, err := b.run(ctx, p, f, r)
			if err != nil {
				return nil, fmt.Errorf("reset at %s: %w", rfc(r), err)
			}
			kids, err := credit.Rollover(st, gs, func() string { return odometer.NewID(now) })
			if err != nil {
				return nil, fmt.Errorf("reset at %s: rollover of feature %q: %w", rfc(r), f.Key, err)
			}
			for _, k := range kids {
				children = append(children, child(b.byID[k.ParentID], k, reset))
			}
		}
	}
	if err := s.store.CreateReset(ctx, reset, children, b.ledger.Version); err != nil {
		return nil, fmt.Errorf("reset ledger %q at %s: %w", b.ledger.ID, rfc(r), err)
	}
	return &ResetResult{Reset: reset, Grants: children}, nil
}

// child returns the stored form of a grant that Rollover made from parent.
// It keeps the parent's CreatedAt (the engine's Rollover sets the reset
// instant): the burn order among grants of equal priority and expiry then
// stays the parents' — by creation, not by the random part of the new ids —
// and does not depend on when an automatic reset happened to be stored.
func child(parent *odometer.Grant, k credit.Grant, reset *odometer.Reset) *odometer.Grant {
	c := *parent
	c.ID = k.ID
	c.ParentID = parent.ID
	c.ResetID = reset.ID
	c.EffectiveAt = reset.EffectiveAt
	sb := *k.StartBalance
	c.StartBalance = &sb
	return &c
}

// prepare loads a ledger after materializing its automatic resets: every
// occurrence of its ResetSchedule after its creation (and after its last
// reset) up to now gets a reset, in time order. It is idempotent and safe
// on several nodes at once: the store refuses a reset computed at a stale
// Version or not after the last reset, so of two nodes creating the same
// reset one gets ECONFLICT, reads the ledger again and finds it done.
func (s *Service) prepare(ctx context.Context, ns, ledgerID string) (*book, error) {
	now := s.minute()
	conflicts := 0
	for {
		b, err := s.load(ctx, ns, ledgerID)
		if err != nil {
			return nil, err
		}
		next, err := b.nextAutomaticReset(now)
		if err != nil || next.IsZero() {
			return b, err
		}
		_, err = s.createReset(ctx, b, next, true)
		switch {
		case err == nil:
		case odometer.ErrorCode(err) == odometer.ECONFLICT && conflicts < maxRetries:
			conflicts++
		default:
			return nil, fmt.Errorf("automatic reset: %w", err)
		}
	}
}

// nextAutomaticReset returns the first occurrence of the ledger's schedule
// after its creation and its last reset, if it is not after now; zero
// otherwise.
func (b *book) nextAutomaticReset(now time.Time) (time.Time, error) {
	rs := b.ledger.ResetSchedule
	if rs == nil {
		return time.Time{}, nil
	}
	sched, err := newSchedule(rs)
	if err != nil {
		return time.Time{}, fmt.Errorf("ledger %q: %w", b.ledger.ID, err)
	}
	after := b.ledger.CreatedAt
	if last := b.lastReset(); last != nil && last.EffectiveAt.After(after) {
		after = last.EffectiveAt
	}
	if next := sched.firstAfter(after); !next.After(now) {
		return next, nil
	}
	return time.Time{}, nil
}

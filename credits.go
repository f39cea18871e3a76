package odometer

import (
	"context"
	"fmt"
	"time"
)

// The records of prepaid credits (docs/credits.md). The burn-down rules live
// in package credit, which computes balances from these records and a
// meter's usage; the stores only keep the records and the invariants that
// must hold under concurrent writers.

// Feature is something a customer may use, metered by a meter: its usage is
// the meter's value for the customer, restricted to MeterGroupByFilters.
// The meter must be SUM or COUNT (a usage that adds up over time).
type Feature struct {
	ID        string
	Namespace string
	Key       string // unique among the namespace's unarchived features
	Name      string
	MeterSlug string
	// MeterGroupByFilters keeps only events whose group-by value (by the
	// meter's groupBy key) equals the given value. nil: no filter.
	MeterGroupByFilters map[string]string
	Metadata            map[string]string
	CreatedAt           time.Time
	UpdatedAt           time.Time
	// ArchivedAt, when set, stops new grants for the feature; existing
	// grants keep burning. An archived feature frees its key.
	ArchivedAt *time.Time
}

// Ledger holds one customer's (subject's) grants and resets. There is at
// most one ledger per subject in a namespace.
type Ledger struct {
	ID        string
	Namespace string
	Subject   string
	Metadata  map[string]string
	// ResetSchedule, when set, resets the ledger automatically at every
	// occurrence after the ledger's creation (e.g. monthly on the 1st in
	// Europe/Berlin).
	ResetSchedule *ResetSchedule
	CreatedAt     time.Time
	// Version counts the ledger's changes: every grant, void and reset
	// increments it. CreateReset takes the version its rollover was
	// computed at, so that a concurrent change makes it fail rather than
	// roll over a stale state. Read it before the grants and resets that
	// the rollover is computed from.
	Version int64
}

// ResetSchedule is a recurring reset: at Anchor + k·Interval in TimeZone.
type ResetSchedule struct {
	Interval string // DAY, WEEK, MONTH or YEAR
	Anchor   time.Time
	TimeZone string // IANA name; "" = UTC
}

// Grant is credit for one feature of one ledger. Grants are immutable
// except for VoidedAt.
type Grant struct {
	ID        string
	Namespace string
	LedgerID  string
	FeatureID string
	Amount    Decimal
	Priority  int // 1–255; lower burns first
	// EffectiveAt and the other instants are whole minutes (UTC).
	EffectiveAt time.Time
	// Expiration as given ({count, duration}); ExpiresAt is computed from it.
	ExpirationCount    int    // 0: never expires
	ExpirationDuration string // HOUR, DAY, WEEK, MONTH or YEAR
	ExpiresAt          *time.Time
	// Rollover at a reset: ORIGINAL_AMOUNT or REMAINING_AMOUNT, capped at
	// RolloverMaxAmount when set; "" rolls nothing over.
	RolloverType      string
	RolloverMaxAmount *Decimal
	// Recurrence refills the grant to Amount at RecurrenceAnchor +
	// k·RecurrenceInterval; "" = none.
	RecurrenceInterval string
	RecurrenceAnchor   *time.Time
	// Set on grants a reset rolled over: the parent grant, the reset, and
	// the balance the grant starts with (Amount stays the parent's, which
	// is what a recurrence refills to).
	ParentID     string
	ResetID      string
	StartBalance *Decimal
	Metadata     map[string]string
	CreatedAt    time.Time
	VoidedAt     *time.Time
}

// Reset starts a new usage period of a ledger at EffectiveAt.
type Reset struct {
	ID          string
	Namespace   string
	LedgerID    string
	EffectiveAt time.Time // whole minute
	CreatedAt   time.Time
	// Automatic is true for a reset made by the ledger's ResetSchedule.
	Automatic bool
}

// LedgerFilter selects ledgers to list.
type LedgerFilter struct {
	Namespace   string
	Subject     string // exact; "" = any
	SubjectLike string // substring, literal; "" = any
	Limit       int    // > 0
	Offset      int
	Descending  bool // by subject; ties by id
}

// GrantFilter selects a ledger's grants to list, ordered by EffectiveAt,
// then CreatedAt, then ID.
type GrantFilter struct {
	Namespace   string
	LedgerID    string
	FeatureID   string // "" = every feature
	IncludeVoid bool
	// [From, To) on EffectiveAt; zero = unbounded.
	From, To time.Time
}

// CreditStore keeps features, ledgers, grants and resets. A ledger's
// changes (grants, voids, resets) are serialized per ledger inside the
// store, which checks the rules that depend on the ledger's current state
// in the same transaction as the write:
//   - nothing may be dated before the ledger's last reset;
//   - a reset's rollover must have been computed at the current Version.
type CreditStore interface {
	// CreateFeature stores f; ECONFLICT if an unarchived feature has its
	// Key.
	CreateFeature(ctx context.Context, f *Feature) error
	// FindFeature returns the feature with this id, or the unarchived one
	// with this key. ENOTFOUND if none.
	FindFeature(ctx context.Context, namespace, idOrKey string) (*Feature, error)
	// ListFeatures returns the namespace's features by key (archived ones
	// too when asked), ties by creation.
	ListFeatures(ctx context.Context, namespace string, includeArchived bool) ([]*Feature, error)
	// ArchiveFeature sets ArchivedAt. ENOTFOUND if missing, ECONFLICT if
	// archived already.
	ArchiveFeature(ctx context.Context, namespace, id string, at time.Time) (*Feature, error)
	// DeleteFeature removes a feature that no grant refers to; ECONFLICT
	// (saying to archive it instead) otherwise.
	DeleteFeature(ctx context.Context, namespace, id string) error

	// CreateLedger stores l with Version 0; ECONFLICT naming the existing
	// ledger's ID if the subject has one.
	CreateLedger(ctx context.Context, l *Ledger) error
	FindLedger(ctx context.Context, namespace, id string) (*Ledger, error)
	ListLedgers(ctx context.Context, f LedgerFilter) ([]*Ledger, error)

	// CreateGrant stores g and increments the ledger's Version. ENOTFOUND
	// if the ledger or the feature is missing; ECONFLICT if g.EffectiveAt is
	// before the ledger's last reset or the feature is archived; EINVALID
	// if ParentID or ResetID is set (only CreateReset stores those) or
	// g.CheckStorable fails.
	CreateGrant(ctx context.Context, g *Grant) error
	// VoidGrant sets the grant's VoidedAt and increments the ledger's
	// Version. ENOTFOUND if missing; ECONFLICT if it is voided already or
	// at is before the ledger's last reset.
	VoidGrant(ctx context.Context, namespace, ledgerID, grantID string, at time.Time) (*Grant, error)
	FindGrant(ctx context.Context, namespace, ledgerID, grantID string) (*Grant, error)
	// ListGrants returns the grants matching f; ENOTFOUND if the ledger is
	// missing.
	ListGrants(ctx context.Context, f GrantFilter) ([]*Grant, error)

	// CreateReset stores r and the grants its rollover made (each with
	// ParentID and ResetID set), and increments the ledger's Version, all
	// in one transaction. ECONFLICT if the ledger's Version is not
	// version (something changed since the rollover was computed: compute
	// again) or r.EffectiveAt is not after the last reset; EINVALID if
	// CheckRollover fails; ENOTFOUND if a parent grant is not in the ledger
	// or a feature is missing.
	CreateReset(ctx context.Context, r *Reset, rollover []*Grant, version int64) error
	// ListResets returns the ledger's resets by EffectiveAt; ENOTFOUND if
	// the ledger is missing.
	ListResets(ctx context.Context, namespace, ledgerID string) ([]*Reset, error)
}

// CheckStorable refuses what no store can keep as given: a grant without an
// ID, and decimals outside the limits of odometer values (|v| < 10^21, at
// most 18 fraction digits), so that every store refuses the same grants.
func (g *Grant) CheckStorable() error {
	if g.ID == "" {
		return FieldErrorf("id", "required")
	}
	for _, d := range []struct {
		field string
		v     *Decimal
	}{{"amount", &g.Amount}, {"rolloverMaxAmount", g.RolloverMaxAmount}, {"startBalance", g.StartBalance}} {
		if d.v == nil {
			continue
		}
		if _, err := ParseValue(d.v.String()); err != nil {
			return FieldErrorf(d.field, "%v", err)
		}
	}
	return nil
}

// CheckRollover refuses a reset and rollover grants that do not belong
// together: each grant must be in r's namespace and ledger, name r as its
// reset and a parent, and not start before r.
func CheckRollover(r *Reset, rollover []*Grant) error {
	if r.ID == "" {
		return FieldErrorf("id", "required")
	}
	for _, g := range rollover {
		if err := g.CheckStorable(); err != nil {
			return fmt.Errorf("rollover grant %q: %w", g.ID, err)
		}
		bad := func(field, format string, args ...any) error {
			return fmt.Errorf("rollover grant %q: %w", g.ID, FieldErrorf(field, format, args...))
		}
		switch {
		case g.Namespace != r.Namespace:
			return bad("namespace", "%q is not the reset's %q", g.Namespace, r.Namespace)
		case g.LedgerID != r.LedgerID:
			return bad("ledgerId", "%q is not the reset's ledger %q", g.LedgerID, r.LedgerID)
		case g.ResetID != r.ID:
			return bad("resetId", "%q is not the reset's id %q", g.ResetID, r.ID)
		case g.ParentID == "":
			return bad("parentId", "required on a rollover grant")
		case g.EffectiveAt.Before(r.EffectiveAt):
			return bad("effectiveAt", "%s is before the reset at %s",
				g.EffectiveAt.UTC().Format(time.RFC3339), r.EffectiveAt.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// The errors of CreditStore that callers branch on, worded the same by
// every store.

// ErrLedgerNotFound is ENOTFOUND for a ledger.
func ErrLedgerNotFound(id string) error {
	return Errorf(ENOTFOUND, "ledger %q not found", id)
}

// ErrGrantNotFound is ENOTFOUND for a grant of a ledger.
func ErrGrantNotFound(grantID, ledgerID string) error {
	return Errorf(ENOTFOUND, "grant %q not found in ledger %q", grantID, ledgerID)
}

// ErrFeatureInUse is ECONFLICT for deleting a feature that grants refer to.
func ErrFeatureInUse(id string) error {
	return Errorf(ECONFLICT, "feature %q has grants and cannot be deleted; archive it instead", id)
}

// ErrSubjectHasLedger is ECONFLICT for a second ledger of a subject; it
// names the existing ledger.
func ErrSubjectHasLedger(subject, ledgerID string) error {
	return Errorf(ECONFLICT, "subject %q already has ledger %q", subject, ledgerID)
}

// ErrStaleLedger is ECONFLICT for a reset whose rollover was computed at
// another version of the ledger.
func ErrStaleLedger(ledgerID string, current, given int64) error {
	return Errorf(ECONFLICT, "ledger %q changed since the rollover was computed (version %d, not %d); compute it again",
		ledgerID, current, given)
}

// ErrBeforeLastReset is ECONFLICT for a change dated before the ledger's
// last reset: what a closed period holds cannot change.
func ErrBeforeLastReset(what string, t, lastReset time.Time) error {
	return Errorf(ECONFLICT, "%s %s is before the ledger's last reset at %s",
		what, t.UTC().Format(time.RFC3339Nano), lastReset.UTC().Format(time.RFC3339Nano))
}

// ErrResetNotAfterLast is ECONFLICT for a reset at or before the ledger's
// last reset.
func ErrResetNotAfterLast(at, lastReset time.Time) error {
	return Errorf(ECONFLICT, "reset at %s is not after the ledger's last reset at %s",
		at.UTC().Format(time.RFC3339Nano), lastReset.UTC().Format(time.RFC3339Nano))
}

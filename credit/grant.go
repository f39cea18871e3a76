// Package credit is the burn-down engine for prepaid credits: given a
// feature's grants, the state at the start of a computation and a way to ask
// for usage, it computes balances, overage and history.
//
// The package is pure: no storage, no HTTP, no clock. Every amount is an
// exact odometer.Decimal and every time a whole UTC minute, so that the same
// inputs give the same outputs to the last digit on every store. The rules it
// implements are numbered in docs/credits.md; the tests are named after them.
package credit

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
)

// Interval is a calendar unit for expirations and recurrences. Arithmetic is
// in UTC: HOUR, DAY and WEEK are 1, 24 and 168 hours; MONTH and YEAR keep the
// day of the month and the time of day and clamp the day to the last day of a
// shorter month (Jan 31 + 1 MONTH = Feb 28, or Feb 29 in a leap year).
type Interval string

// The intervals.
const (
	Hour  Interval = "HOUR"
	Day   Interval = "DAY"
	Week  Interval = "WEEK"
	Month Interval = "MONTH"
	Year  Interval = "YEAR"
)

func (u Interval) valid() bool {
	switch u {
	case Hour, Day, Week, Month, Year:
		return true
	}
	return false
}

// add returns t + n·u in UTC. Months and years are counted from t itself, so
// that t + 2 MONTH is computed once from t and not as (t + 1 MONTH) + 1 MONTH:
// only the former keeps the 31st in months that have one.
func (u Interval) add(t time.Time, n int) time.Time {
	t = t.UTC()
	var secs int64
	switch u {
	case Hour:
		secs = 3600
	case Day:
		secs = 24 * 3600
	case Week:
		secs = 7 * 24 * 3600
	case Month:
		return addMonths(t, n)
	case Year:
		return addMonths(t, 12*n)
	default:
		panic(fmt.Sprintf("credit: add with invalid interval %q", u))
	}
	// Unix seconds rather than time.Duration, which overflows after 292 years
	// and so could not step from an old anchor.
	return time.Unix(t.Unix()+int64(n)*secs, int64(t.Nanosecond())).UTC()
}

// addMonths adds n calendar months to t (UTC), clamping the day of the month.
func addMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	months := int(m) - 1 + n
	y += floorDiv(months, 12)
	m = time.Month(months - 12*floorDiv(months, 12) + 1)
	// Day 0 of the next month is the last day of month m.
	last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return time.Date(y, m, min(d, last), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// floorDiv divides rounding towards minus infinity (Go's / truncates), so
// that times before the anchor get negative occurrence numbers.
func floorDiv[T int | int64](a, b T) T {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// maxCount bounds the count of ExpiresAt so that the arithmetic cannot
// overflow; 2^20 hours is about 120 years.
const maxCount = 1 << 20

// ExpiresAt returns effectiveAt + count·unit with the calendar arithmetic of
// Interval: the expiry of a grant declared as "count × unit after it becomes
// effective". count must be between 1 and 2^20 and the result before the year
// 10000.
func ExpiresAt(effectiveAt time.Time, count int, unit Interval) (time.Time, error) {
	if !unit.valid() {
		return time.Time{}, odometer.FieldErrorf("expiration.duration", "must be HOUR, DAY, WEEK, MONTH or YEAR; got %q", unit)
	}
	if count < 1 || count > maxCount {
		return time.Time{}, odometer.FieldErrorf("expiration.count", "must be between 1 and %d; got %d", maxCount, count)
	}
	t := unit.add(effectiveAt, count)
	if t.Year() > 9999 {
		return time.Time{}, odometer.FieldErrorf("expiration", "%d %s after %s is after the year 9999", count, unit, effectiveAt.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// Recurrence refills a grant to its Amount at every Anchor + k·Interval (k any
// integer) strictly after the grant's EffectiveAt and before it stops being
// active. Each occurrence is computed from the anchor, so a monthly anchor on
// Jan 31 gives Feb 28, Mar 31, Apr 30. The zero value means no recurrence.
type Recurrence struct {
	Interval Interval
	Anchor   time.Time
}

// IsZero reports whether r is the zero value: no recurrence.
func (r Recurrence) IsZero() bool { return r.Interval == "" && r.Anchor.IsZero() }

// at returns the k-th occurrence.
func (r Recurrence) at(k int) time.Time { return r.Interval.add(r.Anchor, k) }

// firstAfter returns the smallest k whose occurrence is after t. It starts
// from an estimate that is off by at most one step, so it costs a few calendar
// computations whatever the distance between anchor and t.
func (r Recurrence) firstAfter(t time.Time) int {
	a, t := r.Anchor.UTC(), t.UTC()
	var k int
	switch r.Interval {
	case Hour:
		k = int(floorDiv(t.Unix()-a.Unix(), 3600))
	case Day:
		k = int(floorDiv(t.Unix()-a.Unix(), 24*3600))
	case Week:
		k = int(floorDiv(t.Unix()-a.Unix(), 7*24*3600))
	case Month:
		k = (t.Year()*12 + int(t.Month())) - (a.Year()*12 + int(a.Month()))
	case Year:
		k = t.Year() - a.Year()
	}
	for !r.at(k).After(t) {
		k++
	}
	for r.at(k - 1).After(t) {
		k--
	}
	return k
}

// RolloverKind says what a grant still active at a reset carries into the
// new period. The zero value means nothing: the grant's balance ends at the
// reset.
type RolloverKind string

// The rollover kinds.
const (
	// RolloverOriginal starts the child grant with the parent's Amount.
	RolloverOriginal RolloverKind = "ORIGINAL_AMOUNT"
	// RolloverRemaining starts the child grant with the parent's balance at
	// the reset.
	RolloverRemaining RolloverKind = "REMAINING_AMOUNT"
)

// Grant is credit for one feature of one ledger. It is active on
// [EffectiveAt, min(ExpiresAt, VoidedAt)), a zero ExpiresAt or VoidedAt
// meaning never. All times except CreatedAt must be whole UTC minutes.
type Grant struct {
	ID string
	// ParentID is the grant this one continues after a reset (see
	// Rollover); empty for grants made by users.
	ParentID string
	// Amount is what the grant holds when it becomes active and what each
	// recurrence refills it to. It must be positive.
	Amount odometer.Decimal
	// StartBalance, when set, replaces Amount as the balance the grant
	// starts with; Rollover sets it on the grants it makes, whose refills
	// still go to Amount. 0 ≤ StartBalance ≤ Amount.
	StartBalance *odometer.Decimal
	// Priority orders burning: 1 burns first, 255 last.
	Priority    int
	EffectiveAt time.Time
	ExpiresAt   time.Time
	// CreatedAt only breaks ties in the burn order, so, unlike the other
	// times, it may have any precision: of two grants created in the same
	// minute the earlier one burns first.
	CreatedAt  time.Time
	VoidedAt   time.Time
	Recurrence Recurrence
	Rollover   RolloverKind
	// RolloverMax caps the rolled-over balance (maxAmount in the API); nil
	// means no cap.
	RolloverMax *odometer.Decimal
}

// end returns when g stops being active, or the zero time for never.
func (g *Grant) end() time.Time {
	switch {
	case g.VoidedAt.IsZero():
		return g.ExpiresAt
	case g.ExpiresAt.IsZero() || g.VoidedAt.Before(g.ExpiresAt):
		return g.VoidedAt
	}
	return g.ExpiresAt
}

// startBalance is the balance g has when it becomes active.
func (g *Grant) startBalance() odometer.Decimal {
	if g.StartBalance != nil {
		return *g.StartBalance
	}
	return g.Amount
}

// Validate checks g on its own: the rules of docs/credits.md that do not
// depend on other grants. The error is an EINVALID odometer.Error naming the
// field.
func (g *Grant) Validate() error {
	if g.ID == "" {
		return odometer.FieldErrorf("id", "must not be empty")
	}
	if g.Amount.Sign() <= 0 {
		return odometer.FieldErrorf("amount", "must be positive; got %s", g.Amount)
	}
	if g.Priority < 1 || g.Priority > 255 {
		return odometer.FieldErrorf("priority", "must be between 1 and 255; got %d", g.Priority)
	}
	if err := checkMinute("effectiveAt", g.EffectiveAt); err != nil {
		return err
	}
	if !g.ExpiresAt.IsZero() {
		if err := checkMinute("expiresAt", g.ExpiresAt); err != nil {
			return err
		}
		if !g.ExpiresAt.After(g.EffectiveAt) {
			return odometer.FieldErrorf("expiresAt", "%s is not after effectiveAt %s", rfc(g.ExpiresAt), rfc(g.EffectiveAt))
		}
	}
	if !g.VoidedAt.IsZero() {
		if err := checkMinute("voidedAt", g.VoidedAt); err != nil {
			return err
		}
	}
	if b := g.StartBalance; b != nil && (b.Sign() < 0 || b.Cmp(g.Amount) > 0) {
		return odometer.FieldErrorf("startBalance", "must be between 0 and the amount %s; got %s", g.Amount, *b)
	}
	if r := g.Recurrence; !r.IsZero() {
		if !r.Interval.valid() {
			return odometer.FieldErrorf("recurrence.interval", "must be HOUR, DAY, WEEK, MONTH or YEAR; got %q", r.Interval)
		}
		if r.Anchor.IsZero() {
			return odometer.FieldErrorf("recurrence.anchor", "must be set")
		}
		if err := checkMinute("recurrence.anchor", r.Anchor); err != nil {
			return err
		}
	}
	switch g.Rollover {
	case "", RolloverOriginal, RolloverRemaining:
	default:
		return odometer.FieldErrorf("rollover", "must be empty, ORIGINAL_AMOUNT or REMAINING_AMOUNT; got %q", g.Rollover)
	}
	if m := g.RolloverMax; m != nil {
		if m.Sign() < 0 {
			return odometer.FieldErrorf("rolloverMax", "must not be negative; got %s", *m)
		}
		if g.Rollover == "" {
			return odometer.FieldErrorf("rolloverMax", "is set but rollover is not")
		}
	}
	return nil
}

// checkMinute rejects times that are not whole minutes: the engine computes at
// one-minute resolution and relies on the caller having truncated.
func checkMinute(field string, t time.Time) error {
	if !t.Truncate(time.Minute).Equal(t) {
		return odometer.FieldErrorf(field, "%s is not a whole minute", t.UTC().Format(time.RFC3339Nano))
	}
	return nil
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// compareBurnOrder orders grants as they burn: lower Priority first, then
// the earlier ExpiresAt (never-expiring last), then the earlier CreatedAt,
// then the smaller ID. IDs are unique, so the order is total and the result
// never depends on the order grants were passed in.
func compareBurnOrder(a, b *Grant) int {
	if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
		return c
	}
	switch {
	case a.ExpiresAt.Equal(b.ExpiresAt):
	case a.ExpiresAt.IsZero():
		return 1
	case b.ExpiresAt.IsZero():
		return -1
	default:
		return a.ExpiresAt.Compare(b.ExpiresAt)
	}
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

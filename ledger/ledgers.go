package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/odometerhq/odometer"
)

// LedgerInput is what a caller gives to create a ledger.
type LedgerInput struct {
	// Subject is the customer: the event subject whose usage the ledger's
	// grants pay. One ledger per subject.
	Subject  string
	Metadata map[string]string
	// ResetSchedule, when set, resets the ledger automatically. Its Anchor
	// defaults to the ledger's creation (truncated to the minute) and its
	// TimeZone to UTC.
	ResetSchedule *odometer.ResetSchedule
}

// CreateLedger validates in and stores a new ledger. ECONFLICT, naming the
// existing ledger's id, if the subject has one.
func (s *Service) CreateLedger(ctx context.Context, ns string, in LedgerInput) (*odometer.Ledger, error) {
	var fe fieldErrors
	switch {
	case in.Subject == "":
		fe.add("subject", "required: the event subject whose usage the ledger pays")
	case len(in.Subject) > odometer.MaxSubjectLength:
		fe.add("subject", "longer than %d bytes", odometer.MaxSubjectLength)
	}
	now := s.clock()
	var sched *odometer.ResetSchedule
	if rs := in.ResetSchedule; rs != nil {
		sched = &odometer.ResetSchedule{Interval: rs.Interval, Anchor: truncMinute(rs.Anchor), TimeZone: rs.TimeZone}
		if rs.Anchor.IsZero() {
			sched.Anchor = truncMinute(now)
		}
		switch rs.Interval {
		case "DAY", "WEEK", "MONTH", "YEAR":
		default:
			fe.add("resetSchedule.interval", "must be DAY, WEEK, MONTH or YEAR; got %q", rs.Interval)
		}
		if _, err := odometer.LoadTimeZone(rs.TimeZone); err != nil {
			fe.add("resetSchedule.timeZone", "%v", err)
		}
	}
	if err := fe.err("invalid ledger"); err != nil {
		return nil, err
	}
	l := &odometer.Ledger{
		ID:            odometer.NewID(now),
		Namespace:     ns,
		Subject:       in.Subject,
		Metadata:      in.Metadata,
		ResetSchedule: sched,
		CreatedAt:     now,
	}
	if err := s.store.CreateLedger(ctx, l); err != nil {
		return nil, fmt.Errorf("create ledger for subject %q: %w", l.Subject, err)
	}
	return l, nil
}

// ListLedgers lists ledgers; f.Limit must be positive.
func (s *Service) ListLedgers(ctx context.Context, f odometer.LedgerFilter) ([]*odometer.Ledger, error) {
	ls, err := s.store.ListLedgers(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list ledgers: %w", err)
	}
	return ls, nil
}

// GetLedger returns the ledger with this id. ENOTFOUND if none.
func (s *Service) GetLedger(ctx context.Context, ns, id string) (*odometer.Ledger, error) {
	l, err := s.store.FindLedger(ctx, ns, id)
	if err != nil {
		return nil, fmt.Errorf("find ledger %q: %w", id, err)
	}
	return l, nil
}

// schedule computes the occurrences of a ResetSchedule: Anchor + k·Interval
// in the schedule's time zone, with the calendar arithmetic of
// credit.ExpiresAt: DAY and WEEK keep the local time of day (so they follow
// DST changes); MONTH and YEAR keep the day of the month, clamped to the end
// of shorter months, each computed from the anchor (Jan 31 → Feb 28 →
// Mar 31), never from the previous occurrence.
type schedule struct {
	interval string
	anchor   time.Time // in loc
	loc      *time.Location
}

func newSchedule(rs *odometer.ResetSchedule) (*schedule, error) {
	loc, err := odometer.LoadTimeZone(rs.TimeZone)
	if err != nil {
		return nil, odometer.Errorf(odometer.EINVALID, "reset schedule: %v", err)
	}
	switch rs.Interval {
	case "DAY", "WEEK", "MONTH", "YEAR":
	default:
		return nil, odometer.Errorf(odometer.EINVALID, "reset schedule: interval %q is not DAY, WEEK, MONTH or YEAR", rs.Interval)
	}
	return &schedule{interval: rs.Interval, anchor: rs.Anchor.In(loc), loc: loc}, nil
}

// at returns the k-th occurrence (k may be negative), in UTC, truncated to
// the minute (a zone's offset may have seconds; the engine needs minutes).
func (s *schedule) at(k int) time.Time {
	a := s.anchor
	y, m, d := a.Date()
	hh, mm, ss := a.Clock()
	var t time.Time
	switch s.interval {
	case "DAY":
		t = time.Date(y, m, d+k, hh, mm, ss, 0, s.loc)
	case "WEEK":
		t = time.Date(y, m, d+7*k, hh, mm, ss, 0, s.loc)
	case "MONTH", "YEAR":
		n := k
		if s.interval == "YEAR" {
			n = 12 * k
		}
		// Day 0 of the month after the target is the target's last day.
		months := int(m) - 1 + n
		ty, tm := y+floorDiv(months, 12), time.Month(months-12*floorDiv(months, 12)+1)
		last := time.Date(ty, tm+1, 0, 0, 0, 0, 0, time.UTC).Day()
		t = time.Date(ty, tm, min(d, last), hh, mm, ss, 0, s.loc)
	}
	return truncMinute(t)
}

// firstAfter returns the first occurrence strictly after t. It starts from
// an estimate that is off by at most a step or two (DST, month lengths), so
// it costs a few calendar computations whatever the distance to the anchor.
func (s *schedule) firstAfter(t time.Time) time.Time {
	a, lt := s.anchor, t.In(s.loc)
	var k int
	switch s.interval {
	case "DAY":
		k = int(floorDiv(t.Unix()-a.Unix(), 24*3600))
	case "WEEK":
		k = int(floorDiv(t.Unix()-a.Unix(), 7*24*3600))
	case "MONTH":
		k = (lt.Year()*12 + int(lt.Month())) - (a.Year()*12 + int(a.Month()))
	case "YEAR":
		k = lt.Year() - a.Year()
	}
	for !s.at(k).After(t) {
		k++
	}
	for s.at(k - 1).After(t) {
		k--
	}
	return s.at(k)
}

// floorDiv divides rounding towards minus infinity, so that times before
// the anchor get negative occurrence numbers.
func floorDiv[T int | int64](a, b T) T {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

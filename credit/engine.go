package credit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
)

// UsageFunc returns the feature's usage in [from, to). Run calls it with
// whole-minute bounds, from < to, once per segment, in time order and over
// ranges that never overlap. The usage must not be negative.
type UsageFunc func(ctx context.Context, from, to time.Time) (odometer.Decimal, error)

// State is a complete snapshot of one period at At: everything that happened
// at or before At is in it, so Run from a State gives what Run from the
// period start would give.
type State struct {
	// At is the instant the state describes, after all changes at At.
	At time.Time
	// PeriodStart is the start of the period: the ledger's creation or its
	// last reset. Grants effective before it belong to earlier periods.
	PeriodStart time.Time
	// Balances holds the balance of every grant of the period that is active
	// at At, and only those.
	Balances map[string]odometer.Decimal
	// Overage is the debt outstanding at At: usage no grant could pay.
	Overage odometer.Decimal
	// Usage is the usage in [PeriodStart, At).
	Usage odometer.Decimal
}

// EntryKind says what an Entry records.
type EntryKind string

// The entry kinds Run produces. For equal From, entries come in this order:
// the instant entries (From == To) first, then the segment's.
const (
	// KindGrantEnd: the grant stopped being active (it expired or was
	// voided) at From; Amount is the balance it had left, which is gone.
	KindGrantEnd EntryKind = "GRANT_END"
	// KindRefill: the grant's recurrence refilled it at From; Amount is what
	// was added to bring the balance back to the grant's Amount.
	KindRefill EntryKind = "GRANT_REFILL"
	// KindOverageRepaid: the grant, becoming active or refilled at From,
	// paid Amount of outstanding overage.
	KindOverageRepaid EntryKind = "OVERAGE_REPAID"
	// KindUsage: the usage in the segment [From, To), whether grants paid it
	// or not. There is one per segment, also when the usage is zero.
	KindUsage EntryKind = "USAGE"
	// KindGrantUsage: the grant paid Amount of the segment's usage.
	KindGrantUsage EntryKind = "GRANT_USAGE"
	// KindOverage: Amount of the segment's usage found no grant with balance
	// left and became debt.
	KindOverage EntryKind = "OVERAGE"
)

// Entry is one line of history. GrantID is empty for USAGE and OVERAGE.
//
// Segment entries (USAGE, GRANT_USAGE, OVERAGE) carry the segment's bounds:
// From is where the segment starts, which lies before the run's start when the
// run starts from a snapshot inside a segment, and To is the segment's end or
// the run's end, whichever comes first. Amount counts only usage within the
// run. MergeEntries joins the entries of two consecutive runs.
type Entry struct {
	Kind     EntryKind
	GrantID  string
	From, To time.Time
	Amount   odometer.Decimal
}

// instant reports whether e records a change at one instant rather than
// usage over a segment.
func (e *Entry) instant() bool {
	switch e.Kind {
	case KindGrantEnd, KindRefill, KindOverageRepaid:
		return true
	}
	return false
}

var zero odometer.Decimal

func minDecimal(a, b odometer.Decimal) odometer.Decimal {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

// ledger is a period's grants, validated and in burn order.
type ledger struct {
	periodStart time.Time
	grants      []*Grant    // the period's grants that are ever active, in burn order
	ends        []time.Time // ends[i] is grants[i].end()
}

// newLedger validates every grant and keeps those that belong to the period
// starting at periodStart and are active for at least a minute. Grants
// effective before periodStart belong to an earlier period: a reset ended
// them and Rollover's children continue them.
func newLedger(periodStart time.Time, grants []Grant) (*ledger, error) {
	if err := checkMinute("periodStart", periodStart); err != nil {
		return nil, err
	}
	// A copy to normalise, sorted by pointer: Grants are large to swap.
	own := slices.Clone(grants)
	byID := make([]*Grant, len(own))
	for i := range own {
		byID[i] = &own[i]
	}
	// Validate in ID order so that the error reported for several bad
	// grants does not depend on the order of the slice.
	slices.SortFunc(byID, func(a, b *Grant) int { return strings.Compare(a.ID, b.ID) })
	l := &ledger{periodStart: periodStart.UTC()}
	for i, g := range byID {
		if err := g.Validate(); err != nil {
			return nil, fmt.Errorf("grant %q: %w", g.ID, err)
		}
		if i > 0 && byID[i-1].ID == g.ID {
			return nil, odometer.Errorf(odometer.EINVALID, "grant %q appears twice", g.ID)
		}
		// UTC throughout, so that outputs do not carry the caller's zones.
		g.EffectiveAt, g.ExpiresAt, g.VoidedAt = g.EffectiveAt.UTC(), g.ExpiresAt.UTC(), g.VoidedAt.UTC()
		g.Recurrence.Anchor = g.Recurrence.Anchor.UTC()
		end := g.end()
		if g.EffectiveAt.Before(periodStart) || (!end.IsZero() && !end.After(g.EffectiveAt)) {
			continue
		}
		l.grants = append(l.grants, g)
	}
	slices.SortFunc(l.grants, compareBurnOrder)
	l.ends = make([]time.Time, len(l.grants))
	for i, g := range l.grants {
		l.ends[i] = g.end()
	}
	return l, nil
}

// active reports whether grant i is active at t.
func (l *ledger) active(i int, t time.Time) bool {
	return !t.Before(l.grants[i].EffectiveAt) && (l.ends[i].IsZero() || t.Before(l.ends[i]))
}

// load checks that s is a state of this ledger's period and returns its
// balances by burn rank; active[i] says whether grant i is active at s.At.
func (l *ledger) load(s State) (bal []odometer.Decimal, active []bool, err error) {
	if err := checkMinute("at", s.At); err != nil {
		return nil, nil, err
	}
	if s.At.Before(s.PeriodStart) {
		return nil, nil, odometer.Errorf(odometer.EINVALID, "state at %s is before its period start %s", rfc(s.At), rfc(s.PeriodStart))
	}
	if s.Overage.Sign() < 0 || s.Usage.Sign() < 0 {
		return nil, nil, odometer.Errorf(odometer.EINVALID, "state at %s has negative overage %s or usage %s", rfc(s.At), s.Overage, s.Usage)
	}
	bal = make([]odometer.Decimal, len(l.grants))
	active = make([]bool, len(l.grants))
	known := 0
	for i, g := range l.grants {
		b, ok := s.Balances[g.ID]
		if !l.active(i, s.At) {
			continue // a balance for it is reported below as unknown
		}
		if !ok {
			return nil, nil, odometer.Errorf(odometer.EINVALID, "state at %s has no balance for grant %q, which is active then (was the state computed before this grant or a void was added?)", rfc(s.At), g.ID)
		}
		if b.Sign() < 0 || b.Cmp(g.Amount) > 0 {
			return nil, nil, odometer.Errorf(odometer.EINVALID, "state at %s has balance %s for grant %q, outside [0, %s]", rfc(s.At), b, g.ID, g.Amount)
		}
		if s.Overage.Sign() > 0 && b.Sign() > 0 {
			return nil, nil, odometer.Errorf(odometer.EINVALID, "state at %s has overage %s while grant %q has balance %s left", rfc(s.At), s.Overage, g.ID, b)
		}
		bal[i], active[i] = b, true
		known++
	}
	if known != len(s.Balances) {
		var unknown []string
		for id := range s.Balances {
			if i := l.index(id); i < 0 || !active[i] {
				unknown = append(unknown, id)
			}
		}
		slices.Sort(unknown) // map order must not pick the message
		return nil, nil, odometer.Errorf(odometer.EINVALID, "state at %s has a balance for grant %q, which is not an active grant of the period then", rfc(s.At), unknown[0])
	}
	return bal, active, nil
}

func (l *ledger) index(id string) int {
	return slices.IndexFunc(l.grants, func(g *Grant) bool { return g.ID == id })
}

// change kinds, in the order they apply at one instant: a grant that ends
// stops before anything else happens, refills and starts then give balance,
// and the grants that got balance pay back overage (repay, after all of them).
const (
	changeEnd = iota
	changeRefill
	changeStart
)

// change is one change at one instant. The instant is in Unix seconds rather
// than a time.Time: sorting pointer-free values is several times faster, and
// sorting changes is a good part of a run.
type change struct {
	at    int64
	kind  int
	grant int // burn rank
}

func (c change) time() time.Time { return time.Unix(c.at, 0).UTC() }

// changes returns every change in (from, to], sorted by time, kind and burn
// rank. Their distinct times cut [from, to) into segments.
func (l *ledger) changes(from, to time.Time) []change {
	var cs []change
	in := func(t time.Time) bool { return t.After(from) && !t.After(to) }
	for i, g := range l.grants {
		end := l.ends[i]
		if in(g.EffectiveAt) {
			cs = append(cs, change{g.EffectiveAt.Unix(), changeStart, i})
		}
		if !end.IsZero() && in(end) {
			cs = append(cs, change{end.Unix(), changeEnd, i})
		}
		if r := g.Recurrence; !r.IsZero() {
			after := from
			if g.EffectiveAt.After(after) {
				after = g.EffectiveAt
			}
			for k := r.firstAfter(after); ; k++ {
				t := r.at(k)
				if t.After(to) || (!end.IsZero() && !t.Before(end)) {
					break
				}
				cs = append(cs, change{t.Unix(), changeRefill, i})
			}
		}
	}
	slices.SortFunc(cs, func(a, b change) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		if c := cmp.Compare(a.kind, b.kind); c != 0 {
			return c
		}
		return cmp.Compare(a.grant, b.grant)
	})
	return cs
}

// segmentStart returns the start of the segment that contains t: the last
// change at or before t, or the period start. Entries name segments by it, so
// that a run from a snapshot inside a segment names it as a run from the
// period start does.
func (l *ledger) segmentStart(t time.Time) time.Time {
	s := l.periodStart
	later := func(u time.Time) {
		if u.After(s) && !u.After(t) {
			s = u
		}
	}
	for i, g := range l.grants {
		end := l.ends[i]
		later(g.EffectiveAt)
		if !end.IsZero() {
			later(end)
		}
		if r := g.Recurrence; !r.IsZero() {
			if u := r.at(r.firstAfter(t) - 1); u.After(g.EffectiveAt) && (end.IsZero() || u.Before(end)) {
				later(u)
			}
		}
	}
	return s
}

// NewPeriod returns the state at the start of a period: the grants of the
// period that become effective exactly at start hold their starting balance
// (StartBalance or Amount), and there is no usage and no overage yet.
func NewPeriod(start time.Time, grants []Grant) (State, error) {
	l, err := newLedger(start, grants)
	if err != nil {
		return State{}, err
	}
	s := State{At: start.UTC(), PeriodStart: start.UTC(), Balances: map[string]odometer.Decimal{}}
	for _, g := range l.grants {
		if g.EffectiveAt.Equal(start) {
			s.Balances[g.ID] = g.startBalance()
		}
	}
	return s, nil
}

// Run advances start to the instant to within start's period and returns the
// state at to with the history of (start.At, to]. grants are all the ledger's
// grants for the feature, in any order; those effective before
// start.PeriodStart are ignored. It asks usage once per segment of
// [start.At, to) and burns the segment's usage in burn order. to must be a
// whole minute not before start.At; to == start.At returns start unchanged.
//
// Run(Run(s, t1), t2) gives the state of Run(s, t2), and MergeEntries of the
// two histories gives its history.
func Run(ctx context.Context, start State, grants []Grant, to time.Time, usage UsageFunc) (State, []Entry, error) {
	l, err := newLedger(start.PeriodStart, grants)
	if err != nil {
		return State{}, nil, err
	}
	bal, active, err := l.load(start)
	if err != nil {
		return State{}, nil, err
	}
	if err := checkMinute("to", to); err != nil {
		return State{}, nil, err
	}
	if to.Before(start.At) {
		return State{}, nil, odometer.Errorf(odometer.EINVALID, "cannot run back from %s to %s; start from an earlier state", rfc(start.At), rfc(to))
	}
	cs := l.changes(start.At, to)
	// Typically a segment has a USAGE and a GRANT_USAGE entry and a change
	// one entry: reserving that saves most of the growth of the history.
	r := runner{l: l, bal: bal, active: active, overage: start.Overage, entries: make([]Entry, 0, 3*len(cs)+2)}
	total := start.Usage
	cur, segFrom := start.At.UTC(), l.segmentStart(start.At)
	for i := 0; ; {
		next := to.UTC()
		if i < len(cs) {
			next = cs[i].time()
		}
		if next.After(cur) {
			if err := ctx.Err(); err != nil {
				return State{}, nil, fmt.Errorf("credit run at %s: %w", rfc(cur), err)
			}
			u, err := usage(ctx, cur, next)
			if err != nil {
				return State{}, nil, fmt.Errorf("usage in [%s, %s): %w", rfc(cur), rfc(next), err)
			}
			if u.Sign() < 0 {
				return State{}, nil, odometer.Errorf(odometer.EINVALID, "usage in [%s, %s) is negative: %s", rfc(cur), rfc(next), u)
			}
			total = total.Add(u)
			r.burn(segFrom, next, u)
			cur = next
		}
		if i == len(cs) {
			break
		}
		j := i
		for j < len(cs) && cs[j].at == cs[i].at {
			j++
		}
		r.apply(cs[i:j])
		i, segFrom = j, next
	}
	end := State{At: to.UTC(), PeriodStart: l.periodStart, Balances: make(map[string]odometer.Decimal, len(bal)), Overage: r.overage, Usage: total}
	for i := range l.grants {
		if r.active[i] {
			end.Balances[l.grants[i].ID] = r.bal[i]
		}
	}
	return end, r.entries, nil
}

// runner holds the balances while Run walks the segments.
type runner struct {
	l       *ledger
	bal     []odometer.Decimal // by burn rank
	active  []bool
	overage odometer.Decimal
	entries []Entry
	fresh   []int // scratch: grants that got balance at the current instant
}

// burn charges u, the usage of the segment [from, to), to the active grants
// in burn order and the rest to overage.
func (r *runner) burn(from, to time.Time, u odometer.Decimal) {
	r.entries = append(r.entries, Entry{Kind: KindUsage, From: from, To: to, Amount: u})
	for i := range r.bal {
		if u.IsZero() {
			return
		}
		if !r.active[i] || r.bal[i].IsZero() {
			continue
		}
		take := minDecimal(r.bal[i], u)
		r.bal[i], u = r.bal[i].Sub(take), u.Sub(take)
		r.entries = append(r.entries, Entry{Kind: KindGrantUsage, GrantID: r.l.grants[i].ID, From: from, To: to, Amount: take})
	}
	if !u.IsZero() {
		r.overage = r.overage.Add(u)
		r.entries = append(r.entries, Entry{Kind: KindOverage, From: from, To: to, Amount: u})
	}
}

// apply applies the changes of one instant, already in order, and lets the
// grants that got balance pay back overage in burn order.
func (r *runner) apply(cs []change) {
	at := cs[0].time()
	r.fresh = r.fresh[:0]
	for _, c := range cs {
		g := r.l.grants[c.grant]
		switch c.kind {
		case changeEnd:
			r.entries = append(r.entries, Entry{Kind: KindGrantEnd, GrantID: g.ID, From: at, To: at, Amount: r.bal[c.grant]})
			r.bal[c.grant], r.active[c.grant] = zero, false
		case changeRefill:
			r.entries = append(r.entries, Entry{Kind: KindRefill, GrantID: g.ID, From: at, To: at, Amount: g.Amount.Sub(r.bal[c.grant])})
			r.bal[c.grant] = g.Amount
			r.fresh = append(r.fresh, c.grant)
		case changeStart:
			r.bal[c.grant], r.active[c.grant] = g.startBalance(), true
			r.fresh = append(r.fresh, c.grant)
		}
	}
	slices.Sort(r.fresh) // refills and starts together, in burn order
	for _, i := range r.fresh {
		if r.overage.IsZero() {
			return
		}
		pay := minDecimal(r.bal[i], r.overage)
		if pay.IsZero() {
			continue
		}
		r.bal[i], r.overage = r.bal[i].Sub(pay), r.overage.Sub(pay)
		r.entries = append(r.entries, Entry{Kind: KindOverageRepaid, GrantID: r.l.grants[i].ID, From: at, To: at, Amount: pay})
	}
}

// MergeEntries joins the histories of two consecutive runs, Run(s, t1) and
// Run(Run(s, t1), t2), into the history of Run(s, t2). When t1 falls inside a
// segment, both histories hold entries of that segment, with the same From;
// they become one set: amounts of the same kind and grant add up, To becomes
// the second run's, and grants keep the order they burned in. Otherwise the
// histories are concatenated.
func MergeEntries(first, second []Entry) []Entry {
	last := -1 // first's last USAGE entry
	for i := len(first) - 1; i >= 0 && last < 0; i-- {
		if first[i].Kind == KindUsage {
			last = i
		}
	}
	// second starts with the USAGE entry of its first segment, which is the
	// continued one exactly when its From lies before t1, i.e. equals the
	// From of first's last segment.
	if last < 0 || len(second) == 0 || second[0].Kind != KindUsage || !second[0].From.Equal(first[last].From) {
		return slices.Concat(first, second)
	}
	from, to := second[0].From, second[0].To
	n := 1 // second[:n] are the continued segment's entries
	for n < len(second) && second[n].Kind != KindUsage && !second[n].instant() {
		n++
	}
	usage := Entry{Kind: KindUsage, From: from, To: to}
	overage := Entry{Kind: KindOverage, From: from, To: to}
	var burned []Entry
	for _, e := range slices.Concat(first[last:], second[:n]) {
		switch e.Kind {
		case KindUsage:
			usage.Amount = usage.Amount.Add(e.Amount)
		case KindOverage:
			overage.Amount = overage.Amount.Add(e.Amount)
		case KindGrantUsage:
			// Within a segment grants burn in burn order and an exhausted
			// grant stays exhausted, so first's grants come before second's
			// and only first's last grant can continue in second.
			if k := len(burned) - 1; k >= 0 && burned[k].GrantID == e.GrantID {
				burned[k].Amount = burned[k].Amount.Add(e.Amount)
				continue
			}
			burned = append(burned, Entry{Kind: KindGrantUsage, GrantID: e.GrantID, From: from, To: to, Amount: e.Amount})
		}
	}
	merged := slices.Concat(first[:last], []Entry{usage}, burned)
	if !overage.Amount.IsZero() {
		merged = append(merged, overage)
	}
	return append(merged, second[n:]...)
}

package credit

// Rollover returns the grants that continue s's period's grants after a
// reset at s.At: one child for each grant active at s.At whose Rollover is
// set, except grants effective at s.At, which belong to the new period. A child has a new ID from newID (called in the parents' burn order),
// ParentID = the parent's ID, EffectiveAt = CreatedAt = s.At, the parent's
// Amount, Priority, ExpiresAt, VoidedAt (a void dated after the reset still
// ends the credit), Recurrence and rollover settings, and StartBalance =
// the parent's Amount (ORIGINAL_AMOUNT) or its balance at s.At
// (REMAINING_AMOUNT), capped at RolloverMax when set. Refills of a recurring
// child still go to Amount. A child that would start at zero is omitted unless
// it recurs, since it could never burn anything.
//
// The children are frozen: the caller stores them and uses them, with
// NewPeriod(s.At, …), for the new period, so that usage arriving late for the
// old period changes the old period's history but not the new period.
func Rollover(s State, grants []Grant, newID func() string) ([]Grant, error) {
	l, err := newLedger(s.PeriodStart, grants)
	if err != nil {
		return nil, err
	}
	bal, active, err := l.load(s)
	if err != nil {
		return nil, err
	}
	var children []Grant
	for i, parent := range l.grants {
		g := *parent // the child starts as a copy of its parent
		if !active[i] || g.Rollover == "" || g.EffectiveAt.Equal(s.At) {
			// A grant effective at the reset itself belongs to the new
			// period, where it starts in full.
			continue
		}
		start := g.Amount
		if g.Rollover == RolloverRemaining {
			start = bal[i]
		}
		if g.RolloverMax != nil {
			start = minDecimal(start, *g.RolloverMax)
		}
		if start.IsZero() && g.Recurrence.IsZero() {
			continue
		}
		g.ParentID, g.ID = g.ID, newID()
		g.EffectiveAt, g.CreatedAt = s.At.UTC(), s.At.UTC()
		g.StartBalance = &start
		children = append(children, g)
	}
	return children, nil
}

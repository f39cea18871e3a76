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

// EntryKind says what a HistoryEntry records.
type EntryKind string

// The kinds of history entries. GRANT, VOID and RESET come from the stored
// records; the others from the engine's runs over every period overlapping
// the range (the engine's USAGE entries are dropped: each is the sum of its
// segment's GRANT_USAGE and OVERAGE entries).
const (
	// KindGrant: a grant became effective at At; Amount is its starting
	// balance (for a rolled-over grant, what it carried over).
	KindGrant EntryKind = "GRANT"
	// KindVoid: a grant was voided at At; Amount is the balance it lost (0
	// if it was not active then).
	KindVoid EntryKind = "VOID"
	// KindReset: a reset started a new period at At.
	KindReset EntryKind = "RESET"
	// KindGrantExpiry: a grant expired at At; Amount is the balance it lost.
	KindGrantExpiry EntryKind = "GRANT_EXPIRY"
	// KindGrantRefill: a recurrence refilled a grant at At by Amount.
	KindGrantRefill EntryKind = "GRANT_REFILL"
	// KindOverageRepaid: a grant starting or refilled at At paid Amount of
	// the outstanding overage.
	KindOverageRepaid EntryKind = "OVERAGE_REPAID"
	// KindGrantUsage: a grant paid Amount of the usage in [From, To).
	KindGrantUsage EntryKind = "GRANT_USAGE"
	// KindOverage: Amount of the usage in [From, To) found no grant with
	// balance left and became overage.
	KindOverage EntryKind = "OVERAGE"
)

// HistoryEntry is one line of a ledger's history.
type HistoryEntry struct {
	Kind EntryKind
	// At is the instant of the entry; for GRANT_USAGE and OVERAGE, From.
	At time.Time
	// Feature is nil for RESET.
	Feature *odometer.Feature
	// GrantID is set for grant entries.
	GrantID string
	// ParentGrantID and ResetID are set on the GRANT entry of a
	// rolled-over grant; ResetID and Automatic on RESET entries.
	ParentGrantID string
	ResetID       string
	Automatic     bool
	// Amount is nil for RESET.
	Amount *odometer.Decimal
	// From and To bound the usage of GRANT_USAGE and OVERAGE entries: a
	// segment of the engine (grants constant within it), clipped to the
	// requested range.
	From, To time.Time

	phase int // order among entries at the same At; see History
	seq   int // order of creation: burn order within one run
}

// Phases order the entries of one instant: the changes that end the old
// period (ends, refills, and at a reset the debt refills repaid), the
// reset, the grants starting then, the debt they repay, then the usage of
// the segment starting then.
const (
	phaseEnd = iota
	phaseReset
	phaseGrant
	phaseRepaid
	phaseUsage
)

// HistoryQuery selects a range of history and a page of it.
type HistoryQuery struct {
	// [From, To), truncated to minutes; zero From: from the ledger's first
	// period; zero To: now. Usage is computed up to now at most.
	From, To time.Time
	Limit    int // > 0
	Offset   int
}

// History is a page of a ledger's history.
type History struct {
	From, To time.Time
	// Total is the number of entries in the range, of which Entries is the
	// page [Offset, Offset+Limit).
	Total   int
	Entries []HistoryEntry
}

// History returns the ledger's history in [q.From, q.To), in time order;
// entries of the same instant are ordered by phase (ends, refills and, at a
// reset, the old period's repaid debt; RESET; GRANT; repaid debt; usage),
// then by feature key, then in burn order. Segment entries (GRANT_USAGE,
// OVERAGE) count only usage within the range; their From is clipped to it.
func (s *Service) History(ctx context.Context, ns, ledgerID string, q HistoryQuery) (*History, error) {
	now := s.minute()
	from, to := time.Time{}, now
	if !q.From.IsZero() {
		from = truncMinute(q.From)
	}
	if !q.To.IsZero() {
		to = truncMinute(q.To)
	}
	if !from.IsZero() && !from.Before(to) {
		return nil, odometer.FieldErrorf("from", "%s is not before to %s (whole minutes; ranges are half-open: [from, to))", rfc(from), rfc(to))
	}
	b, err := s.prepare(ctx, ns, ledgerID)
	if err != nil {
		return nil, err
	}
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	var out []HistoryEntry
	seq := 0
	add := func(e HistoryEntry) int {
		e.seq, seq = seq, seq+1
		out = append(out, e)
		return len(out) - 1
	}

	// The stored records.
	for _, r := range b.resets {
		if in(r.EffectiveAt) {
			add(HistoryEntry{Kind: KindReset, At: r.EffectiveAt.UTC(), ResetID: r.ID, Automatic: r.Automatic, phase: phaseReset})
		}
	}
	voids := map[string]int{} // grant id → index in out
	for _, g := range b.grants {
		gEff, gVoid := in(g.EffectiveAt), g.VoidedAt != nil && in(*g.VoidedAt)
		if !gEff && !gVoid {
			continue
		}
		f, err := b.feature(ctx, g.FeatureID)
		if err != nil {
			return nil, err
		}
		if gEff {
			amount := g.Amount
			if g.StartBalance != nil {
				amount = *g.StartBalance
			}
			add(HistoryEntry{Kind: KindGrant, At: g.EffectiveAt.UTC(), Feature: f.Feature, GrantID: g.ID,
				ParentGrantID: g.ParentID, ResetID: g.ResetID, Amount: &amount, phase: phaseGrant})
		}
		if gVoid {
			var zero odometer.Decimal
			phase := phaseEnd
			if g.VoidedAt.Equal(g.EffectiveAt) {
				phase = phaseGrant // voided as it started: after its GRANT entry
			}
			voids[g.ID] = add(HistoryEntry{Kind: KindVoid, At: g.VoidedAt.UTC(), Feature: f.Feature, GrantID: g.ID, Amount: &zero, phase: phase})
		}
	}

	// The engine's runs over every period overlapping the range.
	usageTo := minTime(to, now)
	for _, p := range b.periods() {
		end := usageTo
		if !p.end.IsZero() && p.end.Before(end) {
			end = p.end
		}
		// A period ending at `from` still counts: the changes at its end
		// (at from) are in the range.
		if !p.start.Before(end) || (!p.end.IsZero() && p.end.Before(from)) {
			continue
		}
		fs, err := b.featuresIn(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			entries, err := b.runRange(ctx, p, f, from, end)
			if err != nil {
				return nil, fmt.Errorf("history of ledger %q: %w", ledgerID, err)
			}
			for _, e := range entries {
				h := HistoryEntry{At: e.From, Feature: f.Feature, GrantID: e.GrantID, Amount: &e.Amount}
				switch e.Kind {
				case credit.KindUsage:
					continue
				case credit.KindGrantUsage, credit.KindOverage:
					h.Kind, h.phase = KindGrantUsage, phaseUsage
					if e.Kind == credit.KindOverage {
						h.Kind = KindOverage
					}
					h.At, h.From, h.To = maxTime(e.From, from), maxTime(e.From, from), e.To
					if !in(h.At) {
						continue
					}
				case credit.KindGrantEnd:
					if !in(e.From) {
						continue
					}
					if i, ok := voids[e.GrantID]; ok && out[i].At.Equal(e.From) {
						// The void ended the grant: its VOID entry says what it
						// lost, in the place the engine's end has.
						out[i].Amount, out[i].seq, seq = &e.Amount, seq, seq+1
						continue
					}
					h.Kind, h.phase = KindGrantExpiry, phaseEnd
				case credit.KindRefill:
					if !in(e.From) {
						continue
					}
					h.Kind, h.phase = KindGrantRefill, phaseEnd
				case credit.KindOverageRepaid:
					if !in(e.From) {
						continue
					}
					h.Kind, h.phase = KindOverageRepaid, phaseRepaid
					if e.From.Equal(p.end) {
						// Repaid by a refill at the reset: the old period's.
						h.phase = phaseEnd
					}
				default:
					return nil, fmt.Errorf("history of ledger %q: unknown engine entry kind %q", ledgerID, e.Kind)
				}
				add(h)
			}
		}
	}

	slices.SortStableFunc(out, func(a, b HistoryEntry) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.phase, b.phase), cmp.Compare(featureKey(a), featureKey(b)), cmp.Compare(a.seq, b.seq))
	})
	h := &History{From: from, To: to, Total: len(out)}
	lo := min(q.Offset, len(out))
	hi := min(lo+q.Limit, len(out))
	h.Entries = out[lo:hi:hi]
	return h, nil
}

// runRange runs feature f in period p and returns the entries of
// [from, end]: from the period start to from (keeping only the changes at
// from), then from there to end (end within p). Splitting the run at from
// makes the segment entries count only usage from `from` on.
func (b *book) runRange(ctx context.Context, p period, f *feature, from, end time.Time) ([]credit.Entry, error) {
	if !from.After(p.start) {
		_, entries, _, err := b.run(ctx, p, f, end)
		return entries, err
	}
	mid := minTime(from, end)
	st, first, gs, err := b.run(ctx, p, f, mid)
	if err != nil {
		return nil, err
	}
	var out []credit.Entry
	for _, e := range first {
		if e.From.Equal(e.To) && !e.From.Before(from) {
			out = append(out, e) // a change at from: in the range
		}
	}
	_, second, err := credit.Run(ctx, st, gs, end, f.usage)
	if err != nil {
		return nil, fmt.Errorf("feature %q from %s to %s: %w", f.Key, rfc(mid), rfc(end), err)
	}
	return append(out, second...), nil
}

func featureKey(e HistoryEntry) string {
	if e.Feature == nil {
		return ""
	}
	return e.Feature.Key
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

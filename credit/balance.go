package credit

import (
	"slices"

	"github.com/odometerhq/odometer"
)

// FeatureBalance is a feature's balance at a State's At.
type FeatureBalance struct {
	// Balance is the sum of the balances of the grants active at At.
	Balance odometer.Decimal
	// Usage is the usage since the period start.
	Usage odometer.Decimal
	// Overage is the outstanding debt: usage no grant has paid.
	Overage odometer.Decimal
}

// Balance returns the feature's balance in s.
func Balance(s State) FeatureBalance {
	b := FeatureBalance{Usage: s.Usage, Overage: s.Overage}
	for _, v := range s.Balances {
		// Exact addition is commutative, so map order cannot change the sum.
		b.Balance = b.Balance.Add(v)
	}
	return b
}

// GrantBalance is one grant's balance at a State's At.
type GrantBalance struct {
	GrantID string
	Balance odometer.Decimal
	// Active reports whether the grant is active at At. Grants not yet
	// effective, expired, voided or of an earlier period are not, and
	// report a zero balance.
	Active bool
}

// GrantBalances returns the balance of each of grants in s, in burn order.
func GrantBalances(s State, grants []Grant) []GrantBalance {
	sorted := slices.Clone(grants)
	slices.SortFunc(sorted, func(a, b Grant) int { return compareBurnOrder(&a, &b) })
	out := make([]GrantBalance, len(sorted))
	for i, g := range sorted {
		b, ok := s.Balances[g.ID]
		out[i] = GrantBalance{GrantID: g.ID, Balance: b, Active: ok}
	}
	return out
}

package postgres

// WithoutFold returns o for a Store that folds rollup cell deltas only
// when FoldRollups is called, so that a test chooses when they move.
func WithoutFold(o Options) Options {
	o.noFold = true
	return o
}

// MaxDeltaRows and MaxDeltaBytes are maxDeltaRows and maxDeltaBytes, for
// tests.
const (
	MaxDeltaRows  = maxDeltaRows
	MaxDeltaBytes = maxDeltaBytes
)

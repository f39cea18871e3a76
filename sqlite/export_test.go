package sqlite

// OpenWithoutFold opens the store in dir with no background fold of rollup
// cell deltas: they move only when FoldRollups is called, so that a test
// chooses when.
func OpenWithoutFold(dir string) (*Store, error) { return openDir(dir, false) }

package sqlite

import (
	"strings"
	"testing"
)

// TestSubjectsCellsPlan checks, with the SQLite this binary embeds, that
// the read of every subject's cells steps through the subjects and probes
// each one's range of buckets. Joined the other way round (the cells
// outside, the list of subjects inside), it ran for minutes at 200K events
// instead of 0.1 s: the plan is what keeps it linear, so it is pinned.
func TestSubjectsCellsPlan(t *testing.T) {
	s, err := OpenWithoutFold(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.read.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+readSubjectsCellsSQL, 1, 86400, 0, 86400*30)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// The main query's two loops are its last two lines: the subjects
	// outside, a search of the cells' primary key inside.
	if n := len(plan); n < 2 || plan[n-2] != "SCAN s" ||
		!strings.HasPrefix(plan[n-1], "SEARCH c USING PRIMARY KEY (rollup=? AND by_subject=? AND size_seconds=? AND subject=? AND bucket>? AND bucket<?)") {
		t.Errorf("plan of readSubjectsCellsSQL:\n%s\nwant the subjects scanned outside and each one's cells searched inside", strings.Join(plan, "\n"))
	}
}

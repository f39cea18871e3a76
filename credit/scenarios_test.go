package credit

import (
	"slices"
	"testing"
)

// The worked scenarios of docs/credits.md, in the same order and with the
// same numbers. Each checkpoint runs the period from its start to `at`.

type checkpoint struct {
	at       string
	balances string // fmtBalances: grants active at `at`
	overage  string
}

type scenario struct {
	name   string
	start  string
	grants []Grant
	uses   []use
	checks []checkpoint
}

func (sc scenario) run(t *testing.T) {
	t.Helper()
	for _, c := range sc.checks {
		runCase{start: sc.start, grants: sc.grants, uses: sc.uses, to: c.at, balances: c.balances, overage: c.overage}.run(t)
	}
}

func TestScenarios(t *testing.T) {
	t.Parallel()
	prio := func(g Grant, p int) Grant { return with(g, func(g *Grant) { g.Priority = p }) }
	exp := func(g Grant, at string) Grant { return with(g, func(g *Grant) { g.ExpiresAt = tm(at) }) }
	for _, sc := range []scenario{{
		name:   "1 priority",
		start:  p0,
		grants: []Grant{prio(grant("a", "100", p0), 2), prio(grant("b", "50", p0), 1)},
		uses:   []use{{"2025-01-02 10:00", "80"}},
		checks: []checkpoint{{"2025-01-03 00:00", "a:70 b:0", ""}},
	}, {
		name:  "2 expiry tie-break",
		start: p0,
		grants: []Grant{
			exp(grant("a", "100", p0), "2025-02-01 00:00"),
			exp(grant("b", "100", p0), "2025-01-15 00:00"),
			grant("c", "100", p0),
		},
		uses: []use{{"2025-01-02 10:00", "150"}, {"2025-01-20 10:00", "30"}},
		checks: []checkpoint{
			{"2025-01-03 00:00", "a:50 b:0 c:100", ""},
			{"2025-01-21 00:00", "a:20 c:100", ""},
		},
	}, {
		name:   "3 exact exhaustion",
		start:  p0,
		grants: []Grant{grant("a", "100", p0)},
		uses:   []use{{"2025-01-01 10:00", "100"}, {"2025-01-01 11:00", "1"}},
		checks: []checkpoint{
			{"2025-01-01 10:30", "a:0", ""},
			{"2025-01-02 00:00", "a:0", "1"},
		},
	}, {
		name:   "4 overage repaid by a grant that becomes active later",
		start:  p0,
		grants: []Grant{grant("b", "100", "2025-01-02 00:00")},
		uses:   []use{{"2025-01-01 12:00", "40"}, {"2025-01-03 10:00", "10"}},
		checks: []checkpoint{
			{"2025-01-01 23:59", "", "40"},
			{"2025-01-02 00:00", "b:60", ""},
			{"2025-01-04 00:00", "b:50", ""},
		},
	}, {
		name:  "5 void in mid-period",
		start: p0,
		grants: []Grant{
			with(grant("a", "100", p0), func(g *Grant) { g.VoidedAt = tm("2025-01-10 00:00") }),
			prio(grant("b", "100", p0), 2),
		},
		uses: []use{{"2025-01-05 10:00", "30"}, {"2025-01-15 10:00", "50"}},
		checks: []checkpoint{
			{"2025-01-09 00:00", "a:70 b:100", ""},
			{"2025-01-20 00:00", "b:50", ""},
		},
	}, {
		name:  "6 monthly recurrence from a month-end anchor",
		start: "2025-01-31 00:00",
		grants: []Grant{with(grant("a", "100", "2025-01-31 00:00"), func(g *Grant) {
			g.Recurrence = Recurrence{Month, tm("2025-01-31 00:00")}
		})},
		uses: []use{{"2025-02-10 00:00", "80"}, {"2025-03-05 00:00", "120"}, {"2025-04-01 00:00", "30"}},
		checks: []checkpoint{
			{"2025-02-27 00:00", "a:20", ""},
			{"2025-02-28 00:00", "a:100", ""},
			{"2025-03-30 00:00", "a:0", "20"},
			{"2025-03-31 00:00", "a:80", ""},
			{"2025-04-29 00:00", "a:50", ""},
			{"2025-04-30 00:00", "a:100", ""},
		},
	}, {
		name:   "8 balance as of a past time",
		start:  p0,
		grants: []Grant{grant("a", "100", p0)},
		uses:   []use{{"2025-01-02 10:00", "10"}, {"2025-01-05 10:00", "20"}, {"2025-01-09 10:00", "30"}},
		checks: []checkpoint{
			{"2025-01-03 00:00", "a:90", ""},
			{"2025-01-06 00:00", "a:70", ""},
			{"2025-01-10 00:00", "a:40", ""},
		},
	}} {
		t.Run(sc.name, sc.run)
	}

	t.Run("7 reset", func(t *testing.T) {
		reset := tm("2025-02-01 00:00")
		for _, c := range []struct {
			name     string
			rollover RolloverKind
			max      string
			child    string // the child's start balance, "" for none
			feb4     string // balances on Feb 4
			overage  string
		}{
			{"ORIGINAL_AMOUNT", RolloverOriginal, "", "100", "a2:90", ""},
			{"ORIGINAL_AMOUNT, maxAmount 50", RolloverOriginal, "50", "50", "a2:40", ""},
			{"REMAINING_AMOUNT", RolloverRemaining, "", "30", "a2:20", ""},
			{"REMAINING_AMOUNT, maxAmount 20", RolloverRemaining, "20", "20", "a2:10", ""},
			{"no rollover", "", "", "", "", "10"},
		} {
			t.Run(c.name, func(t *testing.T) {
				a := with(grant("a", "100", p0), func(g *Grant) {
					g.Rollover = c.rollover
					if c.max != "" {
						g.RolloverMax = dp(c.max)
					}
				})
				uses := []use{{"2025-01-10 10:00", "70"}, {"2025-02-03 10:00", "10"}}
				old, _ := runFromStart(t, tm(p0), []Grant{a}, reset, usageAt(uses...))
				children, err := Rollover(old, []Grant{a}, func() string { return "a2" })
				if err != nil {
					t.Fatal(err)
				}
				if c.child == "" {
					if len(children) != 0 {
						t.Fatalf("children = %+v, want none", children)
					}
				} else if len(children) != 1 || children[0].StartBalance.Cmp(d(c.child)) != 0 {
					t.Fatalf("children = %+v, want one starting at %s", children, c.child)
				}
				runCase{start: "2025-02-01 00:00", grants: append([]Grant{a}, children...), uses: uses,
					to: "2025-02-04 00:00", balances: c.feb4, overage: c.overage}.run(t)
			})
		}
	})

	t.Run("9 late event", func(t *testing.T) {
		reset := tm("2025-02-01 00:00")
		a := with(grant("a", "100", p0), func(g *Grant) { g.Rollover = RolloverRemaining })
		uses := []use{{"2025-01-20 10:00", "60"}, {"2025-02-03 10:00", "10"}}
		old, _ := runFromStart(t, tm(p0), []Grant{a}, reset, usageAt(uses...))
		children, err := Rollover(old, []Grant{a}, func() string { return "a2" })
		if err != nil || len(children) != 1 || children[0].StartBalance.Cmp(d("40")) != 0 {
			t.Fatalf("children = %+v, %v; want one starting at 40", children, err)
		}
		grants := append([]Grant{a}, children...)
		runCase{start: "2025-02-01 00:00", grants: grants, uses: uses, to: "2025-02-04 00:00", balances: "a2:30"}.run(t)

		// Usage of 30 dated Jan 25 arrives on Feb 5.
		late := append(slices.Clone(uses), use{"2025-01-25 10:00", "30"})
		runCase{start: p0, grants: []Grant{a}, uses: late, to: "2025-02-01 00:00", balances: "a:10", entries: []string{
			"USAGE [2025-01-01 00:00, 2025-02-01 00:00) 90",
			"GRANT_USAGE a [2025-01-01 00:00, 2025-02-01 00:00) 90",
		}}.run(t)
		// The stored child still starts at 40: the new period is unchanged.
		runCase{start: "2025-02-01 00:00", grants: grants, uses: late, to: "2025-02-06 00:00", balances: "a2:30"}.run(t)
	})
}

package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
)

// runMeters lists a server's meters as a table.
func runMeters(ctx context.Context, e *env, args []string) error {
	var rem remote
	fs := newFlagSet(e, "meters", "meters [flags]", remoteEnv)
	rem.flags(fs)
	args, err := parseFlags(fs, args, e.getenv, remoteEnv)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return &usageError{err: fmt.Errorf("meters takes no arguments; got %q", args)}
	}
	meters, err := rem.client().ListMeters(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "SLUG\tAGGREGATION\tEVENT_TYPE\tVALUE_PROPERTY\tGROUP_BY\n")
	for _, m := range meters {
		keys := make([]string, 0, len(m.GroupBy))
		for k := range m.GroupBy {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		groups := make([]string, len(keys))
		for i, k := range keys {
			groups[i] = k + "=" + m.GroupBy[k]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.Slug, m.Aggregation, m.EventType,
			orDash(&m.ValueProperty), orDash(ptr(strings.Join(groups, ","))))
	}
	return tw.Flush()
}

func ptr[T any](v T) *T { return &v }

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/odometerhq/odometer/client"
)

// runQuery prints a meter's usage as a table, CSV or JSON.
func runQuery(ctx context.Context, e *env, args []string) error {
	var (
		rem                          remote
		from, to, window, tz, format string
		subjects, groupBy, filters   stringList
	)
	envFlags := remoteEnv
	fs := newFlagSet(e, "query", "query [flags] METER", envFlags)
	rem.flags(fs)
	fs.StringVar(&from, "from", "", "start of the range, inclusive: RFC 3339 `time`, or a date YYYY-MM-DD in --tz")
	fs.StringVar(&to, "to", "", "end of the range, exclusive (default now): RFC 3339 `time`, or a date YYYY-MM-DD in --tz")
	fs.StringVar(&window, "window", "", "window `size`: MINUTE, HOUR, DAY or MONTH (default: one row for the whole range)")
	fs.StringVar(&tz, "tz", "", "IANA time `zone` of DAY and MONTH windows and of the printed times (default UTC)")
	fs.Var(&subjects, "subject", "only this `subject` (repeatable)")
	fs.Var(&groupBy, "group-by", "split rows by this group-by `key`, or by subject (repeatable)")
	fs.Var(&filters, "filter", "only events whose group-by key has this value: `key=value` (repeatable; the same key again allows more values)")
	format = "table"
	fs.Var(&enumValue{p: &format, allowed: []string{"table", "csv", "json"}}, "format", "output `format`: table, csv or json")
	args, err := parseFlags(fs, args, e.getenv, envFlags)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		fs.Usage()
		return &usageError{err: errors.New("query takes one argument: the meter's slug or id")}
	}
	meter := args[0]

	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return &usageError{err: fmt.Errorf("--tz: unknown time zone %q", tz)}
		}
		loc = l
	}
	q := client.Query{
		WindowSize:     strings.ToUpper(window),
		WindowTimeZone: tz,
		Subjects:       subjects,
		GroupBy:        groupBy,
	}
	if q.From, err = parseTimeFlag(from, loc); err != nil {
		return &usageError{err: fmt.Errorf("--from: %w", err)}
	}
	if q.To, err = parseTimeFlag(to, loc); err != nil {
		return &usageError{err: fmt.Errorf("--to: %w", err)}
	}
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return &usageError{err: fmt.Errorf("--filter %q: want key=value", f)}
		}
		if q.FilterGroupBy == nil {
			q.FilterGroupBy = map[string][]string{}
		}
		q.FilterGroupBy[k] = append(q.FilterGroupBy[k], v)
	}

	c := rem.client()
	if format == "csv" {
		b, err := c.QueryMeterCSV(ctx, meter, q)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	}
	res, err := c.QueryMeter(ctx, meter, q)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return printUsageTable(e.stdout, res, groupBy, loc)
}

// parseTimeFlag parses an RFC 3339 time, or a date (midnight in loc). The
// empty string is the zero time.
func parseTimeFlag(s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, loc); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2024-01-31T12:00:00Z) nor a date (2024-01-31)", s)
}

// printUsageTable writes rows as an aligned table: window, subject, the
// group-by values (the requested keys first, in order) and the value.
// Absent values print as "-".
func printUsageTable(w io.Writer, res *client.UsageResult, groupBy []string, loc *time.Location) error {
	var keys []string
	for _, k := range groupBy {
		if k != "subject" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	var extra []string
	for _, r := range res.Data {
		for k := range r.GroupBy {
			if !slices.Contains(keys, k) && !slices.Contains(extra, k) {
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	keys = append(keys, extra...)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "WINDOW_START\tWINDOW_END\tSUBJECT")
	for _, k := range keys {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(k))
	}
	fmt.Fprint(tw, "\tVALUE\n")
	for _, r := range res.Data {
		fmt.Fprintf(tw, "%s\t%s\t%s", r.WindowStart.In(loc).Format(time.RFC3339), r.WindowEnd.In(loc).Format(time.RFC3339), orDash(r.Subject))
		for _, k := range keys {
			fmt.Fprintf(tw, "\t%s", orDash(r.GroupBy[k]))
		}
		fmt.Fprintf(tw, "\t%s\n", r.Value)
	}
	return tw.Flush()
}

func orDash(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

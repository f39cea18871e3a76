package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/client"
)

// runExport runs "odometer export status" and "odometer export records",
// which show what the exporter froze and sent (docs/export-aws.md,
// "Watching exports").
func runExport(ctx context.Context, e *env, args []string) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, "Usage:\n"+
			"  odometer export status [flags] [DESTINATION]   records by hour, dimension and status\n"+
			"  odometer export records [flags] DESTINATION    the records themselves (a dry run's too)\n\n"+
			"Run 'odometer export <status|records> -h' for their flags.\n")
	}
	if len(args) == 0 {
		usage(e.stderr)
		return &usageError{err: errors.New("export takes a subcommand: status or records"), shown: true}
	}
	switch args[0] {
	case "status":
		return runExportStatus(ctx, e, args[1:])
	case "records":
		return runExportRecords(ctx, e, args[1:])
	case "-h", "-help", "--help", "help":
		usage(e.stderr)
		return flag.ErrHelp
	}
	usage(e.stderr)
	return &usageError{err: fmt.Errorf("unknown export subcommand %q (want status or records)", args[0]), shown: true}
}

// runExportStatus prints, per destination, hour and dimension, how many
// records are in each status, as a table or CSV.
func runExportStatus(ctx context.Context, e *env, args []string) error {
	var rem remote
	var from, to string
	var asCSV bool
	envFlags := remoteEnv
	fs := newFlagSet(e, "export status", "export status [flags] [DESTINATION]", envFlags)
	rem.flags(fs)
	fs.StringVar(&from, "from", "", "first hour, inclusive: RFC 3339 `time` or a date YYYY-MM-DD (UTC) (default: 48 hours before --to)")
	fs.StringVar(&to, "to", "", "end, exclusive: RFC 3339 `time` or a date YYYY-MM-DD (UTC) (default: the end of the last frozen hour)")
	fs.BoolVar(&asCSV, "csv", false, "print CSV instead of a table")
	args, err := parseFlags(fs, args, e.getenv, envFlags)
	if err != nil {
		return err
	}
	if len(args) > 1 {
		return &usageError{err: fmt.Errorf("export status takes at most one argument, a destination; got %q", args)}
	}
	fromT, toT, err := timeRange(from, to)
	if err != nil {
		return err
	}
	c := rem.client()
	var names []string
	if len(args) == 1 {
		names = args
	} else {
		ds, err := c.ListExports(ctx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			names = append(names, d.Name)
		}
	}
	header := []string{"destination", "hour", "dimension", "pending", "in_flight", "accepted", "duplicate", "not_subscribed",
		"rejected", "expired", "empty", "quantity_accepted"}
	var rows [][]string
	for _, name := range names {
		st, err := c.ExportStatus(ctx, name, fromT, toT)
		if err != nil {
			return err
		}
		for _, h := range st.Hours {
			row := []string{name, h.Hour.UTC().Format(time.RFC3339), h.Dimension}
			for _, n := range []int64{h.Pending, h.InFlight, h.Accepted, h.Duplicate, h.NotSubscribed, h.Rejected, h.Expired, h.Empty, h.QuantityAccepted} {
				row = append(row, strconv.FormatInt(n, 10))
			}
			rows = append(rows, row)
		}
	}
	if asCSV {
		// Destinations and dimensions are text; the rest are counts.
		return writeCSV(e.stdout, header, rows, func(col int) bool { return col >= 3 })
	}
	return writeTable(e.stdout, header, rows)
}

// runExportRecords prints a destination's outbox records as a table.
func runExportRecords(ctx context.Context, e *env, args []string) error {
	var rem remote
	var from, to, subject, dimension string
	var statuses stringList
	var limit int
	envFlags := remoteEnv
	fs := newFlagSet(e, "export records", "export records [flags] DESTINATION", envFlags)
	rem.flags(fs)
	fs.Var(&statuses, "status", "only records in this `status`: pending, accepted, duplicate, not_subscribed, rejected, expired, empty (repeatable, or comma-separated)")
	fs.StringVar(&from, "from", "", "first hour, inclusive: RFC 3339 `time` or a date YYYY-MM-DD (UTC)")
	fs.StringVar(&to, "to", "", "end, exclusive: RFC 3339 `time` or a date YYYY-MM-DD (UTC)")
	fs.StringVar(&subject, "subject", "", "only this `subject`")
	fs.StringVar(&dimension, "dimension", "", "only this `dimension`")
	fs.IntVar(&limit, "limit", 100, "most records to print (at most 1000)")
	args, err := parseFlags(fs, args, e.getenv, envFlags)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		fs.Usage()
		return &usageError{err: errors.New("export records takes one argument: the destination")}
	}
	q := client.ExportRecordsQuery{Subject: subject, Dimension: dimension, Limit: limit}
	if q.From, q.To, err = timeRange(from, to); err != nil {
		return err
	}
	for _, s := range statuses {
		for v := range strings.SplitSeq(s, ",") {
			q.Status = append(q.Status, strings.TrimSpace(v))
		}
	}
	recs, err := rem.client().ExportRecords(ctx, args[0], q)
	if err != nil {
		return err
	}
	header := []string{"hour", "subject", "dimension", "customer", "quantity", "usage", "late", "carry", "status", "attempts", "detail"}
	rows := make([][]string, len(recs))
	for i, r := range recs {
		customer := r.CustomerID
		if customer == "" {
			customer = r.AWSAccountID
		}
		detail := r.MeteringRecordID
		if r.Reason != "" {
			detail = r.Reason
		}
		rows[i] = []string{r.Hour.UTC().Format(time.RFC3339), r.Subject, r.Dimension, customer, strconv.FormatInt(r.Quantity, 10),
			r.Usage.String(), r.Late.String(), r.Carry.String(), r.Status, strconv.Itoa(r.Attempts), detail}
	}
	return writeTable(e.stdout, header, rows)
}

// timeRange parses --from and --to (UTC dates or RFC 3339 times).
func timeRange(from, to string) (f, t time.Time, err error) {
	if f, err = parseTimeFlag(from, time.UTC); err != nil {
		return f, t, &usageError{err: fmt.Errorf("--from: %w", err)}
	}
	if t, err = parseTimeFlag(to, time.UTC); err != nil {
		return f, t, &usageError{err: fmt.Errorf("--to: %w", err)}
	}
	return f, t, nil
}

// writeTable writes rows under an upper-case header as an aligned table;
// empty cells print as "-".
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(header, "\t")))
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = orDash(&c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// writeCSV writes the header and rows as CSV. The cells of the columns
// that numeric reports are numbers and are written as they are; every
// other cell is text and goes through odometer.CSVText, so that a
// spreadsheet does not evaluate it as a formula.
func writeCSV(w io.Writer, header []string, rows [][]string, numeric func(col int) bool) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return err
	}
	cells := make([]string, len(header))
	for _, row := range rows {
		cells = cells[:0]
		for i, c := range row {
			if !numeric(i) {
				c = odometer.CSVText(c)
			}
			cells = append(cells, c)
		}
		if err := cw.Write(cells); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

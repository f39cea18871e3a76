// Command odometer is Odometer's one binary: the server (odometer serve) and
// the operator's tools that talk to it over HTTP (ingest, query, meters,
// export).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	_ "time/tzdata" // --tz and windowTimeZone resolve IANA names on hosts without a zone database
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills at once
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// env is what a subcommand may use of its process.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands lists the subcommands, in the order usage shows them.
func commands() []command {
	return []command{
		{"serve", "run the server", runServe},
		{"migrate", "apply PostgreSQL schema migrations", runMigrate},
		{"ingest", "send events from an NDJSON or JSON-array file to a server", runIngest},
		{"query", "query a meter's usage", runQuery},
		{"meters", "list a server's meters", runMeters},
		{"export", "show a server's usage exports: status or records", runExport},
		{"keys", "create, list or revoke API keys", runKeys},
		{"version", "print the version", runVersion},
		{"help", "print this help", nil},
	}
}

// run executes the command line args (without the program name). It is
// main without the process: tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printUsage(stderr)
		return &usageError{err: errors.New("no command given"), shown: true}
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "-h"}, getenv, stdin, stdout, stderr)
		}
		printUsage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return c.run(ctx, e, rest)
		}
	}
	fmt.Fprintf(stderr, "odometer: unknown command %q\n\n", name)
	printUsage(stderr)
	return &usageError{err: fmt.Errorf("unknown command %q", name), shown: true}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "Odometer meters usage events: ingest, aggregate, query.\n\n")
	fmt.Fprint(w, "Usage:\n  odometer <command> [flags] [arguments]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun 'odometer <command> -h' for a command's flags. Every flag of serve can also\n"+
		"be set with an ODOMETER_<FLAG> environment variable (e.g. ODOMETER_ADDR); the\n"+
		"client commands read ODOMETER_SERVER.\n")
}

// usageError is a mistake on the command line; it exits with status 2.
type usageError struct {
	err   error
	shown bool // the message and usage were printed already
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// exitCode reports err on w and returns the process's exit status.
func exitCode(err error, w io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		if !ue.shown {
			fmt.Fprintf(w, "odometer: %v\n", err)
		}
		return 2
	}
	fmt.Fprintf(w, "odometer: %v\n", err)
	return 1
}

// newFlagSet returns a flag set for a subcommand whose usage shows synopsis
// and the flags with their environment variables.
func newFlagSet(e *env, name, synopsis string, envFlags func(string) bool) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: odometer %s\n\nFlags:\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  --%s", f.Name)
			if name != "" {
				fmt.Fprintf(w, " %s", name)
			}
			fmt.Fprintf(w, "\n    \t%s", strings.ReplaceAll(usage, "\n", "\n    \t"))
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "[]" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			if envFlags(f.Name) {
				fmt.Fprintf(w, " [$%s]", envName(f.Name))
			}
			fmt.Fprintln(w)
		})
	}
	return fs
}

// parseFlags parses args into fs and returns the positional arguments.
// Flags may come after positional arguments ("query tokens --from …");
// everything after "--" is positional. Then every flag that envFlags
// selects and the command line did not set is set from its
// ODOMETER_<FLAG> environment variable: the command line wins over the
// environment.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string, envFlags func(string) bool) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err: err, shown: true}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	set := setFlags(fs)
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] || !envFlags(f.Name) {
			return
		}
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = &usageError{err: fmt.Errorf("$%s: invalid value %q: %v", name, v, e)}
			}
		}
	})
	return pos, err
}

// setFlags returns the names of the flags that were set (on the command line
// or by fs.Set).
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// envName returns the environment variable of a flag: --max-body-bytes is
// ODOMETER_MAX_BODY_BYTES.
func envName(flagName string) string {
	return "ODOMETER_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// allFlags selects every flag for environment variables.
func allFlags(string) bool { return true }

// only selects the named flags for environment variables.
func only(names ...string) func(string) bool {
	return func(name string) bool {
		for _, n := range names {
			if n == name {
				return true
			}
		}
		return false
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

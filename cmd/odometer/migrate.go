package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/odometerhq/odometer/postgres"
)

// runMigrate applies the PostgreSQL schema migrations that the database
// lacks. serve does the same at start-up unless --no-migrate is given; this
// command lets an operator migrate once, before rolling out new nodes.
func runMigrate(ctx context.Context, e *env, args []string) error {
	var url string
	envFlags := only("postgres")
	fs := newFlagSet(e, "migrate", "migrate [flags]", envFlags)
	fs.StringVar(&url, "postgres", "", "PostgreSQL connection `URL`")
	args, err := parseFlags(fs, args, e.getenv, envFlags)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return &usageError{err: fmt.Errorf("migrate takes no arguments; got %q", args)}
	}
	if url == "" {
		return &usageError{err: errors.New("migrate needs --postgres or ODOMETER_POSTGRES (the embedded store migrates itself when it opens)")}
	}
	applied, err := postgres.Migrate(ctx, url, newLogger(e, &serveConfig{LogFormat: "text"}))
	if err != nil {
		return fmt.Errorf("migrate %s: %w", redactURL(url), err)
	}
	if len(applied) == 0 {
		fmt.Fprintln(e.stdout, "the schema is current; nothing to apply")
		return nil
	}
	for _, m := range applied {
		fmt.Fprintf(e.stdout, "applied %s\n", m)
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/odometerhq/odometer"
)

// runKeys manages API keys: keys create|list|revoke.
func runKeys(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return &usageError{err: errors.New("keys needs a subcommand: create, list or revoke")}
	}
	switch args[0] {
	case "create":
		return runKeysCreate(ctx, e, args[1:])
	case "list":
		return runKeysList(ctx, e, args[1:])
	case "revoke":
		return runKeysRevoke(ctx, e, args[1:])
	}
	return &usageError{err: fmt.Errorf("keys has no subcommand %q: create, list or revoke", args[0])}
}

// runKeysCreate makes a key through the admin API, or with --offline
// without any server, printing the config file entry that declares it by
// hash (for automation: the secret never reaches a database).
func runKeysCreate(ctx context.Context, e *env, args []string) error {
	var rem remote
	var name, namespace string
	var scopes stringList
	var offline bool
	fs := newFlagSet(e, "keys create", "keys create [flags]", remoteEnv)
	rem.flags(fs)
	fs.StringVar(&name, "name", "", "a `label` for the key")
	fs.Var(&scopes, "scope", "a `scope` of the key: ingest, read, admin or metrics (repeatable, or comma-separated; metrics is for /metrics, which admin does not include)")
	fs.BoolVar(&offline, "offline", false, "make the key here and print its config file entry (keys:) instead of asking a server")
	fs.StringVar(&namespace, "namespace", "default", "the key's `namespace` (with --offline; a server makes keys in the caller's namespace)")
	args, err := parseFlags(fs, args, e.getenv, remoteEnv)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return &usageError{err: fmt.Errorf("keys create takes no arguments; got %q", args)}
	}
	var list []string
	for _, s := range scopes {
		for v := range strings.SplitSeq(s, ",") {
			list = append(list, strings.TrimSpace(v))
		}
	}
	if offline {
		token, k, err := odometer.NewAPIKey(namespace, name, list, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "token: %s\n", token)
		fmt.Fprintf(e.stdout, "# config file entry (keys:); the token is shown only now\n")
		fmt.Fprintf(e.stdout, "- {id: %s, namespace: %q, name: %q, scopes: [%s], hash: %q}\n",
			k.ID, k.Namespace, k.Name, strings.Join(k.Scopes, ", "), odometer.FormatKeyHash(k))
		return nil
	}
	k, err := rem.client().CreateKey(ctx, name, list)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "token: %s\n", k.Token)
	fmt.Fprintf(e.stdout, "id: %s  namespace: %s  scopes: %s  (the token is shown only now)\n", k.ID, k.Namespace, strings.Join(k.Scopes, ","))
	return nil
}

func runKeysList(ctx context.Context, e *env, args []string) error {
	var rem remote
	fs := newFlagSet(e, "keys list", "keys list [flags]", remoteEnv)
	rem.flags(fs)
	args, err := parseFlags(fs, args, e.getenv, remoteEnv)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return &usageError{err: fmt.Errorf("keys list takes no arguments; got %q", args)}
	}
	keys, err := rem.client().ListKeys(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "ID\tNAME\tSCOPES\tCREATED\tREVOKED\n")
	for _, k := range keys {
		revoked := "-"
		if k.RevokedAt != nil {
			revoked = k.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, orDash(&k.Name), strings.Join(k.Scopes, ","), k.CreatedAt.UTC().Format(time.RFC3339), revoked)
	}
	return tw.Flush()
}

func runKeysRevoke(ctx context.Context, e *env, args []string) error {
	var rem remote
	fs := newFlagSet(e, "keys revoke", "keys revoke [flags] ID", remoteEnv)
	rem.flags(fs)
	args, err := parseFlags(fs, args, e.getenv, remoteEnv)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return &usageError{err: errors.New("keys revoke takes one argument: the key's id")}
	}
	k, err := rem.client().RevokeKey(ctx, args[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked %s at %s\n", k.ID, k.RevokedAt.UTC().Format(time.RFC3339))
	return nil
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/odometerhq/odometer"
)

// syncKeys stores the API keys the config file declares: a missing one is
// created; one that exists must have the same namespace and hash (a key
// revoked in the database stays revoked). Keys absent from the file are
// left alone.
func syncKeys(ctx context.Context, store odometer.KeyStore, keys []*odometer.APIKey, now time.Time, log *slog.Logger) error {
	for _, k := range keys {
		old, err := store.FindAPIKey(ctx, k.ID)
		switch {
		case odometer.ErrorCode(err) == odometer.ENOTFOUND:
			nk := *k
			nk.CreatedAt = now.UTC().Truncate(odometer.TimePrecision)
			if err := store.CreateAPIKey(ctx, &nk); err != nil {
				return fmt.Errorf("create API key %s: %w", k.ID, err)
			}
			log.Info("API key created from config", "key", k.ID, "namespace", k.Namespace)
		case err != nil:
			return fmt.Errorf("find API key %s: %w", k.ID, err)
		case old.Namespace != k.Namespace || !bytes.Equal(old.Hash, k.Hash) || !bytes.Equal(old.Salt, k.Salt):
			return fmt.Errorf("API key %s: the database holds it for namespace %q with another hash; "+
				"a key's namespace and secret cannot change: give the new one another id", k.ID, old.Namespace)
		case old.RevokedAt != nil:
			log.Warn("API key from config is revoked in the database and stays revoked", "key", k.ID)
		}
	}
	return nil
}

// anyKeys reports whether the store holds an API key, revoked or not: a
// server that ever had keys never falls back to running open.
func anyKeys(ctx context.Context, store odometer.KeyStore) (bool, error) {
	keys, err := store.ListAPIKeys(ctx, "")
	if err != nil {
		return false, fmt.Errorf("list API keys: %w", err)
	}
	return len(keys) > 0, nil
}

// checkExposure refuses to serve without keys (open) on an address other
// hosts can reach, unless insecure says the operator means it.
func checkExposure(addr string, open, insecure bool) error {
	if !open || insecure || isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("refusing to serve without API keys on %s, which other hosts can reach: "+
		"create a key (odometer keys create, or keys: in the config file), listen on 127.0.0.1, "+
		"or pass --insecure if this network is trusted (docs/security.md)", addr)
}

// isLoopback reports whether addr (host:port) listens on loopback only. A
// host name other than localhost counts as reachable.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

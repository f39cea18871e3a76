// Package apitest starts the real API on a SQLite store in a directory, for
// the tests of its clients (the Go SDK and its billing layer).
package apitest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/ingest"
	"github.com/odometerhq/odometer/sqlite"
)

// Option changes the Config of the API that Handler or Server starts.
// Options run in order, after the Store is open and Open is set.
type Option func(t testing.TB, c *api.Config)

// Config applies f to the Config, e.g. to set rate limits.
func Config(f func(c *api.Config)) Option {
	return func(_ testing.TB, c *api.Config) { f(c) }
}

// Key makes the API require API keys (Open false) and stores a key of
// namespace with scopes, whose token it writes to *token.
func Key(token *string, namespace string, scopes ...string) Option {
	return func(t testing.TB, c *api.Config) {
		t.Helper()
		tok, k, err := odometer.NewAPIKey(namespace, "apitest", scopes, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Store.CreateAPIKey(context.Background(), k); err != nil {
			t.Fatal(err)
		}
		c.Open = false
		*token = tok
	}
}

// Handler opens the SQLite store in dir and returns the API on it with the
// given limits (zero: the defaults), and a function that closes them, which
// the caller must call. Opening dir again after stop is a restart. The API
// is Open (no keys needed, namespace "default") unless an option says
// otherwise.
func Handler(t testing.TB, dir string, limits api.Limits, opts ...Option) (h http.Handler, stop func()) {
	t.Helper()
	store, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := ingest.New(store, ingest.Config{}, nil)
	cfg := api.Config{Store: store, Ingester: b, Limits: limits, Open: true}
	stop = func() {
		b.Close(context.Background())
		store.Close()
	}
	started := false
	defer func() {
		if !started { // an option or NewHandler failed the test
			stop()
		}
	}()
	for _, o := range opts {
		o(t, &cfg)
	}
	h, err = api.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	started = true
	return h, stop
}

// Server serves the API on a fresh store at 127.0.0.1 until the test ends;
// Open unless an option says otherwise.
func Server(t testing.TB, opts ...Option) *httptest.Server {
	t.Helper()
	h, stop := Handler(t, t.TempDir(), api.Limits{}, opts...)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		stop()
	})
	return srv
}

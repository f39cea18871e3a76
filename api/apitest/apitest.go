// Package apitest starts the real API on a SQLite store in a directory, for
// the tests of its clients (the Go SDK and its billing layer).
package apitest

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/ingest"
	"github.com/odometerhq/odometer/sqlite"
)

// Handler opens the SQLite store in dir and returns the API on it with the
// given limits (zero: the defaults), and a function that closes them, which
// the caller must call. Opening dir again after stop is a restart.
func Handler(t testing.TB, dir string, limits api.Limits) (h http.Handler, stop func()) {
	t.Helper()
	store, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := ingest.New(store, ingest.Config{}, nil)
	h, err = api.NewHandler(api.Config{Store: store, Ingester: b, Limits: limits})
	if err != nil {
		t.Fatal(errors.Join(err, b.Close(context.Background()), store.Close()))
	}
	return h, func() {
		b.Close(context.Background())
		store.Close()
	}
}

// Server serves the API on a fresh store at 127.0.0.1 until the test ends.
func Server(t testing.TB) *httptest.Server {
	t.Helper()
	h, stop := Handler(t, t.TempDir(), api.Limits{})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		stop()
	})
	return srv
}

// Package pgtest gives tests a PostgreSQL database of their own on the
// server named by ODOMETER_TEST_POSTGRES.
//
// Without the variable the tests that need PostgreSQL skip, so that `go
// test ./...` runs anywhere; with it, a server that cannot be reached fails
// them, so that CI configured for PostgreSQL never passes by skipping.
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the environment variable that holds the URL of a database
// on the test server, as a user allowed to create and drop databases.
const EnvVar = "ODOMETER_TEST_POSTGRES"

// skipMessage says how to run the skipped tests.
const skipMessage = "set " + EnvVar + "=postgres://user@127.0.0.1:5432/postgres?sslmode=disable to run the PostgreSQL tests; " +
	"scripts/postgres.sh start DIR starts a throwaway server"

// connectTimeout bounds how long Require waits for the server, so that an
// unreachable one fails the test instead of hanging it.
const connectTimeout = 10 * time.Second

// Require returns the server URL from ODOMETER_TEST_POSTGRES. It skips t
// when the variable is unset and fails it when the server does not answer.
func Require(t testing.TB) (serverURL string) {
	t.Helper()
	serverURL = os.Getenv(EnvVar)
	if serverURL == "" {
		t.Skip(skipMessage)
	}
	conn := connect(t, serverURL)
	closeConn(conn)
	return serverURL
}

// NewDatabase creates an empty database with a unique name on the server
// from ODOMETER_TEST_POSTGRES and returns its URL, usable from other
// processes too. The database is dropped, with any sessions still
// connected to it, when t's cleanup runs. It skips or fails t as Require
// does.
func NewDatabase(t testing.TB) (dbURL string) {
	t.Helper()
	serverURL := Require(t)
	name := "odometer_test_" + strings.ToLower(rand.Text()[:16])
	admin := connect(t, serverURL)
	defer closeConn(admin)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// template0 with an explicit encoding: the store requires UTF8, whatever
	// encoding the test server was initialized with.
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, serverURL, name) })
	dbURL, err := withDatabase(serverURL, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dbURL
}

func dropDatabase(t testing.TB, serverURL, name string) {
	// Not t.Context(): it is already cancelled when cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
		return
	}
	defer closeConn(admin)
	// FORCE: a test that failed half-way may leave sessions behind, and a
	// database left over would accumulate on a developer's server.
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
	}
}

func connect(t testing.TB, serverURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Fatalf("pgtest: %s is set but the server does not answer: %v", EnvVar, err)
	}
	return conn
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// withDatabase returns serverURL with its database replaced by name. It
// accepts both connection string forms that pgx does: a URL, and
// keyword=value pairs.
func withDatabase(serverURL, name string) (string, error) {
	if _, err := pgx.ParseConfig(serverURL); err != nil {
		return "", fmt.Errorf("%s: %w", EnvVar, err)
	}
	if strings.HasPrefix(serverURL, "postgres://") || strings.HasPrefix(serverURL, "postgresql://") {
		u, err := url.Parse(serverURL)
		if err != nil {
			return "", fmt.Errorf("%s: %w", EnvVar, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		q := u.Query()
		if q.Has("dbname") {
			q.Set("dbname", name)
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// In keyword=value form the last setting of a keyword wins.
	return serverURL + " dbname=" + name, nil
}

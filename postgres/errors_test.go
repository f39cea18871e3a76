package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/odometerhq/odometer"
)

// refused returns the error of a connection attempt to a port where
// nothing listens.
func refused(t *testing.T) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = pgconn.Connect(t.Context(), "postgres://u@"+addr+"/db?connect_timeout=5")
	var connectErr *pgconn.ConnectError
	if !errors.As(err, &connectErr) {
		t.Fatalf("connect to a closed port: %v, want a *pgconn.ConnectError", err)
	}
	return err
}

func pgError(severity, code string) *pgconn.PgError {
	return &pgconn.PgError{Severity: severity, SeverityUnlocalized: severity, Code: code, Message: "m"}
}

// TestRetryable pins which failures an append retries. The cases that a
// real server produces are exercised end to end in faults_test.go; these
// are the ones that are hard to provoke there.
func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"serialization failure", pgError("ERROR", "40001"), true},
		{"deadlock", pgError("ERROR", "40P01"), true},
		{"terminated", pgError("FATAL", "57P01"), true},
		{"starting up", pgError("FATAL", "57P03"), true},
		{"too many connections", pgError("FATAL", "53300"), true},
		{"connection failure", pgError("FATAL", "08006"), true},
		{"unique violation", pgError("ERROR", "23505"), false},
		{"undefined table", pgError("ERROR", "42P01"), false},
		{"cannot connect", refused(t), true},
		{"eof", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"cancelled", fmt.Errorf("query: %w", context.Canceled), false},
		{"deadline", context.DeadlineExceeded, false},
		{"encoding bug", errors.New("cannot encode"), false},
		{"commit unknown", &commitUnknownError{io.ErrUnexpectedEOF}, false},
		{"after rows were delivered", &noRetryError{io.ErrUnexpectedEOF}, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("%s: retryable(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// TestCommitError pins what a failed COMMIT means: only a server's ERROR
// answer, or a failure before COMMIT was sent, proves that nothing was
// committed.
func TestCommitError(t *testing.T) {
	var unknown *commitUnknownError
	tests := []struct {
		name        string
		err         error
		wantUnknown bool
		wantRetry   bool
	}{
		{"rolled back: serialization failure", pgError("ERROR", "40001"), false, true},
		{"rolled back: constraint", pgError("ERROR", "23514"), false, false},
		{"rolled back: aborted transaction", pgx.ErrTxCommitRollback, false, false},
		{"terminated: FATAL may follow the commit", pgError("FATAL", "57P01"), true, false},
		{"connection lost", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true, false},
		{"wait abandoned", context.DeadlineExceeded, true, false},
	}
	for _, tt := range tests {
		err := commitError(tt.err)
		if got := errors.As(err, &unknown); got != tt.wantUnknown {
			t.Errorf("%s: commitError(%v) = %v; unknown outcome: %v, want %v", tt.name, tt.err, err, got, tt.wantUnknown)
		}
		if got := retryable(err); got != tt.wantRetry {
			t.Errorf("%s: retryable(commitError(%v)) = %v, want %v", tt.name, tt.err, got, tt.wantRetry)
		}
	}
}

// TestStoreError pins the odometer codes that callers see.
func TestStoreError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"commit unknown", &commitUnknownError{io.ErrUnexpectedEOF}, odometer.EUNAVAILABLE},
		{"gave up", &gaveUpError{attempts: 3, ctxErr: context.DeadlineExceeded, last: io.EOF}, odometer.EUNAVAILABLE},
		{"connection lost", io.ErrUnexpectedEOF, odometer.EUNAVAILABLE},
		{"cannot connect", refused(t), odometer.EUNAVAILABLE},
		{"timed out", context.DeadlineExceeded, odometer.EUNAVAILABLE},
		{"undefined table", pgError("ERROR", "42P01"), odometer.EINTERNAL},
		{"invalid input", odometer.Errorf(odometer.EINVALID, "bad"), odometer.EINVALID},
	}
	for _, tt := range tests {
		err := storeError("do thing", tt.err)
		if got := odometer.ErrorCode(err); got != tt.want {
			t.Errorf("%s: code %q (%v), want %q", tt.name, got, err, tt.want)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("%s: %v does not wrap %v", tt.name, err, tt.err)
		}
	}
}

func TestBackoff(t *testing.T) {
	prevMax := time.Duration(0)
	for attempt := 1; attempt <= 100; attempt++ {
		for range 50 {
			d := backoff(attempt)
			ceiling := min(retryBaseDelay<<min(attempt-1, 20), retryMaxDelay)
			if d < ceiling/2 || d >= ceiling {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s)", attempt, d, ceiling/2, ceiling)
			}
			prevMax = max(prevMax, d)
		}
	}
	if prevMax >= retryMaxDelay {
		t.Errorf("backoff reached %s, want below the cap %s", prevMax, retryMaxDelay)
	}
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/odometerhq/odometer"
)

// Retry delays: exponential from retryBaseDelay, capped at retryMaxDelay,
// with jitter. The cap keeps a node that waits for a restarting server
// close behind it (a second at most) without flooding the server's log with
// connection attempts.
const (
	retryBaseDelay = 10 * time.Millisecond
	retryMaxDelay  = time.Second
)

// backoff returns the delay before retry number attempt (1 for the first).
// The delay is drawn from [d/2, d): nodes that failed at the same moment, as
// they do when the server restarts, then come back spread out.
func backoff(attempt int) time.Duration {
	d := retryMaxDelay
	if attempt <= 10 {
		d = min(retryBaseDelay<<(attempt-1), retryMaxDelay)
	}
	return d/2 + rand.N(d/2)
}

// retryable reports whether retry may repeat the attempt that failed with
// err: the failure is transient, and the attempt did not get so far that
// repeating it could apply it twice.
func retryable(err error) bool {
	var (
		stop    *noRetryError
		unknown *commitUnknownError
	)
	return !errors.As(err, &stop) && !errors.As(err, &unknown) && transient(err)
}

// transient reports whether err is a failure that a new attempt, on a new
// connection, may not meet: the server or the network went away, or the
// server chose this transaction as the victim of a conflict. It says
// nothing about what the failed attempt did; see retryable.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return transientCode(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		// Refused, reset or timed out while connecting; an answer from the
		// server (bad password, no such database) is a PgError, above.
		return true
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE)
}

// transientCode reports whether a server error with this SQLSTATE ended the
// transaction for a reason of the moment rather than of the statement.
func transientCode(code string) bool {
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"25P03", // idle_in_transaction_session_timeout
		"53300", // too_many_connections
		"57P01", // admin_shutdown: pg_terminate_backend, or a fast shutdown
		"57P02", // crash_shutdown: another backend crashed
		"57P03", // cannot_connect_now: starting up or shutting down
		"57P05": // idle_session_timeout
		return true
	}
	return strings.HasPrefix(code, "08") // connection_exception
}

// noRetryError wraps an error that must end the retries even though it looks
// transient, because the failed attempt got too far to be repeated.
type noRetryError struct{ err error }

func (e *noRetryError) Error() string { return e.err.Error() }
func (e *noRetryError) Unwrap() error { return e.err }

// commitUnknownError is a failure after COMMIT was sent whose outcome the
// server did not tell: the transaction may or may not have committed.
type commitUnknownError struct{ err error }

func (e *commitUnknownError) Error() string { return "commit: " + e.err.Error() }
func (e *commitUnknownError) Unwrap() error { return e.err }

// gaveUpError is a transient failure that lasted until the caller's context
// ended.
type gaveUpError struct {
	attempts int
	ctxErr   error
	last     error
}

func (e *gaveUpError) Error() string {
	return fmt.Sprintf("%v after %d attempts; last error: %v", e.ctxErr, e.attempts, e.last)
}

func (e *gaveUpError) Unwrap() []error { return []error{e.ctxErr, e.last} }

// commitError classifies an error returned by COMMIT. An ERROR answer means
// the server rolled the transaction back, and a failure before COMMIT left
// the client changes nothing either: both are returned as they are, to be
// retried if transient. Anything else — the connection broke, the server
// went down (a FATAL answer may come after the commit record was written),
// the wait was abandoned — leaves the outcome unknown.
func commitError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		severity := pgErr.SeverityUnlocalized
		if severity == "" {
			severity = pgErr.Severity // servers before 9.6
		}
		if severity == "ERROR" {
			return err
		}
	}
	if errors.Is(err, pgx.ErrTxCommitRollback) {
		return &noRetryError{err}
	}
	if pgconn.SafeToRetry(err) {
		return err
	}
	return &commitUnknownError{err}
}

// retry calls try until it succeeds, fails with an error that is not
// transient, or ctx ends, waiting backoff(n) between attempts. try must
// only fail transiently when its attempt left nothing behind.
func (s *Store) retry(ctx context.Context, op string, try func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil || !retryable(err) {
			return err
		}
		if ctx.Err() != nil {
			return &gaveUpError{attempts: attempt, ctxErr: ctx.Err(), last: err}
		}
		delay := backoff(attempt)
		s.log.Warn("postgres: "+op+" failed; retrying", "attempt", attempt, "delay", delay, "err", err)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return &gaveUpError{attempts: attempt, ctxErr: ctx.Err(), last: err}
		}
	}
}

// storeError gives err the odometer code that callers branch on, with op
// (what failed) in front. The *odometer.Error's message is what API users
// see; the full chain, with the server's or the network's own words, is in
// Error() for the log.
func storeError(op string, err error) error {
	var (
		oe      *odometer.Error
		unknown *commitUnknownError
		gaveUp  *gaveUpError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &oe):
		return fmt.Errorf("%s: %w", op, err)
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: %w", odometer.Errorf(odometer.EUNAVAILABLE,
			"%s: the database did not confirm the commit (the connection failed or it did not answer), "+
				"so the events may or may not be stored; retry: events stored already are reported as duplicates", op), err)
	case errors.As(err, &gaveUp) || transient(err):
		return fmt.Errorf("%w: %w", odometer.Errorf(odometer.EUNAVAILABLE,
			"%s: the database is unavailable; retry later", op), err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", odometer.Errorf(odometer.EUNAVAILABLE,
			"%s: the database did not answer in time; retry later", op), err)
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		// An answer that no retry changes (wrong password, no such
		// database): still the database's unavailability to API users.
		return fmt.Errorf("%w: %w", odometer.Errorf(odometer.EUNAVAILABLE,
			"%s: cannot connect to the database", op), err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/odometerhq/odometer/client"
)

// maxBatchBytes caps the JSON of one request below the server's default
// body limit (16 MiB), whatever --batch says.
const maxBatchBytes = 4 << 20

// ingestOptions are the flags of ingest.
type ingestOptions struct {
	remote      remote
	batch       int
	concurrency int
	retries     int
}

// runIngest sends the events of a file (or stdin) to a server. The input is
// NDJSON (one event per line) or a JSON array of events; the first
// non-blank byte tells which. Events are sent as they are, in batches, by a
// few concurrent senders; overload (429, 503) and connection errors are
// retried with backoff, which is safe because the server deduplicates by
// event identity. A batch the server rejects (400) stores nothing: its
// errors are printed with their line numbers (NDJSON) or array indexes, the
// other batches still go, and the command fails at the end.
func runIngest(ctx context.Context, e *env, args []string) error {
	var o ingestOptions
	envFlags := remoteEnv
	fs := newFlagSet(e, "ingest", "ingest [flags] FILE|-", envFlags)
	o.remote.flags(fs)
	fs.IntVar(&o.batch, "batch", 1000, "events per request")
	fs.IntVar(&o.concurrency, "concurrency", 4, "requests in flight at once")
	fs.IntVar(&o.retries, "retries", 10, "retries of a request that failed with 429, 502, 503, 504 or a connection error")
	args, err := parseFlags(fs, args, e.getenv, envFlags)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		fs.Usage()
		return &usageError{err: errors.New("ingest takes one argument: a file, or - for standard input"), shown: false}
	}
	if o.batch <= 0 || o.concurrency <= 0 || o.retries < 0 {
		return &usageError{err: errors.New("--batch and --concurrency must be positive, --retries not negative")}
	}
	var in io.Reader = e.stdin
	if name := args[0]; name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	ing := &ingester{
		opts:   o,
		client: o.remote.client(),
		stderr: e.stderr,
		tty:    isTerminal(e.stderr),
	}
	return ing.run(ctx, in, e.stdout)
}

// inputBatch is a batch of events with where each came from in the input.
type inputBatch struct {
	events []json.RawMessage
	pos    []int // line numbers (NDJSON) or array indexes
}

// ingester runs one ingest command.
type ingester struct {
	opts   ingestOptions
	client *client.Client
	stderr io.Writer
	tty    bool
	array  bool // the input is a JSON array: positions are indexes

	mu                  sync.Mutex // guards what follows and writes to stderr
	accepted, duplicate int
	rejected, failed    int
	nread, retried      int
}

func (g *ingester) run(ctx context.Context, in io.Reader, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan inputBatch, g.opts.concurrency)
	var wg sync.WaitGroup
	for range g.opts.concurrency {
		wg.Go(func() {
			for b := range batches {
				g.send(ctx, b)
			}
		})
	}
	stopProgress := g.startProgress()
	readErr := g.read(ctx, bufio.NewReaderSize(in, 1<<20), batches)
	close(batches)
	wg.Wait()
	stopProgress()

	fmt.Fprintf(stdout, "accepted=%d duplicate=%d rejected=%d", g.accepted, g.duplicate, g.rejected)
	if g.failed > 0 {
		fmt.Fprintf(stdout, " failed=%d", g.failed)
	}
	fmt.Fprintln(stdout)
	var errs []error
	if readErr != nil {
		errs = append(errs, fmt.Errorf("read input: %w", readErr))
	}
	if g.rejected > 0 {
		errs = append(errs, fmt.Errorf("%d events rejected (nothing of their batches was stored)", g.rejected))
	}
	if g.failed > 0 {
		errs = append(errs, fmt.Errorf("%d events not sent (see errors above); sending them again is safe", g.failed))
	}
	if len(errs) == 0 && ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// read splits the input into batches. It returns early if ctx ends or the
// input cannot be read any further (a malformed JSON array).
func (g *ingester) read(ctx context.Context, r *bufio.Reader, out chan<- inputBatch) error {
	var b inputBatch
	size := 0
	emit := func(raw json.RawMessage, pos int) bool {
		if len(b.events) > 0 && (len(b.events) >= g.opts.batch || size+len(raw) > maxBatchBytes) {
			select {
			case out <- b:
			case <-ctx.Done():
				return false
			}
			b, size = inputBatch{}, 0
		}
		b.events = append(b.events, raw)
		b.pos = append(b.pos, pos)
		size += len(raw) + 1
		g.mu.Lock()
		g.nread++
		g.mu.Unlock()
		return true
	}
	first, err := firstNonSpace(r)
	if err == io.EOF {
		return nil
	} else if err != nil {
		return err
	}
	if first == '[' {
		g.array = true
		err = readArray(r, g.reject, emit)
	} else {
		err = readLines(r, g.reject, emit)
	}
	if len(b.events) > 0 && ctx.Err() == nil {
		select {
		case out <- b:
		case <-ctx.Done():
		}
	}
	return err
}

// firstNonSpace returns the first byte after white space, without
// consuming it.
func firstNonSpace(r *bufio.Reader) (byte, error) {
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c, r.UnreadByte()
	}
}

// readLines reads NDJSON: one event per line; blank lines are skipped.
func readLines(r *bufio.Reader, reject func(pos int, reason string), emit func(json.RawMessage, int) bool) error {
	for line := 1; ; line++ {
		text, err := r.ReadBytes('\n')
		if t := bytes.TrimSpace(text); len(t) > 0 {
			if reason := checkEvent(t); reason != "" {
				reject(line, reason)
			} else if !emit(json.RawMessage(t), line) {
				return nil
			}
		}
		if err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// readArray reads a JSON array of events.
func readArray(r io.Reader, reject func(pos int, reason string), emit func(json.RawMessage, int) bool) error {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil { // '['
		return err
	}
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("index %d: %w", i, err)
		}
		if reason := checkEvent(raw); reason != "" {
			reject(i, reason)
		} else if !emit(raw, i) {
			return nil
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON array")
	}
	return nil
}

// checkEvent returns why raw cannot be sent as an event, or "". Everything
// else is the server's to check, so that its errors are the ones users see.
func checkEvent(raw []byte) string {
	if !json.Valid(raw) {
		return "not valid JSON"
	}
	if raw[0] != '{' {
		return "not a JSON object"
	}
	return ""
}

// where names an input position.
func (g *ingester) where(pos int) string {
	if g.array {
		return fmt.Sprintf("index %d", pos)
	}
	return fmt.Sprintf("line %d", pos)
}

// whereBatch names a batch's input range.
func (g *ingester) whereBatch(b inputBatch) string {
	first, last := b.pos[0], b.pos[len(b.pos)-1]
	unit := "lines"
	if g.array {
		unit = "indexes"
	}
	if first == last {
		return g.where(first)
	}
	return fmt.Sprintf("%s %d–%d", unit, first, last)
}

// reject records an event that was not sent because it is not JSON.
func (g *ingester) reject(pos int, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rejected++
	g.printf("%s: %s\n", g.where(pos), reason)
}

// send sends one batch, retrying temporary failures, and records the
// outcome.
func (g *ingester) send(ctx context.Context, b inputBatch) {
	res, err := g.sendWithRetry(ctx, b)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		g.accepted += res.Accepted
		g.duplicate += res.Duplicate
		return
	}
	p := client.AsProblem(err)
	if p == nil || p.Status >= 500 || p.Temporary() || p.Status == 404 {
		// Not an answer about the events: they may be sent again.
		g.failed += len(b.events)
		g.printf("%s: not sent: %v\n", g.whereBatch(b), err)
		return
	}
	g.rejected += len(b.events)
	if len(p.Errors) == 0 {
		g.printf("%s: batch of %d events rejected, none stored: %d %s: %s\n",
			g.whereBatch(b), len(b.events), p.Status, p.Title, p.Detail)
		return
	}
	// The detail names events by batch index; the input position is what
	// the user can find.
	g.printf("%s: batch of %d events rejected, none stored (%d %s):\n",
		g.whereBatch(b), len(b.events), p.Status, p.Title)
	for _, f := range p.Errors {
		if f.Index >= 0 && f.Index < len(b.pos) {
			g.printf("  %s: %s: %s\n", g.where(b.pos[f.Index]), f.Field, f.Reason)
		} else {
			g.printf("  %s: %s: %s\n", g.whereBatch(b), f.Field, f.Reason)
		}
	}
}

func (g *ingester) sendWithRetry(ctx context.Context, b inputBatch) (*client.IngestResult, error) {
	delay := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, err := g.client.IngestRaw(ctx, b.events)
		if err == nil || attempt >= g.opts.retries || !retryable(err) || ctx.Err() != nil {
			return res, err
		}
		wait := delay/2 + rand.N(delay/2+1)
		if p := client.AsProblem(err); p != nil && p.RetryAfter > wait {
			wait = p.RetryAfter
		}
		delay = min(2*delay, 10*time.Second)
		g.mu.Lock()
		g.retried++
		g.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

// retryable reports whether a failed request may succeed when sent again.
func retryable(err error) bool {
	if p := client.AsProblem(err); p != nil {
		return p.Temporary()
	}
	var ue *url.Error
	return errors.As(err, &ue) && !errors.Is(err, context.Canceled)
}

// printf writes to stderr, over the progress line. g.mu must be held.
func (g *ingester) printf(format string, args ...any) {
	if g.tty {
		fmt.Fprint(g.stderr, "\r\033[K")
	}
	fmt.Fprintf(g.stderr, format, args...)
}

// startProgress shows a progress line on stderr while it is a terminal, and
// returns the function that removes it.
func (g *ingester) startProgress() (stop func()) {
	if !g.tty {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			g.mu.Lock()
			sent := g.accepted + g.duplicate
			fmt.Fprintf(g.stderr, "\r\033[Kread %d, accepted %d, duplicate %d, rejected %d, retries %d (%.0f events/s)",
				g.nread, g.accepted, g.duplicate, g.rejected, g.retried, float64(sent)/time.Since(start).Seconds())
			g.mu.Unlock()
		}
	})
	return func() {
		close(done)
		wg.Wait()
		fmt.Fprint(g.stderr, "\r\033[K")
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

package client

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// RecorderConfig configures a Recorder. Dir is required.
type RecorderConfig struct {
	// Dir holds the spool: events recorded but not yet acknowledged by the
	// server, kept across restarts of the application. One Recorder per
	// directory at a time.
	Dir string
	// MaxSpoolBytes bounds the spool; Record fails with ErrSpoolFull rather
	// than exceed it. Default 1 GiB.
	MaxSpoolBytes int64
	// BatchEvents bounds the events per request. Default 1000.
	BatchEvents int
	// MinBackoff and MaxBackoff bound the wait between failed sends, which
	// doubles from MinBackoff, with jitter. Defaults 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Source is given to events recorded without one. Default "odometer-go".
	Source string
	// Logger receives failed sends and dead-lettered events; nil: discard.
	Logger *slog.Logger
	// OnOutcome, if set, is called by the sender with each event's final
	// outcome: delivered (the server acknowledged it as accepted or
	// duplicate) or dead-lettered with the reason. An event acknowledged
	// just before the application crashed may be reported again, as
	// delivered, after the restart.
	OnOutcome func(event json.RawMessage, delivered bool, reason string)
	// OnRetry, if set, is called after each failed send of events that
	// will be sent again.
	OnRetry func(events int, err error)
}

// ErrSpoolFull is returned (wrapped) by Record when the spool holds
// MaxSpoolBytes of events the server has not acknowledged yet. Nothing of
// that call was recorded.
var ErrSpoolFull = errSpoolFull

// DeadLetterFile is the name, in RecorderConfig.Dir, of the file of events
// the server rejected: one JSON object per line with the event, the HTTP
// status and the reason.
const DeadLetterFile = "dead-letter.jsonl"

// A Recorder records usage without losing it: Record returns once the
// events are durably in a local spool, and a background sender delivers
// them to the server, retrying with backoff through outages and restarts,
// and deletes only what the server acknowledged. Every event gets its ID
// on entry, so a resend after a crash is counted once by the server. An
// event the server rejects as invalid goes to the dead-letter file with
// the reason; the others go on.
type Recorder struct {
	c       *Client
	cfg     RecorderConfig
	spool   *spool
	dead    *os.File
	wake    chan struct{}
	closing chan struct{} // closed by Close: send what is left, then stop
	ctx     context.Context
	cancel  context.CancelFunc // aborts the sender (Close's deadline)
	done    chan struct{}
	once    sync.Once
}

// NewRecorder opens the spool in cfg.Dir and starts sending what it holds
// to c.
func NewRecorder(c *Client, cfg RecorderConfig) (*Recorder, error) {
	if cfg.Dir == "" {
		return nil, errors.New("recorder: Dir is required")
	}
	if cfg.MaxSpoolBytes <= 0 {
		cfg.MaxSpoolBytes = 1 << 30
	}
	if cfg.BatchEvents <= 0 {
		cfg.BatchEvents = 1000
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(cfg.MinBackoff, 30*time.Second)
	}
	if cfg.Source == "" {
		cfg.Source = "odometer-go"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sp, err := openSpool(cfg.Dir, cfg.MaxSpoolBytes, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	dead, err := os.OpenFile(filepath.Join(cfg.Dir, DeadLetterFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		sp.close()
		return nil, fmt.Errorf("recorder: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Recorder{c: c, cfg: cfg, spool: sp, dead: dead, wake: make(chan struct{}, 1),
		closing: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go r.run()
	return r, nil
}

// Record appends events to the spool and returns once they are on disk
// (concurrent calls share one fsync). The events are copied: the caller may
// reuse them. An event without ID gets a random one, without Time the
// current time, without Source the configured one. Either every event of
// the call is recorded or, on error, none.
func (r *Recorder) Record(ctx context.Context, events ...Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now().UTC()
	recs := make([][]byte, len(events))
	for i, e := range events {
		if e.ID == "" {
			e.ID = crand.Text()
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		if e.Source == "" {
			e.Source = r.cfg.Source
		}
		// MarshalJSON directly: json.Marshal(e) would compact its output
		// again, which was a third of Record's time.
		b, err := e.MarshalJSON()
		if err != nil {
			return fmt.Errorf("record event %d: %w", i, err)
		}
		recs[i] = b
	}
	select {
	case <-r.closing:
		return errors.New("record: the recorder is closed")
	default:
	}
	if err := r.spool.append(recs); err != nil {
		return fmt.Errorf("record %d events: %w", len(events), err)
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

// Close stops taking events and sends what the spool holds until it is
// empty or ctx ends; what is left is sent after the next NewRecorder on the
// same directory. It returns ctx's error if events were left.
func (r *Recorder) Close(ctx context.Context) error {
	r.once.Do(func() { close(r.closing) })
	var err error
	select {
	case <-r.done:
	case <-ctx.Done():
		r.cancel()
		<-r.done
		err = fmt.Errorf("close recorder: events remain in the spool: %w", ctx.Err())
	}
	r.cancel()
	return errors.Join(err, r.spool.close(), r.dead.Close())
}

// run is the sender.
func (r *Recorder) run() {
	defer close(r.done)
	r.spool.mu.Lock()
	pos := r.spool.acked
	r.spool.mu.Unlock()
	backoff := time.Duration(0)
	for r.ctx.Err() == nil {
		recs, next, err := r.spool.read(pos, r.cfg.BatchEvents, 4<<20)
		if err == nil && len(recs) == 0 {
			select {
			case <-r.wake:
				continue
			case <-r.closing:
				return // closing, and everything was delivered
			case <-r.ctx.Done():
				return
			}
		}
		if err == nil {
			err = r.deliver(recs)
		}
		if err == nil {
			err = r.spool.ack(next)
		}
		if err == nil {
			pos, backoff = next, 0
			continue
		}
		backoff = min(max(2*backoff, r.cfg.MinBackoff), r.cfg.MaxBackoff)
		wait := backoff/2 + rand.N(backoff/2+1)
		if p := AsProblem(err); p != nil && p.RetryAfter > wait {
			wait = min(p.RetryAfter, r.cfg.MaxBackoff)
		}
		r.cfg.Logger.Warn("odometer recorder: send failed; retrying", "err", err, "events", len(recs), "retryIn", wait)
		if r.cfg.OnRetry != nil {
			r.cfg.OnRetry(len(recs), err)
		}
		select {
		case <-time.After(wait):
		case <-r.ctx.Done():
		}
	}
}

// deliver sends records until the server has acknowledged each one or
// taken it as invalid (then it is dead-lettered). It returns an error when
// the rest must be tried again later.
func (r *Recorder) deliver(recs [][]byte) error {
	batch := make([]json.RawMessage, len(recs))
	for i, rec := range recs {
		batch[i] = rec
	}
	for len(batch) > 0 {
		_, err := r.c.IngestRaw(r.ctx, batch)
		if err == nil {
			if r.cfg.OnOutcome != nil {
				for _, e := range batch {
					r.cfg.OnOutcome(e, true, "")
				}
			}
			return nil
		}
		// A 400 (invalid events; the server stored none of the batch) or a
		// 413 (too large) will fail the same way again: set the events it
		// is about aside. Anything else may pass later: retry.
		p := AsProblem(err)
		if p == nil || p.Status != http.StatusBadRequest && p.Status != http.StatusRequestEntityTooLarge {
			return err
		}
		reasons := map[int][]string{}
		for _, f := range p.Errors {
			if f.Index >= 0 && f.Index < len(batch) {
				reasons[f.Index] = append(reasons[f.Index], f.Field+": "+f.Reason)
			}
		}
		if len(reasons) == 0 {
			if len(batch) > 1 {
				// Not said which events: send halves to find out.
				half := len(batch) / 2
				if err := r.deliver(rawRecords(batch[:half])); err != nil {
					return err
				}
				batch = batch[half:]
				continue
			}
			reasons[0] = []string{p.Error()}
		}
		var rest []json.RawMessage
		for i, e := range batch {
			if rs, bad := reasons[i]; bad {
				if err := r.deadLetter(e, p.Status, strings.Join(rs, "; ")); err != nil {
					return err
				}
				continue
			}
			rest = append(rest, e)
		}
		batch = rest
	}
	return nil
}

func rawRecords(b []json.RawMessage) [][]byte {
	out := make([][]byte, len(b))
	for i, e := range b {
		out[i] = e
	}
	return out
}

// deadLetter appends a rejected event to the dead-letter file, durably,
// before the spool may forget it.
func (r *Recorder) deadLetter(event json.RawMessage, status int, reason string) error {
	line, err := json.Marshal(struct {
		Event  json.RawMessage `json:"event"`
		Status int             `json:"status"`
		Reason string          `json:"reason"`
	}{event, status, reason})
	if err != nil {
		return err
	}
	if _, err := r.dead.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write dead letter: %w", err)
	}
	if err := r.dead.Sync(); err != nil {
		return fmt.Errorf("sync dead letter: %w", err)
	}
	r.cfg.Logger.Error("odometer recorder: the server rejected an event; moved to the dead-letter file",
		"file", filepath.Join(r.cfg.Dir, DeadLetterFile), "status", status, "reason", reason)
	if r.cfg.OnOutcome != nil {
		r.cfg.OnOutcome(event, false, reason)
	}
	return nil
}

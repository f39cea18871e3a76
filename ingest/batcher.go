// Package ingest is the group-commit pipeline in front of an event store.
//
// Every ingestion request waits for a commit, and a commit is one
// transaction and one sync. Committing each request on its own would cap
// throughput at the disk's sync rate (a few thousand per second); instead a
// writer takes everything that queued up while the previous commit was
// syncing and commits it together, so one sync serves many requests. Under
// light load a request commits alone, immediately: there is no timer.
//
// A store whose commits wait mostly on a server (PostgreSQL: a round trip
// per statement, then the commit's WAL flush) gets several writers
// (Config.Concurrency): while one waits, the next takes the queue, and the
// server's own group commit shares one WAL flush between them. The embedded
// store serializes appends anyway, so one writer is all it can use.
package ingest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes the batcher. Zero values take the defaults.
type Config struct {
	// MaxBatchEvents caps the events of one commit (default 20,000). A
	// request is never split across commits, so a commit may exceed it by
	// one request.
	MaxBatchEvents int
	// MaxQueueEvents caps the events waiting for a commit (default 200,000).
	// Past it Append fails at once with EUNAVAILABLE, which the API answers
	// with 503 and Retry-After: the request is refused whole, never dropped
	// after acknowledging it.
	MaxQueueEvents int
	// CommitTimeout bounds one store commit (default 30 s).
	CommitTimeout time.Duration
	// Concurrency is the number of commits in flight at once (default 1).
	// Requests committed concurrently have no order between them: of two
	// with the same event identity, either may be the one accepted.
	Concurrency int
}

func (c Config) withDefaults() Config {
	if c.MaxBatchEvents <= 0 {
		c.MaxBatchEvents = 20_000
	}
	if c.MaxQueueEvents <= 0 {
		c.MaxQueueEvents = 200_000
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = 30 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	return c
}

// Appender is the part of odometer.EventStore the batcher uses.
type Appender interface {
	AppendEvents(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error)
}

// Batcher group-commits Append calls into an event store.
type Batcher struct {
	store Appender
	cfg   Config

	mu      sync.Mutex
	queue   []*request
	queued  int // events in queue
	closed  bool
	wake    chan struct{}
	stopped chan struct{}

	commitSeconds  prometheus.Histogram
	commitEvents   prometheus.Histogram
	commitRequests prometheus.Histogram
	commitErrors   prometheus.Counter
}

type request struct {
	events   []odometer.Event
	outcomes []odometer.Outcome
	err      error
	done     chan struct{}
}

// New starts a batcher writing to store. Its metrics are registered on reg
// when reg is not nil. Call Close to stop it.
func New(store Appender, cfg Config, reg prometheus.Registerer) *Batcher {
	b := &Batcher{
		store:   store,
		cfg:     cfg.withDefaults(),
		wake:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "odometer_ingest_commit_duration_seconds",
			Help:    "Time to commit one group of ingestion requests durably.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		commitEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "odometer_ingest_commit_events",
			Help:    "Events per commit.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		commitRequests: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "odometer_ingest_commit_requests",
			Help:    "Ingestion requests served by one commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "odometer_ingest_commit_errors_total",
			Help: "Commits that failed; their requests got an error, not an acknowledgement.",
		}),
	}
	if reg != nil {
		reg.MustRegister(b.commitSeconds, b.commitEvents, b.commitRequests, b.commitErrors,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "odometer_ingest_queue_events",
				Help: "Events waiting for a commit.",
			}, func() float64 { return float64(b.QueueDepth()) }))
	}
	var writers sync.WaitGroup
	for range b.cfg.Concurrency {
		writers.Go(b.run)
	}
	go func() {
		writers.Wait()
		close(b.stopped)
	}()
	return b
}

// Append queues events for the next commit and waits for it. It returns the
// per-event outcomes once the events are durable. On error the events were
// not acknowledged; they may or may not have been stored (for instance if
// ctx ended while the commit was under way), so clients retry and the retry
// is deduplicated by identity.
func (b *Batcher) Append(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error) {
	if len(events) == 0 {
		return nil, nil
	}
	r := &request{events: events, done: make(chan struct{})}
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return nil, odometer.Errorf(odometer.EUNAVAILABLE, "server is shutting down; retry on another node or later")
	case b.queued > 0 && b.queued+len(events) > b.cfg.MaxQueueEvents:
		b.mu.Unlock()
		return nil, odometer.Errorf(odometer.EUNAVAILABLE, "ingestion queue is full (%d events waiting); retry later", b.queued)
	}
	b.queue = append(b.queue, r)
	b.queued += len(events)
	// Signal under the lock: Close closes wake under the same lock.
	select {
	case b.wake <- struct{}{}:
	default:
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.outcomes, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for commit: %w", ctx.Err())
	}
}

// QueueDepth returns the number of events waiting for a commit.
func (b *Batcher) QueueDepth() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queued
}

// Close refuses new requests, commits what is queued and stops the writer.
// It returns ctx's error if the queue did not drain in time.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.wake)
	}
	b.mu.Unlock()
	select {
	case <-b.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close batcher: %w", ctx.Err())
	}
}

// run is one writer. A request wakes one idle writer (wake holds one
// token); a writer drains the queue before it sleeps again, so no request
// waits while a writer is idle.
func (b *Batcher) run() {
	for range b.wake {
		for b.commitNext() {
		}
	}
	for b.commitNext() { // drain after Close
	}
}

// commitNext commits the next group of queued requests and reports whether
// there was one.
func (b *Batcher) commitNext() bool {
	b.mu.Lock()
	n, events := 0, 0
	for n < len(b.queue) && (n == 0 || events+len(b.queue[n].events) <= b.cfg.MaxBatchEvents) {
		events += len(b.queue[n].events)
		n++
	}
	group := b.queue[:n:n]
	b.queue = b.queue[n:]
	b.queued -= events
	b.mu.Unlock()
	if n == 0 {
		return false
	}
	all := group[0].events
	if n > 1 {
		all = make([]odometer.Event, 0, events)
		for _, r := range group {
			all = append(all, r.events...)
		}
	}
	outcomes, err := b.commit(all)
	if err != nil && n > 1 {
		// Isolate: commit each request alone so that one request's failure
		// does not fail the others that happened to share its commit.
		for _, r := range group {
			r.outcomes, r.err = b.commit(r.events)
			close(r.done)
		}
		return true
	}
	off := 0
	for _, r := range group {
		if err != nil {
			r.err = err
		} else {
			r.outcomes = outcomes[off : off+len(r.events) : off+len(r.events)]
		}
		off += len(r.events)
		close(r.done)
	}
	b.commitRequests.Observe(float64(n))
	return true
}

func (b *Batcher) commit(events []odometer.Event) ([]odometer.Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CommitTimeout)
	defer cancel()
	start := time.Now()
	outcomes, err := b.store.AppendEvents(ctx, events)
	if err == nil && len(outcomes) != len(events) {
		err = fmt.Errorf("store returned %d outcomes for %d events", len(outcomes), len(events))
	}
	if err != nil {
		b.commitErrors.Inc()
		return nil, err
	}
	b.commitSeconds.Observe(time.Since(start).Seconds())
	b.commitEvents.Observe(float64(len(events)))
	return outcomes, nil
}

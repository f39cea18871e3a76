package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/ingest"
	"github.com/prometheus/client_golang/prometheus"
)

// gateStore is a hand-written fake that records every commit, can hold
// commits until released, and fails commits containing a poisoned id.
type gateStore struct {
	mu      sync.Mutex
	calls   [][]string // ids per commit
	seen    map[string]bool
	gate    chan struct{} // nil: commit at once
	entered chan struct{}
	poison  string
}

func newGateStore(gated bool) *gateStore {
	s := &gateStore{seen: map[string]bool{}, entered: make(chan struct{}, 100)}
	if gated {
		s.gate = make(chan struct{})
	}
	return s
}

func (s *gateStore) AppendEvents(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error) {
	s.entered <- struct{}{}
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
		if e.ID == s.poison && s.poison != "" {
			s.calls = append(s.calls, ids)
			return nil, errors.New("poisoned batch")
		}
	}
	s.calls = append(s.calls, ids)
	out := make([]odometer.Outcome, len(events))
	for i, e := range events {
		if s.seen[e.ID] {
			out[i] = odometer.Duplicate
		}
		s.seen[e.ID] = true
	}
	return out, nil
}

func events(ids ...string) []odometer.Event {
	out := make([]odometer.Event, len(ids))
	for i, id := range ids {
		out[i] = odometer.Event{Namespace: "default", ID: id, Source: "s", Type: "t", Subject: "x"}
	}
	return out
}

type result struct {
	outcomes []odometer.Outcome
	err      error
}

func appendAsync(b *ingest.Batcher, evs []odometer.Event) chan result {
	ch := make(chan result, 1)
	go func() {
		o, err := b.Append(context.Background(), evs)
		ch <- result{o, err}
	}()
	return ch
}

func waitDepth(t *testing.T, b *ingest.Batcher, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.QueueDepth() != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue depth %d, want %d", b.QueueDepth(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	store := newGateStore(true)
	b := ingest.New(store, ingest.Config{}, prometheus.NewRegistry())
	defer b.Close(context.Background())

	first := appendAsync(b, events("a"))
	<-store.entered // "a" is committing and holds the writer
	var waiting []chan result
	for i := range 10 {
		waiting = append(waiting, appendAsync(b, events(fmt.Sprint("b", i), "a")))
	}
	waitDepth(t, b, 20)
	close(store.gate)

	if r := <-first; r.err != nil || !slices.Equal(r.outcomes, []odometer.Outcome{odometer.Accepted}) {
		t.Fatalf("first: %+v", r)
	}
	for i, ch := range waiting {
		r := <-ch
		if r.err != nil || !slices.Equal(r.outcomes, []odometer.Outcome{odometer.Accepted, odometer.Duplicate}) {
			t.Fatalf("request %d: %+v", i, r)
		}
	}
	if len(store.calls) != 2 || len(store.calls[1]) != 20 {
		t.Fatalf("want 2 commits (1 event, then 20 events from 10 requests), got %v", store.calls)
	}
}

func TestMaxBatchEventsSplitsGroups(t *testing.T) {
	t.Parallel()
	store := newGateStore(true)
	b := ingest.New(store, ingest.Config{MaxBatchEvents: 4}, nil)
	defer b.Close(context.Background())
	first := appendAsync(b, events("a"))
	<-store.entered
	var waiting []chan result
	for i := range 5 {
		waiting = append(waiting, appendAsync(b, events(fmt.Sprint("x", i), fmt.Sprint("y", i))))
		waitDepth(t, b, 2*(i+1)) // keep the order deterministic
	}
	close(store.gate)
	<-first
	for _, ch := range waiting {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
	var sizes []int
	for _, c := range store.calls {
		sizes = append(sizes, len(c))
	}
	if !slices.Equal(sizes, []int{1, 4, 4, 2}) {
		t.Fatalf("commit sizes %v, want [1 4 4 2]", sizes)
	}
}

func TestQueueFullRefusesWithoutLoss(t *testing.T) {
	t.Parallel()
	store := newGateStore(true)
	b := ingest.New(store, ingest.Config{MaxQueueEvents: 3}, nil)
	defer b.Close(context.Background())
	first := appendAsync(b, events("a"))
	<-store.entered
	queued := appendAsync(b, events("b", "c", "d"))
	waitDepth(t, b, 3)
	_, err := b.Append(context.Background(), events("e"))
	if odometer.ErrorCode(err) != odometer.EUNAVAILABLE {
		t.Fatalf("full queue: err = %v, want EUNAVAILABLE", err)
	}
	close(store.gate)
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	if r := <-queued; r.err != nil || len(r.outcomes) != 3 {
		t.Fatalf("queued request: %+v", r)
	}
	if store.seen["e"] {
		t.Fatal("refused event was stored")
	}
}

func TestFailedCommitIsolatesRequests(t *testing.T) {
	t.Parallel()
	store := newGateStore(true)
	store.poison = "bad"
	b := ingest.New(store, ingest.Config{}, nil)
	defer b.Close(context.Background())
	first := appendAsync(b, events("a"))
	<-store.entered
	good := appendAsync(b, events("g1"))
	waitDepth(t, b, 1)
	bad := appendAsync(b, events("bad"))
	waitDepth(t, b, 2)
	good2 := appendAsync(b, events("g2"))
	waitDepth(t, b, 3)
	go func() {
		for range store.entered {
		}
	}()
	close(store.gate)
	<-first
	for name, ch := range map[string]chan result{"good": good, "good2": good2} {
		if r := <-ch; r.err != nil || len(r.outcomes) != 1 {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if r := <-bad; r.err == nil {
		t.Errorf("poisoned request acknowledged: %+v", r)
	}
}

func TestCloseDrainsThenRefuses(t *testing.T) {
	t.Parallel()
	store := newGateStore(true)
	b := ingest.New(store, ingest.Config{}, nil)
	first := appendAsync(b, events("a"))
	<-store.entered
	queued := appendAsync(b, events("b"))
	waitDepth(t, b, 1)
	// A Close whose deadline has passed still marks the batcher closed; the
	// writer keeps draining in the background.
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Close(expired); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with expired context = %v", err)
	}
	if _, err := b.Append(context.Background(), events("late")); odometer.ErrorCode(err) != odometer.EUNAVAILABLE {
		t.Fatalf("Append after Close: err = %v, want EUNAVAILABLE", err)
	}
	go func() {
		for range store.entered {
		}
	}()
	close(store.gate)
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	if r := <-queued; r.err != nil {
		t.Fatalf("queued request lost on Close: %v", r.err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if store.seen["late"] {
		t.Fatal("request refused after Close was stored")
	}
}

func TestAppendHonoursContext(t *testing.T) {
	t.Parallel()
	store := newGateStore(true)
	b := ingest.New(store, ingest.Config{}, nil)
	defer func() {
		close(store.gate)
		b.Close(context.Background())
	}()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { _, err := b.Append(ctx, events("a")); ch <- err }()
	<-store.entered
	cancel()
	if err := <-ch; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestConcurrentCommits checks that with Concurrency n, n commits are in
// flight at once while the store holds them, that what queues behind them
// is group-committed by the first writer free, and that Close waits for
// every writer.
func TestConcurrentCommits(t *testing.T) {
	t.Parallel()
	store := newGateStore(true)
	b := ingest.New(store, ingest.Config{Concurrency: 3}, prometheus.NewRegistry())

	var inFlight []chan result
	for i := range 3 {
		inFlight = append(inFlight, appendAsync(b, events(fmt.Sprint("a", i))))
		<-store.entered // each request is taken by a writer of its own
	}
	var queued []chan result
	for i := range 4 {
		queued = append(queued, appendAsync(b, events(fmt.Sprint("b", i))))
	}
	waitDepth(t, b, 4) // no fourth writer takes them
	select {
	case <-store.entered:
		t.Fatal("a fourth commit started while three were in flight")
	case <-time.After(20 * time.Millisecond):
	}
	close(store.gate)
	for i, ch := range append(inFlight, queued...) {
		if r := <-ch; r.err != nil || !slices.Equal(r.outcomes, []odometer.Outcome{odometer.Accepted}) {
			t.Fatalf("request %d: %+v", i, r)
		}
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	sizes := []int{}
	for _, c := range store.calls {
		sizes = append(sizes, len(c))
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{1, 1, 1, 4}) {
		t.Fatalf("want 4 commits (3 of 1 event, and the 4 queued requests together), got %v", store.calls)
	}
	if _, err := b.Append(context.Background(), events("late")); err == nil {
		t.Fatal("Append after Close succeeded")
	}
}

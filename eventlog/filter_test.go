package eventlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

func TestIdentityFilter(t *testing.T) {
	t.Parallel()
	const n = 200_000
	f := newIdentityFilter(n)
	for i := range n {
		f.add(f.hash(dedupKey(nil, "ns", "src", fmt.Sprint("in-", i))))
	}
	for i := range n {
		if !f.mayContain(f.hash(dedupKey(nil, "ns", "src", fmt.Sprint("in-", i)))) {
			t.Fatalf("key %d was added but is reported absent", i)
		}
	}
	// The filter is sized for minFilterKeys here; fill it to capacity to
	// measure the rate it is built for.
	for i := n; i < f.capacity; i++ {
		f.add(f.hash(dedupKey(nil, "ns", "src", fmt.Sprint("in-", i))))
	}
	fp := 0
	for i := range n {
		if f.mayContain(f.hash(dedupKey(nil, "ns", "src", fmt.Sprint("out-", i)))) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.03 {
		t.Fatalf("false-positive rate at capacity %.4f, want at most 0.03", rate)
	}
}

// waitFilter waits until l's identity filter holds every stored identity.
func waitFilter(t *testing.T, l *Log) *identityFilter {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		f := l.filter
		l.mu.Unlock()
		if f.ready.Load() {
			return f
		}
	}
	t.Fatal("the identity filter was not built within 30 s")
	return nil
}

func filterEvents(from, to int) []odometer.Event {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []odometer.Event
	for i := from; i < to; i++ {
		out = append(out, odometer.Event{Namespace: "ns", Source: "src", ID: fmt.Sprint("id-", i), SpecVersion: "1.0",
			Type: "t", Subject: "s", Time: at, IngestedAt: at})
	}
	return out
}

func appendAll(t *testing.T, l *Log, events []odometer.Event) []odometer.Outcome {
	t.Helper()
	out, err := l.AppendEvents(t.Context(), events)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func countOutcomes(out []odometer.Outcome) (accepted, duplicate int) {
	for _, o := range out {
		if o == odometer.Accepted {
			accepted++
		} else {
			duplicate++
		}
	}
	return accepted, duplicate
}

// After a restart the filter is rebuilt from the stored identities, and
// with it ready, stored identities are still duplicates and new ones are
// accepted; so also after the filter outgrows its size and is rebuilt
// while appends go on.
func TestAppendWithFilter(t *testing.T) {
	saved := minFilterKeys
	minFilterKeys = 64
	t.Cleanup(func() { minFilterKeys = saved })
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i += 100 {
		appendAll(t, l, filterEvents(i, i+100)) // outgrows the filter several times
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := waitFilter(t, l)
	if got := f.n.Load(); got != 1000 {
		t.Fatalf("the rebuilt filter holds %d identities, want 1000", got)
	}
	out := appendAll(t, l, filterEvents(500, 1500))
	if a, d := countOutcomes(out); a != 500 || d != 500 {
		t.Fatalf("after reopening: %d accepted, %d duplicates; want 500 and 500", a, d)
	}
	for i := 1500; i < 3000; i += 100 {
		waitFilter(t, l)
		out := appendAll(t, l, append(filterEvents(i-50, i+100), filterEvents(i-50, i-40)...))
		if a, d := countOutcomes(out); a != 100 || d != 60 {
			t.Fatalf("batch at %d: %d accepted, %d duplicates; want 100 and 60", i, a, d)
		}
	}
}

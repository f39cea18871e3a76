package eventlog

import (
	"fmt"
	"testing"
	"time"

	"github.com/odometerhq/odometer"
)

func TestIdentityFilter(t *testing.T) {
	t.Parallel()
	f, err := newIdentityFilter(32 << 10) // 21,845 identities at 12 bits each
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	in := func(i int) uint64 { return f.hash(dedupKey(nil, "ns", "src", fmt.Sprint("in-", i))) }
	out := func(i int) uint64 { return f.hash(dedupKey(nil, "ns", "src", fmt.Sprint("out-", i))) }
	added := 0
	// The false-positive rate at and beyond the capacity (docs/storage.md,
	// "Memory"), with some slack; past it the filter still never forgets.
	// go test -run TestIdentityFilter -v ./eventlog/ prints the rates.
	for _, c := range []struct{ times, maxRate float64 }{{1, 0.01}, {1.5, 0.05}, {2, 0.12}, {3, 0.4}, {5, 0.8}} {
		for ; added < int(c.times*float64(f.capacity)); added++ {
			f.add(in(added))
		}
		for i := range added {
			if !f.mayContain(in(i)) {
				t.Fatalf("at %gx capacity: key %d was added but is reported absent", c.times, i)
			}
		}
		const n = 50_000
		fp := 0
		for i := range n {
			if f.mayContain(out(i)) {
				fp++
			}
		}
		rate := float64(fp) / n
		t.Logf("%g times its capacity (%.1f bits per identity): %.2f%% false positives", c.times, filterBitsPerKey/c.times, 100*rate)
		if rate > c.maxRate {
			t.Fatalf("false-positive rate at %gx capacity %.4f, want at most %g", c.times, rate, c.maxRate)
		}
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
// accepted; so also when the log holds far more identities than the
// filter's capacity, which keeps its size.
func TestAppendWithFilter(t *testing.T) {
	t.Parallel()
	const size = 64 // one block: 42 identities at 12 bits each
	dir := t.TempDir()
	l, err := OpenOptions(dir, Options{FilterBytes: size})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i += 100 {
		appendAll(t, l, filterEvents(i, i+100))
	}
	if got := l.Memory().Filter; got != size {
		t.Fatalf("after 1,000 events the filter takes %d bytes, want %d", got, size)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = OpenOptions(dir, Options{FilterBytes: size})
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
		out := appendAll(t, l, append(filterEvents(i-50, i+100), filterEvents(i-50, i-40)...))
		if a, d := countOutcomes(out); a != 100 || d != 60 {
			t.Fatalf("batch at %d: %d accepted, %d duplicates; want 100 and 60", i, a, d)
		}
	}
	if got := l.Memory().Filter; got != size {
		t.Fatalf("after 3,000 events the filter takes %d bytes, want %d", got, size)
	}
}

// A filter of the default size is not touched by appends beyond its
// capacity: it never grows with the events stored.
func TestFilterSizeIsFixed(t *testing.T) {
	t.Parallel()
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := waitFilter(t, l)
	// Pretend the log already holds three times the filter's capacity, as
	// a log with 134 million events would.
	f.n.Add(3 * int64(f.capacity))
	appendAll(t, l, filterEvents(0, 100))
	if got := l.Memory().Filter; got != DefaultFilterBytes || l.filter != f {
		t.Fatalf("the filter was replaced or resized: %d bytes, want %d", got, DefaultFilterBytes)
	}
}

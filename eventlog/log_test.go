package eventlog_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/eventlog"
	"github.com/odometerhq/odometer/sqlite"
	"github.com/odometerhq/odometer/storetest"
)

// store is the embedded store as the server composes it: events in the
// Pebble log, meters, credits, exports and API keys in SQLite.
type store struct {
	*eventlog.Log
	odometer.MeterStore
	odometer.CreditStore
	odometer.ExportStore
	odometer.KeyStore
	meters *sqlite.Store
}

func (s *store) Ping(ctx context.Context) error {
	return errors.Join(s.Log.Ping(ctx), s.meters.Ping(ctx))
}

func (s *store) Close() error { return errors.Join(s.Log.Close(), s.meters.Close()) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) odometer.Store {
		dir := t.TempDir()
		meters, err := sqlite.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		l := open(t, filepath.Join(dir, eventlog.DirName))
		s := &store{Log: l, MeterStore: meters, CreditStore: meters, ExportStore: meters, KeyStore: meters, meters: meters}
		t.Cleanup(func() { meters.Close() })
		return s
	})
}

// open opens the log in dir and closes it when the test ends.
func open(t testing.TB, dir string) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Open(dir)
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

var (
	t0       = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ingested = time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
)

func ev(ns, id, typ, subject string, t time.Time) odometer.Event {
	return odometer.Event{Namespace: ns, ID: id, Source: "src", SpecVersion: "1.0", Type: typ, Subject: subject,
		Time: t, IngestedAt: ingested, Data: []byte(`{"id":"` + strings.ReplaceAll(id, "\x00", `\u0000`) + `"}`)}
}

func mustAppend(t testing.TB, l *eventlog.Log, events ...odometer.Event) []odometer.Outcome {
	t.Helper()
	out, err := l.AppendEvents(context.Background(), events)
	if err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	return out
}

func listIDs(t testing.TB, l *eventlog.Log, ns string) []string {
	t.Helper()
	events, err := l.ListEvents(context.Background(), odometer.EventFilter{Namespace: ns, Limit: 1 << 30})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	ids := []string{}
	for _, e := range events {
		ids = append(ids, e.ID)
	}
	return ids
}

// TestReopen checks that events survive Close and Open, that duplicates are
// still recognized, and that the sequence number continues: a reused seq
// would give a new event with the same (type, subject, time) as an old one
// the same key, silently overwriting it.
func TestReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", eventlog.DirName) // parents created by Open
	l, err := eventlog.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, l, ev("ns", "a", "tokens", "cust", t0), ev("ns", "b", "tokens", "cust", t0))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	for round := range 3 {
		l := open(t, dir)
		if err := l.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		id := fmt.Sprint("c", round)
		out := mustAppend(t, l, ev("ns", "a", "tokens", "cust", t0), ev("ns", id, "tokens", "cust", t0))
		if !slices.Equal(out, []odometer.Outcome{odometer.Duplicate, odometer.Accepted}) {
			t.Fatalf("round %d: outcomes %v, want [duplicate accepted]", round, out)
		}
		// Same time: listed later-appended first, so in reverse order of
		// appending, across reopens.
		want := []string{id}
		for r := round - 1; r >= 0; r-- {
			want = append(want, fmt.Sprint("c", r))
		}
		want = append(want, "b", "a")
		if diff := gocmp.Diff(want, listIDs(t, l, "ns")); diff != "" {
			t.Fatalf("round %d: ids (-want +got):\n%s", round, diff)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Ping(t.Context()); err == nil {
			t.Error("Ping after Close succeeded")
		}
		if _, err := l.AppendEvents(t.Context(), []odometer.Event{ev("ns", "z", "t", "s", t0)}); err == nil {
			t.Error("AppendEvents after Close succeeded")
		}
	}
}

// TestOpenRefuses checks that Open does not misread a directory it did not
// write, nor a log written by a newer version, and that a second Open of an
// open log fails instead of sharing it.
func TestOpenRefuses(t *testing.T) {
	t.Run("newer format", func(t *testing.T) {
		dir := t.TempDir()
		l := open(t, dir)
		mustAppend(t, l, ev("ns", "a", "t", "s", t0))
		l.Close()
		setRaw(t, dir, "mformat", []byte{99})
		if l, err := eventlog.Open(dir); err == nil {
			l.Close()
			t.Fatal("Open succeeded on a log with a newer format")
		} else if !strings.Contains(err.Error(), "newer") {
			t.Errorf("Open: %v; want an error about the newer format", err)
		}
	})
	t.Run("foreign database", func(t *testing.T) {
		dir := t.TempDir()
		setRaw(t, dir, "something", []byte("else"))
		if l, err := eventlog.Open(dir); err == nil {
			l.Close()
			t.Fatal("Open succeeded on a Pebble database that is not an event log")
		}
	})
	t.Run("already open", func(t *testing.T) {
		dir := t.TempDir()
		open(t, dir)
		if l, err := eventlog.Open(dir); err == nil {
			l.Close()
			t.Fatal("second Open of the same directory succeeded")
		}
	})
}

func setRaw(t *testing.T, dir, key string, value []byte) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte(key), value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

type quiet struct{}

func (quiet) Infof(string, ...any)              {}
func (quiet) Errorf(string, ...any)             {}
func (quiet) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// TestAgainstModel appends random events, with NUL and 0xFF bytes in every
// string, in random batches with repeats, and checks every read against a
// brute-force model: ListEvents' order and filters, and ScanEvents with and
// without subjects and time bounds (the skip-scan).
func TestAgainstModel(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	l := open(t, t.TempDir())
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	names := []string{"", "a", "a\x00", "a\x00b", "a\xff", "\x00", "\xff", "b", "ab"}
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

	type stored struct {
		odometer.Event
		seq int
	}
	var model []stored
	seen := map[[3]string]bool{}
	for batch := range 60 {
		var events []odometer.Event
		for range rng.IntN(40) + 1 {
			e := ev(pick("ns", "ns\x00"), fmt.Sprint(rng.IntN(400)), pick("t", "t\x00", "u"), pick(names...), at(rng.IntN(100)))
			e.IngestedAt = ingested.Add(time.Duration(batch) * time.Second)
			events = append(events, e)
		}
		out := mustAppend(t, l, events...)
		for i, e := range events {
			id := [3]string{e.Namespace, e.Source, e.ID}
			want := odometer.Accepted
			if seen[id] {
				want = odometer.Duplicate
			}
			if out[i] != want {
				t.Fatalf("batch %d event %d %q: %v, want %v", batch, i, e.ID, out[i], want)
			}
			if want == odometer.Accepted {
				seen[id] = true
				model = append(model, stored{e, len(model)})
			}
		}
	}

	// ListEvents: newest time first, then latest appended first.
	byTime := slices.Clone(model)
	slices.SortStableFunc(byTime, func(a, b stored) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(b.seq, a.seq))
	})
	for range 200 {
		f := odometer.EventFilter{Namespace: pick("ns", "ns\x00", "none"), Limit: rng.IntN(30) + 1}
		if rng.IntN(2) == 0 {
			f.From = at(rng.IntN(110) - 5)
		}
		if rng.IntN(2) == 0 {
			f.To = at(rng.IntN(110) - 5)
		}
		if rng.IntN(3) == 0 {
			f.IngestedFrom = ingested.Add(time.Duration(rng.IntN(60)) * time.Second)
		}
		if rng.IntN(3) == 0 {
			f.IngestedTo = ingested.Add(time.Duration(rng.IntN(60)) * time.Second)
		}
		if rng.IntN(3) == 0 {
			f.IDContains = fmt.Sprint(rng.IntN(10))
		}
		if rng.IntN(3) == 0 {
			f.SubjectContains = pick("a", "\x00", "\xff", "b")
		}
		want := []odometer.Event{}
		for _, e := range byTime {
			if len(want) < f.Limit && e.Namespace == f.Namespace &&
				(f.From.IsZero() || !e.Time.Before(f.From)) && (f.To.IsZero() || e.Time.Before(f.To)) &&
				(f.IngestedFrom.IsZero() || !e.IngestedAt.Before(f.IngestedFrom)) && (f.IngestedTo.IsZero() || e.IngestedAt.Before(f.IngestedTo)) &&
				strings.Contains(e.ID, f.IDContains) && strings.Contains(e.Subject, f.SubjectContains) {
				want = append(want, e.Event)
			}
		}
		got, err := l.ListEvents(t.Context(), f)
		if err != nil {
			t.Fatalf("ListEvents(%+v): %v", f, err)
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Fatalf("ListEvents(%+v) (-want +got):\n%s", f, diff)
		}
	}

	for range 300 {
		sc := odometer.EventScan{Namespace: pick("ns", "ns\x00"), Type: pick("t", "t\x00", "u", "v")}
		if rng.IntN(2) == 0 {
			for range rng.IntN(4) + 1 {
				sc.Subjects = append(sc.Subjects, pick(names...))
			}
			sc.Subjects = slices.Compact(sc.Subjects)
		}
		if rng.IntN(3) > 0 {
			sc.From = at(rng.IntN(110) - 5)
		}
		if rng.IntN(3) > 0 {
			sc.To = at(rng.IntN(110) - 5)
		}
		want := []string{}
		for _, e := range model {
			if e.Namespace == sc.Namespace && e.Type == sc.Type &&
				(len(sc.Subjects) == 0 || slices.Contains(sc.Subjects, e.Subject)) &&
				(sc.From.IsZero() || !e.Time.Before(sc.From)) && (sc.To.IsZero() || e.Time.Before(sc.To)) {
				want = append(want, scanned(e.Event))
			}
		}
		got := []string{}
		err := l.ScanEvents(t.Context(), sc, func(e *odometer.ScannedEvent) error {
			got = append(got, fmt.Sprintf("%q %q %q %s %s %s", e.Subject, e.Source, e.ID, e.Time.Format(time.RFC3339Nano), e.IngestedAt.Format(time.RFC3339Nano), e.Data))
			return nil
		})
		if err != nil {
			t.Fatalf("ScanEvents(%+v): %v", sc, err)
		}
		slices.Sort(want)
		slices.Sort(got)
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Fatalf("ScanEvents(%+v) (-want +got):\n%s", sc, diff)
		}
	}
}

func scanned(e odometer.Event) string {
	return fmt.Sprintf("%q %q %q %s %s %s", e.Subject, e.Source, e.ID, e.Time.Format(time.RFC3339Nano), e.IngestedAt.Format(time.RFC3339Nano), e.Data)
}

// killChild runs the test named test in a child process with env=dir set,
// reads the batch numbers it prints after each acknowledged append, kills
// it (SIGKILL, no Close) once it has acknowledged batch min, and returns
// the last batch it acknowledged, counting those printed after the kill.
func killChild(t *testing.T, test, env, dir string, min int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), env+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(stdout)
	for acked < min && sc.Scan() {
		var n int
		if _, err := fmt.Sscan(sc.Text(), &n); err == nil {
			acked = n
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		var n int
		if _, err := fmt.Sscan(sc.Text(), &n); err == nil {
			acked = n
		}
	}
	_ = cmd.Wait()
	if acked < min {
		t.Fatalf("child acknowledged only %d batches", acked+1)
	}
	return acked
}

// TestCrash kills a process that is appending (SIGKILL, no Close) and
// checks that every batch it acknowledged is there exactly once after
// reopening, and that appending goes on without reusing sequence numbers.
func TestCrash(t *testing.T) {
	if dir := os.Getenv("EVENTLOG_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	acked := killChild(t, "TestCrash", "EVENTLOG_CRASH_CHILD", dir, 20)

	l := open(t, dir)
	count := map[string]int{}
	err := l.ScanEvents(t.Context(), odometer.EventScan{Namespace: "ns", Type: "tokens"}, func(e *odometer.ScannedEvent) error {
		count[e.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b <= acked; b++ {
		for i := range crashBatch {
			if id := crashID(b, i); count[id] != 1 {
				t.Fatalf("acknowledged event %s stored %d times", id, count[id])
			}
		}
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	// Same subject and time as every event before: a reused seq would
	// overwrite one of them.
	stored := len(count)
	out := mustAppend(t, l, ev("ns", "after", "tokens", "cust", t0), ev("ns", crashID(0, 0), "tokens", "cust", t0))
	if !slices.Equal(out, []odometer.Outcome{odometer.Accepted, odometer.Duplicate}) {
		t.Fatalf("append after the crash: %v, want [accepted duplicate]", out)
	}
	n := 0
	if err := l.ScanEvents(t.Context(), odometer.EventScan{Namespace: "ns", Type: "tokens"}, func(*odometer.ScannedEvent) error {
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != stored+1 {
		t.Errorf("after one more append %d events stored, want %d", n, stored+1)
	}
}

const crashBatch = 200

func crashID(batch, i int) string { return fmt.Sprintf("b%d-%d", batch, i) }

// crashChild appends batches until it is killed, printing the number of
// each batch once AppendEvents has returned.
func crashChild(dir string) {
	l, err := eventlog.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriter(os.Stdout)
	for b := 0; ; b++ {
		events := make([]odometer.Event, crashBatch)
		for i := range events {
			events[i] = ev("ns", crashID(b, i), "tokens", "cust", t0)
		}
		if _, err := l.AppendEvents(context.Background(), events); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(w, b)
		w.Flush()
	}
}

// TestDataKeptExactly checks that Data comes back byte for byte, including
// whitespace and escapes a decoder would normalize, and that invalid JSON
// fails the whole call with EINVALID naming the event.
func TestDataKeptExactly(t *testing.T) {
	t.Parallel()
	l := open(t, t.TempDir())
	e := ev("ns", "a", "t", "s", t0)
	e.Data = []byte(` { "b" : 1.50 , "a":"\u00e9" } `)
	mustAppend(t, l, e)
	got, err := l.ListEvents(t.Context(), odometer.EventFilter{Namespace: "ns", Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !bytes.Equal(got[0].Data, e.Data) {
		t.Fatalf("ListEvents returned %q, want %q", got, e.Data)
	}
	bad := ev("ns", "b", "t", "s", t0)
	bad.Data = []byte(`{"a":`)
	_, err = l.AppendEvents(t.Context(), []odometer.Event{ev("ns", "c", "t", "s", t0), bad})
	if odometer.ErrorCode(err) != odometer.EINVALID || !strings.Contains(err.Error(), "event 1") {
		t.Fatalf("AppendEvents with invalid data: %v, want EINVALID naming event 1", err)
	}
	if ids := listIDs(t, l, "ns"); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("after a failed append: %v, want [a]", ids)
	}
}

// BenchmarkAppendEvents appends 1,000-event batches of new, random ids over
// 10,000 subjects: the write path of ingestion, one fsync per batch. It is
// the same workload as sqlite's BenchmarkAppendEvents, for comparison.
func BenchmarkAppendEvents(b *testing.B) {
	storetest.BenchmarkAppendEvents(b, open(b, b.TempDir()))
}

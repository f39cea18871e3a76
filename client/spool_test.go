package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func mustOpenSpool(t *testing.T, dir string, maxBytes, segBytes int64) *spool {
	t.Helper()
	s, err := openSpool(dir, maxBytes, segBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

// drain reads every record from the acknowledged position in chunks of
// chunk, acknowledging each chunk, and returns them as strings.
func drain(t *testing.T, s *spool, chunk int) []string {
	t.Helper()
	var out []string
	pos := s.acked
	for {
		recs, next, err := s.read(pos, chunk, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		for _, r := range recs {
			out = append(out, string(r))
		}
		if err := s.ack(next); err != nil {
			t.Fatal(err)
		}
		pos = next
	}
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Concurrent appends all arrive, each once, in each writer's order, across
// many segments; acknowledged segments are deleted.
func TestSpoolConcurrentAppends(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := mustOpenSpool(t, dir, 0, 512)
	const writers, each = 16, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < each; i += 2 {
				recs := [][]byte{fmt.Appendf(nil, "w%02d-%03d", w, i), fmt.Appendf(nil, "w%02d-%03d", w, i+1)}
				if err := s.append(recs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(segmentFiles(t, dir)) < 3 {
		t.Fatalf("want several segments at 512 bytes each, got %v", segmentFiles(t, dir))
	}
	got := drain(t, s, 7)
	if len(got) != writers*each {
		t.Fatalf("read %d records, want %d", len(got), writers*each)
	}
	last := map[string]string{}
	for _, r := range got {
		w := r[:3]
		if prev, ok := last[w]; ok && r <= prev {
			t.Fatalf("writer %s: %s after %s", w, r, prev)
		}
		last[w] = r
	}
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(got) {
		t.Fatal("a record was read twice")
	}
	if files := segmentFiles(t, dir); len(files) != 1 {
		t.Fatalf("after acknowledging everything: segments %v, want only the current one", files)
	}
	if s.used != 0 {
		t.Fatalf("used = %d after acknowledging everything", s.used)
	}
}

// Reopening resumes after the acknowledged position, and a record torn by
// a crash in the middle of its write is cut off.
func TestSpoolReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := openSpool(dir, 0, 64)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for i := range 20 {
		r := fmt.Sprintf("record-%02d", i)
		all = append(all, r)
		if err := s.append([][]byte{[]byte(r)}); err != nil {
			t.Fatal(err)
		}
	}
	recs, next, err := s.read(s.acked, 8, 1<<20)
	if err != nil || len(recs) != 8 {
		t.Fatalf("read: %d records, %v", len(recs), err)
	}
	if err := s.ack(next); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	// A crash while appending: half a record at the end of the last segment.
	files := segmentFiles(t, dir)
	f, err := os.OpenFile(files[len(files)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{40, 0, 0, 0, 1, 2, 3, 4, 'p', 'a', 'r'})
	f.Close()

	s = mustOpenSpool(t, dir, 0, 64)
	if err := s.append([][]byte{[]byte("after-restart")}); err != nil {
		t.Fatal(err)
	}
	got := drain(t, s, 3)
	want := append(slices.Clone(all[8:]), "after-restart")
	if !slices.Equal(got, want) {
		t.Fatalf("after reopening: %v, want %v", got, want)
	}
}

// A full spool refuses the whole append, and takes records again once
// some are acknowledged.
func TestSpoolFull(t *testing.T) {
	t.Parallel()
	s := mustOpenSpool(t, t.TempDir(), 100, 1<<20)
	rec := []byte(strings.Repeat("x", 22)) // 30 bytes on disk
	for range 3 {
		if err := s.append([][]byte{rec}); err != nil {
			t.Fatal(err)
		}
	}
	err := s.append([][]byte{rec, rec})
	if !errors.Is(err, errSpoolFull) {
		t.Fatalf("append to a full spool: %v, want errSpoolFull", err)
	}
	if got := drain(t, s, 1); len(got) != 3 {
		t.Fatalf("the refused append left %d records, want 3", len(got))
	}
	if err := s.append([][]byte{rec, rec, rec}); err != nil {
		t.Fatalf("append after the acknowledgement: %v", err)
	}
}

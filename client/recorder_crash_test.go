package client_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/odometerhq/odometer/client"
)

// TestRecorderCrash kills an application process with SIGKILL while it
// records from several goroutines, starts it again on the same spool, and
// checks that the server then has every event whose Record returned, each
// counted once, and no event that was never recorded.
func TestRecorderCrash(t *testing.T) {
	if os.Getenv("RECORDER_CRASH_CHILD") != "" {
		recorderChild()
		return
	}
	t.Parallel()
	s := newOutageServer(t)
	if _, err := s.CreateMeter(t.Context(), client.MeterCreate{Slug: "calls", EventType: "prompt", Aggregation: "COUNT",
		GroupBy: map[string]string{"seq": "$.seq"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	child := func(mode string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRecorderCrash$")
		cmd.Env = append(os.Environ(), "RECORDER_CRASH_CHILD="+mode, "RECORDER_DIR="+dir, "RECORDER_URL="+s.url)
		cmd.Stderr = os.Stderr
		return cmd
	}

	// The server is down half of the time, and then down for good, so that
	// the spool holds events (and a send is under way) when the process
	// dies.
	stopFlap := make(chan struct{})
	var flapWG sync.WaitGroup
	flapWG.Go(func() {
		for {
			select {
			case <-stopFlap:
				s.hard.Store(true)
				s.down.Store(true)
				return
			case <-time.After(15 * time.Millisecond):
				s.down.Store(!s.down.Load())
			}
		}
	})
	cmd := child("record")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	recorded := map[int]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(recorded) < 3000 {
		if len(recorded) >= 2000 && stopFlap != nil {
			close(stopFlap)
			flapWG.Wait()
			stopFlap = nil
		}
		for f := range strings.FieldsSeq(sc.Text()) {
			n, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("child said %q", sc.Text())
			}
			recorded[n] = true
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	s.down.Store(false)
	if len(recorded) < 3000 {
		t.Fatalf("the child recorded only %d events", len(recorded))
	}

	// Restarted, the application delivers what its spool holds.
	if err := child("flush").Run(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	res, err := s.QueryMeter(t.Context(), "calls", client.Query{GroupBy: []string{"seq"}})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int]bool{}
	for _, r := range res.Data {
		n, _ := strconv.Atoi(*r.GroupBy["seq"])
		if r.Value.String() != "1" {
			t.Fatalf("event %d counted %s times", n, r.Value)
		}
		stored[n] = true
	}
	for n := range recorded {
		if !stored[n] {
			t.Fatalf("event %d was recorded but the server does not have it (%d stored, %d recorded)", n, len(stored), len(recorded))
		}
	}
	// Events whose Record had not returned when the process died may or
	// may not be there; nothing else may.
	for n := range stored {
		if n >= 8*1_000_000 || n%1_000_000 > 100_002 {
			t.Fatalf("the server has event %d, which was never recorded", n)
		}
	}
	t.Logf("%d events recorded before the kill, %d on the server after the restart", len(recorded), len(stored))
}

// recorderChild is the application of TestRecorderCrash: "record" records
// events from 8 goroutines and prints each one's number once Record has
// returned; "flush" only delivers what the spool holds.
func recorderChild() {
	c := client.New(os.Getenv("RECORDER_URL"))
	r, err := client.NewRecorder(c, client.RecorderConfig{Dir: os.Getenv("RECORDER_DIR"),
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, BatchEvents: 50})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("RECORDER_CRASH_CHILD") == "flush" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; i <= 100_000; i += 3 {
				var events []client.Event
				var line []byte
				for k := i; k < i+3; k++ {
					n := g*1_000_000 + k
					events = append(events, client.Event{ID: fmt.Sprint("e-", n), Type: "prompt", Subject: "acme",
						Data: json.RawMessage(fmt.Sprintf(`{"seq":"%d"}`, n))})
					line = fmt.Appendf(line, "%d ", n)
				}
				if err := r.Record(context.Background(), events...); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				w.Write(append(line, '\n'))
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

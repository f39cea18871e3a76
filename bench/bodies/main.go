// Command bodies measures what concurrent request bodies of the largest
// size cost the server in memory: it starts `odometer serve` on a fresh
// data directory, has --clients clients send batches of the largest size
// (--body bytes, --events events) as fast as the server takes them for
// --duration, samples the server's resident memory (VmRSS) all along, and
// prints the peak with the answers counted by status. A 503 is the body
// budget (--max-inflight-body) at work; the client retries after its
// Retry-After, as clients should.
//
// Every client sends the same batch, so after the first only duplicates are
// committed: what is measured is reading and decoding the bodies, not the
// disk. Linux only (it reads /proc).
//
// Usage: go run ./bench/bodies --bin bin/odometer [--max-inflight-body 128MiB]
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bodies:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin/odometer", "the odometer binary")
	clients := flag.Int("clients", 64, "concurrent clients")
	duration := flag.Duration("duration", 20*time.Second, "how long to send")
	size := flag.Int("body", 16<<20-4096, "bytes per request body (at most the server's --max-body-bytes)")
	events := flag.Int("events", 10000, "events per request (at most --max-batch-events)")
	budget := flag.String("max-inflight-body", "", "the server's --max-inflight-body (empty: its default)")
	flag.Parse()

	dir, err := os.MkdirTemp("", "odometer-bodies-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--max-conns-per-addr", "0", "--no-export"}
	if *budget != "" {
		args = append(args, "--max-inflight-body", *budget)
	}
	cmd := exec.Command(*bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	url, err := waitListening(stderr)
	if err != nil {
		return err
	}
	go io.Copy(io.Discard, stderr)

	meter := `{"slug":"tokens","eventType":"prompt","aggregation":"SUM","valueProperty":"$.tokens"}`
	if resp, err := http.Post(url+"/api/v1/meters", "application/json", strings.NewReader(meter)); err != nil {
		return err
	} else {
		resp.Body.Close()
	}
	body := batch(*events, *size)

	pid := cmd.Process.Pid
	base, err := rss(pid)
	if err != nil {
		return err
	}
	var peak atomic.Int64
	peak.Store(base)
	var samples []int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
			if r, err := rss(pid); err == nil {
				samples = append(samples, r)
				if r > peak.Load() {
					peak.Store(r)
				}
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var mu sync.Mutex
	statuses := map[int]int{}
	var errs atomic.Int64
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
	var wg sync.WaitGroup
	for range *clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "POST", url+"/api/v1/events", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/cloudevents-batch+json")
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
				if resp.StatusCode == http.StatusServiceUnavailable {
					secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					time.Sleep(time.Duration(max(secs, 1)) * time.Second / 4)
				}
			}
		})
	}
	wg.Wait()
	close(stopSampling)
	<-sampled

	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	p50 := int64(0)
	if len(samples) > 0 {
		p50 = samples[len(samples)/2]
	}
	budgetText := *budget
	if budgetText == "" {
		budgetText = "default"
	}
	fmt.Printf("clients %d, body %d bytes (%d events), %s, --max-inflight-body %s\n", *clients, len(body), *events, *duration, budgetText)
	fmt.Printf("RSS before %d MiB, median %d MiB, peak %d MiB\n", base>>20, p50>>20, peak.Load()>>20)
	codes := make([]int, 0, len(statuses))
	for c := range statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Printf("status %d: %d\n", c, statuses[c])
	}
	if n := errs.Load(); n > 0 {
		fmt.Printf("transport errors: %d\n", n)
	}
	return nil
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// waitListening reads the server's log until it says where it listens.
func waitListening(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			return "http://" + m[1], nil
		}
	}
	return "", errors.New("the server exited before listening")
}

// batch returns a JSON array of n events of about size bytes in all.
func batch(n, size int) []byte {
	const head = `{"specversion":"1.0","id":"e%07d","source":"bodies","type":"prompt","subject":"s%03d","time":"2026-11-02T08:15:42Z","data":{"tokens":%d,"pad":"`
	per := (size-2)/n - len(fmt.Sprintf(head, 0, 0, 4000)) - len(`"}},`)
	pad := strings.Repeat("x", max(per, 0))
	var b bytes.Buffer
	b.Grow(size)
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, head, i, i%1000, i%4000+1)
		b.WriteString(pad)
		b.WriteString(`"}}`)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// rss returns the resident memory of process pid, in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

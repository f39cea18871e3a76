// Command loadgen drives Odometer's HTTP API (or the baseline in
// bench/baseline, which serves the same ingestion endpoint) with synthetic
// usage events or usage queries, and reports throughput and latency.
//
// Modes:
//
//   - batch: POST /api/v1/events with application/cloudevents-batch+json
//     bodies of --batch events each.
//   - single: POST /api/v1/events with one application/cloudevents+json
//     event per request.
//   - query: GET /api/v1/meters/{meter}/query for one random subject, one
//     month, windowSize=DAY, groupBy=model, for --duration.
//
// In the ingestion modes every request body is generated before the clock
// starts, so the generator's JSON encoding is not measured (with --stream,
// each body is built just before it is sent instead, for runs too long to
// hold in memory). Event ids are
// random UUIDs derived from --seed; a --dup-rate fraction of the events are
// exact resends of an event sent earlier (same source and id; at least two
// rounds of requests earlier, as a retrying client would resend), which the
// server must count once. When the server answers with OpenMeter's
// {"accepted":N,"duplicate":M} body, loadgen checks the totals against the
// number of unique events it sent.
//
// Only the standard library is used, so that the generator measures the
// server and nothing else.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// config holds the parsed flags.
type config struct {
	URL         string
	URLs        []string // URL split at commas: ingestion clients take them in turn
	Mode        string
	Clients     int
	Batch       int
	Events      int
	Subjects    int
	Types       int
	DupRate     float64
	SetupMeters bool
	Duration    time.Duration
	Seed        uint64
	JSON        bool
	Span        time.Duration
	Timeout     time.Duration
	Minimal     bool
	MaxRetries  int
	Meter       string
	TimeZone    string
	Source      string
	Stream      bool
	Shape       string
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8888", "server base URL (scheme://host:port); several, comma-separated, for nodes sharing one store: "+
		"ingestion clients take them in turn, everything else uses the first")
	fs.StringVar(&c.Mode, "mode", "batch", "batch | single | query")
	fs.IntVar(&c.Clients, "clients", 8, "concurrent clients (connections)")
	fs.IntVar(&c.Batch, "batch", 1000, "events per request in batch mode")
	fs.IntVar(&c.Events, "events", 1_000_000, "total events to send, resends included (batch and single modes)")
	fs.IntVar(&c.Subjects, "subjects", 10_000, "number of distinct subjects (customers)")
	fs.IntVar(&c.Types, "types", 3, "event types, 1–3: tokens (SUM $.tokens by model), requests (COUNT), duration (MAX $.ms)")
	fs.Float64Var(&c.DupRate, "dup-rate", 0.01, "fraction of events that resend an event sent at least two rounds of requests (2×clients×batch events) earlier, same source and id")
	fs.BoolVar(&c.SetupMeters, "setup-meters", false, "create one meter per event type through the API first (201 or 409 are fine)")
	fs.DurationVar(&c.Duration, "duration", 0, "stop starting requests after this long (0: no cap in ingestion modes, 30s in query mode)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed for ids, subjects, values and resends")
	fs.BoolVar(&c.JSON, "json", false, "print the report as one JSON object on one line")
	fs.DurationVar(&c.Span, "span", 30*24*time.Hour, "event times are spread uniformly over [now-span, now]; query mode queries the same span by day")
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Minute, "per-request timeout")
	fs.BoolVar(&c.Minimal, "minimal", false, "send Prefer: return=minimal (the server may answer 204 without per-event statuses)")
	fs.IntVar(&c.MaxRetries, "max-retries", 1000, "resends of one request after 429/503 (honouring Retry-After) before giving up on it")
	fs.StringVar(&c.Meter, "meter", "tokens", "meter slug queried in query mode")
	fs.StringVar(&c.TimeZone, "tz", "UTC", "windowTimeZone for query mode")
	fs.StringVar(&c.Shape, "shape", "subject", "query mode: subject (one random customer's span by day and model), "+
		"all (every customer's span by day and model), per-subject (every customer's total over the span: groupBy=subject)")
	fs.StringVar(&c.Source, "source", "loadgen", "CloudEvents source of generated events")
	fs.BoolVar(&c.Stream, "stream", false, "ingestion modes: build each request body just before sending it instead of all before the clock starts, "+
		"so that loadgen's memory stays flat whatever --events is (long runs, e.g. bench/soak.sh); the generator then shares the CPU with the server")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: loadgen [flags]\n\nDrives an Odometer server with events or usage queries and reports throughput and latency.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for _, u := range strings.Split(c.URL, ",") {
		c.URLs = append(c.URLs, strings.TrimRight(strings.TrimSpace(u), "/"))
	}
	c.URL = c.URLs[0]
	switch {
	case c.Mode != "batch" && c.Mode != "single" && c.Mode != "query":
		return nil, fmt.Errorf("--mode must be batch, single or query; got %q", c.Mode)
	case c.Clients < 1:
		return nil, errors.New("--clients must be at least 1")
	case c.Batch < 1:
		return nil, errors.New("--batch must be at least 1")
	case c.Events < 1 && c.Mode != "query":
		return nil, errors.New("--events must be at least 1")
	case c.Subjects < 1:
		return nil, errors.New("--subjects must be at least 1")
	case c.Types < 1 || c.Types > len(eventTypes):
		return nil, fmt.Errorf("--types must be between 1 and %d", len(eventTypes))
	case c.DupRate < 0 || c.DupRate >= 1:
		return nil, errors.New("--dup-rate must be in [0, 1)")
	case c.Span <= 0:
		return nil, errors.New("--span must be positive")
	case c.Shape != "subject" && c.Shape != "all" && c.Shape != "per-subject":
		return nil, fmt.Errorf("--shape must be subject, all or per-subject; got %q", c.Shape)
	}
	if c.Mode == "single" {
		c.Batch = 1
	}
	if c.Mode == "query" && c.Duration == 0 {
		c.Duration = 30 * time.Second
	}
	return &c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	hc := newHTTPClient(c.Clients, c.Timeout)
	defer hc.CloseIdleConnections()

	if c.SetupMeters {
		if err := setupMeters(ctx, hc, c); err != nil {
			return err
		}
	}
	var rep *report
	if c.Mode == "query" {
		rep, err = runQueries(ctx, hc, c, stderr)
	} else {
		rep, err = runIngest(ctx, hc, c, stderr)
	}
	if err != nil {
		return err
	}
	if c.JSON {
		return rep.writeJSON(stdout)
	}
	rep.writeText(stdout)
	return nil
}

// newHTTPClient returns a client whose transport keeps one idle keep-alive
// connection per load client, so that no request pays for a TCP handshake.
func newHTTPClient(clients int, timeout time.Duration) *http.Client {
	t := &http.Transport{
		Proxy:               nil, // loopback only: never go through a proxy
		MaxIdleConns:        clients * 2,
		MaxIdleConnsPerHost: clients,
		MaxConnsPerHost:     clients,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
	}
	return &http.Client{Transport: t, Timeout: timeout}
}

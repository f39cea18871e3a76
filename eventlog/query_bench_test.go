package eventlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/sqlite"
	"github.com/odometerhq/odometer/usage"
)

// BenchmarkQueryUsageSubject measures the usage query of bench/README.md's
// benchmark (c) through the API handler, without the network: one
// subject's `tokens` usage over a month, by day (UTC) and model, from a
// store filled as bench/loadgen fills it (three event types, random ids,
// times spread over 30 days, appended in random order in batches of 1,000,
// the memtable flushed and compactions finished).
//
// "events=33" queries subjects with about 33 `tokens` events in the month
// (bench (c) at 1M stored events), "events=330" subjects with about 330
// (at 10M). The difference of the two divided by the difference of their
// events/op is the cost per matching event.
//
//	go test -run xxx -bench QueryUsageSubject -count 6 ./eventlog/
func BenchmarkQueryUsageSubject(b *testing.B) {
	f := queryFixture(b)
	for _, c := range []struct {
		name     string
		subjects []string
		cached   bool
	}{{"events=33", f.light, false}, {"events=330", f.heavy, false},
		{"rollups,events=33", f.light, true}, {"rollups,events=330", f.heavy, true}} {
		b.Run(c.name, func(b *testing.B) {
			reqs := make([]*http.Request, len(c.subjects))
			for i, s := range c.subjects {
				reqs[i] = httptest.NewRequest("GET", f.queryURL(s), nil)
				reqs[i].Header.Set("Accept", "application/json")
			}
			w := &countingWriter{header: http.Header{}}
			h := f.handler
			if c.cached {
				// Warm: every subject once, untimed.
				h = f.cached
				for _, r := range reqs {
					h.ServeHTTP(w, r)
				}
			}
			events := 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				s := i % len(reqs)
				w.reset()
				h.ServeHTTP(w, reqs[s])
				if w.status != http.StatusOK {
					b.Fatalf("query for %s: status %d", c.subjects[s], w.status)
				}
				events += f.tokens[c.subjects[s]]
				i++
			}
			b.ReportMetric(float64(events)/float64(i), "events/op")
			if c.cached {
				st := f.rollups.Stats()
				b.ReportMetric(float64(st.Hits)/float64(st.Hits+st.Misses), "hit-ratio")
			}
		})
	}
}

// countingWriter is an http.ResponseWriter that keeps only the status.
type countingWriter struct {
	header http.Header
	status int
	n      int
}

func (w *countingWriter) reset() {
	clear(w.header)
	w.status, w.n = 0, 0
}

func (w *countingWriter) Header() http.Header { return w.header }

func (w *countingWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.n += len(p)
	return len(p), nil
}

// The fixture's shape: lightSubjects with about 33 `tokens` events in the
// span and heavySubjects with about 330, each with as many `requests` and
// `duration` events.
const (
	lightSubjects  = 400
	heavySubjects  = 400
	lightPerType   = 33
	heavyPerType   = 330
	benchEventSpan = 30 * 24 * time.Hour
)

// benchNow is the fixture's clock: events lie in [benchNow-benchEventSpan,
// benchNow).
var benchNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type queryBench struct {
	handler      http.Handler
	cached       http.Handler // the same, with the usage rollup cache
	rollups      *usage.Rollups
	light, heavy []string
	tokens       map[string]int // `tokens` events per subject
	from, to     string
	levels       []int64 // sstables per LSM level
	close        func()
}

var (
	queryBenchOnce sync.Once
	queryBenchF    *queryBench
	queryBenchErr  error
)

// queryFixture builds the fixture once per test binary, so that -count
// runs of the benchmark share it; TestMain removes it.
func queryFixture(b *testing.B) *queryBench {
	queryBenchOnce.Do(func() {
		start := time.Now()
		queryBenchF, queryBenchErr = buildQueryBench()
		if queryBenchErr == nil {
			b.Logf("query fixture built in %v; tables per level: %v", time.Since(start).Round(time.Millisecond), queryBenchF.levels)
		}
	})
	if queryBenchErr != nil {
		b.Fatal(queryBenchErr)
	}
	return queryBenchF
}

// TestMain removes the query benchmark's fixture after the tests and
// benchmarks of the package have run.
func TestMain(m *testing.M) {
	code := m.Run()
	if queryBenchF != nil {
		queryBenchF.close()
	}
	os.Exit(code)
}

func (f *queryBench) queryURL(subject string) string {
	q := url.Values{}
	q.Set("from", f.from)
	q.Set("to", f.to)
	q.Set("windowSize", "DAY")
	q.Set("windowTimeZone", "UTC")
	q.Set("groupBy", "model")
	return "/api/v1/meters/tokens/query?" + q.Encode() + "&subject=" + url.QueryEscape(subject)
}

// The meters and data of bench/loadgen.
var (
	benchMeters = []string{
		`{"slug":"tokens","name":"LLM tokens","eventType":"tokens","aggregation":"SUM","valueProperty":"$.tokens","groupBy":{"model":"$.model"}}`,
		`{"slug":"requests","name":"API requests","eventType":"requests","aggregation":"COUNT"}`,
		`{"slug":"duration","name":"Longest request (ms)","eventType":"duration","aggregation":"MAX","valueProperty":"$.ms"}`,
	}
	benchTypes  = []string{"tokens", "requests", "duration"}
	benchModels = []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-3-70b"}
)

// benchStore is the embedded store as cmd/odometer composes it.
type benchStore struct {
	*Log
	*sqlite.Store
}

func (s benchStore) AppendEvents(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error) {
	return s.Log.AppendEvents(ctx, events)
}

func (s benchStore) ListEvents(ctx context.Context, f odometer.EventFilter) ([]odometer.Event, error) {
	return s.Log.ListEvents(ctx, f)
}

func (s benchStore) ScanEvents(ctx context.Context, sc odometer.EventScan, fn func(*odometer.ScannedEvent) error) error {
	return s.Log.ScanEvents(ctx, sc, fn)
}

func (s benchStore) LateWatermark(ctx context.Context, namespace, eventType, subject string) (time.Time, error) {
	return s.Log.LateWatermark(ctx, namespace, eventType, subject)
}

func (s benchStore) ListSubjects(ctx context.Context, f odometer.SubjectFilter) ([]string, error) {
	return s.Log.ListSubjects(ctx, f)
}

func (s benchStore) LookupEvents(ctx context.Context, namespace, id, source string) ([]odometer.Event, error) {
	return s.Log.LookupEvents(ctx, namespace, id, source)
}

func (s benchStore) Ping(ctx context.Context) error {
	return errors.Join(s.Log.Ping(ctx), s.Store.Ping(ctx))
}

func (s benchStore) Close() error { return errors.Join(s.Log.Close(), s.Store.Close()) }

type benchIngester struct{ s odometer.EventStore }

func (i benchIngester) Append(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error) {
	return i.s.AppendEvents(ctx, events)
}

func buildQueryBench() (f *queryBench, err error) {
	dir, err := os.MkdirTemp("", "odometer-query-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	meters, err := sqlite.Open(dir)
	if err != nil {
		return nil, err
	}
	l, err := Open(filepath.Join(dir, DirName))
	if err != nil {
		meters.Close()
		return nil, err
	}
	store := benchStore{Log: l, Store: meters}
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	h, err := api.NewHandler(api.Config{
		Store:    store,
		Ingester: benchIngester{store},
		Open:     true, // no API keys: see docs/security.md
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(),
		Now:      func() time.Time { return benchNow },
	})
	if err != nil {
		return nil, err
	}
	for _, m := range benchMeters {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("POST", "/api/v1/meters", strings.NewReader(m)))
		if w.Code != http.StatusCreated {
			return nil, fmt.Errorf("create meter: %d %s", w.Code, w.Body)
		}
	}

	// The events are appended now, a backfill: the cache trusts their hours
	// from five minutes after it, so the cached handler's clock runs ten
	// minutes ahead.
	rollups := usage.NewRollups(0)
	hc, err := api.NewHandler(api.Config{
		Store:    store,
		Ingester: benchIngester{store},
		Open:     true, // no API keys: see docs/security.md
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(),
		Now:      func() time.Time { return time.Now().Add(10 * time.Minute) },
		Rollups:  rollups,
	})
	if err != nil {
		return nil, err
	}
	f = &queryBench{handler: h, cached: hc, rollups: rollups, tokens: map[string]int{}}
	// Every event's subject, in random order: each subject appears
	// perType × 3 times and each event draws its type at random, as
	// loadgen's do.
	var slots []string
	for i := range lightSubjects + heavySubjects {
		s := fmt.Sprintf("customer-%05d", i)
		n := lightPerType
		if i < heavySubjects {
			n = heavyPerType
			f.heavy = append(f.heavy, s)
		} else {
			f.light = append(f.light, s)
		}
		for range 3 * n {
			slots = append(slots, s)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
	rng.Shuffle(len(f.heavy), func(i, j int) { f.heavy[i], f.heavy[j] = f.heavy[j], f.heavy[i] })
	rng.Shuffle(len(f.light), func(i, j int) { f.light[i], f.light[j] = f.light[j], f.light[i] })

	sums := map[string]*big.Int{} // expected SUM of tokens per subject
	const batch = 1000
	events := make([]odometer.Event, 0, batch)
	spanMs := int64(benchEventSpan / time.Millisecond)
	for i, s := range slots {
		typ := rng.IntN(len(benchTypes))
		model := benchModels[rng.IntN(len(benchModels))]
		v := rng.Uint64()
		var data string
		switch typ {
		case 0:
			tokens := 1 + v%4000
			data = `{"model":"` + model + `","tokens":` + strconv.FormatUint(tokens, 10) + `}`
			f.tokens[s]++
			if sums[s] == nil {
				sums[s] = new(big.Int)
			}
			sums[s].Add(sums[s], new(big.Int).SetUint64(tokens))
		case 1:
			data = `{"model":"` + model + `","path":"/v1/chat/completions","status":` + strconv.FormatUint(200+(v%8)/7*300, 10) + `}`
		default:
			data = fmt.Sprintf(`{"model":"%s","ms":%d.%03d}`, model, v%30000, v/30000%1000)
		}
		events = append(events, odometer.Event{
			Namespace:   "default",
			ID:          fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
			Source:      "loadgen",
			SpecVersion: "1.0",
			Type:        benchTypes[typ],
			Subject:     s,
			Time:        benchNow.Add(-time.Duration(1+rng.Int64N(spanMs)) * time.Millisecond),
			IngestedAt:  benchNow,
			Data:        []byte(data),
		})
		if len(events) == batch || i == len(slots)-1 {
			if _, err := l.AppendEvents(context.Background(), events); err != nil {
				return nil, err
			}
			events = events[:0]
		}
	}
	// As after a long ingest, nearly all events are in sstables, spread
	// over several levels; and no compaction runs while queries are timed.
	if err := l.db.Flush(); err != nil {
		return nil, err
	}
	// Pebble starts no new compaction once none is in progress for a
	// while (its estimated debt need not reach zero).
	for idle := 0; idle < 10; time.Sleep(50 * time.Millisecond) {
		if l.db.Metrics().Compact.NumInProgress == 0 {
			idle++
		} else {
			idle = 0
		}
	}

	for _, lv := range l.db.Metrics().Levels {
		f.levels = append(f.levels, lv.TablesCount)
	}
	day := func(t time.Time) string { return t.Truncate(24 * time.Hour).Format(time.RFC3339) }
	f.from, f.to = day(benchNow.Add(-benchEventSpan)), day(benchNow.Add(24*time.Hour))
	f.close = func() {
		store.Close()
		os.RemoveAll(dir)
	}
	// The answers must be right: the rows of a subject add up to its
	// tokens.
	for _, s := range []string{f.light[0], f.heavy[0]} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", f.queryURL(s), nil))
		var res struct {
			Data []struct{ Value json.Number }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			return nil, fmt.Errorf("query %s: %d %s: %v", s, w.Code, w.Body, err)
		}
		got := new(big.Int)
		for _, r := range res.Data {
			v, ok := new(big.Int).SetString(string(r.Value), 10)
			if !ok {
				return nil, fmt.Errorf("query %s: value %s", s, r.Value)
			}
			got.Add(got, v)
		}
		if got.Cmp(sums[s]) != 0 {
			return nil, fmt.Errorf("query %s: rows add up to %s, want %s", s, got, sums[s])
		}
	}
	return f, nil
}

// Command baseline is the simple design that Odometer's end-to-end
// benchmarks are compared with: a plain net/http handler that decodes
// CloudEvents with encoding/json into structs and inserts each request's
// events into PostgreSQL in one transaction, with one multi-row
// INSERT … ON CONFLICT (source, id) DO NOTHING, before answering 204.
//
// It serves the same ingestion endpoint as Odometer (POST /api/v1/events
// with application/cloudevents+json, application/cloudevents-batch+json or
// application/json bodies), so bench/loadgen drives both unchanged. It does
// nothing else: no meters, no queries, no per-event statuses. Its table has
// only the primary key that deduplication needs, which favours the baseline.
//
// Usage:
//
//	baseline --addr 127.0.0.1:0 --postgres postgres://user@127.0.0.1:5432/db
//
// It logs "msg=listening addr=HOST:PORT" on stderr once it accepts
// connections, and creates its table if missing (--reset empties it).
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

// schema is the baseline's only table. Identity is (source, id), as in
// Odometer's single namespace.
const schema = `CREATE TABLE IF NOT EXISTS baseline_events (
	source      text        NOT NULL,
	id          text        NOT NULL,
	type        text        NOT NULL,
	subject     text        NOT NULL,
	time        timestamptz NOT NULL,
	data        jsonb,
	ingested_at timestamptz NOT NULL,
	PRIMARY KEY (source, id)
)`

// insertSQL inserts a request's events in one statement; events whose
// (source, id) exists, or occurs earlier in the same request, are skipped.
// Rows go in key order so that two requests resending each other's events
// wait for one another instead of deadlocking.
const insertSQL = `INSERT INTO baseline_events (source, id, type, subject, time, data, ingested_at)
SELECT s, i, t, sub, tm, d::jsonb, $7
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[]) AS u(s, i, t, sub, tm, d)
ORDER BY s, i
ON CONFLICT (source, id) DO NOTHING`

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8889", "listen address (host:port; port 0 picks a free one)")
	pgURL := fs.String("postgres", getenv("BASELINE_POSTGRES"), "PostgreSQL URL (default $BASELINE_POSTGRES)")
	maxConns := fs.Int("max-conns", 32, "PostgreSQL connections in the pool")
	maxBody := fs.Int64("max-body", 64<<20, "largest accepted request body, in bytes")
	reset := fs.Bool("reset", false, "empty the events table at start")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pgURL == "" {
		return errors.New("--postgres is required")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	cfg, err := pgxpool.ParseConfig(*pgURL)
	if err != nil {
		return fmt.Errorf("--postgres: %w", err)
	}
	cfg.MaxConns = int32(*maxConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, schema); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	if *reset {
		if _, err := pool.Exec(ctx, "TRUNCATE baseline_events"); err != nil {
			return fmt.Errorf("empty table: %w", err)
		}
	}

	s := &server{pool: pool, log: log, maxBody: *maxBody}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/events", s.ingest)
	mux.HandleFunc("GET /readyz", s.ready)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// server holds the handler's dependencies.
type server struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	maxBody int64
}

// event is the decoding shape of one CloudEvent.
type event struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Time        *time.Time      `json:"time"`
	Data        json.RawMessage `json:"data"`
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	if err := s.pool.Ping(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ingest decodes, validates and inserts one request's events, then answers
// 204 once the transaction has committed.
func (s *server) ingest(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/cloudevents+json", "application/cloudevents-batch+json", "application/json":
	default:
		http.Error(w, "unsupported content type "+strconv.Quote(mt), http.StatusUnsupportedMediaType)
		return
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, s.maxBody)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, "bad gzip body: "+err.Error(), http.StatusBadRequest)
			return
		}
		body = io.LimitReader(zr, s.maxBody)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	b = bytes.TrimSpace(b)
	var events []event
	if len(b) > 0 && b[0] == '[' && mt != "application/cloudevents+json" {
		err = json.Unmarshal(b, &events)
	} else {
		events = make([]event, 1)
		err = json.Unmarshal(b, &events[0])
	}
	if err != nil {
		http.Error(w, "malformed JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(events) == 0 {
		http.Error(w, "empty batch", http.StatusBadRequest)
		return
	}

	n := len(events)
	sources, ids, types, subjects := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	times, datas := make([]time.Time, n), make([]*string, n)
	for i, e := range events {
		switch {
		case e.ID == "", e.Source == "", e.Type == "", e.Subject == "":
			http.Error(w, fmt.Sprintf("event %d: id, source, type and subject are required", i), http.StatusBadRequest)
			return
		case e.SpecVersion != "" && e.SpecVersion != "1.0":
			http.Error(w, fmt.Sprintf("event %d: specversion must be 1.0", i), http.StatusBadRequest)
			return
		}
		sources[i], ids[i], types[i], subjects[i] = e.Source, e.ID, e.Type, e.Subject
		times[i] = now
		if e.Time != nil {
			times[i] = *e.Time
		}
		if d := bytes.TrimSpace(e.Data); len(d) > 0 && string(d) != "null" {
			str := string(d)
			datas[i] = &str
		}
	}

	// One transaction per request; a deadlock between two requests that
	// insert the same ids in opposite orders is retried.
	for attempt := 1; ; attempt++ {
		err = pgx.BeginFunc(r.Context(), s.pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(r.Context(), insertSQL, sources, ids, types, subjects, times, datas, now)
			return err
		})
		var pgErr *pgconn.PgError
		if err == nil || attempt == 3 || !errors.As(err, &pgErr) || (pgErr.Code != "40P01" && pgErr.Code != "40001") {
			break
		}
	}
	if err != nil {
		s.log.Error("insert", "events", n, "err", err)
		http.Error(w, "insert: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

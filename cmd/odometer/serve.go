package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/dashboard"
	"github.com/odometerhq/odometer/eventlog"
	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/export/exporter"
	"github.com/odometerhq/odometer/ingest"
	"github.com/odometerhq/odometer/ledger"
	"github.com/odometerhq/odometer/usage"
)

// serveConfig is what serve runs with, resolved from the command line, the
// environment, the config file and the defaults, in that order of
// precedence.
type serveConfig struct {
	Addr              string
	Data              string
	ConfigFile        string
	LogLevel          slog.Level
	LogFormat         string
	MaxBodyBytes      byteSize
	MaxBatchEvents    int
	FutureSkew        time.Duration
	MaxAge            time.Duration
	EventLog          string
	Postgres          string
	PostgresMaxConns  int
	NoMigrate         bool
	CommitBatchEvents int
	// CommitConcurrency is the number of commits in flight; 0 chooses by
	// store: 1 embedded, 4 on PostgreSQL.
	CommitConcurrency int
	QueueEvents       int
	UsageCacheHours   int
	UsageRollups      bool
	ShutdownTimeout   time.Duration
	DebugAddr         string
	// Meters are the meters the config file declares, validated.
	Meters []*odometer.Meter
	// Exports are the export destinations the config file declares.
	Exports []*exportDef
	// Accounts are the AWS accounts the config file declares, and what
	// they grant (export.DefaultAccounts() if it declares none).
	Accounts       *export.Accounts
	NoExport       bool
	ExportInterval time.Duration
	// Keys are the API keys the config file declares by hash.
	Keys            []*odometer.APIKey
	Insecure        bool
	TLSCert, TLSKey string
	MaxConns        int
	MaxConnsPerAddr int
	HeaderTimeout   time.Duration
	IdleTimeout     time.Duration
	BodyTimeout     time.Duration
	MaxInflightBody byteSize
	AllowedHosts    commaList
	MetricsAddr     string
	RateIngest      float64
	RateQuery       float64
	MaxQueryWindows int
	MaxQueryGroups  int
	OutcomeLogSize  int

	// IdentityFilterBytes sizes the embedded event log's identity filter.
	IdentityFilterBytes byteSize
}

// serveFlags defines serve's flags on fs, bound to c.
func serveFlags(fs *flag.FlagSet, c *serveConfig) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8888", "`host:port` to listen on (port 0 picks a free port)")
	fs.StringVar(&c.Data, "data", "./data", "`dir`ectory of the embedded database")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML config `file` (settings below, and meters)")
	c.EventLog = eventLogPebble
	fs.Var(&enumValue{p: &c.EventLog, allowed: []string{eventLogPebble, eventLogSQLite}}, "event-log",
		"where the embedded store keeps events: pebble (fast) or sqlite (one file); fixed for a data directory (docs/storage.md)")
	fs.StringVar(&c.Postgres, "postgres", "", "PostgreSQL connection `URL`: keep everything there instead of --data, so that several nodes share one database (docs/deploy.md)")
	fs.IntVar(&c.PostgresMaxConns, "postgres-max-conns", 16, "most connections to PostgreSQL from this node")
	fs.BoolVar(&c.NoMigrate, "no-migrate", false, "do not apply PostgreSQL migrations at start-up (run 'odometer migrate' instead); start only if the schema is current")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn or error")
	c.LogFormat = "text"
	fs.Var(&enumValue{p: &c.LogFormat, allowed: []string{"text", "json"}}, "log-format", "log `format`: text or json")
	c.MaxBodyBytes = api.DefaultMaxBodyBytes
	fs.Var(&c.MaxBodyBytes, "max-body-bytes", "largest request body, after decompression (`bytes`, or with a unit: 512KiB, 16MiB)")
	fs.IntVar(&c.MaxBatchEvents, "max-batch-events", api.DefaultMaxEvents, "most events in one ingestion request")
	fs.DurationVar(&c.FutureSkew, "future-skew", 24*time.Hour, "how far in the future an event's time may be (0: no limit)")
	fs.DurationVar(&c.MaxAge, "max-age", 0, "how far in the past an event's time may be (0: no limit)")
	fs.IntVar(&c.CommitBatchEvents, "commit-batch-events", 20000, "most events in one database commit")
	fs.IntVar(&c.CommitConcurrency, "commit-concurrency", 0, "database commits of ingested events in flight at once (0: 1 on the embedded store, whose appends are serialized, 4 on PostgreSQL; docs/ingestion.md)")
	fs.IntVar(&c.QueueEvents, "queue-events", 200000, "most events waiting for a commit before ingestion answers 503")
	fs.BoolVar(&c.UsageRollups, "usage-rollups", true, "keep durable usage rollups in the embedded event log or PostgreSQL (alike on every node), so that usage queries read aggregates instead of every event; "+
		"false drops them and makes ingestion cheaper (docs/rollups.md)")
	fs.IntVar(&c.UsageCacheHours, "usage-cache-hours", usage.DefaultRollupHours, "most (meter, subject, hour or day) usage rollups cached in memory: 170 bytes each plus 370 per group-by combination with usage (0: no cache; docs/meters.md)")
	c.IdentityFilterBytes = eventlog.DefaultFilterBytes
	fs.Var(&c.IdentityFilterBytes, "identity-filter-bytes", "memory for the embedded event log's filter of stored event identities, fixed: it holds `bytes`×2/3 identities at a 1% false-positive rate, and more at a higher one (docs/storage.md)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long to wait for in-flight requests and commits on shutdown")
	fs.BoolVar(&c.NoExport, "no-export", false, "do not run the usage exporter on this node (docs/export-aws.md); other nodes sharing the database still export")
	fs.DurationVar(&c.ExportInterval, "export-interval", 30*time.Second, "how often the exporter freezes closed hours and sends pending records")
	fs.BoolVar(&c.Insecure, "insecure", false, "serve without API keys on a non-loopback address (refused otherwise; docs/security.md)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate `file`: serve HTTPS (with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	fs.IntVar(&c.MaxConns, "max-conns", 10000, "most client connections open at once; idle ones are closed to make room, then more wait to be accepted")
	fs.IntVar(&c.MaxConnsPerAddr, "max-conns-per-addr", 1000, "most connections from one client IP address (0: no limit; behind a load balancer, every client has its address)")
	fs.DurationVar(&c.HeaderTimeout, "header-timeout", 10*time.Second, "how long a client may take to send a request's headers")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 30*time.Second, "how long an idle keep-alive connection stays open")
	fs.DurationVar(&c.BodyTimeout, "body-timeout", api.DefaultBodyTimeout, "how long a request body may go without a byte arriving before the request is cut (408)")
	c.MaxInflightBody = api.DefaultMaxInflightBodyBytes
	fs.Var(&c.MaxInflightBody, "max-inflight-body", "most request body bytes held in memory by all requests together; past it requests get 503 with Retry-After (`bytes`, or with a unit)")
	fs.Var(&c.AllowedHosts, "allowed-hosts", "host `names` (comma-separated) that a server without API keys answers besides localhost and IP addresses (docs/security.md)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "`host:port` serving /metrics without an API key, on a listener of its own; empty: off (then /metrics needs a key with the metrics scope)")
	fs.Float64Var(&c.RateIngest, "rate-ingest", 0, "ingestion requests per second per API key (0: no limit)")
	fs.Float64Var(&c.RateQuery, "rate-query", 0, "usage queries per second per API key (0: no limit)")
	fs.IntVar(&c.MaxQueryWindows, "max-query-windows", 10000, "most windows one usage query may ask for")
	fs.IntVar(&c.MaxQueryGroups, "max-query-groups", api.DefaultMaxQueryGroups, "most groups (combinations of subject and group-by values) one usage query may return")
	fs.IntVar(&c.OutcomeLogSize, "outcome-log-size", api.DefaultOutcomeLogSize, "recent rejected and duplicate events this node remembers for GET /api/v1/events/outcomes, in memory (0: none; docs/ingestion.md)")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "`host:port` for Go's profiler (/debug/pprof) on a separate listener; empty: off")
}

// parseServeConfig resolves serve's configuration: each flag comes from the
// command line, else from $ODOMETER_<FLAG>, else from the config file, else
// its default.
func parseServeConfig(e *env, args []string) (*serveConfig, error) {
	c := &serveConfig{Accounts: export.DefaultAccounts()}
	fs := newFlagSet(e, "serve", "serve [flags]", allFlags)
	serveFlags(fs, c)
	args, err := parseFlags(fs, args, e.getenv, allFlags)
	if err != nil {
		return nil, err
	}
	if len(args) > 0 {
		return nil, &usageError{err: fmt.Errorf("serve takes no arguments; got %q", args)}
	}
	if c.ConfigFile != "" {
		fc, err := loadConfigFile(c.ConfigFile)
		if err != nil {
			return nil, err
		}
		set := setFlags(fs) // by the command line or the environment
		var ferr error
		fs.VisitAll(func(f *flag.Flag) {
			s, ok := fc.settings[f.Name]
			if ferr != nil || !ok || set[f.Name] {
				return
			}
			if err := fs.Set(f.Name, s.value); err != nil {
				ferr = fmt.Errorf("config %s:%d: %s: invalid value %q: %v", c.ConfigFile, s.line, s.key, s.value, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		c.Meters = fc.meters
		c.Exports = fc.exports
		c.Accounts = fc.accounts
		c.Keys = fc.keys
	}
	var bad []string
	if c.Addr == "" {
		bad = append(bad, "--addr must not be empty")
	}
	if c.Data == "" {
		bad = append(bad, "--data must not be empty")
	}
	for _, f := range []struct {
		name string
		n    int64
	}{
		{"max-body-bytes", int64(c.MaxBodyBytes)}, {"max-batch-events", int64(c.MaxBatchEvents)},
		{"postgres-max-conns", int64(c.PostgresMaxConns)},
		{"commit-batch-events", int64(c.CommitBatchEvents)}, {"queue-events", int64(c.QueueEvents)},
		{"max-conns", int64(c.MaxConns)}, {"max-query-windows", int64(c.MaxQueryWindows)},
		{"max-inflight-body", int64(c.MaxInflightBody)},
		{"max-query-groups", int64(c.MaxQueryGroups)},
		{"identity-filter-bytes", int64(c.IdentityFilterBytes)},
	} {
		if f.n <= 0 {
			bad = append(bad, fmt.Sprintf("--%s must be positive; got %d", f.name, f.n))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad = append(bad, "--tls-cert and --tls-key go together")
	}
	if c.RateIngest < 0 || c.RateQuery < 0 {
		bad = append(bad, "--rate-ingest and --rate-query must not be negative")
	}
	if c.CommitConcurrency < 0 {
		bad = append(bad, fmt.Sprintf("--commit-concurrency must not be negative; got %d", c.CommitConcurrency))
	}
	if c.UsageCacheHours < 0 {
		bad = append(bad, fmt.Sprintf("--usage-cache-hours must not be negative; got %d", c.UsageCacheHours))
	}
	if c.MaxConnsPerAddr < 0 {
		bad = append(bad, fmt.Sprintf("--max-conns-per-addr must not be negative; got %d", c.MaxConnsPerAddr))
	}
	if c.OutcomeLogSize < 0 {
		bad = append(bad, fmt.Sprintf("--outcome-log-size must not be negative; got %d", c.OutcomeLogSize))
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"future-skew", c.FutureSkew}, {"max-age", c.MaxAge}, {"shutdown-timeout", c.ShutdownTimeout}, {"header-timeout", c.HeaderTimeout},
		{"idle-timeout", c.IdleTimeout}, {"body-timeout", c.BodyTimeout}} {
		if f.d < 0 {
			bad = append(bad, fmt.Sprintf("--%s must not be negative; got %s", f.name, f.d))
		}
	}
	if len(bad) > 0 {
		return nil, &usageError{err: errors.New(strings.Join(bad, "; "))}
	}
	return c, nil
}

// runServe runs the server until ctx ends, then shuts down gracefully: it
// stops accepting connections, lets in-flight requests finish, commits the
// queued events and closes the database.
func runServe(ctx context.Context, e *env, args []string) error {
	cfg, err := parseServeConfig(e, args)
	if err != nil {
		return err
	}
	log := newLogger(e, cfg)
	// Pebble logs through slog's default logger.
	slog.SetDefault(log)
	store, err := openConfiguredStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	err = serveStore(ctx, cfg, log, store)
	if cerr := store.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close store: %w", cerr))
	}
	if err == nil {
		log.Info("stopped")
	}
	return err
}

// serveStore serves the API on store until ctx ends.
func serveStore(ctx context.Context, cfg *serveConfig, log *slog.Logger, store odometer.Store) error {
	if err := syncMeters(ctx, store, cfg.Meters, time.Now(), log); err != nil {
		return fmt.Errorf("config %s: %w", cfg.ConfigFile, err)
	}
	logAccounts(log, cfg.Accounts)
	if err := syncExports(ctx, store, cfg.Exports, cfg.Accounts, time.Now(), log); err != nil {
		return fmt.Errorf("config %s: %w", cfg.ConfigFile, err)
	}
	if err := syncKeys(ctx, store, cfg.Keys, time.Now(), log); err != nil {
		return fmt.Errorf("config %s: %w", cfg.ConfigFile, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	registerMemoryMetrics(reg, store)
	// postgresCommitConcurrency: measured with bench/run.sh (docs/scale.md).
	const postgresCommitConcurrency = 4
	concurrency := cfg.CommitConcurrency
	if concurrency == 0 {
		concurrency = 1
		if cfg.Postgres != "" {
			concurrency = postgresCommitConcurrency
		}
	}
	batcher := ingest.New(store, ingest.Config{
		MaxBatchEvents: cfg.CommitBatchEvents,
		MaxQueueEvents: cfg.QueueEvents,
		Concurrency:    concurrency,
	}, reg)
	err := serveHTTP(ctx, cfg, log, store, batcher, reg)
	// No request is in flight any more (or the shutdown timed out): commit
	// what is queued. ctx has ended by now, so the deadline starts afresh.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if cerr := batcher.Close(sctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

// serveHTTP listens and serves until ctx ends, then stops accepting and
// waits (up to the shutdown timeout) for in-flight requests.
func serveHTTP(ctx context.Context, cfg *serveConfig, log *slog.Logger, store odometer.Store, batcher *ingest.Batcher, reg *prometheus.Registry) error {
	var rollups *usage.Rollups
	if cfg.UsageCacheHours > 0 {
		rollups = usage.NewRollups(cfg.UsageCacheHours)
	}
	hasKeys, err := anyKeys(ctx, store)
	if err != nil {
		return err
	}
	open := !hasKeys
	if err := checkExposure(cfg.Addr, open, cfg.Insecure); err != nil {
		return err
	}
	if open {
		log.Warn("no API keys: serving open, in namespace default, with every scope; " +
			"only this host can connect unless --insecure was given (docs/security.md)")
	}
	maintainer, stopRollups, err := startRollups(ctx, store, cfg.UsageRollups, log, reg)
	if err != nil {
		return err
	}
	defer stopRollups()
	handler, err := api.NewHandler(api.Config{
		Store:    store,
		Ingester: batcher,
		Logger:   log,
		Registry: reg,
		Limits: api.Limits{
			MaxBodyBytes: int64(cfg.MaxBodyBytes),
			IngestLimits: odometer.IngestLimits{
				MaxEvents:  cfg.MaxBatchEvents,
				FutureSkew: cfg.FutureSkew,
				MaxAge:     cfg.MaxAge,
			},
		},
		Now:             time.Now,
		Rollups:         rollups,
		Maintainer:      maintainer,
		ExportAccounts:  cfg.Accounts,
		Open:            open,
		IngestRate:      cfg.RateIngest,
		QueryRate:       cfg.RateQuery,
		MaxQueryWindows: cfg.MaxQueryWindows,
		MaxQueryGroups:  cfg.MaxQueryGroups,
		OutcomeLogSize:  outcomeLogSize(cfg.OutcomeLogSize),

		AllowedHosts:         cfg.AllowedHosts,
		MaxInflightBodyBytes: int64(cfg.MaxInflightBody),
		BodyTimeout:          cfg.BodyTimeout,
	})
	if err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Addr)
	if err != nil {
		return err
	}
	conns := newConnLimiter(ln, cfg.MaxConns, cfg.MaxConnsPerAddr, max(int64(cfg.MaxBodyBytes), minDrainBytes))
	ln = conns
	if !cfg.NoExport {
		exp, err := exporter.New(exporter.Config{
			Store: store, Rollups: rollups, Accounts: cfg.Accounts, Interval: cfg.ExportInterval,
			Logger: log.With("component", "exporter"), Registerer: reg,
		})
		if err != nil {
			ln.Close()
			return err
		}
		// The exporter stops with ctx and is waited for, so that the store
		// is never closed under a round.
		ectx, stopExporter := context.WithCancel(ctx)
		var running sync.WaitGroup
		running.Go(func() { exp.Run(ectx) })
		defer running.Wait()
		defer stopExporter()
	}
	srv := &http.Server{
		Handler:           withDashboard(handler),
		ReadHeaderTimeout: cfg.HeaderTimeout,
		// A body's reading is bounded by the API itself: it must keep
		// arriving (--body-timeout) and take at most 2 minutes.
		ReadTimeout:    2 * time.Minute,
		WriteTimeout:   5 * time.Minute, // long usage queries and CSV exports
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: 1 << 20,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnState:      conns.ConnState,
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("TLS: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	log.Info("listening", "addr", ln.Addr().String(), "tls", srv.TLSConfig != nil, "store", storeSummary(cfg), "version", version())
	if cfg.MetricsAddr != "" {
		stopMetrics, err := serveMetrics(ctx, cfg.MetricsAddr, reg, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopMetrics()
	}
	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(ctx, cfg.DebugAddr, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopDebug()
	}

	served := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
			return
		}
		served <- srv.Serve(ln)
	}()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("in-flight requests did not finish in time; closing their connections", "err", err)
		srv.Close()
	}
	<-served
	return nil
}

// serveDebug serves net/http/pprof on its own listener, so that profiling
// is never exposed on the API's address by accident.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("profiler listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

// serveMetrics serves /metrics without authentication on its own
// listener, for a Prometheus that cannot send an API key, or to keep
// metrics off the API's address.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go srv.Serve(ln)
	log.Info("metrics listening", "addr", ln.Addr().String())
	return func() { srv.Close() }, nil
}

func newLogger(e *env, cfg *serveConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}

// syncMeters makes the meters of namespace "default" match the config:
// missing meters are created, changed names, descriptions, group-bys and
// filters are updated. What a meter counts (its event type, aggregation,
// value property and eventFrom) cannot change under the same slug, as in the
// API, so a difference there is an error. Meters absent from the config are left
// alone.
func syncMeters(ctx context.Context, store odometer.Store, defs []*odometer.Meter, now time.Time, log *slog.Logger) error {
	now = now.UTC().Truncate(odometer.TimePrecision)
	for _, def := range defs {
		m := *def
		m.Namespace = "default"
		old, err := store.FindMeter(ctx, m.Namespace, m.Slug)
		if odometer.ErrorCode(err) == odometer.ENOTFOUND {
			m.ID = odometer.NewID(now)
			m.CreatedAt, m.UpdatedAt = now, now
			err = store.CreateMeter(ctx, &m)
			if err == nil {
				log.Info("meter created from config", "meter", m.Slug)
				continue
			}
			if odometer.ErrorCode(err) != odometer.ECONFLICT {
				return fmt.Errorf("create meter %q: %w", m.Slug, err)
			}
			// Another node sharing the database created it a moment ago
			// from its own config: check it as an existing meter.
			old, err = store.FindMeter(ctx, m.Namespace, m.Slug)
		}
		if err != nil {
			return fmt.Errorf("find meter %q: %w", m.Slug, err)
		}
		for _, f := range []struct{ field, old, new string }{
			{"eventType", old.EventType, m.EventType},
			{"aggregation", string(old.Aggregation), string(m.Aggregation)},
			{"valueProperty", old.ValueProperty, m.ValueProperty},
			{"eventFrom", timeText(old.EventFrom), timeText(m.EventFrom)},
		} {
			if f.old != f.new {
				return fmt.Errorf("meter %q: %s is %q in the database but %q in the config; "+
					"it cannot change (create a meter with a new slug, or delete this one first)",
					m.Slug, f.field, f.old, f.new)
			}
		}
		if sameMutableFields(old, &m) {
			continue
		}
		upd := *old
		upd.Name, upd.Description = m.Name, m.Description
		upd.GroupBy, upd.Filters = m.GroupBy, m.Filters
		upd.UpdatedAt = now
		// As through the API: features and export dimensions reading it
		// must keep their group-by keys.
		if err := ledger.New(store, func() time.Time { return now }, nil).CheckMeterChange(ctx, m.Namespace, old, upd.GroupBy, false); err != nil {
			return err
		}
		if err := export.CheckMeterChange(ctx, store, m.Namespace, old, upd.GroupBy, false); err != nil {
			return err
		}
		if err := store.UpdateMeter(ctx, &upd); err != nil {
			return fmt.Errorf("update meter %q: %w", m.Slug, err)
		}
		log.Info("meter updated from config", "meter", m.Slug)
	}
	return nil
}

func sameMutableFields(a, b *odometer.Meter) bool {
	return a.Name == b.Name && a.Description == b.Description &&
		equalMaps(a.GroupBy, b.GroupBy, func(x, y string) bool { return x == y }) &&
		equalMaps(a.Filters, b.Filters, func(x, y []string) bool {
			return strings.Join(x, "\x00") == strings.Join(y, "\x00") && len(x) == len(y)
		})
}

// timeText formats an optional time for comparison and messages.
func timeText(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func equalMaps[V any](a, b map[string]V, eq func(V, V) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || !eq(va, vb) {
			return false
		}
	}
	return true
}

// byteSize is a size flag: a number of bytes, optionally with a unit (B, KB,
// MB, GB, KiB, MiB, GiB).
type byteSize int64

var byteUnits = []struct {
	suffix string
	n      int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range byteUnits[:3] {
		if n >= u.n*1024 || n == 0 || n%u.n != 0 {
			continue
		}
		return strconv.FormatInt(n/u.n, 10) + u.suffix
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return errors.New("want a number of bytes, optionally with a unit: B, KB, MB, GB, KiB, MiB, GiB")
	}
	*b = byteSize(n * mult)
	return nil
}

// commaList is a flag of comma-separated values, repeatable; each setting
// adds to the list.
type commaList []string

func (l *commaList) String() string { return strings.Join(*l, ",") }

func (l *commaList) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// enumValue is a string flag restricted to a few values.
type enumValue struct {
	p       *string
	allowed []string
}

func (v *enumValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v *enumValue) Set(s string) error {
	for _, a := range v.allowed {
		if s == a {
			*v.p = s
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(v.allowed, ", "))
}

// withDashboard serves the web dashboard (package dashboard) at / and its
// assets, and everything else through the API handler, whose answers
// (problem documents for unknown routes) stay as they are.
func withDashboard(apiHandler http.Handler) http.Handler {
	ui := dashboard.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/assets/") {
			ui.ServeHTTP(w, r)
			return
		}
		apiHandler.ServeHTTP(w, r)
	})
}

// outcomeLogSize maps --outcome-log-size, where 0 means none, to
// api.Config.OutcomeLogSize, where 0 means the default.
func outcomeLogSize(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

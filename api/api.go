// Package api serves Odometer's HTTP API: event ingestion and listing,
// meters and usage queries, wire-compatible with OpenMeter's v1 API so that
// OpenMeter's SDKs work unchanged; prepaid credits (features, ledgers,
// grants, balances, history, resets, access checks) on top of
// ledger.Service; health checks, Prometheus metrics and the OpenAPI
// document.
//
// Every handler has the form func(w, r) error; one adapter (see errors.go)
// logs and renders the errors they return as RFC 9457 problem documents, and
// maps odometer error codes to HTTP statuses in exactly one place. routes.go
// lists every route with the API key scope it needs; the same adapter
// resolves the caller's key, namespace and scopes before the handler runs,
// and applies the rate limits (auth.go, docs/security.md).
package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	_ "time/tzdata" // windowTimeZone must resolve IANA names on hosts without a zone database

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export"
	"github.com/odometerhq/odometer/ledger"
	"github.com/odometerhq/odometer/usage"
)

// Ingester commits events durably. ingest.Batcher implements it.
type Ingester interface {
	// Append stores events (each carrying its Namespace) and returns, in input
	// order, whether each was Accepted or a Duplicate. It returns only once
	// the events are durable; on error nothing was stored. An EUNAVAILABLE
	// error means "overloaded, retry later".
	Append(ctx context.Context, events []odometer.Event) ([]odometer.Outcome, error)
}

// Config configures NewHandler.
type Config struct {
	// Store holds meters, events and credit records (required).
	Store odometer.Store
	// Ingester commits ingested events (required).
	Ingester Ingester
	// Logger receives one record per failed request; nil discards.
	Logger *slog.Logger
	// Registry receives the handler's collectors and is served at /metrics;
	// nil uses a private registry.
	Registry *prometheus.Registry
	// Limits bound request sizes; zero fields take their defaults.
	Limits Limits
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rollups caches hourly usage for queries and credit balances; nil
	// reads every event each time.
	Rollups *usage.Rollups
	// Maintainer keeps the store's durable usage rollups in step with its
	// meters: meter changes are passed on to it. nil: none.
	Maintainer *usage.Maintainer
	// ExportAccounts are the operator's AWS accounts, which say what AWS
	// account and product codes each namespace's export destinations may
	// use (docs/export-aws.md); nil: export.DefaultAccounts().
	ExportAccounts *export.Accounts

	// Open serves without API keys: every request works in namespace
	// DefaultNamespace with every scope, and needs no Authorization header.
	// When false, every route but /healthz, /readyz, /metrics and
	// /api/v1/openapi.yaml needs "Authorization: Bearer <token>" of a key
	// in Store (docs/security.md). An Open handler stops being open, for
	// good, once Store holds a key: at once when the key is made through
	// it, within KeyCacheTTL when another node or tool made it.
	Open bool
	// IngestRate and QueryRate limit the requests per second of each API
	// key (in Open mode, of everybody together) to POST /api/v1/events and
	// to the usage query and group-by values routes; 0 is unlimited.
	// IngestBurst and QueryBurst are the bursts allowed above the rate
	// (≤ 0: max(1, rate)). The limits are kept in memory per node: n nodes
	// allow n times the rate. Over the limit the answer is 429 with
	// Retry-After.
	IngestRate, QueryRate   float64
	IngestBurst, QueryBurst int
	// MaxQueryWindows is how many windows a usage query's [from, to) may
	// hold at its windowSize (≤ 0: DefaultMaxQueryWindows).
	MaxQueryWindows int
	// MaxQueryGroups is how many groups (distinct combinations of subject
	// and group-by values, whatever the windows) one usage query may
	// return (≤ 0: DefaultMaxQueryGroups). A query that finds more is
	// refused with 400 naming groupBy; the scan stops at the first group
	// over the limit.
	MaxQueryGroups int
	// KeyCacheTTL is how long an API key looked up in Store is trusted
	// (≤ 0: DefaultKeyCacheTTL): a key revoked on another node stops
	// working here within it.
	KeyCacheTTL time.Duration
	// OutcomeLogSize is how many recent submissions that were not accepted
	// (each event of a request refused with per-event problems, each
	// duplicate) the handler remembers for GET /api/v1/events/outcomes
	// (0: DefaultOutcomeLogSize; negative: none). They are kept in memory
	// on this node only, at most a few KiB each (docs/ingestion.md).
	OutcomeLogSize int

	// AllowedHosts are host names, besides localhost and IP addresses,
	// that an Open handler answers when a request's Host header names
	// them; requests to other names get 403, since a web page can make
	// any name of its own resolve to loopback (DNS rebinding). With keys,
	// every Host is answered.
	AllowedHosts []string
	// MaxInflightBodyBytes bounds the request body bytes that all
	// requests together hold in memory (≤ 0:
	// DefaultMaxInflightBodyBytes); a request whose body does not fit
	// gets 503 with Retry-After.
	MaxInflightBodyBytes int64
	// BodyTimeout is how long a request body may go without a byte
	// arriving before the request is cut with 408 (≤ 0:
	// DefaultBodyTimeout).
	BodyTimeout time.Duration
}

// Limits bound what one request may carry.
type Limits struct {
	// MaxBodyBytes limits a request body after decompression (default 16 MiB).
	MaxBodyBytes int64
	// IngestLimits bound one ingestion request: MaxEvents (default 10000),
	// FutureSkew and MaxAge (zero: no limit).
	odometer.IngestLimits
}

// Defaults for Limits.
const (
	DefaultMaxBodyBytes = 16 << 20
	DefaultMaxEvents    = 10000
)

// handler serves the API. Its methods with the signature of handlerFunc are
// the route handlers; routeTable lists them.
type handler struct {
	store      odometer.Store
	ingester   Ingester
	log        *slog.Logger
	registry   *prometheus.Registry
	limits     Limits
	now        func() time.Time
	metrics    *metrics
	meters     *meterCache
	credits    *ledger.Service
	rollups    *usage.Rollups
	maintainer *usage.Maintainer
	accounts   *export.Accounts // Config.ExportAccounts
	mux        *http.ServeMux

	open       openState   // Config.Open, until a key exists
	keys       *keyCache   // API keys by id
	rates      rateLimits  // per key
	maxWindows int         // Config.MaxQueryWindows
	maxGroups  int         // Config.MaxQueryGroups
	outcomes   *outcomeLog // recent non-accepted submissions; nil: none kept

	allowedHosts []string                    // Config.AllowedHosts, lower case
	bodies       *bodyBudget                 // request bodies held in memory
	bodyTimeout  time.Duration               // Config.BodyTimeout
	crossOrigin  *http.CrossOriginProtection // refuses changes sent by pages of other origins

	promHandler http.Handler // serves registry
}

// NewHandler returns the HTTP API. It registers its Prometheus collectors on
// cfg.Registry and fails if they are registered there already.
func NewHandler(cfg Config) (http.Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: Config.Store is required")
	}
	if cfg.Ingester == nil {
		return nil, errors.New("api: Config.Ingester is required")
	}
	h := &handler{
		store:      cfg.Store,
		ingester:   cfg.Ingester,
		log:        cfg.Logger,
		registry:   cfg.Registry,
		limits:     cfg.Limits,
		now:        cfg.Now,
		rollups:    cfg.Rollups,
		maintainer: cfg.Maintainer,
		accounts:   cmp.Or(cfg.ExportAccounts, export.DefaultAccounts()),
		mux:        http.NewServeMux(),

		keys:       newKeyCache(cfg.Store, cmp.Or(max(cfg.KeyCacheTTL, 0), DefaultKeyCacheTTL)),
		rates:      rateLimits{ingest: newLimiter(cfg.IngestRate, cfg.IngestBurst), query: newLimiter(cfg.QueryRate, cfg.QueryBurst)},
		maxWindows: cmp.Or(max(cfg.MaxQueryWindows, 0), DefaultMaxQueryWindows),
		maxGroups:  cmp.Or(max(cfg.MaxQueryGroups, 0), DefaultMaxQueryGroups),
		outcomes:   newOutcomeLog(cmp.Or(cfg.OutcomeLogSize, DefaultOutcomeLogSize)),

		bodies:      &bodyBudget{max: cmp.Or(max(cfg.MaxInflightBodyBytes, 0), DefaultMaxInflightBodyBytes)},
		bodyTimeout: cmp.Or(max(cfg.BodyTimeout, 0), DefaultBodyTimeout),
		crossOrigin: http.NewCrossOriginProtection(),
	}
	for _, host := range cfg.AllowedHosts {
		h.allowedHosts = append(h.allowedHosts, strings.TrimSuffix(strings.ToLower(host), "."))
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.registry == nil {
		h.registry = prometheus.NewRegistry()
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.limits.MaxBodyBytes <= 0 {
		h.limits.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if h.limits.MaxEvents <= 0 {
		h.limits.MaxEvents = DefaultMaxEvents
	}
	m, err := newMetrics(h.registry, h.rollups, h.bodies)
	if err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	h.metrics = m
	h.promHandler = promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{h}})
	h.meters = newMeterCache(cfg.Store, h.log)
	h.credits = ledger.New(cfg.Store, h.now, cfg.Rollups)
	h.open.on.Store(cfg.Open)
	if err := h.register(routeTable(h)); err != nil {
		return nil, err
	}
	return h, nil
}

// namespace returns the namespace a request works in: its API key's. It
// is the one place handlers get it from. It panics (a 500) for a request
// whose caller was not resolved, which only a public route's handler
// could send: answering from some default namespace instead would serve
// one namespace's data to anybody.
func namespace(r *http.Request) string { return callerOf(r).namespace }

// callerOf returns who sends r, as authorize resolved it; it panics, as
// namespace does, for a request without one.
func callerOf(r *http.Request) *caller {
	c, _ := r.Context().Value(callerContextKey{}).(*caller)
	if c == nil {
		panic("api: namespace of a request without a caller (a public route reading namespaced data)")
	}
	return c
}

// clock returns the current time in UTC at storage precision.
func (h *handler) clock() time.Time {
	return h.now().UTC().Truncate(odometer.TimePrecision)
}

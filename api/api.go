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
// lists every route.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	_ "time/tzdata" // windowTimeZone must resolve IANA names on hosts without a zone database

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/ledger"
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
	Rollups *odometer.Rollups
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
// the route handlers; routes() lists them.
type handler struct {
	store    odometer.Store
	ingester Ingester
	log      *slog.Logger
	registry *prometheus.Registry
	limits   Limits
	now      func() time.Time
	metrics  *metrics
	meters   *meterCache
	credits  *ledger.Service
	rollups  *odometer.Rollups
	mux      *http.ServeMux

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
		store:    cfg.Store,
		ingester: cfg.Ingester,
		log:      cfg.Logger,
		registry: cfg.Registry,
		limits:   cfg.Limits,
		now:      cfg.Now,
		rollups:  cfg.Rollups,
		mux:      http.NewServeMux(),
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
	m, err := newMetrics(h.registry, h.rollups)
	if err != nil {
		return nil, fmt.Errorf("api: register metrics: %w", err)
	}
	h.metrics = m
	h.promHandler = promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{ErrorLog: slogPrinter{h}})
	h.meters = newMeterCache(cfg.Store, h.log)
	h.credits = ledger.New(cfg.Store, h.now, cfg.Rollups)
	h.routes()
	return h, nil
}

// namespace returns the namespace a request works in. It is the one place
// that will resolve it from the API key once keys exist.
func namespace(*http.Request) string { return "default" }

// clock returns the current time in UTC at storage precision.
func (h *handler) clock() time.Time {
	return h.now().UTC().Truncate(odometer.TimePrecision)
}

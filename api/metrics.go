package api

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/usage"
)

// metrics are the handler's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec   // route, code
	duration *prometheus.HistogramVec // route
	events   *prometheus.CounterVec   // outcome
}

// Ingestion outcomes as counted by odometer_ingest_events_total. rejected
// counts the events of requests refused as a whole (nothing of them stored).
const (
	outcomeAccepted  = "accepted"
	outcomeDuplicate = "duplicate"
	outcomeRejected  = "rejected"
)

func newMetrics(reg prometheus.Registerer, rollups *usage.Rollups, bodies *bodyBudget) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "odometer_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "odometer_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "odometer_ingest_events_total",
			Help: "Events received through the API, by outcome: accepted (stored), duplicate (stored before), rejected (in a refused request).",
		}, []string{"outcome"}),
	}
	cache := []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "odometer_usage_rollup_hits_total",
			Help: "Hours of usage read from the rollup cache.",
		}, func() float64 { return float64(rollups.Stats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "odometer_usage_rollup_misses_total",
			Help: "Hours of usage the rollup cache lacked (or held stale) and that were read from events.",
		}, func() float64 { return float64(rollups.Stats().Misses) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "odometer_http_inflight_body_bytes",
			Help: "Request body bytes held in memory by the requests in flight (bounded by --max-inflight-body).",
		}, func() float64 { return float64(bodies.used.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "odometer_usage_rollup_entries",
			Help: "Hours of usage held in the rollup cache.",
		}, func() float64 { return float64(rollups.Stats().Entries) }),
	}
	for _, c := range append([]prometheus.Collector{m.requests, m.duration, m.events}, cache...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, o := range []string{outcomeAccepted, outcomeDuplicate, outcomeRejected} {
		m.events.WithLabelValues(o)
	}
	return m, nil
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// countOutcomes adds a committed batch's outcomes and returns the totals.
func (m *metrics) countOutcomes(outcomes []odometer.Outcome) (accepted, duplicate int) {
	for _, o := range outcomes {
		if o == odometer.Duplicate {
			duplicate++
		} else {
			accepted++
		}
	}
	m.events.WithLabelValues(outcomeAccepted).Add(float64(accepted))
	m.events.WithLabelValues(outcomeDuplicate).Add(float64(duplicate))
	return accepted, duplicate
}

func (m *metrics) countRejected(n int) {
	if n > 0 {
		m.events.WithLabelValues(outcomeRejected).Add(float64(n))
	}
}

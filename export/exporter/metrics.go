package exporter

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	records       *prometheus.CounterVec
	calls         *prometheus.CounterVec
	retries       *prometheus.CounterVec
	frozenThrough *prometheus.GaugeVec
	forbidden     *prometheus.GaugeVec
	active        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "odometer_export_records_total",
			Help: "Export records by the status they reached: pending and empty when frozen; accepted, duplicate, not_subscribed, rejected or expired when settled.",
		}, []string{"destination", "status"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "odometer_export_calls_total",
			Help: "Rounds of BatchMeterUsage calls for one batch of up to 25 records, by outcome (ok, retryable, error).",
		}, []string{"destination", "outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "odometer_export_retries_total",
			Help: "Records left pending for a backoff: unprocessed by AWS, or in a call that failed retryably.",
		}, []string{"destination"}),
		frozenThrough: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "odometer_export_frozen_through_seconds",
			Help: "End of the last hour frozen into the outbox, as a Unix time.",
		}, []string{"destination"}),
		forbidden: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "odometer_export_forbidden",
			Help: "1 if the destination's last round found that the operator's AWS accounts do not allow its namespace its account or product code: nothing is sent.",
		}, []string{"destination"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "odometer_export_active",
			Help: "1 if this node held the exporter lock in its last round.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.records, m.calls, m.retries, m.frozenThrough, m.forbidden, m.active} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

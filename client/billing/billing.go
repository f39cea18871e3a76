// Package billing is a drop-in for the widely used billing client's API
// (AddAmounts with container-seconds, node-seconds and the like) on top of
// the Odometer SDK's Recorder: amounts are spooled on disk before
// AddAmounts returns and delivered exactly once, where the old client
// dropped them when its buffer filled and reported success for records it
// never delivered.
//
// Each non-zero amount becomes one event of type Config.EventType for
// subject internalInstanceID, with data
//
//	{"amount_type": "container-seconds", "amount": 1234, "metadata": {...}}
//
// and an ID derived from the unique key and the amount type, so that a
// retried AddAmounts is counted once by the server. A SUM meter of
// $.amount grouped by $.amount_type reports them.
package billing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer/client"
)

// AmountType is what an amount measures.
type AmountType string

// The billing client's amount types. Any other non-empty string is a
// user-defined type.
const (
	ContainerSeconds AmountType = "container-seconds"
	NodeSeconds      AmountType = "node-seconds"
	WeavenetSeconds  AmountType = "weavenet-seconds"
	Samples          AmountType = "samples"
)

// Amounts are the quantities of one AddAmounts call, by type.
type Amounts map[AmountType]int64

// Config configures a Client. RegisterFlags binds it to command-line flags.
type Config struct {
	URL           string        // the Odometer server, e.g. http://odometer:8888
	SpoolDir      string        // where recorded amounts wait for delivery (required)
	MaxSpoolBytes int64         // 0: the Recorder's default (1 GiB)
	EventType     string        // default "billing"
	Source        string        // the events' source; default "billing-client"
	Timeout       time.Duration // per request; default 30s
}

// RegisterFlags registers the configuration's flags on f, with defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.URL, "billing.url", "http://127.0.0.1:8888", "Odometer server to send usage to")
	f.StringVar(&c.SpoolDir, "billing.spool-dir", "billing-spool", "directory where usage waits until the server has it")
	f.Int64Var(&c.MaxSpoolBytes, "billing.max-spool-bytes", 1<<30, "most bytes of undelivered usage to keep; beyond it AddAmounts fails")
	f.StringVar(&c.EventType, "billing.event-type", "billing", "event type of the usage events")
	f.StringVar(&c.Source, "billing.source", "billing-client", "source of the usage events")
	f.DurationVar(&c.Timeout, "billing.timeout", 30*time.Second, "timeout of one request to the server")
}

// Client records amounts. It is safe for concurrent use.
type Client struct {
	cfg     Config
	rec     *client.Recorder
	events  *prometheus.CounterVec
	amounts *prometheus.CounterVec
	retries prometheus.Counter
}

// Event statuses of the metrics.
const (
	statusSuccess  = "success"  // the server has it
	statusRejected = "rejected" // the server refused it; in the dead-letter file
	statusRefused  = "refused"  // never recorded: AddAmounts returned an error
)

// New starts a Client. Its metrics are registered on reg (nil: none are
// registered anywhere):
//
//   - billing_client_events_total{status, amount_type}: each event's final
//     outcome, counted once: success, rejected (by the server; see the
//     dead-letter file) or refused (AddAmounts failed, e.g. the spool was full);
//   - billing_client_amounts_total{status, amount_type}: the same, summing
//     the amounts;
//   - billing_client_retries_total: failed sends that will be retried.
func New(cfg Config, reg prometheus.Registerer) (*Client, error) {
	if cfg.EventType == "" {
		cfg.EventType = "billing"
	}
	if cfg.Source == "" {
		cfg.Source = "billing-client"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	c := &Client{
		cfg: cfg,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_client_events_total",
			Help: "Billing events by final outcome (success, rejected, refused) and amount type.",
		}, []string{"status", "amount_type"}),
		amounts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "billing_client_amounts_total",
			Help: "Sum of the amounts of billing events by final outcome and amount type.",
		}, []string{"status", "amount_type"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "billing_client_retries_total",
			Help: "Failed sends of billing events that will be sent again.",
		}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.events, c.amounts, c.retries} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("billing: register metrics: %w", err)
			}
		}
	}
	api := client.New(cfg.URL, client.WithHTTPClient(&http.Client{Timeout: cfg.Timeout}))
	rec, err := client.NewRecorder(api, client.RecorderConfig{
		Dir: cfg.SpoolDir, MaxSpoolBytes: cfg.MaxSpoolBytes, Source: cfg.Source,
		OnOutcome: c.outcome,
		OnRetry:   func(int, error) { c.retries.Inc() },
	})
	if err != nil {
		if reg != nil {
			reg.Unregister(c.events)
			reg.Unregister(c.amounts)
			reg.Unregister(c.retries)
		}
		return nil, fmt.Errorf("billing: %w", err)
	}
	c.rec = rec
	return c, nil
}

// data is an event's data.
type data struct {
	AmountType AmountType        `json:"amount_type"`
	Amount     int64             `json:"amount"`
	Metadata   map[string]string `json:"metadata,omitempty"`
}

// outcome counts an event's final outcome.
func (c *Client) outcome(event json.RawMessage, delivered bool, _ string) {
	var e struct {
		Data data `json:"data"`
	}
	if err := json.Unmarshal(event, &e); err != nil {
		return // not one of ours
	}
	status := statusSuccess
	if !delivered {
		status = statusRejected
	}
	c.count(status, e.Data.AmountType, e.Data.Amount)
}

func (c *Client) count(status string, t AmountType, amount int64) {
	c.events.WithLabelValues(status, string(t)).Inc()
	c.amounts.WithLabelValues(status, string(t)).Add(float64(amount))
}

// EventID is the ID of the event for one amount type of an AddAmounts
// call: the same unique key and type always give the same ID.
func EventID(uniqueKey string, t AmountType) string {
	h := sha256.Sum256([]byte(uniqueKey + "\x00" + string(t)))
	return hex.EncodeToString(h[:16])
}

// AddAmounts records one event per non-zero amount, for subject
// internalInstanceID at timestamp, and returns once they are on disk.
// uniqueKey identifies the call: calling again with the same key (a retry)
// records events with the same IDs, which the server counts once. Either
// every amount is recorded or, on error, none.
func (c *Client) AddAmounts(uniqueKey, internalInstanceID string, timestamp time.Time, amounts Amounts, metadata map[string]string) error {
	if uniqueKey == "" {
		return errors.New("billing: AddAmounts: uniqueKey is required")
	}
	if internalInstanceID == "" {
		return errors.New("billing: AddAmounts: internalInstanceID is required")
	}
	if timestamp.IsZero() {
		return errors.New("billing: AddAmounts: timestamp is required")
	}
	var events []client.Event
	var types []AmountType
	for t, n := range amounts {
		if n == 0 {
			continue
		}
		if t == "" {
			return errors.New("billing: AddAmounts: empty amount type")
		}
		b, err := json.Marshal(data{AmountType: t, Amount: n, Metadata: metadata})
		if err != nil {
			return fmt.Errorf("billing: AddAmounts: %w", err)
		}
		events = append(events, client.Event{ID: EventID(uniqueKey, t), Source: c.cfg.Source, Type: c.cfg.EventType,
			Subject: internalInstanceID, Time: timestamp, Data: b})
		types = append(types, t)
	}
	if len(events) == 0 {
		return nil
	}
	if err := c.rec.Record(context.Background(), events...); err != nil {
		for _, t := range types {
			c.count(statusRefused, t, amounts[t])
		}
		return fmt.Errorf("billing: AddAmounts: %w", err)
	}
	return nil
}

// Close delivers what is left until ctx ends; the rest stays in the spool
// for the next start.
func (c *Client) Close(ctx context.Context) error {
	return c.rec.Close(ctx)
}

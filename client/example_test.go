package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"time"

	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/client"
	"github.com/odometerhq/odometer/ingest"
	"github.com/odometerhq/odometer/sqlite"
)

// exampleServer starts an Odometer API on a temporary database and returns
// its URL and a function that stops it.
func exampleServer() (string, func()) {
	dir, err := os.MkdirTemp("", "odometer-example")
	if err != nil {
		log.Fatal(err)
	}
	store, err := sqlite.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	b := ingest.New(store, ingest.Config{}, nil)
	h, err := api.NewHandler(api.Config{Store: store, Ingester: b, Open: true}) // no API keys: see docs/security.md
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h)
	return srv.URL, func() {
		srv.Close()
		b.Close(context.Background())
		store.Close()
		os.RemoveAll(dir)
	}
}

func Example() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()

	c := client.New(url) // e.g. "http://127.0.0.1:8888"
	if _, err := c.CreateMeter(ctx, client.MeterCreate{
		Slug: "tokens", EventType: "prompt", Aggregation: "SUM", ValueProperty: "$.tokens",
	}); err != nil {
		log.Fatal(err)
	}
	at := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	res, err := c.Ingest(ctx, []client.Event{
		{ID: "req-1", Source: "chat", Type: "prompt", Subject: "acme", Time: at, Data: json.RawMessage(`{"tokens": 0.1}`)},
		{ID: "req-2", Source: "chat", Type: "prompt", Subject: "acme", Time: at, Data: json.RawMessage(`{"tokens": 0.2}`)},
	})
	if err != nil {
		log.Fatal(err) // a *client.Problem names every bad field
	}
	fmt.Printf("accepted=%d duplicate=%d\n", res.Accepted, res.Duplicate)

	usage, err := c.QueryMeter(ctx, "tokens", client.Query{
		From: at.Truncate(24 * time.Hour), To: at.Add(24 * time.Hour), GroupBy: []string{"subject"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, row := range usage.Data {
		fmt.Println(*row.Subject, row.Value) // exact decimal text, never float64
	}
	// Output:
	// accepted=2 duplicate=0
	// acme 0.3
}

// A Recorder keeps recorded usage on local disk until the server has
// acknowledged it, through outages and restarts of either side.
func ExampleRecorder() {
	url, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c := client.New(url)
	if _, err := c.CreateMeter(ctx, client.MeterCreate{
		Slug: "tokens", EventType: "prompt", Aggregation: "SUM", ValueProperty: "$.tokens",
	}); err != nil {
		log.Fatal(err)
	}

	spool, err := os.MkdirTemp("", "odometer-spool") // in an application: a directory that persists
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(spool)
	rec, err := client.NewRecorder(c, client.RecorderConfig{Dir: spool})
	if err != nil {
		log.Fatal(err)
	}
	// Record returns once the events are on disk; the ID and time are set
	// here when missing, so a resend is never counted twice.
	for range 3 {
		if err := rec.Record(ctx, client.Event{Type: "prompt", Subject: "acme", Data: json.RawMessage(`{"tokens": 0.1}`)}); err != nil {
			log.Fatal(err) // e.g. client.ErrSpoolFull: nothing is dropped silently
		}
	}
	// Close delivers what is left, until its deadline.
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := rec.Close(closeCtx); err != nil {
		log.Fatal(err)
	}

	usage, err := c.QueryMeter(ctx, "tokens", client.Query{Subjects: []string{"acme"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(usage.Data[0].Value)
	// Output:
	// 0.3
}

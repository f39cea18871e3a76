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
	h, err := api.NewHandler(api.Config{Store: store, Ingester: b})
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

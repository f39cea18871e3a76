package billing_test

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer/client/billing"
)

// Code written for the old billing client keeps its calls; the amounts are
// on disk when AddAmounts returns and reach the server exactly once.
func Example() {
	spool, err := os.MkdirTemp("", "billing-spool")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(spool)

	var cfg billing.Config
	fs := flag.NewFlagSet("app", flag.ExitOnError)
	cfg.RegisterFlags(fs)
	fs.Parse([]string{"-billing.url", "http://127.0.0.1:1", "-billing.spool-dir", spool}) // e.g. os.Args[1:]

	reg := prometheus.NewRegistry() // the application's registry
	c, err := billing.New(cfg, reg)
	if err != nil {
		log.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	err = c.AddAmounts("job-42/2026-03-01T10", "instance-7", at,
		billing.Amounts{billing.ContainerSeconds: 3600, billing.NodeSeconds: 60}, map[string]string{"region": "eu"})
	fmt.Println("recorded:", err == nil)

	// The server is unreachable here: Close gives up at its deadline and
	// the amounts wait in the spool for the next start.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	fmt.Println("delivered before close:", c.Close(ctx) == nil)
	// Output:
	// recorded: true
	// delivered before close: false
}

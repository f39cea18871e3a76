package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/odometerhq/odometer/client"
)

// BenchmarkRecord measures Record with durable spooling: 64 concurrent
// callers recording one event, or ten, per call, sharing fsyncs. The sender
// points at a closed port (it fails and backs off), so the figure is
// Record's own cost, not delivery.
//
//	go test -run xxx -bench Record -benchtime 100000x ./client/
func BenchmarkRecord(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("events-per-call=%d", n), func(b *testing.B) { benchmarkRecord(b, n) })
	}
}

func benchmarkRecord(b *testing.B, perCall int) {
	c := client.New("http://127.0.0.1:1")
	r, err := client.NewRecorder(c, client.RecorderConfig{Dir: b.TempDir(), MinBackoff: time.Second, MaxBackoff: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		r.Close(ctx)
	}()
	e := client.Event{Type: "prompt", Subject: "customer-00042", Data: json.RawMessage(`{"model":"gpt-4o","tokens":1234}`)}
	events := make([]client.Event, perCall)
	for i := range events {
		events[i] = e
	}
	ctx := context.Background()
	b.SetParallelism(32) // × GOMAXPROCS callers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := r.Record(ctx, events...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*perCall)/b.Elapsed().Seconds(), "events/s")
}

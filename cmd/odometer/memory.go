package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/odometerhq/odometer"
)

// registerMemoryMetrics exports what the embedded event log holds in
// memory outside what the Go collector reports (docs/storage.md, "Memory"),
// so that an operator can tell the parts of the process's resident memory
// apart. Other stores export nothing here.
func registerMemoryMetrics(reg prometheus.Registerer, store odometer.Store) {
	s, ok := store.(*splitStore)
	if !ok {
		return
	}
	for _, g := range []struct {
		name, help string
		bytes      func() int64
	}{
		{"odometer_eventlog_block_cache_bytes", "Bytes of sstable blocks in the event log's block cache (outside the Go heap).",
			func() int64 { return s.events.Memory().BlockCache }},
		{"odometer_eventlog_memtable_bytes", "Bytes of the event log's memtables (outside the Go heap).",
			func() int64 { return s.events.Memory().MemTables }},
		{"odometer_eventlog_identity_filter_bytes", "Bytes of the event log's identity filter (mapped outside the Go heap; fixed by --identity-filter-bytes).",
			func() int64 { return s.events.Memory().Filter }},
	} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: g.name, Help: g.help},
			func() float64 { return float64(g.bytes()) }))
	}
}

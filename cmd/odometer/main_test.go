package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer/export"
)

// mapEnv is a getenv over a map.
func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestServeConfigPrecedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "odometer.yaml")
	err := os.WriteFile(cfgFile, []byte(`
addr: 10.0.0.1:1
data: /from/config
eventLog: sqlite
log: {level: warn, format: json}
limits:
  maxBodyBytes: 2KiB
  maxBatchEvents: 7
  futureSkew: 1h
  maxAge: 720h
ingest: {commitBatchEvents: 5, queueEvents: 50}
postgres: postgres://cfg@db/odometer
postgresMaxConns: 3
noMigrate: true
usageCacheHours: 1000
usageRollups: false
identityFilterBytes: 8MiB
outcomeLogSize: 500
maxQueryGroups: 2500
noExport: true
exportInterval: 5m
maxConnsPerAddr: 7
idleTimeout: 1m
bodyTimeout: 3s
maxInflightBody: 64MiB
allowedHosts: [a.example, b.example]
metricsAddr: 127.0.0.1:9464
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defaults := serveConfig{
		Addr: "127.0.0.1:8888", Data: "./data", EventLog: "pebble", LogLevel: slog.LevelInfo, LogFormat: "text",
		MaxBodyBytes: 16 << 20, MaxBatchEvents: 10000, FutureSkew: 24 * time.Hour,
		CommitBatchEvents: 20000, QueueEvents: 200000, ShutdownTimeout: 10 * time.Second, PostgresMaxConns: 16,
		UsageCacheHours: 500000, UsageRollups: true, ExportInterval: 30 * time.Second, MaxConns: 10000, MaxQueryWindows: 10000, MaxQueryGroups: 10000, HeaderTimeout: 10 * time.Second,
		OutcomeLogSize: 10000, MaxConnsPerAddr: 1000, IdleTimeout: 30 * time.Second, BodyTimeout: 10 * time.Second, MaxInflightBody: 128 << 20, IdentityFilterBytes: 64 << 20,
	}
	fromConfig := serveConfig{
		Addr: "10.0.0.1:1", Data: "/from/config", EventLog: "sqlite", ConfigFile: cfgFile, LogLevel: slog.LevelWarn, LogFormat: "json",
		MaxBodyBytes: 2048, MaxBatchEvents: 7, FutureSkew: time.Hour, MaxAge: 720 * time.Hour,
		CommitBatchEvents: 5, QueueEvents: 50, ShutdownTimeout: 10 * time.Second,
		Postgres: "postgres://cfg@db/odometer", PostgresMaxConns: 3, NoMigrate: true, UsageCacheHours: 1000,
		NoExport: true, ExportInterval: 5 * time.Minute, MaxConns: 10000, MaxQueryWindows: 10000, MaxQueryGroups: 2500, HeaderTimeout: 10 * time.Second,
		OutcomeLogSize: 500, MaxConnsPerAddr: 7, IdleTimeout: time.Minute, BodyTimeout: 3 * time.Second, MaxInflightBody: 64 << 20, IdentityFilterBytes: 8 << 20,
		AllowedHosts: commaList{"a.example", "b.example"}, MetricsAddr: "127.0.0.1:9464",
	}
	with := func(c serveConfig, f func(*serveConfig)) serveConfig { f(&c); return c }
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want serveConfig
	}{
		{"defaults", nil, nil, defaults},
		{"flags", []string{"--addr", ":1", "--data=d", "--log-level", "debug", "--log-format", "json",
			"--max-body-bytes", "1MiB", "--max-batch-events", "3", "--future-skew", "0", "--max-age", "1h",
			"--commit-batch-events", "4", "--queue-events", "8", "--shutdown-timeout", "1s", "--event-log", "sqlite",
			"--postgres", "postgres://flag@db/x", "--postgres-max-conns", "5", "--no-migrate", "--usage-cache-hours", "0", "--usage-rollups=false",
			"--no-export", "--export-interval", "1m", "--outcome-log-size", "0", "--max-conns-per-addr", "0",
			"--idle-timeout", "5s", "--body-timeout", "1s", "--max-inflight-body", "1GiB", "--allowed-hosts", "h1, h2",
			"--allowed-hosts", "h3", "--metrics-addr", ":9464", "--max-query-groups", "7", "--identity-filter-bytes", "1MiB"}, nil,
			serveConfig{Addr: ":1", Data: "d", EventLog: "sqlite", LogLevel: slog.LevelDebug, LogFormat: "json", MaxBodyBytes: 1 << 20,
				MaxBatchEvents: 3, MaxAge: time.Hour, CommitBatchEvents: 4, QueueEvents: 8, ShutdownTimeout: time.Second,
				Postgres: "postgres://flag@db/x", PostgresMaxConns: 5, NoMigrate: true, NoExport: true, ExportInterval: time.Minute,
				MaxConns: 10000, MaxQueryWindows: 10000, MaxQueryGroups: 7, HeaderTimeout: 10 * time.Second,
				IdleTimeout: 5 * time.Second, BodyTimeout: time.Second, MaxInflightBody: 1 << 30,
				AllowedHosts: commaList{"h1", "h2", "h3"}, MetricsAddr: ":9464", IdentityFilterBytes: 1 << 20}},
		{"env", nil, map[string]string{"ODOMETER_ADDR": ":2", "ODOMETER_MAX_BODY_BYTES": "1000", "ODOMETER_LOG_LEVEL": "error",
			"ODOMETER_FUTURE_SKEW": "2h", "ODOMETER_QUEUE_EVENTS": "9", "ODOMETER_POSTGRES": "postgres://env@db/y",
			"ODOMETER_ALLOWED_HOSTS": "x.example,y.example"},
			with(defaults, func(c *serveConfig) {
				c.Addr, c.MaxBodyBytes, c.LogLevel, c.FutureSkew, c.QueueEvents = ":2", 1000, slog.LevelError, 2*time.Hour, 9
				c.Postgres = "postgres://env@db/y"
				c.AllowedHosts = commaList{"x.example", "y.example"}
			})},
		{"flag beats env", []string{"--addr", ":1"}, map[string]string{"ODOMETER_ADDR": ":2", "ODOMETER_DATA": "e"},
			with(defaults, func(c *serveConfig) { c.Addr, c.Data = ":1", "e" })},
		{"config", []string{"--config", cfgFile}, nil, fromConfig},
		{"config from env", nil, map[string]string{"ODOMETER_CONFIG": cfgFile}, fromConfig},
		{"env beats config", []string{"--config", cfgFile}, map[string]string{"ODOMETER_ADDR": ":2", "ODOMETER_MAX_AGE": "1m"},
			with(fromConfig, func(c *serveConfig) { c.Addr, c.MaxAge = ":2", time.Minute })},
		{"flag beats env and config", []string{"--config", cfgFile, "--addr", ":1", "--max-age", "0"},
			map[string]string{"ODOMETER_ADDR": ":2"},
			with(fromConfig, func(c *serveConfig) { c.Addr, c.MaxAge = ":1", 0 })},
		{"empty env is unset", nil, map[string]string{"ODOMETER_ADDR": ""}, defaults},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			got, err := parseServeConfig(&env{getenv: mapEnv(tt.env), stderr: &stderr}, tt.args)
			if err != nil {
				t.Fatalf("parseServeConfig: %v\n%s", err, stderr.String())
			}
			if got.Meters != nil {
				t.Errorf("meters = %v; want none", got.Meters)
			}
			got.Meters = nil
			// Neither the flags nor this file declare AWS accounts: the
			// implicit default (TestAccountsConfig reads them).
			if as := got.Accounts.List(); len(as) != 1 || as[0].Name != export.DefaultAccountName {
				t.Errorf("accounts = %+v; want the implicit default", as)
			}
			got.Accounts = nil
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServeConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badValue := write("bad-value.yaml", "addr: x\nlimits:\n  futureSkew: soon\n")
	typo := write("typo.yaml", "addr: x\nlimits:\n  maxBodyByte: 10\n")
	topTypo := write("top.yaml", "adr: x\n")
	meterTypo := write("meter-typo.yaml", "meters:\n  - slug: a\n    eventType: e\n    aggregation: COUNT\n    valueProp: $.x\n")
	badMeter := write("bad-meter.yaml", "meters:\n  - slug: a\n    eventType: e\n    aggregation: SUM\n")
	twice := write("twice.yaml", "meters:\n  - {slug: a, eventType: e, aggregation: COUNT}\n  - {slug: a, eventType: f, aggregation: COUNT}\n")
	listValue := write("list.yaml", "addr: [a, b]\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"bad env", nil, map[string]string{"ODOMETER_MAX_AGE": "forever"}, []string{"$ODOMETER_MAX_AGE", "forever"}},
		{"bad env enum", nil, map[string]string{"ODOMETER_LOG_FORMAT": "xml"}, []string{"$ODOMETER_LOG_FORMAT", "text, json"}},
		{"bad flag", []string{"--max-body-bytes", "lots"}, nil, []string{"max-body-bytes"}},
		{"unknown flag", []string{"--nope"}, nil, []string{"nope"}},
		{"arguments", []string{"extra"}, nil, []string{"no arguments"}},
		{"negative", []string{"--queue-events", "-1"}, nil, []string{"--queue-events must be positive"}},
		{"no query groups", []string{"--max-query-groups", "0"}, nil, []string{"--max-query-groups must be positive"}},
		{"negative outcome log", []string{"--outcome-log-size", "-1"}, nil, []string{"--outcome-log-size must not be negative"}},
		{"missing file", []string{"--config", filepath.Join(dir, "missing.yaml")}, nil, []string{"missing.yaml"}},
		{"bad config value", []string{"--config", badValue}, nil, []string{badValue + ":3", "limits.futureSkew", "soon"}},
		{"unknown key", []string{"--config", typo}, nil, []string{typo, `line 3: unknown key "maxBodyByte"`}},
		{"unknown top key", []string{"--config", topTypo}, nil, []string{"line 1", `unknown key "adr"`}},
		{"unknown meter key", []string{"--config", meterTypo}, nil, []string{`line 5: unknown key "valueProp"`}},
		{"invalid meter", []string{"--config", badMeter}, nil, []string{`meters[0] ("a")`, "valueProperty", "required for SUM"}},
		{"meter twice", []string{"--config", twice}, nil, []string{`meters[1]`, `"a" is declared twice`}},
		{"list value", []string{"--config", listValue}, nil, []string{"line 1", "single value"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseServeConfig(&env{getenv: mapEnv(tt.env), stderr: &bytes.Buffer{}}, tt.args)
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"0": 0, "1536": 1536, "16MiB": 16 << 20, "2 KiB": 2048, "1GB": 1e9, "5B": 5, "3KB": 3000} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "MiB", "1TB", "9223372036854775807KiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) = %d; want an error", in, b)
		}
	}
	for n, want := range map[int64]string{16 << 20: "16MiB", 1536: "1536", 2048: "2KiB", 0: "0", 3 << 30: "3GiB"} {
		b := byteSize(n)
		if got := b.String(); got != want {
			t.Errorf("String(%d) = %q; want %q", n, got, want)
		}
	}
}

func TestRunUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		code     int
		stdout   string // substring
		stderr   string // substring
		noStdout bool
	}{
		{args: nil, code: 2, stderr: "Commands:", noStdout: true},
		{args: []string{"help"}, code: 0, stdout: "  serve     run the server"},
		{args: []string{"frobnicate"}, code: 2, stderr: `unknown command "frobnicate"`, noStdout: true},
		{args: []string{"serve", "-h"}, code: 0, stderr: "--max-body-bytes bytes"},
		{args: []string{"help", "serve"}, code: 0, stderr: "[$ODOMETER_MAX_BODY_BYTES]"},
		{args: []string{"ingest"}, code: 2, stderr: "ingest takes one argument"},
		{args: []string{"query", "--format", "xml", "m"}, code: 2, stderr: "table, csv, json"},
		{args: []string{"version"}, code: 0, stdout: "odometer devel (" + runtime.Version() + ")\n"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), tt.args, mapEnv(nil), strings.NewReader(""), &stdout, &stderr)
		code := exitCode(err, &stderr)
		if code != tt.code {
			t.Errorf("%q: exit code %d (err %v); want %d", tt.args, code, err, tt.code)
		}
		if !strings.Contains(stdout.String(), tt.stdout) || tt.noStdout && stdout.Len() > 0 {
			t.Errorf("%q: stdout %q; want it to contain %q", tt.args, stdout.String(), tt.stdout)
		}
		if !strings.Contains(stderr.String(), tt.stderr) {
			t.Errorf("%q: stderr %q; want it to contain %q", tt.args, stderr.String(), tt.stderr)
		}
	}
}

// The example config file in the repository is valid.
func TestExampleConfig(t *testing.T) {
	t.Parallel()
	lc, err := loadConfigFile(filepath.Join("..", "..", "examples", "odometer.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(lc.meters) == 0 || len(lc.exports) != 1 {
		t.Fatalf("example config: %d meters, %d exports", len(lc.meters), len(lc.exports))
	}
}

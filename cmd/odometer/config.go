package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/odometerhq/odometer"
)

// fileConfig is the YAML config file of serve. Unknown keys are an error.
//
//	addr: 127.0.0.1:8888
//	data: ./data
//	eventLog: pebble
//	postgres: postgres://odometer@db.internal:5432/odometer   # instead of data
//	postgresMaxConns: 16
//	noMigrate: false
//	shutdownTimeout: 10s
//	log: {level: info, format: text}
//	limits: {maxBodyBytes: 16MiB, maxBatchEvents: 10000, futureSkew: 24h, maxAge: 0}
//	ingest: {commitBatchEvents: 20000, queueEvents: 200000}
//	usageCacheHours: 500000
//	meters:
//	  - slug: tokens
//	    eventType: prompt
//	    aggregation: SUM
//	    valueProperty: $.tokens
//	    groupBy: {model: $.model}
type fileConfig struct {
	Addr            *scalar `yaml:"addr"`
	Data            *scalar `yaml:"data"`
	EventLog        *scalar `yaml:"eventLog"`
	Postgres        *scalar `yaml:"postgres"`
	PostgresMaxConn *scalar `yaml:"postgresMaxConns"`
	NoMigrate       *scalar `yaml:"noMigrate"`
	ShutdownTimeout *scalar `yaml:"shutdownTimeout"`
	Log             struct {
		Level  *scalar `yaml:"level"`
		Format *scalar `yaml:"format"`
	} `yaml:"log"`
	Limits struct {
		MaxBodyBytes   *scalar `yaml:"maxBodyBytes"`
		MaxBatchEvents *scalar `yaml:"maxBatchEvents"`
		FutureSkew     *scalar `yaml:"futureSkew"`
		MaxAge         *scalar `yaml:"maxAge"`
	} `yaml:"limits"`
	Ingest struct {
		CommitBatchEvents *scalar `yaml:"commitBatchEvents"`
		QueueEvents       *scalar `yaml:"queueEvents"`
	} `yaml:"ingest"`
	UsageCacheHours *scalar       `yaml:"usageCacheHours"`
	Meters          []configMeter `yaml:"meters"`
}

// configMeter is a meter definition, with the field names of the API.
type configMeter struct {
	Slug          string              `yaml:"slug"`
	Name          string              `yaml:"name"`
	Description   string              `yaml:"description"`
	EventType     string              `yaml:"eventType"`
	Aggregation   string              `yaml:"aggregation"`
	ValueProperty string              `yaml:"valueProperty"`
	GroupBy       map[string]string   `yaml:"groupBy"`
	Filters       map[string][]string `yaml:"filters"`
	EventFrom     *time.Time          `yaml:"eventFrom"`
}

// scalar is a single YAML value, kept as text so that the flag it stands
// for parses it exactly as it parses the command line.
type scalar struct {
	value string
	line  int
}

func (s *scalar) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a single value, not a list or a mapping", n.Line)
	}
	s.value, s.line = n.Value, n.Line
	return nil
}

// setting is a config file value for a flag.
type setting struct {
	key   string // as written in the file, e.g. limits.maxBodyBytes
	value string
	line  int
}

// loadedConfig is a parsed config file.
type loadedConfig struct {
	settings map[string]setting // by flag name
	meters   []*odometer.Meter  // validated
}

// loadConfigFile reads and checks the config file at path.
func loadConfigFile(path string) (*loadedConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	lc, err := parseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return lc, nil
}

// unknownField matches yaml.v3's message about an unknown key.
var unknownField = regexp.MustCompile(`^(line \d+): field (.+) not found in type `)

// parseConfig parses a config file's content.
func parseConfig(b []byte) (*loadedConfig, error) {
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				// Name the key, not the Go type it did not fit.
				if sm := unknownField.FindStringSubmatch(m); sm != nil {
					m = fmt.Sprintf("%s: unknown key %q", sm[1], sm[2])
				} else if j := strings.Index(m, " in type "); j >= 0 {
					m = m[:j]
				}
				msgs[i] = m
			}
			return nil, errors.New(strings.Join(msgs, "; "))
		}
		return nil, err
	}
	lc := &loadedConfig{settings: map[string]setting{}}
	for _, s := range []struct {
		flag, key string
		v         *scalar
	}{
		{"addr", "addr", fc.Addr},
		{"data", "data", fc.Data},
		{"event-log", "eventLog", fc.EventLog},
		{"postgres", "postgres", fc.Postgres},
		{"postgres-max-conns", "postgresMaxConns", fc.PostgresMaxConn},
		{"no-migrate", "noMigrate", fc.NoMigrate},
		{"shutdown-timeout", "shutdownTimeout", fc.ShutdownTimeout},
		{"log-level", "log.level", fc.Log.Level},
		{"log-format", "log.format", fc.Log.Format},
		{"max-body-bytes", "limits.maxBodyBytes", fc.Limits.MaxBodyBytes},
		{"max-batch-events", "limits.maxBatchEvents", fc.Limits.MaxBatchEvents},
		{"future-skew", "limits.futureSkew", fc.Limits.FutureSkew},
		{"max-age", "limits.maxAge", fc.Limits.MaxAge},
		{"commit-batch-events", "ingest.commitBatchEvents", fc.Ingest.CommitBatchEvents},
		{"queue-events", "ingest.queueEvents", fc.Ingest.QueueEvents},
		{"usage-cache-hours", "usageCacheHours", fc.UsageCacheHours},
	} {
		if s.v != nil {
			lc.settings[s.flag] = setting{key: s.key, value: s.v.value, line: s.v.line}
		}
	}
	seen := map[string]bool{}
	for i, cm := range fc.Meters {
		m := &odometer.Meter{
			Slug:          cm.Slug,
			Name:          cm.Name,
			Description:   cm.Description,
			EventType:     cm.EventType,
			Aggregation:   odometer.Aggregation(cm.Aggregation),
			ValueProperty: cm.ValueProperty,
			GroupBy:       cm.GroupBy,
			Filters:       cm.Filters,
			EventFrom:     cm.EventFrom,
		}
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("meters[%d] (%q): %w", i, cm.Slug, err)
		}
		if seen[m.Slug] {
			return nil, fmt.Errorf("meters[%d]: slug %q is declared twice", i, m.Slug)
		}
		seen[m.Slug] = true
		lc.meters = append(lc.meters, m)
	}
	return lc, nil
}

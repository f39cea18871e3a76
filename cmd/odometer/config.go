package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/export"
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
//	identityFilterBytes: 64MiB        # the event log's identity filter (docs/storage.md)
//	noExport: false                   # true: this node never exports
//	exportInterval: 30s
//	insecure: false                   # allow a non-loopback addr without keys
//	tlsCert: /etc/odometer/cert.pem   # with tlsKey: serve HTTPS
//	tlsKey: /etc/odometer/key.pem
//	maxConns: 10000
//	maxConnsPerAddr: 1000             # 0: no limit (behind a load balancer)
//	headerTimeout: 10s
//	idleTimeout: 30s
//	bodyTimeout: 10s                  # a body that stops arriving for this long is cut
//	maxInflightBody: 128MiB           # request bodies in memory, all together
//	allowedHosts: [odometer.internal] # Host names answered without keys, besides localhost and IPs
//	metricsAddr: 127.0.0.1:9464       # /metrics without a key, on its own listener
//	rateIngest: 0                     # requests/s per API key; 0: no limit
//	rateQuery: 0
//	maxQueryWindows: 10000
//	maxQueryGroups: 10000             # groups one usage query may return
//	outcomeLogSize: 10000             # rejected and duplicate events remembered; 0: none
//	keys:                             # API keys declared by hash (odometer keys create --offline)
//	  - {id: 01jd…, namespace: default, name: ci, scopes: [ingest], hash: "sha256:…:…"}
//	meters:
//	  - slug: tokens
//	    eventType: prompt
//	    aggregation: SUM
//	    valueProperty: $.tokens
//	    groupBy: {model: $.model}
//	aws:                              # who may export to AWS with what (docs/export-aws.md)
//	  accounts:                       # none: one account "default", the SDK's default
//	                                  # chain, for namespace default and any product code
//	    - name: main                  # a slug, unique; destinations name it as account
//	      namespaces: [default, tenant-a]  # required: who may export with it
//	      productCodes: [prod-abc123] # required: what they may meter; "*": any
//	      region: us-east-1           # default region of its destinations
//	      profile: seller             # shared config profile; default: the SDK's chain
//	      roleArn: arn:aws:iam::123456789012:role/odometer  # assumed with STS
//	      externalId: tenant-a        # with roleArn
//	      endpoint: http://127.0.0.1:4566     # replaces the AWS endpoint (tests)
//	      stsEndpoint: http://127.0.0.1:4566  # replaces the STS endpoint (tests)
//	exports:                          # AWS Marketplace destinations of namespace default
//	  - name: aws                     # a slug, unique
//	    productCode: prod-abc123      # required; allowed by the account
//	    account: main                 # default: the only account granted to default
//	    region: us-east-1             # default: the account's, else the SDK's chain
//	    startHour: 2026-03-01T00:00:00Z  # first UTC hour exported; default: the
//	                                  # destination's, or the hour it is created in
//	    delay: 15m                    # hour end → freeze (above 0, at most 6h)
//	    window: 6h                    # AWS's window, at most 24h
//	    lateHorizon: 24h              # late usage looked for (1h to 744h)
//	    zeroRecords: false
//	    dryRun: false                 # freeze but never send
//	    dimensions:
//	      - dimension: compute_hours  # the AWS dimension
//	        meterSlug: seconds        # a SUM or COUNT meter
//	        groupBy: {kind: gpu}      # only this usage; keys are the meter's
//	        multiply: 1               # quantity = usage × multiply / divide
//	        divide: 36
//	        rounding: DOWN            # or HALF_UP
//	    customers:
//	      - {subject: acme, customerId: cust-1}
//	      - {subject: beta, awsAccountId: "123456789012", licenseArn: arn:aws:license-manager::…}
//	      - {subject: gamma, customerId: cust-3, from: 2026-03-01T09:00:00Z}
//	                                  # from: the first UTC hour exported; default:
//	                                  # the mapping's, or the hour it is created in
//
// At start-up, meters and then export destinations and customers are
// created or updated to match; those absent from the file are left alone.
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
		CommitConcurrency *scalar `yaml:"commitConcurrency"`
		QueueEvents       *scalar `yaml:"queueEvents"`
	} `yaml:"ingest"`
	UsageCacheHours *scalar       `yaml:"usageCacheHours"`
	UsageRollups    *scalar       `yaml:"usageRollups"`
	IdentityFilter  *scalar       `yaml:"identityFilterBytes"`
	NoExport        *scalar       `yaml:"noExport"`
	ExportInterval  *scalar       `yaml:"exportInterval"`
	Meters          []configMeter `yaml:"meters"`
	AWS             struct {
		Accounts []configAccount `yaml:"accounts"`
	} `yaml:"aws"`
	Exports         []configExport `yaml:"exports"`
	Keys            []configKey    `yaml:"keys"`
	Insecure        *scalar        `yaml:"insecure"`
	TLSCert         *scalar        `yaml:"tlsCert"`
	TLSKey          *scalar        `yaml:"tlsKey"`
	MaxConns        *scalar        `yaml:"maxConns"`
	MaxConnsPerAddr *scalar        `yaml:"maxConnsPerAddr"`
	HeaderTimeout   *scalar        `yaml:"headerTimeout"`
	IdleTimeout     *scalar        `yaml:"idleTimeout"`
	BodyTimeout     *scalar        `yaml:"bodyTimeout"`
	MaxInflightBody *scalar        `yaml:"maxInflightBody"`
	AllowedHosts    *scalarList    `yaml:"allowedHosts"`
	MetricsAddr     *scalar        `yaml:"metricsAddr"`
	RateIngest      *scalar        `yaml:"rateIngest"`
	RateQuery       *scalar        `yaml:"rateQuery"`
	MaxQueryWindows *scalar        `yaml:"maxQueryWindows"`
	MaxQueryGroups  *scalar        `yaml:"maxQueryGroups"`
	OutcomeLogSize  *scalar        `yaml:"outcomeLogSize"`
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

// configAccount is an AWS account the operator declares (aws.accounts),
// with the field names of export.Account. Values are kept with their lines,
// for error messages.
type configAccount struct {
	Name         *scalar  `yaml:"name"`
	Namespaces   []scalar `yaml:"namespaces"`
	ProductCodes []scalar `yaml:"productCodes"`
	Region       *scalar  `yaml:"region"`
	Profile      *scalar  `yaml:"profile"`
	RoleARN      *scalar  `yaml:"roleArn"`
	ExternalID   *scalar  `yaml:"externalId"`
	Endpoint     *scalar  `yaml:"endpoint"`
	STSEndpoint  *scalar  `yaml:"stsEndpoint"`
}

// configExport is an export destination with its customers, with the
// field names of the API. Durations, decimals and the start hour are kept
// as text, to be parsed as the API parses them.
type configExport struct {
	Name        string `yaml:"name"`
	ProductCode string `yaml:"productCode"`
	Region      string `yaml:"region"`
	Account     string `yaml:"account"`
	// Endpoint is refused with a pointer to aws.accounts[].endpoint,
	// where it belongs now, rather than as an unknown key.
	Endpoint    *scalar           `yaml:"endpoint"`
	StartHour   *scalar           `yaml:"startHour"`
	Delay       *scalar           `yaml:"delay"`
	Window      *scalar           `yaml:"window"`
	LateHorizon *scalar           `yaml:"lateHorizon"`
	ZeroRecords bool              `yaml:"zeroRecords"`
	DryRun      bool              `yaml:"dryRun"`
	Dimensions  []configDimension `yaml:"dimensions"`
	Customers   []configCustomer  `yaml:"customers"`
}

type configDimension struct {
	Dimension string            `yaml:"dimension"`
	MeterSlug string            `yaml:"meterSlug"`
	GroupBy   map[string]string `yaml:"groupBy"`
	Multiply  *scalar           `yaml:"multiply"`
	Divide    *scalar           `yaml:"divide"`
	Rounding  string            `yaml:"rounding"`
}

type configCustomer struct {
	Subject      string  `yaml:"subject"`
	CustomerID   string  `yaml:"customerId"`
	AWSAccountID string  `yaml:"awsAccountId"`
	LicenseArn   string  `yaml:"licenseArn"`
	From         *scalar `yaml:"from"` // kept as text, parsed as the API parses it
}

// exportDef is an export destination declared in the config file,
// validated (export.Normalize) but not yet checked against the meters.
type exportDef struct {
	Destination *odometer.ExportDestination
	// StartHourSet is false when the file leaves startHour out: the
	// destination then keeps its own, or starts at the hour it is created.
	StartHourSet bool
	Customers    []*odometer.ExportCustomer
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

// scalarList is a YAML list of single values, or one value, for a flag
// of comma-separated values.
type scalarList struct {
	values []string
	line   int
}

func (l *scalarList) UnmarshalYAML(n *yaml.Node) error {
	l.line = n.Line
	switch n.Kind {
	case yaml.ScalarNode:
		l.values = []string{n.Value}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a list of single values", c.Line)
			}
			l.values = append(l.values, c.Value)
		}
	default:
		return fmt.Errorf("line %d: want a value or a list of values", n.Line)
	}
	return nil
}

// joined is the list as one comma-separated scalar; nil when absent.
func (l *scalarList) joined() *scalar {
	if l == nil {
		return nil
	}
	return &scalar{value: strings.Join(l.values, ","), line: l.line}
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
	exports  []*exportDef       // validated
	keys     []*odometer.APIKey // validated
	// accounts are aws.accounts, validated; export.DefaultAccounts() if
	// the file declares none.
	accounts *export.Accounts
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
		{"commit-concurrency", "ingest.commitConcurrency", fc.Ingest.CommitConcurrency},
		{"queue-events", "ingest.queueEvents", fc.Ingest.QueueEvents},
		{"usage-cache-hours", "usageCacheHours", fc.UsageCacheHours},
		{"usage-rollups", "usageRollups", fc.UsageRollups},
		{"identity-filter-bytes", "identityFilterBytes", fc.IdentityFilter},
		{"no-export", "noExport", fc.NoExport},
		{"export-interval", "exportInterval", fc.ExportInterval},
		{"insecure", "insecure", fc.Insecure},
		{"tls-cert", "tlsCert", fc.TLSCert},
		{"tls-key", "tlsKey", fc.TLSKey},
		{"max-conns", "maxConns", fc.MaxConns},
		{"max-conns-per-addr", "maxConnsPerAddr", fc.MaxConnsPerAddr},
		{"header-timeout", "headerTimeout", fc.HeaderTimeout},
		{"idle-timeout", "idleTimeout", fc.IdleTimeout},
		{"body-timeout", "bodyTimeout", fc.BodyTimeout},
		{"max-inflight-body", "maxInflightBody", fc.MaxInflightBody},
		{"allowed-hosts", "allowedHosts", fc.AllowedHosts.joined()},
		{"metrics-addr", "metricsAddr", fc.MetricsAddr},
		{"rate-ingest", "rateIngest", fc.RateIngest},
		{"rate-query", "rateQuery", fc.RateQuery},
		{"max-query-windows", "maxQueryWindows", fc.MaxQueryWindows},
		{"max-query-groups", "maxQueryGroups", fc.MaxQueryGroups},
		{"outcome-log-size", "outcomeLogSize", fc.OutcomeLogSize},
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
	accounts, err := parseAccounts(fc.AWS.Accounts, itemLines(b, "aws", "accounts"))
	if err != nil {
		return nil, err
	}
	lc.accounts = accounts
	lines := itemLines(b, "exports")
	names := map[string]int{}
	for i, ce := range fc.Exports {
		def, err := ce.parse(time.Now())
		where := fmt.Sprintf("exports[%d] (%q", i, ce.Name)
		if i < len(lines) {
			where += fmt.Sprintf(", line %d", lines[i])
		}
		if err != nil {
			return nil, fmt.Errorf("%s): %w", where, err)
		}
		if first, dup := names[ce.Name]; dup {
			return nil, fmt.Errorf("%s): name %q is exports[%d]'s already", where, ce.Name, first)
		}
		names[ce.Name] = i
		lc.exports = append(lc.exports, def)
	}
	keys, err := parseConfigKeys(fc.Keys)
	if err != nil {
		return nil, err
	}
	lc.keys = keys
	return lc, nil
}

// parse checks an export destination of the config file as the API checks
// one (export.Normalize, export.CheckCustomer) and returns it. Its error
// names every bad field, as the API would.
func (ce *configExport) parse(now time.Time) (*exportDef, error) {
	var fields []odometer.FieldError
	bad := func(field string, line int, format string, args ...any) {
		reason := fmt.Sprintf(format, args...)
		if line > 0 {
			reason = fmt.Sprintf("line %d: %s", line, reason)
		}
		fields = append(fields, odometer.FieldError{Index: -1, Field: field, Reason: reason})
	}
	d := &odometer.ExportDestination{Name: ce.Name, ProductCode: ce.ProductCode, Region: ce.Region, Account: ce.Account,
		ZeroRecords: ce.ZeroRecords, DryRun: ce.DryRun}
	if ce.Endpoint != nil {
		bad("endpoint", ce.Endpoint.line, "is set per AWS account now: move it to aws.accounts[].endpoint and name the account with account")
	}
	if ce.StartHour != nil {
		t, err := time.Parse(time.RFC3339, ce.StartHour.value)
		if err != nil {
			bad("startHour", ce.StartHour.line, "must be an RFC 3339 time such as 2026-03-01T00:00:00Z; got %q", ce.StartHour.value)
		}
		d.StartHour = t
	}
	for _, f := range []struct {
		name string
		v    *scalar
		d    *time.Duration
		def  time.Duration
	}{
		{"delay", ce.Delay, &d.Delay, export.DefaultDelay},
		{"window", ce.Window, &d.Window, export.DefaultWindow},
		{"lateHorizon", ce.LateHorizon, &d.LateHorizon, export.DefaultLateHorizon},
	} {
		if f.v == nil {
			continue
		}
		v, err := time.ParseDuration(f.v.value)
		switch {
		case err != nil:
			bad(f.name, f.v.line, "must be a duration such as 15m or 6h; got %q", f.v.value)
		case v == 0:
			// Normalize takes 0 for "unset"; a 0 written is refused
			// rather than silently replaced.
			bad(f.name, f.v.line, "must be above 0; leave it out for the default %s", f.def)
		default:
			*f.d = v
		}
	}
	for i, cd := range ce.Dimensions {
		dim := odometer.ExportDimension{Dimension: cd.Dimension, MeterSlug: cd.MeterSlug, GroupBy: cd.GroupBy, Rounding: cd.Rounding}
		for _, f := range []struct {
			name string
			v    *scalar
			d    *odometer.Decimal
		}{{"multiply", cd.Multiply, &dim.Multiply}, {"divide", cd.Divide, &dim.Divide}} {
			if f.v == nil {
				continue
			}
			field := fmt.Sprintf("dimensions[%d].%s", i, f.name)
			v, err := odometer.ParseDecimal(f.v.value)
			switch {
			case err != nil:
				bad(field, f.v.line, "must be a decimal number; got %q", f.v.value)
			case v.IsZero():
				bad(field, f.v.line, "must be positive; got 0 (leave it out for 1)")
			default:
				*f.d = v
			}
		}
		d.Dimensions = append(d.Dimensions, dim)
	}
	if err := export.Normalize(d, now); err != nil {
		fields = append(fields, odometer.ErrorFields(err)...)
	}
	def := &exportDef{Destination: d, StartHourSet: ce.StartHour != nil}
	subjects := map[string]int{}
	for i, cc := range ce.Customers {
		prefix := fmt.Sprintf("customers[%d].", i)
		c := &odometer.ExportCustomer{Destination: ce.Name, Subject: cc.Subject, CustomerID: cc.CustomerID,
			AWSAccountID: cc.AWSAccountID, LicenseArn: cc.LicenseArn}
		if cc.From != nil {
			// The rules that need the destination's state and the clock
			// (odometer.CheckExportCustomerFrom) are checked by syncExports.
			t, err := time.Parse(time.RFC3339, cc.From.value)
			switch {
			case err != nil:
				bad(prefix+"from", cc.From.line, "must be an RFC 3339 time such as 2026-03-01T09:00:00Z; got %q", cc.From.value)
			case !t.Truncate(time.Hour).Equal(t):
				bad(prefix+"from", cc.From.line, "must be a whole UTC hour; got %s", cc.From.value)
			default:
				c.From = t.UTC()
			}
		}
		if err := export.CheckCustomer(c); err != nil {
			for _, f := range odometer.ErrorFields(err) {
				bad(prefix+f.Field, 0, "%s", f.Reason)
			}
			continue
		}
		if first, dup := subjects[c.Subject]; dup {
			bad(prefix+"subject", 0, "%q is customers[%d] already", c.Subject, first)
			continue
		}
		if err := export.CheckCustomerUnique(c, def.Customers); err != nil {
			bad(prefix+"subject", 0, "%s", odometer.ErrorMessage(err))
			continue
		}
		subjects[c.Subject] = i
		def.Customers = append(def.Customers, c)
	}
	if len(fields) > 0 {
		return nil, &odometer.Error{Code: odometer.EINVALID, Message: "invalid export destination", Fields: fields}
	}
	return def, nil
}

// itemLines returns the line of each item of the file's list at path
// (keys of nested mappings, e.g. "aws", "accounts"), for error messages.
func itemLines(b []byte, path ...string) []int {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	n := doc.Content[0]
	for _, key := range path {
		var next *yaml.Node
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	var lines []int
	for _, item := range n.Content {
		lines = append(lines, item.Line)
	}
	return lines
}

// parseAccounts checks the file's aws.accounts (export.NewAccounts); none
// declared is the implicit default (export.DefaultAccounts). Its error
// names each bad key as aws.accounts[1].namespaces[0], with its line.
// items holds each account's line.
func parseAccounts(cas []configAccount, items []int) (*export.Accounts, error) {
	if len(cas) == 0 {
		return export.DefaultAccounts(), nil
	}
	lines := map[string]int{} // by field, as export.NewAccounts names it
	val := func(field string, v *scalar) string {
		if v == nil {
			return ""
		}
		lines[field] = v.line
		return v.value
	}
	list := func(field string, vs []scalar) []string {
		out := make([]string, len(vs))
		for j := range vs {
			out[j] = val(fmt.Sprintf("%s[%d]", field, j), &vs[j])
		}
		return out
	}
	accts := make([]export.Account, len(cas))
	for i, ca := range cas {
		f := func(name string) string { return fmt.Sprintf("accounts[%d].%s", i, name) }
		if i < len(items) {
			lines[fmt.Sprintf("accounts[%d]", i)] = items[i]
		}
		accts[i] = export.Account{
			Name:         val(f("name"), ca.Name),
			Namespaces:   list(f("namespaces"), ca.Namespaces),
			ProductCodes: list(f("productCodes"), ca.ProductCodes),
			Region:       val(f("region"), ca.Region),
			Profile:      val(f("profile"), ca.Profile),
			RoleARN:      val(f("roleArn"), ca.RoleARN),
			ExternalID:   val(f("externalId"), ca.ExternalID),
			Endpoint:     val(f("endpoint"), ca.Endpoint),
			STSEndpoint:  val(f("stsEndpoint"), ca.STSEndpoint),
		}
	}
	as, err := export.NewAccounts(accts)
	if err == nil {
		return as, nil
	}
	var msgs []string
	for _, fe := range odometer.ErrorFields(err) {
		// A key left out has no line: the account's item has.
		field := fe.Field
		line, ok := lines[field]
		for !ok && field != "" {
			field = field[:max(strings.LastIndexAny(field, ".["), 0)]
			line, ok = lines[field]
		}
		m := "aws." + fe.Field + ": "
		if ok {
			m += fmt.Sprintf("line %d: ", line)
		}
		// Reasons that point at another account's field name it as the
		// file does, too.
		msgs = append(msgs, m+strings.ReplaceAll(fe.Reason, "accounts[", "aws.accounts["))
	}
	return nil, fmt.Errorf("invalid AWS accounts: %s", strings.Join(msgs, "; "))
}

// logAccounts says at start-up who may export to AWS with what.
func logAccounts(log *slog.Logger, accounts *export.Accounts) {
	for _, a := range accounts.List() {
		log.Info("AWS account", "account", a.Name, "namespaces", a.Namespaces, "productCodes", a.ProductCodes,
			"profile", a.Profile, "roleArn", a.RoleARN, "endpoint", a.Endpoint)
	}
}

// syncExports makes the export destinations and customers of namespace
// "default" match the config, after syncMeters. Each destination must be
// allowed its account and product code by accounts, as through the API
// (export.Accounts.Authorize); the account it names, or the only one
// granted, is stored. A destination is created
// or its definition replaced (what is frozen stays), and each listed
// customer mapping is created or replaced. Unchanged ones are not written.
// A customer without from keeps the mapping's; a from that changes the
// mapping's first hour must pass odometer.CheckExportCustomerFrom at now.
// Every dimension must name a SUM or COUNT meter with its group-by keys
// (export.CheckMeters). Destinations and customers absent from the config
// are left alone, as meters are.
func syncExports(ctx context.Context, store odometer.Store, defs []*exportDef, accounts *export.Accounts, now time.Time, log *slog.Logger) error {
	const ns = "default"
	now = now.UTC().Truncate(odometer.TimePrecision)
	for _, def := range defs {
		d := *def.Destination
		d.Namespace = ns
		d.Dimensions = slices.Clone(d.Dimensions) // CheckMeters may rename meters
		acct, err := accounts.Authorize(ns, d.Account, d.ProductCode, d.Region)
		if err != nil {
			return fmt.Errorf("export destination %q: %w", d.Name, err)
		}
		d.Account = acct.Name
		old, err := store.FindExportDestination(ctx, ns, d.Name)
		switch {
		case odometer.ErrorCode(err) == odometer.ENOTFOUND:
			old = nil
		case err != nil:
			return fmt.Errorf("find export destination %q: %w", d.Name, err)
		}
		if !def.StartHourSet {
			// Moving the start to now at every start-up would skip the
			// hours not frozen while the server was down.
			d.StartHour = now.Truncate(time.Hour)
			if old != nil {
				d.StartHour = old.StartHour
			}
		}
		if err := export.CheckMeters(ctx, &d, store); err != nil {
			return fmt.Errorf("export destination %q: %w", d.Name, err)
		}
		if old == nil || !sameDestination(old, &d) {
			d.CreatedAt, d.UpdatedAt = now, now
			created, err := store.PutExportDestination(ctx, &d)
			if err != nil {
				return fmt.Errorf("put export destination %q: %w", d.Name, err)
			}
			if created {
				log.Info("export destination created from config", "destination", d.Name)
			} else {
				log.Info("export destination updated from config", "destination", d.Name)
			}
		}
		existing, err := store.ListExportCustomers(ctx, ns, d.Name)
		if err != nil {
			return fmt.Errorf("list customers of export destination %q: %w", d.Name, err)
		}
		for _, cdef := range def.Customers {
			c := *cdef
			c.Namespace, c.Destination = ns, d.Name
			i := slices.IndexFunc(existing, func(o *odometer.ExportCustomer) bool { return o.Subject == c.Subject })
			var prev *odometer.ExportCustomer
			if i >= 0 {
				prev = existing[i]
				if c.From.IsZero() {
					c.From = prev.From // left out: kept, as the API keeps it
				}
			}
			if prev != nil && prev.CustomerID == c.CustomerID && prev.AWSAccountID == c.AWSAccountID &&
				prev.LicenseArn == c.LicenseArn && prev.From.Equal(c.From) {
				continue
			}
			if err := odometer.CheckExportCustomerFrom(&c, prev, &d, now); err != nil {
				return fmt.Errorf("export destination %q: customer of subject %q: from: %s", d.Name, c.Subject, odometer.ErrorFields(err)[0].Reason)
			}
			if err := export.CheckCustomerUnique(&c, existing); err != nil {
				return fmt.Errorf("export destination %q: customer of subject %q: %w", d.Name, c.Subject, err)
			}
			c.CreatedAt, c.UpdatedAt = now, now
			if err := store.PutExportCustomer(ctx, &c); err != nil {
				return fmt.Errorf("put customer %q of export destination %q: %w", c.Subject, d.Name, err)
			}
			if i >= 0 {
				existing[i] = &c
			} else {
				existing = append(existing, &c)
			}
			log.Info("export customer set from config", "destination", d.Name, "subject", c.Subject)
		}
	}
	return nil
}

// sameDestination reports whether a and b have the same definition.
func sameDestination(a, b *odometer.ExportDestination) bool {
	return a.ProductCode == b.ProductCode && a.Region == b.Region && a.Account == b.Account &&
		a.StartHour.Equal(b.StartHour) && a.Delay == b.Delay && a.Window == b.Window && a.LateHorizon == b.LateHorizon &&
		a.ZeroRecords == b.ZeroRecords && a.DryRun == b.DryRun &&
		slices.EqualFunc(a.Dimensions, b.Dimensions, func(x, y odometer.ExportDimension) bool {
			return x.Dimension == y.Dimension && x.MeterSlug == y.MeterSlug && x.Rounding == y.Rounding &&
				x.Multiply.Cmp(y.Multiply) == 0 && x.Divide.Cmp(y.Divide) == 0 &&
				equalMaps(x.GroupBy, y.GroupBy, func(p, q string) bool { return p == q })
		})
}

// configKey is an API key declared in the config file by its hash, as
// "odometer keys create --offline" prints it.
type configKey struct {
	ID        string   `yaml:"id"`
	Namespace string   `yaml:"namespace"`
	Name      string   `yaml:"name"`
	Scopes    []string `yaml:"scopes"`
	Hash      string   `yaml:"hash"`
}

// parseConfigKeys checks the config file's keys.
func parseConfigKeys(cks []configKey) ([]*odometer.APIKey, error) {
	var keys []*odometer.APIKey
	seen := map[string]int{}
	for i, ck := range cks {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("keys[%d] (%q): %s", i, ck.ID, fmt.Sprintf(format, args...))
		}
		if _, _, err := odometer.ParseToken("odo_" + ck.ID + "_x"); err != nil {
			return nil, bad("id must be the 26-character id that odometer keys create printed")
		}
		if first, dup := seen[ck.ID]; dup {
			return nil, bad("id is keys[%d]'s already", first)
		}
		seen[ck.ID] = i
		if ck.Namespace == "" {
			return nil, bad("namespace is required")
		}
		if err := odometer.CheckScopes(ck.Scopes); err != nil {
			return nil, bad("%v", err)
		}
		salt, hash, err := odometer.ParseKeyHash(ck.Hash)
		if err != nil {
			return nil, bad("%v", err)
		}
		keys = append(keys, &odometer.APIKey{ID: ck.ID, Namespace: ck.Namespace, Name: ck.Name,
			Scopes: ck.Scopes, Salt: salt, Hash: hash})
	}
	return keys, nil
}

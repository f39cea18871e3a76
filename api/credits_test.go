package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/odometerhq/odometer/api"
	"github.com/odometerhq/odometer/postgres"
	"github.com/odometerhq/odometer/postgres/pgtest"
)

// clock is a test clock that the tests move; the server reads it through
// Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// set moves the clock to a tm time.
func (c *clock) set(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = mustTime(s)
}

// tick moves the clock on by a second, so that grants created one after
// the other have distinct CreatedAt times (which order them) while staying
// in the same minute.
func (c *clock) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
}

// minute returns the clock's current whole minute.
func (c *clock) minute() time.Time { return c.Now().Truncate(time.Minute) }

// tm turns "2025-01-02 10:00" (UTC) into RFC 3339.
func tm(s string) string { return mustTime(s).Format(time.RFC3339) }

func mustTime(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

type featureDoc struct {
	ID                  string            `json:"id"`
	Key                 string            `json:"key"`
	Name                string            `json:"name"`
	MeterSlug           string            `json:"meterSlug"`
	MeterGroupByFilters map[string]string `json:"meterGroupByFilters"`
	Metadata            map[string]string `json:"metadata"`
	CreatedAt           time.Time         `json:"createdAt"`
	UpdatedAt           time.Time         `json:"updatedAt"`
	ArchivedAt          *time.Time        `json:"archivedAt"`
}

type ledgerDoc struct {
	ID            string            `json:"id"`
	Subject       string            `json:"subject"`
	Metadata      map[string]string `json:"metadata"`
	ResetSchedule *struct {
		Interval string    `json:"interval"`
		Anchor   time.Time `json:"anchor"`
		TimeZone string    `json:"timeZone"`
	} `json:"resetSchedule"`
	CreatedAt time.Time `json:"createdAt"`
}

type grantDoc struct {
	ID          string      `json:"id"`
	LedgerID    string      `json:"ledgerId"`
	FeatureID   string      `json:"featureId"`
	Amount      json.Number `json:"amount"`
	Priority    int         `json:"priority"`
	EffectiveAt time.Time   `json:"effectiveAt"`
	Expiration  *struct {
		Count    int    `json:"count"`
		Duration string `json:"duration"`
	} `json:"expiration"`
	ExpiresAt *time.Time `json:"expiresAt"`
	Rollover  *struct {
		Type      string       `json:"type"`
		MaxAmount *json.Number `json:"maxAmount"`
	} `json:"rollover"`
	Recurrence *struct {
		Interval string    `json:"interval"`
		Anchor   time.Time `json:"anchor"`
	} `json:"recurrence"`
	ParentID     string            `json:"parentId"`
	ResetID      string            `json:"resetId"`
	StartBalance *json.Number      `json:"startBalance"`
	Metadata     map[string]string `json:"metadata"`
	CreatedAt    time.Time         `json:"createdAt"`
	VoidedAt     *time.Time        `json:"voidedAt"`
}

type balanceDoc struct {
	At          time.Time  `json:"at"`
	PeriodStart *time.Time `json:"periodStart"`
	Features    []struct {
		Feature   string      `json:"feature"`
		FeatureID string      `json:"featureId"`
		Balance   json.Number `json:"balance"`
		Usage     json.Number `json:"usage"`
		Overage   json.Number `json:"overage"`
		Grants    []struct {
			ID      string      `json:"id"`
			Balance json.Number `json:"balance"`
			Active  bool        `json:"active"`
		} `json:"grants"`
	} `json:"features"`
}

type historyDoc struct {
	From       *time.Time `json:"from"`
	To         time.Time  `json:"to"`
	TotalCount int        `json:"totalCount"`
	Entries    []struct {
		Kind          string       `json:"kind"`
		At            time.Time    `json:"at"`
		Feature       string       `json:"feature"`
		FeatureID     string       `json:"featureId"`
		GrantID       string       `json:"grantId"`
		ParentGrantID string       `json:"parentGrantId"`
		ResetID       string       `json:"resetId"`
		Automatic     *bool        `json:"automatic"`
		Amount        *json.Number `json:"amount"`
		From          *time.Time   `json:"from"`
		To            *time.Time   `json:"to"`
	} `json:"entries"`
}

type resetDoc struct {
	ID          string     `json:"id"`
	LedgerID    string     `json:"ledgerId"`
	EffectiveAt time.Time  `json:"effectiveAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	Automatic   bool       `json:"automatic"`
	Grants      []grantDoc `json:"grants"`
}

type accessDoc struct {
	Feature   string      `json:"feature"`
	FeatureID string      `json:"featureId"`
	At        time.Time   `json:"at"`
	HasAccess bool        `json:"hasAccess"`
	Balance   json.Number `json:"balance"`
	Usage     json.Number `json:"usage"`
	Overage   json.Number `json:"overage"`
}

func (a accessDoc) String() string {
	return fmt.Sprintf("hasAccess=%v balance=%s usage=%s overage=%s", a.HasAccess, a.Balance, a.Usage, a.Overage)
}

// credits is a server with a settable clock, a SUM meter "tokens" (events
// of type prompt, value $.tokens, grouped by model) and a feature "ai" on
// it. It names grants for readable assertions.
type credits struct {
	*env
	t      *testing.T
	clk    *clock
	names  map[string]string // grant id → name
	ids    map[string]string // name → grant id
	events int
}

func newCredits(t *testing.T, now string, store ...func(testing.TB) func(*api.Config)) *credits {
	t.Helper()
	clk := &clock{}
	clk.set(now)
	opts := []func(*api.Config){func(c *api.Config) { c.Now = clk.Now }}
	for _, s := range store {
		opts = append(opts, s(t))
	}
	e := newEnv(t, opts...)
	e.ok(201, "POST", "/api/v1/meters", `{"slug":"tokens","aggregation":"SUM","eventType":"prompt",
		"valueProperty":"$.tokens","groupBy":{"model":"$.model"}}`, nil)
	e.ok(201, "POST", "/api/v1/features", `{"key":"ai","meterSlug":"tokens"}`, nil)
	return &credits{env: e, t: t, clk: clk, names: map[string]string{}, ids: map[string]string{}}
}

// ledger creates a ledger for subject; extra holds more JSON members.
func (c *credits) ledger(subject, extra string) string {
	c.t.Helper()
	var l ledgerDoc
	c.ok(201, "POST", "/api/v1/ledgers", fmt.Sprintf(`{"subject":%q%s}`, subject, extra), &l)
	return l.ID
}

// grant creates a grant named name; body is the JSON request.
func (c *credits) grant(ledgerID, name, body string) grantDoc {
	c.t.Helper()
	var g grantDoc
	c.clk.tick()
	c.ok(201, "POST", "/api/v1/ledgers/"+ledgerID+"/grants", body, &g)
	c.name(g.ID, name)
	return g
}

func (c *credits) name(id, name string) {
	c.names[id], c.ids[name] = name, id
}

// use records usage of the feature "ai" (model gpt-4) by subject at a tm
// time.
func (c *credits) use(subject, at, amount string) {
	c.t.Helper()
	c.events++
	c.ok(200, "POST", "/api/v1/events", event(fmt.Sprintf("u%d", c.events), subject, tm(at), fmt.Sprintf(`{"tokens":%s,"model":"gpt-4"}`, amount)), nil)
}

func (c *credits) balance(ledgerID, at string) balanceDoc {
	c.t.Helper()
	q := ""
	if at != "" {
		q = "?at=" + url.QueryEscape(tm(at))
	}
	var b balanceDoc
	c.ok(200, "GET", "/api/v1/ledgers/"+ledgerID+"/balance"+q, nil, &b)
	return b
}

// active renders a feature's active grants as "a:70 b:0" (by name) and its
// overage, as docs/credits.md's scenarios do.
func (c *credits) active(b balanceDoc, feature string) (balances, overage string) {
	c.t.Helper()
	var parts []string
	overage = "0"
	for _, f := range b.Features {
		if f.Feature != feature {
			continue
		}
		overage = f.Overage.String()
		for _, g := range f.Grants {
			if g.Active {
				parts = append(parts, c.names[g.ID]+":"+g.Balance.String())
			}
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, " "), overage
}

// check asserts the active balances and the overage of "ai" at a tm time.
func (c *credits) check(ledgerID, at, balances, overage string) {
	c.t.Helper()
	gotB, gotO := c.active(c.balance(ledgerID, at), "ai")
	if gotB != balances || gotO != overage {
		c.t.Errorf("balance at %s: %q overage %s; want %q overage %s", at, gotB, gotO, balances, overage)
	}
}

// history renders the entries of a history query as lines
// "01-02 10:00 KIND name amount [from..to)".
func (c *credits) history(ledgerID, query string) []string {
	c.t.Helper()
	var h historyDoc
	c.ok(200, "GET", "/api/v1/ledgers/"+ledgerID+"/history"+query, nil, &h)
	var out []string
	short := func(t time.Time) string { return t.UTC().Format("01-02 15:04") }
	for _, e := range h.Entries {
		s := short(e.At) + " " + e.Kind
		if e.GrantID != "" {
			s += " " + c.names[e.GrantID]
		}
		if e.Amount != nil {
			s += " " + e.Amount.String()
		}
		if e.From != nil {
			s += " [" + short(*e.From) + ".." + short(*e.To) + ")"
		}
		if e.Automatic != nil && *e.Automatic {
			s += " automatic"
		}
		out = append(out, s)
	}
	return out
}

func wantLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n%s\nwant:\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func (c *credits) access(ledgerID, query string) accessDoc {
	c.t.Helper()
	var a accessDoc
	c.ok(200, "GET", "/api/v1/ledgers/"+ledgerID+"/access?"+query, nil, &a)
	return a
}

// grantJSON is a grant of "ai" of amount effective at a tm time; extra holds
// more JSON members.
func grantJSON(amount, effective, extra string) string {
	return fmt.Sprintf(`{"feature":"ai","amount":%s,"effectiveAt":%q%s}`, amount, tm(effective), extra)
}

const p0 = "2025-01-01 00:00"

func TestFeaturesAPI(t *testing.T) {
	t.Parallel()
	c := newCredits(t, "2025-03-01 12:00")
	c.ok(201, "POST", "/api/v1/meters", `{"slug":"latency","aggregation":"AVG","eventType":"req","valueProperty":"$.ms"}`, nil)
	c.ok(201, "POST", "/api/v1/meters", `{"slug":"calls","aggregation":"COUNT","eventType":"call"}`, nil)

	var f featureDoc
	resp := c.ok(201, "POST", "/api/v1/features", `{"key":"gpt4","name":"GPT-4 tokens","meterSlug":"tokens",
		"meterGroupByFilters":{"model":"gpt-4"},"metadata":{"tier":"pro"}}`, &f)
	if len(f.ID) != 26 || f.Key != "gpt4" || f.Name != "GPT-4 tokens" || f.MeterSlug != "tokens" ||
		f.MeterGroupByFilters["model"] != "gpt-4" || f.Metadata["tier"] != "pro" || f.ArchivedAt != nil ||
		!f.CreatedAt.Equal(c.clk.Now()) {
		t.Fatalf("created %+v", f)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/v1/features/"+f.ID {
		t.Errorf("Location %q", loc)
	}
	// A COUNT meter, named by id; the name defaults to the key.
	var calls featureDoc
	var m meterDoc
	c.ok(200, "GET", "/api/v1/meters/calls", nil, &m)
	c.ok(201, "POST", "/api/v1/features", `{"key":"calls","meter":"`+m.ID+`"}`, &calls)
	if calls.Name != "calls" || calls.MeterSlug != "calls" {
		t.Fatalf("COUNT feature %+v", calls)
	}

	// Field errors name each field.
	wantFields(t, c.problem(400, "POST", "/api/v1/features", `{"key":"bad key","meter":"nope"}`), "key", "meter")
	wantFields(t, c.problem(400, "POST", "/api/v1/features", `{"key":"k"}`), "meter")
	wantFields(t, c.problem(400, "POST", "/api/v1/features", `{"key":"k","meter":"tokens","meterSlug":"latency"}`), "meterSlug")
	p := c.problem(400, "POST", "/api/v1/features", `{"key":"lat","meter":"latency"}`)
	wantFields(t, p, "meter")
	if !strings.Contains(p.Errors[0].Reason, "SUM or COUNT") {
		t.Errorf("AVG meter: %q", p.Errors[0].Reason)
	}
	p = c.problem(400, "POST", "/api/v1/features", `{"key":"x","meterSlug":"tokens","meterGroupByFilters":{"region":"eu","model":"a"}}`)
	wantFields(t, p, "meterGroupByFilters.region")
	if !strings.Contains(p.Errors[0].Reason, `"region"`) || !strings.Contains(p.Errors[0].Reason, "it has: model") {
		t.Errorf("group-by filter: %q", p.Errors[0].Reason)
	}
	wantFields(t, c.problem(400, "POST", "/api/v1/features", `{"key":"x","meterSlug":"tokens","meterGroupByFilters":{"model":1}}`), "meterGroupByFilters.model")
	wantFields(t, c.problem(400, "POST", "/api/v1/features", `{"key":"x","meterSlug":"tokens","color":"red"}`), "color")
	wantFields(t, c.problem(400, "POST", "/api/v1/features", `{"meterSlug":"tokens"}`), "key")
	p = c.problem(409, "POST", "/api/v1/features", `{"key":"gpt4","meterSlug":"calls"}`)
	if !strings.Contains(p.Detail, "gpt4") {
		t.Errorf("409 detail %q", p.Detail)
	}

	// Get by key and id; list by key.
	var got featureDoc
	c.ok(200, "GET", "/api/v1/features/gpt4", nil, &got)
	if got.ID != f.ID {
		t.Fatalf("get by key %+v", got)
	}
	c.ok(200, "GET", "/api/v1/features/"+f.ID, nil, &got)
	if got.Key != "gpt4" {
		t.Fatalf("get by id %+v", got)
	}
	c.problem(404, "GET", "/api/v1/features/nope", nil)
	var list []featureDoc
	c.ok(200, "GET", "/api/v1/features", nil, &list)
	if len(list) != 3 || list[0].Key != "ai" || list[1].Key != "calls" || list[2].Key != "gpt4" {
		t.Fatalf("list %+v", list)
	}
	wantFields(t, c.problem(400, "GET", "/api/v1/features?includeArchived=maybe", nil), "includeArchived")

	// A feature with grants cannot be deleted; it can be archived, which
	// frees its key and stops new grants.
	l := c.ledger("acme", "")
	c.grant(l, "g", `{"feature":"gpt4","amount":10}`)
	p = c.problem(409, "DELETE", "/api/v1/features/gpt4", nil)
	if !strings.Contains(p.Detail, "archive") {
		t.Errorf("delete with grants: %q", p.Detail)
	}
	var archived featureDoc
	c.ok(200, "POST", "/api/v1/features/gpt4/archive", nil, &archived)
	if archived.ArchivedAt == nil || !archived.ArchivedAt.Equal(c.clk.Now()) {
		t.Fatalf("archived %+v", archived)
	}
	c.problem(409, "POST", "/api/v1/features/"+f.ID+"/archive", nil)
	c.problem(404, "POST", "/api/v1/features/nope/archive", nil)
	c.problem(404, "GET", "/api/v1/features/gpt4", nil) // keys name unarchived features
	c.ok(200, "GET", "/api/v1/features/"+f.ID, nil, &got)
	c.ok(200, "GET", "/api/v1/features", nil, &list)
	if len(list) != 2 {
		t.Fatalf("list without archived: %+v", list)
	}
	c.ok(200, "GET", "/api/v1/features?includeArchived=true", nil, &list)
	if len(list) != 3 {
		t.Fatalf("list with archived: %+v", list)
	}
	p = c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants", `{"feature":"`+f.ID+`","amount":10}`)
	wantFields(t, p, "feature")
	if !strings.Contains(p.Errors[0].Reason, "archived") {
		t.Errorf("grant of an archived feature: %q", p.Errors[0].Reason)
	}
	// The archived feature's grant keeps burning and is listed by its key.
	c.ok(200, "GET", "/api/v1/ledgers/"+l+"/balance", nil, nil)

	var again featureDoc
	c.ok(201, "POST", "/api/v1/features", `{"key":"gpt4","meterSlug":"tokens"}`, &again)
	c.ok(204, "DELETE", "/api/v1/features/gpt4", nil, nil)

	// A meter that features use cannot be deleted, nor lose a group-by key
	// that a feature (archived ones too) filters on; other changes are fine.
	p = c.problem(409, "DELETE", "/api/v1/meters/calls", nil)
	if !strings.Contains(p.Detail, `"calls"`) {
		t.Errorf("delete a meter in use: %q", p.Detail)
	}
	p = c.problem(409, "PUT", "/api/v1/meters/tokens", `{"name":"t","groupBy":{"region":"$.region"}}`)
	if !strings.Contains(p.Detail, `"gpt4" (filters on "model")`) {
		t.Errorf("drop a group-by key in use: %q", p.Detail)
	}
	c.ok(200, "PUT", "/api/v1/meters/tokens", `{"name":"t","groupBy":{"model":"$.model","region":"$.region"}}`, nil)
	c.ok(204, "DELETE", "/api/v1/features/calls", nil, nil)
	c.ok(204, "DELETE", "/api/v1/meters/calls", nil, nil)
	c.problem(404, "GET", "/api/v1/features/"+again.ID, nil)
	c.problem(404, "DELETE", "/api/v1/features/gpt4", nil)
}

func TestLedgersAPI(t *testing.T) {
	t.Parallel()
	c := newCredits(t, "2025-03-01 12:00")
	var l ledgerDoc
	resp := c.ok(201, "POST", "/api/v1/ledgers", `{"subject":"acme","metadata":{"plan":"pro"},
		"resetSchedule":{"interval":"MONTH","anchor":"2025-01-01T00:00:30+01:00","timeZone":"Europe/Berlin"}}`, &l)
	if len(l.ID) != 26 || l.Subject != "acme" || l.Metadata["plan"] != "pro" || l.ResetSchedule == nil ||
		l.ResetSchedule.Interval != "MONTH" || l.ResetSchedule.TimeZone != "Europe/Berlin" ||
		!l.ResetSchedule.Anchor.Equal(mustTime("2024-12-31 23:00")) || !l.CreatedAt.Equal(c.clk.Now()) {
		t.Fatalf("created %+v", l)
	}
	if loc := resp.Header.Get("Location"); loc != "/api/v1/ledgers/"+l.ID {
		t.Errorf("Location %q", loc)
	}
	// One ledger per subject: the conflict names the existing ledger.
	p := c.problem(409, "POST", "/api/v1/ledgers", `{"subject":"acme"}`)
	if !strings.Contains(p.Detail, l.ID) {
		t.Errorf("409 detail %q does not name ledger %s", p.Detail, l.ID)
	}
	// The anchor defaults to the creation minute, the time zone to UTC.
	var d ledgerDoc
	c.ok(201, "POST", "/api/v1/ledgers", `{"subject":"beta","resetSchedule":{"interval":"WEEK"}}`, &d)
	if d.ResetSchedule.TimeZone != "UTC" || !d.ResetSchedule.Anchor.Equal(mustTime("2025-03-01 12:00")) {
		t.Fatalf("defaults %+v", d.ResetSchedule)
	}
	c.ledger("acme-2", "")

	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers", `{"subject":"","resetSchedule":{"interval":"HOUR","timeZone":"Mars/Base"}}`),
		"subject", "resetSchedule.interval", "resetSchedule.timeZone")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers", `{"subject":"x","resetSchedule":{"interval":"DAY","anchor":"soon"}}`), "resetSchedule.anchor")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers", `{"subject":"x","metadata":{"a":1}}`), "metadata.a")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers", `{"subject":"x","owner":"y"}`), "owner")

	var got ledgerDoc
	c.ok(200, "GET", "/api/v1/ledgers/"+l.ID, nil, &got)
	if got.Subject != "acme" || got.ResetSchedule == nil {
		t.Fatalf("get %+v", got)
	}
	c.problem(404, "GET", "/api/v1/ledgers/nope", nil)

	subjects := func(query string) string {
		var ls []ledgerDoc
		c.ok(200, "GET", "/api/v1/ledgers"+query, nil, &ls)
		var s []string
		for _, l := range ls {
			s = append(s, l.Subject)
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct{ query, want string }{
		{"", "acme,acme-2,beta"},
		{"?order=DESC", "beta,acme-2,acme"},
		{"?subject=acme", "acme"},
		{"?subjectLike=cme", "acme,acme-2"},
		{"?limit=1&offset=1", "acme-2"},
		{"?subject=nobody", ""},
	} {
		if got := subjects(tc.query); got != tc.want {
			t.Errorf("GET /api/v1/ledgers%s = %q, want %q", tc.query, got, tc.want)
		}
	}
	for _, tc := range []struct{ query, field string }{
		{"?limit=0", "limit"}, {"?offset=-1", "offset"}, {"?order=UP", "order"}, {"?owner=x", "owner"},
	} {
		wantFields(t, c.problem(400, "GET", "/api/v1/ledgers"+tc.query, nil), tc.field)
	}
}

func TestGrantsAPI(t *testing.T) {
	t.Parallel()
	c := newCredits(t, "2025-03-01 12:00")
	l := c.ledger("acme", "")

	// Every field; times are truncated to the minute.
	g := c.grant(l, "full", `{"feature":"ai","amount":"100.5","priority":3,"effectiveAt":"2025-02-01T10:00:30.5+01:00",
		"expiration":{"count":1,"duration":"MONTH"},"rollover":{"type":"REMAINING_AMOUNT","maxAmount":50},
		"recurrence":{"interval":"WEEK"},"metadata":{"po":"123"}}`)
	var ai featureDoc
	c.ok(200, "GET", "/api/v1/features/ai", nil, &ai)
	if g.LedgerID != l || g.FeatureID != ai.ID || g.Amount.String() != "100.5" || g.Priority != 3 ||
		!g.EffectiveAt.Equal(mustTime("2025-02-01 09:00")) || g.Expiration == nil || g.Expiration.Count != 1 ||
		g.Expiration.Duration != "MONTH" || g.ExpiresAt == nil || !g.ExpiresAt.Equal(mustTime("2025-03-01 09:00")) ||
		g.Rollover == nil || g.Rollover.Type != "REMAINING_AMOUNT" || g.Rollover.MaxAmount == nil || g.Rollover.MaxAmount.String() != "50" ||
		g.Recurrence == nil || g.Recurrence.Interval != "WEEK" || !g.Recurrence.Anchor.Equal(g.EffectiveAt) ||
		g.Metadata["po"] != "123" || g.VoidedAt != nil || g.ParentID != "" || g.StartBalance != nil {
		t.Fatalf("created %+v", g)
	}
	// Defaults: priority 1, effective now.
	d := c.grant(l, "plain", `{"feature":"`+ai.ID+`","amount":7}`)
	if d.Priority != 1 || !d.EffectiveAt.Equal(c.clk.minute()) || !d.CreatedAt.Equal(c.clk.Now()) || d.Expiration != nil || d.Rollover != nil || d.Recurrence != nil {
		t.Fatalf("defaults %+v", d)
	}

	// Field errors name every bad field.
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants", `{"feature":"nope","amount":0,"priority":0,
		"expiration":{"count":1,"duration":"FORTNIGHT"},"rollover":{"type":"ALL","maxAmount":-1},"recurrence":{"interval":"SECOND"}}`),
		"feature", "amount", "priority", "expiration.duration", "rollover.type", "rollover.maxAmount", "recurrence.interval")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants", `{"feature":"ai","amount":1,"expiration":{"count":0,"duration":"DAY"}}`), "expiration.count")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants", `{"feature":"ai","amount":"lots","effectiveAt":"yesterday"}`), "effectiveAt", "amount")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants", `{"feature":"ai"}`), "amount")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants", `{"amount":1e30}`), "feature", "amount")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants", `{"feature":"ai","amount":1,"priority":"high"}`), "priority")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants", `{"feature":"ai","amount":1,"expiration":{"count":"two"}}`), "expiration.count")
	c.problem(404, "POST", "/api/v1/ledgers/nope/grants", `{"feature":"ai","amount":1}`)

	// Get and list.
	var got grantDoc
	c.ok(200, "GET", "/api/v1/ledgers/"+l+"/grants/"+g.ID, nil, &got)
	if got.ID != g.ID || got.Amount.String() != "100.5" || !got.ExpiresAt.Equal(*g.ExpiresAt) {
		t.Fatalf("get %+v", got)
	}
	c.problem(404, "GET", "/api/v1/ledgers/"+l+"/grants/nope", nil)
	c.problem(404, "GET", "/api/v1/ledgers/nope/grants/"+g.ID, nil)
	c.problem(404, "GET", "/api/v1/ledgers/nope/grants", nil)

	// Voids: not in the future, once, and not before the last reset.
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants/"+d.ID+"/void", `{"at":"`+tm("2025-03-01 12:01")+`"}`), "at")
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/grants/"+d.ID+"/void", `{"at":"noon"}`), "at")
	var v grantDoc
	c.ok(200, "POST", "/api/v1/ledgers/"+l+"/grants/"+d.ID+"/void", nil, &v) // no body: now
	if v.VoidedAt == nil || !v.VoidedAt.Equal(c.clk.minute()) {
		t.Fatalf("voided %+v", v)
	}
	c.problem(409, "POST", "/api/v1/ledgers/"+l+"/grants/"+d.ID+"/void", nil)
	c.problem(404, "POST", "/api/v1/ledgers/"+l+"/grants/nope/void", nil)

	ids := func(query string) string {
		var gs []grantDoc
		c.ok(200, "GET", "/api/v1/ledgers/"+l+"/grants"+query, nil, &gs)
		var s []string
		for _, g := range gs {
			s = append(s, c.names[g.ID])
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct{ query, want string }{
		{"", "full"},
		{"?includeVoid=true", "full,plain"},
		{"?includeVoid=true&from=" + url.QueryEscape(tm("2025-02-02 00:00")), "plain"},
		{"?includeVoid=true&to=" + url.QueryEscape(tm("2025-02-02 00:00")), "full"},
		{"?feature=ai", "full"},
		{"?feature=" + ai.ID + "&includeVoid=true", "full,plain"},
	} {
		if got := ids(tc.query); got != tc.want {
			t.Errorf("GET grants%s = %q, want %q", tc.query, got, tc.want)
		}
	}
	wantFields(t, c.problem(400, "GET", "/api/v1/ledgers/"+l+"/grants?feature=nope", nil), "feature")
	wantFields(t, c.problem(400, "GET", "/api/v1/ledgers/"+l+"/grants?includeVoid=1&from=x", nil), "includeVoid", "from")

	// Resets: not in the future, and each after the last one; after a
	// reset, nothing may be dated before it.
	wantFields(t, c.problem(400, "POST", "/api/v1/ledgers/"+l+"/reset", `{"effectiveAt":"`+tm("2025-03-02 00:00")+`"}`), "effectiveAt")
	var r resetDoc
	c.ok(201, "POST", "/api/v1/ledgers/"+l+"/reset", `{"effectiveAt":"`+tm("2025-02-15 00:00")+`"}`, &r)
	if r.LedgerID != l || !r.EffectiveAt.Equal(mustTime("2025-02-15 00:00")) || r.Automatic || len(r.Grants) != 1 ||
		r.Grants[0].ParentID != g.ID || r.Grants[0].ResetID != r.ID {
		t.Fatalf("reset %+v", r)
	}
	p := c.problem(409, "POST", "/api/v1/ledgers/"+l+"/reset", `{"effectiveAt":"`+tm("2025-02-15 00:00")+`"}`)
	if !strings.Contains(p.Detail, "last reset") {
		t.Errorf("reset at the last reset: %q", p.Detail)
	}
	c.problem(409, "POST", "/api/v1/ledgers/"+l+"/reset", `{"effectiveAt":"`+tm("2025-02-01 00:00")+`"}`)
	p = c.problem(409, "POST", "/api/v1/ledgers/"+l+"/grants", grantJSON("5", "2025-02-14 23:59", ""))
	if !strings.Contains(p.Detail, "reset") {
		t.Errorf("grant before the last reset: %q", p.Detail)
	}
	c.grant(l, "at-reset", grantJSON("5", "2025-02-15 00:00", ""))
	c.problem(409, "POST", "/api/v1/ledgers/"+l+"/grants/"+g.ID+"/void", `{"at":"`+tm("2025-02-14 00:00")+`"}`)
	c.ok(200, "POST", "/api/v1/ledgers/"+l+"/grants/"+g.ID+"/void", `{"at":"`+tm("2025-02-15 00:00")+`"}`, nil)
	c.problem(404, "POST", "/api/v1/ledgers/nope/reset", nil)
	c.ok(201, "POST", "/api/v1/ledgers/"+l+"/reset", "", &r) // no body: now
	if !r.EffectiveAt.Equal(c.clk.minute()) {
		t.Fatalf("reset now %+v", r)
	}
}

func TestBalanceHistoryAccessErrors(t *testing.T) {
	t.Parallel()
	c := newCredits(t, "2025-03-01 12:00")
	l := c.ledger("acme", "")
	for _, path := range []string{"/balance", "/history", "/access?feature=ai"} {
		c.problem(404, "GET", "/api/v1/ledgers/nope"+path, nil)
	}
	wantFields(t, c.problem(400, "GET", "/api/v1/ledgers/"+l+"/balance?at=later", nil), "at")
	wantFields(t, c.problem(400, "GET", "/api/v1/ledgers/"+l+"/balance?at="+url.QueryEscape(tm("2025-03-01 12:01")), nil), "at")
	wantFields(t, c.problem(400, "GET", "/api/v1/ledgers/"+l+"/history?limit=0&offset=x", nil), "limit", "offset")
	wantFields(t, c.problem(400, "GET", "/api/v1/ledgers/"+l+"/history?from="+url.QueryEscape(tm(p0))+"&to="+url.QueryEscape(tm(p0)), nil), "from")
	wantFields(t, c.problem(400, "GET", "/api/v1/ledgers/"+l+"/access", nil), "feature")
	wantFields(t, c.problem(400, "GET", "/api/v1/ledgers/"+l+"/access?feature=ai&softLimit=yes", nil), "softLimit")
	c.problem(404, "GET", "/api/v1/ledgers/"+l+"/access?feature=nope", nil)

	// A ledger without grants: its period starts when it was created, so
	// usage from before is not counted.
	c.use("acme", "2025-02-01 00:00", "5")
	b := c.balance(l, "")
	if !b.At.Equal(c.clk.minute()) || b.PeriodStart == nil || !b.PeriodStart.Equal(c.clk.minute()) || len(b.Features) != 0 {
		t.Fatalf("empty ledger balance %+v", b)
	}
	if a := c.access(l, "feature=ai"); a.HasAccess || a.Usage.String() != "0" {
		t.Fatalf("empty ledger access %s", a)
	}
	wantLines(t, "empty history", c.history(l, ""))
}

// The worked scenarios of docs/credits.md through the API: usage is
// ingested as events, grants are created over HTTP, and balances and
// history are read back.
// TestCreditScenarios runs the worked scenarios of docs/credits.md through
// the API on SQLite; TestCreditScenariosPostgres on PostgreSQL.
func TestCreditScenarios(t *testing.T) {
	t.Parallel()
	creditScenarios(t)
}

func TestCreditScenariosPostgres(t *testing.T) {
	t.Parallel()
	pgtest.Require(t)
	creditScenarios(t, onPostgres)
}

// onPostgres makes the API's store a PostgreSQL database of the test's own.
func onPostgres(t testing.TB) func(*api.Config) {
	s, err := postgres.Open(t.Context(), pgtest.NewDatabase(t), postgres.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return func(c *api.Config) { c.Store, c.Ingester = s, storeIngester{s} }
}

func creditScenarios(t *testing.T, store ...func(testing.TB) func(*api.Config)) {
	now := "2025-06-01 00:00"

	t.Run("1 priority", func(t *testing.T) {
		t.Parallel()
		c := newCredits(t, now, store...)
		l := c.ledger("s", "")
		c.grant(l, "a", grantJSON("100", p0, `,"priority":2`))
		c.grant(l, "b", grantJSON("50", p0, `,"priority":1`))
		c.use("s", "2025-01-02 10:00", "80")
		c.check(l, "2025-01-03 00:00", "a:70 b:0", "0")
	})

	t.Run("2 expiry tie-break", func(t *testing.T) {
		t.Parallel()
		c := newCredits(t, now, store...)
		l := c.ledger("s", "")
		c.grant(l, "a", grantJSON("100", p0, `,"expiration":{"count":31,"duration":"DAY"}`)) // Feb 1
		c.grant(l, "b", grantJSON("100", p0, `,"expiration":{"count":2,"duration":"WEEK"}`)) // Jan 15
		c.grant(l, "c", grantJSON("100", p0, ""))
		c.use("s", "2025-01-02 10:00", "150")
		c.use("s", "2025-01-20 10:00", "30")
		c.check(l, "2025-01-03 00:00", "a:50 b:0 c:100", "0")
		c.check(l, "2025-01-21 00:00", "a:20 c:100", "0")
		wantLines(t, "history", c.history(l, "?to="+url.QueryEscape(tm("2025-01-21 00:00"))),
			"01-01 00:00 GRANT a 100",
			"01-01 00:00 GRANT b 100",
			"01-01 00:00 GRANT c 100",
			"01-01 00:00 GRANT_USAGE b 100 [01-01 00:00..01-15 00:00)",
			"01-01 00:00 GRANT_USAGE a 50 [01-01 00:00..01-15 00:00)",
			"01-15 00:00 GRANT_EXPIRY b 0",
			"01-15 00:00 GRANT_USAGE a 30 [01-15 00:00..01-21 00:00)")
	})

	t.Run("3 exact exhaustion", func(t *testing.T) {
		t.Parallel()
		c := newCredits(t, now, store...)
		l := c.ledger("s", "")
		c.grant(l, "a", grantJSON("100", p0, ""))
		c.use("s", "2025-01-01 10:00", "100")
		c.use("s", "2025-01-01 11:00", "1")
		c.check(l, "2025-01-01 10:30", "a:0", "0")
		c.check(l, "2025-01-02 00:00", "a:0", "1")
		wantLines(t, "history", c.history(l, "?from="+url.QueryEscape(tm(p0))+"&to="+url.QueryEscape(tm("2025-01-02 00:00"))),
			"01-01 00:00 GRANT a 100",
			"01-01 00:00 GRANT_USAGE a 100 [01-01 00:00..01-02 00:00)",
			"01-01 00:00 OVERAGE 1 [01-01 00:00..01-02 00:00)")
		// The soft limit keeps access while a grant is active; the hard
		// one does not once the balance is 0.
		if a := c.access(l, "feature=ai"); a.HasAccess || a.Balance.String() != "0" || a.Usage.String() != "101" || a.Overage.String() != "1" {
			t.Errorf("hard limit: %s", a)
		}
		if a := c.access(l, "feature=ai&softLimit=true"); !a.HasAccess || a.Overage.String() != "1" {
			t.Errorf("soft limit: %s", a)
		}
	})

	t.Run("4 overage repaid by a grant that becomes active later", func(t *testing.T) {
		t.Parallel()
		c := newCredits(t, now, store...)
		// Without a reset, the first period starts when the ledger was
		// created, or at an earlier grant: a ledger created (back-dated
		// grant aside) after the usage of Jan 1 does not count it.
		free := c.ledger("free", "")
		c.grant(free, "f", grantJSON("100", "2025-01-02 00:00", ""))
		c.use("free", "2025-01-01 12:00", "40")
		c.use("free", "2025-01-03 10:00", "10")
		c.check(free, "2025-01-04 00:00", "f:90", "0")

		// A ledger created on Jan 1 counts the usage from then on: the
		// grant of Jan 2 repays it first.
		c.clk.set("2025-01-01 00:00")
		early := c.ledger("early", "")
		c.clk.set(now)
		c.grant(early, "e", grantJSON("100", "2025-01-02 00:00", ""))
		c.use("early", "2025-01-01 12:00", "40")
		c.use("early", "2025-01-03 10:00", "10")
		c.check(early, "2025-01-01 23:59", "", "40")
		c.check(early, "2025-01-04 00:00", "e:50", "0")

		// A reset at Jan 1 starts the period there, as in the scenario.
		l := c.ledger("s", "")
		c.ok(201, "POST", "/api/v1/ledgers/"+l+"/reset", `{"effectiveAt":"`+tm(p0)+`"}`, nil)
		c.grant(l, "b", grantJSON("100", "2025-01-02 00:00", ""))
		c.use("s", "2025-01-01 12:00", "40")
		c.use("s", "2025-01-03 10:00", "10")
		c.check(l, "2025-01-01 23:59", "", "40")
		c.check(l, "2025-01-02 00:00", "b:60", "0")
		c.check(l, "2025-01-04 00:00", "b:50", "0")
		wantLines(t, "history", c.history(l, "?to="+url.QueryEscape(tm("2025-01-04 00:00"))),
			"01-01 00:00 RESET",
			"01-01 00:00 OVERAGE 40 [01-01 00:00..01-02 00:00)",
			"01-02 00:00 GRANT b 100",
			"01-02 00:00 OVERAGE_REPAID b 40",
			"01-02 00:00 GRANT_USAGE b 10 [01-02 00:00..01-04 00:00)")
	})

	t.Run("5 void in mid-period", func(t *testing.T) {
		t.Parallel()
		c := newCredits(t, now, store...)
		l := c.ledger("s", "")
		a := c.grant(l, "a", grantJSON("100", p0, `,"priority":1`))
		c.grant(l, "b", grantJSON("100", p0, `,"priority":2`))
		c.use("s", "2025-01-05 10:00", "30")
		c.use("s", "2025-01-15 10:00", "50")
		c.ok(200, "POST", "/api/v1/ledgers/"+l+"/grants/"+a.ID+"/void", `{"at":"`+tm("2025-01-10 00:00")+`"}`, nil)
		c.check(l, "2025-01-09 00:00", "a:70 b:100", "0")
		c.check(l, "2025-01-20 00:00", "b:50", "0")
		b := c.balance(l, "2025-01-20 00:00")
		if g := b.Features[0].Grants[0]; g.ID != a.ID || g.Active || g.Balance.String() != "0" {
			t.Errorf("voided grant in the balance: %+v", g)
		}
		wantLines(t, "history", c.history(l, "?from="+url.QueryEscape(tm(p0))+"&to="+url.QueryEscape(tm("2025-01-20 00:00"))),
			"01-01 00:00 GRANT a 100",
			"01-01 00:00 GRANT b 100",
			"01-01 00:00 GRANT_USAGE a 30 [01-01 00:00..01-10 00:00)",
			"01-10 00:00 VOID a 70",
			"01-10 00:00 GRANT_USAGE b 50 [01-10 00:00..01-20 00:00)")
		// A range starting inside a segment counts only its own usage.
		wantLines(t, "history from Jan 12", c.history(l, "?from="+url.QueryEscape(tm("2025-01-12 00:00"))+"&to="+url.QueryEscape(tm("2025-01-20 00:00"))),
			"01-12 00:00 GRANT_USAGE b 50 [01-12 00:00..01-20 00:00)")
		wantLines(t, "history at the void", c.history(l, "?from="+url.QueryEscape(tm("2025-01-10 00:00"))+"&to="+url.QueryEscape(tm("2025-01-15 00:00"))),
			"01-10 00:00 VOID a 70")
	})

	t.Run("6 monthly recurrence from a month-end anchor", func(t *testing.T) {
		t.Parallel()
		c := newCredits(t, now, store...)
		l := c.ledger("s", "")
		c.grant(l, "a", grantJSON("100", "2025-01-31 00:00", `,"recurrence":{"interval":"MONTH"}`))
		c.use("s", "2025-02-10 00:00", "80")
		c.use("s", "2025-03-05 00:00", "120")
		c.use("s", "2025-04-01 00:00", "30")
		for _, cp := range []struct{ at, balances, overage string }{
			{"2025-02-27 00:00", "a:20", "0"},
			{"2025-02-28 00:00", "a:100", "0"},
			{"2025-03-30 00:00", "a:0", "20"},
			{"2025-03-31 00:00", "a:80", "0"},
			{"2025-04-29 00:00", "a:50", "0"},
			{"2025-04-30 00:00", "a:100", "0"},
		} {
			c.check(l, cp.at, cp.balances, cp.overage)
		}
		wantLines(t, "history", c.history(l, "?from="+url.QueryEscape(tm("2025-02-28 00:00"))+"&to="+url.QueryEscape(tm("2025-04-30 00:00"))),
			"02-28 00:00 GRANT_REFILL a 80",
			"02-28 00:00 GRANT_USAGE a 100 [02-28 00:00..03-31 00:00)",
			"02-28 00:00 OVERAGE 20 [02-28 00:00..03-31 00:00)",
			"03-31 00:00 GRANT_REFILL a 100",
			"03-31 00:00 OVERAGE_REPAID a 20",
			"03-31 00:00 GRANT_USAGE a 30 [03-31 00:00..04-30 00:00)")
	})

	t.Run("7 reset with rollover", func(t *testing.T) {
		t.Parallel()
		c := newCredits(t, "2025-02-04 00:00")
		for _, tc := range []struct {
			subject, rollover, start, balances, overage string
		}{
			{"original", `{"type":"ORIGINAL_AMOUNT"}`, "100", "a2:90", "0"},
			{"original-50", `{"type":"ORIGINAL_AMOUNT","maxAmount":50}`, "50", "a2:40", "0"},
			{"remaining", `{"type":"REMAINING_AMOUNT"}`, "30", "a2:20", "0"},
			{"remaining-20", `{"type":"REMAINING_AMOUNT","maxAmount":"20"}`, "20", "a2:10", "0"},
			{"none", ``, "", "", "10"},
		} {
			l := c.ledger(tc.subject, "")
			extra := ""
			if tc.rollover != "" {
				extra = `,"rollover":` + tc.rollover
			}
			a := c.grant(l, tc.subject+"/a", grantJSON("100", p0, extra))
			c.use(tc.subject, "2025-01-10 10:00", "70")
			c.use(tc.subject, "2025-02-03 10:00", "10")
			var r resetDoc
			c.ok(201, "POST", "/api/v1/ledgers/"+l+"/reset", `{"effectiveAt":"`+tm("2025-02-01 00:00")+`"}`, &r)
			var starts []string
			for _, g := range r.Grants {
				c.name(g.ID, "a2")
				if g.ParentID != a.ID || g.ResetID != r.ID || !g.EffectiveAt.Equal(mustTime("2025-02-01 00:00")) ||
					g.Amount.String() != "100" || g.StartBalance == nil {
					t.Errorf("%s: rolled-over grant %+v", tc.subject, g)
					continue
				}
				starts = append(starts, g.StartBalance.String())
			}
			if got := strings.Join(starts, ","); got != tc.start {
				t.Errorf("%s: a2 starts with %q, want %q", tc.subject, got, tc.start)
			}
			b := c.balance(l, "2025-02-04 00:00")
			if got, _ := c.active(b, "ai"); got != tc.balances {
				t.Errorf("%s: balances Feb 4 %q, want %q", tc.subject, got, tc.balances)
			}
			if !b.PeriodStart.Equal(mustTime("2025-02-01 00:00")) {
				t.Errorf("%s: period start %v", tc.subject, b.PeriodStart)
			}
			// The access check reports the period's overage, also for a
			// feature left without grants.
			if a := c.access(l, "feature=ai"); a.Overage.String() != tc.overage || a.Usage.String() != "10" {
				t.Errorf("%s: access %s, want overage %s", tc.subject, a, tc.overage)
			}
		}
	})

	t.Run("8 balance as of a past time", func(t *testing.T) {
		t.Parallel()
		c := newCredits(t, now, store...)
		l := c.ledger("s", "")
		c.grant(l, "a", grantJSON("100", p0, ""))
		c.use("s", "2025-01-02 10:00", "10")
		c.use("s", "2025-01-05 10:00", "20")
		c.use("s", "2025-01-09 10:00", "30")
		c.check(l, "2025-01-03 00:00", "a:90", "0")
		c.check(l, "2025-01-06 00:00", "a:70", "0")
		c.check(l, "2025-01-10 00:00", "a:40", "0")
		c.check(l, "", "a:40", "0") // now
		c.check(l, "2024-12-31 00:00", "", "0")
	})

	t.Run("9 a late event", func(t *testing.T) {
		t.Parallel()
		c := newCredits(t, "2025-02-05 00:00")
		l := c.ledger("s", "")
		c.grant(l, "a", grantJSON("100", p0, `,"rollover":{"type":"REMAINING_AMOUNT"}`))
		c.use("s", "2025-01-20 10:00", "60")
		c.use("s", "2025-02-03 10:00", "10")
		var r resetDoc
		c.ok(201, "POST", "/api/v1/ledgers/"+l+"/reset", `{"effectiveAt":"`+tm("2025-02-01 00:00")+`"}`, &r)
		c.name(r.Grants[0].ID, "a2")
		c.check(l, "2025-02-04 00:00", "a2:30", "0")

		c.use("s", "2025-01-25 10:00", "30") // arrives on Feb 5
		c.clk.set("2025-02-06 00:00")
		c.check(l, "2025-02-06 00:00", "a2:30", "0")
		c.check(l, "2025-01-31 23:59", "a:10", "0") // the closed period, recomputed
		wantLines(t, "history", c.history(l, "?from="+url.QueryEscape(tm(p0))),
			"01-01 00:00 GRANT a 100",
			"01-01 00:00 GRANT_USAGE a 90 [01-01 00:00..02-01 00:00)",
			"02-01 00:00 RESET",
			"02-01 00:00 GRANT a2 40",
			"02-01 00:00 GRANT_USAGE a2 10 [02-01 00:00..02-06 00:00)")
	})
}

// TestAutomaticResets: a ledger with a monthly schedule anchored months
// before its creation in Europe/Berlin: the resets after its creation are
// made when the ledger is next used, at local midnight (22:00 or 23:00 UTC),
// once. TestAutomaticResetsPostgres runs it on PostgreSQL.
func TestAutomaticResets(t *testing.T) {
	t.Parallel()
	automaticResets(t)
}

func TestAutomaticResetsPostgres(t *testing.T) {
	t.Parallel()
	pgtest.Require(t)
	automaticResets(t, onPostgres)
}

func automaticResets(t *testing.T, store ...func(testing.TB) func(*api.Config)) {
	c := newCredits(t, "2025-01-15 10:00", store...)
	schedule := `,"resetSchedule":{"interval":"MONTH","anchor":"2024-11-01T00:00:00+01:00","timeZone":"Europe/Berlin"}`
	l := c.ledger("auto", schedule)
	c.grant(l, "a", grantJSON("100", p0, `,"rollover":{"type":"ORIGINAL_AMOUNT"}`))
	for _, u := range [][2]string{{"2025-01-20 10:00", "30"}, {"2025-02-10 10:00", "20"}, {"2025-03-10 10:00", "50"}, {"2025-04-10 10:00", "5"}} {
		c.use("auto", u[0], u[1])
	}
	c.check(l, "", "a:100", "0") // no reset due yet
	concurrent := c.ledger("concurrent", schedule)
	c.grant(concurrent, "c", grantJSON("100", p0, `,"rollover":{"type":"ORIGINAL_AMOUNT"}`))

	c.clk.set("2025-04-20 00:00")
	b := c.balance(l, "")
	if len(b.Features) != 1 || len(b.Features[0].Grants) != 1 || b.PeriodStart == nil ||
		!b.PeriodStart.Equal(mustTime("2025-03-31 22:00")) || b.Features[0].Balance.String() != "95" {
		t.Fatalf("balance after three automatic resets: %+v", b)
	}
	var grants []grantDoc
	c.ok(200, "GET", "/api/v1/ledgers/"+l+"/grants", nil, &grants)
	if len(grants) != 4 {
		t.Fatalf("%d grants, want a and three rolled-over ones", len(grants))
	}
	for i, g := range grants[1:] {
		c.name(g.ID, fmt.Sprintf("a%d", i+2))
		if g.ParentID != grants[i].ID || g.StartBalance == nil || g.StartBalance.String() != "100" {
			t.Errorf("rolled-over grant %d: %+v", i+2, g)
		}
	}
	c.check(l, "2025-02-15 00:00", "a2:80", "0") // as of a past period
	want := []string{
		"01-31 23:00 RESET automatic",
		"01-31 23:00 GRANT a2 100",
		"01-31 23:00 GRANT_USAGE a2 20 [01-31 23:00..02-28 23:00)",
		"02-28 23:00 RESET automatic",
		"02-28 23:00 GRANT a3 100",
		"02-28 23:00 GRANT_USAGE a3 50 [02-28 23:00..03-31 22:00)",
		"03-31 22:00 RESET automatic",
		"03-31 22:00 GRANT a4 100",
		"03-31 22:00 GRANT_USAGE a4 5 [03-31 22:00..04-20 00:00)",
	}
	from := "?from=" + url.QueryEscape(tm("2025-01-31 00:00"))
	wantLines(t, "history", c.history(l, from), want...)
	// Asking again creates nothing new.
	c.check(l, "", "a4:95", "0")
	wantLines(t, "history again", c.history(l, from), want...)
	c.ok(200, "GET", "/api/v1/ledgers/"+l+"/grants", nil, &grants)
	if len(grants) != 4 {
		t.Fatalf("%d grants after asking again", len(grants))
	}
	// Pages of the history.
	var h historyDoc
	c.ok(200, "GET", "/api/v1/ledgers/"+l+"/history"+from+"&limit=2&offset=3", nil, &h)
	if h.TotalCount != len(want) || len(h.Entries) != 2 || h.Entries[0].Kind != "RESET" || h.Entries[1].Kind != "GRANT" ||
		h.From == nil || !h.From.Equal(mustTime("2025-01-31 00:00")) || !h.To.Equal(c.clk.minute()) {
		t.Fatalf("page: %+v", h)
	}

	// Several requests at once (as from several nodes) make each reset once.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			resp, body := c.do("GET", "/api/v1/ledgers/"+concurrent+"/balance", nil)
			if resp.StatusCode != 200 {
				t.Errorf("concurrent balance: %d %s", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	var hc historyDoc
	c.ok(200, "GET", "/api/v1/ledgers/"+concurrent+"/history", nil, &hc)
	resets := 0
	for _, e := range hc.Entries {
		if e.Kind == "RESET" {
			resets++
		}
	}
	c.ok(200, "GET", "/api/v1/ledgers/"+concurrent+"/grants", nil, &grants)
	if resets != 3 || len(grants) != 4 {
		t.Fatalf("after concurrent requests: %d resets, %d grants; want 3 and 4", resets, len(grants))
	}
}

package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/odometerhq/odometer"
)

// Authentication, scopes and rate limits (docs/security.md). Every route
// but the public ones resolves its caller before its handler runs: the API
// key named by "Authorization: Bearer <token>", or in Open mode the
// namespace DefaultNamespace with every scope. The caller's namespace is the
// only namespace the handler sees (namespace(r)).

// DefaultNamespace is the namespace of every request in Open mode.
const DefaultNamespace = "default"

// Defaults for Config.
const (
	DefaultMaxQueryWindows = 10000
	DefaultKeyCacheTTL     = 2 * time.Second
)

// caller is who sends a request.
type caller struct {
	namespace string
	key       *odometer.APIKey // nil in Open mode
}

// openCaller is the caller of every request in Open mode.
var openCaller = &caller{namespace: DefaultNamespace}

// allows reports whether the caller may use a route that needs scope.
func (c *caller) allows(scope string) bool { return c.key == nil || c.key.Allows(scope) }

// id is the key's id, the rate limits' bucket; "" in Open mode.
func (c *caller) id() string {
	if c.key == nil {
		return ""
	}
	return c.key.ID
}

type callerContextKey struct{}

// errUnauthenticated answers every request without a valid key: missing,
// malformed, unknown, wrong secret or revoked alike, so that the answer
// tells nothing about which, and it never repeats what was sent.
func errUnauthenticated() error {
	return &statusError{
		status: http.StatusUnauthorized,
		detail: "a valid API key is required: send its token in the header \"Authorization: Bearer\"",
		header: http.Header{"Www-Authenticate": {"Bearer"}},
	}
}

// authorize resolves the caller of a request to rt, checks its scope and
// rate limit, and returns the request carrying the caller. Public routes
// pass as they are.
func (h *handler) authorize(rt route, r *http.Request) (*http.Request, *caller, error) {
	if rt.scope == scopePublic {
		return r, nil, nil
	}
	c := openCaller
	open, err := h.open.check(r.Context(), h.store, h.keys.ttl)
	if err != nil {
		return r, nil, err
	}
	if !open {
		k, err := h.authenticate(r)
		if err != nil {
			return r, nil, err
		}
		c = &caller{namespace: k.Namespace, key: k}
	}
	if !c.allows(rt.scope) {
		return r, c, &statusError{status: http.StatusForbidden,
			detail: fmt.Sprintf("this API key lacks the %q scope, which %s needs", rt.scope, rt.pattern)}
	}
	if err := h.rates.take(rt.limit, c.id()); err != nil {
		return r, c, err
	}
	return r.WithContext(context.WithValue(r.Context(), callerContextKey{}, c)), c, nil
}

// authenticate returns the unrevoked key whose token the request carries.
// A failing store is an error of its own (500 or 503), never a 401.
func (h *handler) authenticate(r *http.Request) (*odometer.APIKey, error) {
	hdr := r.Header.Values("Authorization")
	if len(hdr) != 1 {
		return nil, errUnauthenticated()
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(hdr[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, errUnauthenticated()
	}
	id, secret, err := odometer.ParseToken(strings.TrimSpace(token))
	if err != nil {
		return nil, errUnauthenticated()
	}
	k, err := h.keys.find(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if k == nil || !k.Verify(secret) || k.RevokedAt != nil || k.Namespace == "" {
		return nil, errUnauthenticated()
	}
	return k, nil
}

// keyCache keeps the keys looked up, and the ids found missing, for at
// most ttl, so that a key revoked on another node stops working here
// within ttl. Keys created or revoked through this node are forgotten at
// once.
type keyCache struct {
	store odometer.KeyStore
	ttl   time.Duration

	mu      sync.Mutex
	entries map[string]keyCacheEntry
}

type keyCacheEntry struct {
	key    *odometer.APIKey // nil: no such key
	loaded time.Time        // when the lookup started
}

// maxCachedKeys bounds the cache: unknown ids are cached too, and anybody
// can send those.
const maxCachedKeys = 10000

func newKeyCache(store odometer.KeyStore, ttl time.Duration) *keyCache {
	return &keyCache{store: store, ttl: ttl, entries: map[string]keyCacheEntry{}}
}

// find returns the key with this id, revoked or not, or nil if there is
// none. An entry is dated by when its lookup started, so it never outlives
// a revocation committed after that by more than ttl.
func (c *keyCache) find(ctx context.Context, id string) (*odometer.APIKey, error) {
	start := time.Now()
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && time.Since(e.loaded) < c.ttl {
		return e.key, nil
	}
	k, err := c.store.FindAPIKey(ctx, id)
	switch {
	case odometer.ErrorCode(err) == odometer.ENOTFOUND:
		k = nil
	case err != nil:
		return nil, fmt.Errorf("find API key %s: %w", id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedKeys {
		c.evict()
	}
	c.entries[id] = keyCacheEntry{key: k, loaded: start}
	return k, nil
}

// evict drops the expired entries and, if that is not enough, others, down
// to three quarters of maxCachedKeys. c.mu is held.
func (c *keyCache) evict() {
	for id, e := range c.entries {
		if time.Since(e.loaded) >= c.ttl {
			delete(c.entries, id)
		}
	}
	for id := range c.entries { // map order: an arbitrary choice
		if len(c.entries) < maxCachedKeys*3/4 {
			break
		}
		delete(c.entries, id)
	}
}

// forget drops the entry of id: the key was created or revoked here.
func (c *keyCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
}

// rateClass says which rate limit a route counts against.
type rateClass int

const (
	rateNone   rateClass = iota // not limited
	rateIngest                  // Config.IngestRate
	rateQuery                   // Config.QueryRate
)

// rateLimits are the limiters of the rate classes.
type rateLimits struct {
	ingest, query *limiter
}

// take takes a token for key id from the class's limiter, or returns the
// 429 to answer.
func (l rateLimits) take(class rateClass, id string) error {
	var lim *limiter
	what := ""
	switch class {
	case rateIngest:
		lim, what = l.ingest, "ingestion"
	case rateQuery:
		lim, what = l.query, "usage queries"
	}
	wait, ok := lim.take(id, time.Now())
	if ok {
		return nil
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	who := "this API key"
	if id == "" {
		who = "this server's clients together" // Open mode
	}
	return &statusError{status: http.StatusTooManyRequests,
		detail: fmt.Sprintf("rate limit exceeded: %s may send %g requests per second for %s (bursts of %g); retry in %d s",
			who, lim.rate, what, lim.burst, secs),
		header: http.Header{"Retry-After": {strconv.Itoa(secs)}}}
}

// limiter is a token bucket per key id, in memory: each node limits the
// requests it serves, so a client spread over n nodes may send n times the
// rate. A bucket that has filled up again is the same as a new one, so
// sweep drops those, and memory holds only the keys active within the time
// a bucket takes to fill.
type limiter struct {
	rate  float64 // tokens per second
	burst float64 // bucket size

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

// sweepEvery is how often a limiter drops its full buckets.
const sweepEvery = time.Minute

// newLimiter returns a limiter of rate requests per second in bursts of
// burst (≤ 0: max(1, rate)), or nil, which allows everything, when rate is
// not positive.
func newLimiter(rate float64, burst int) *limiter {
	if !(rate > 0) {
		return nil
	}
	b := float64(burst)
	if burst <= 0 {
		b = max(1, rate)
	}
	return &limiter{rate: rate, burst: b, buckets: map[string]*bucket{}}
}

// take takes a token from id's bucket at now. If there is none it returns
// how long until there is one.
func (l *limiter) take(id string, now time.Time) (wait time.Duration, ok bool) {
	if l == nil {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= sweepEvery {
		l.sweep(now)
	}
	b := l.buckets[id]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[id] = b
	}
	b.tokens = l.fill(b, now)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}

// fill returns b's tokens at now.
func (l *limiter) fill(b *bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+max(0, now.Sub(b.at).Seconds())*l.rate)
}

// sweep drops the buckets that are full at now. l.mu is held.
func (l *limiter) sweep(now time.Time) {
	for id, b := range l.buckets {
		if l.fill(b, now) >= l.burst {
			delete(l.buckets, id)
		}
	}
	l.swept = now
}

// checkWindows refuses a usage query over [from, to) at size ws that
// would have more than limit windows. A query without windowSize is one
// window; one without from starts at the first event, and is bounded by
// the events stored, not by a range.
func checkWindows(fields []odometer.FieldError, from, to time.Time, ws odometer.WindowSize, loc *time.Location, limit int) []odometer.FieldError {
	if ws == "" || from.IsZero() || !from.Before(to) {
		return fields
	}
	if loc == nil {
		loc = time.UTC
	}
	first, _ := ws.Window(from, loc)
	last, _ := ws.Window(to.Add(-odometer.TimePrecision), loc)
	var n int64
	switch ws {
	case odometer.Minute:
		n = (last.Unix()-first.Unix())/60 + 1
	case odometer.Hour:
		n = (last.Unix()-first.Unix())/3600 + 1
	case odometer.Day:
		day := func(t time.Time) int64 {
			y, m, d := t.In(loc).Date()
			return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
		}
		n = day(last) - day(first) + 1
	case odometer.Month:
		month := func(t time.Time) int64 {
			y, m, _ := t.In(loc).Date()
			return int64(y)*12 + int64(m)
		}
		n = month(last) - month(first) + 1
	}
	if n > int64(limit) {
		fields = append(fields, odometer.FieldError{Index: -1, Field: "windowSize",
			Reason: fmt.Sprintf("[from, to) holds %d %s windows, more than the limit of %d; narrow from and to or use a larger windowSize",
				n, ws, limit)})
	}
	return fields
}

// tokenPattern matches an API token (odometer.NewAPIKey).
var tokenPattern = regexp.MustCompile(`odo_[0-9A-Za-z]{26}_[0-9A-Za-z_-]+`)

// redact replaces the API tokens in s with "odo_<redacted>". Tokens
// travel only in the Authorization header, which nothing logs or echoes;
// this catches one sent by mistake where an id or a name goes, before it
// reaches a log line or a problem document.
func redact(s string) string {
	if !strings.Contains(s, "odo_") {
		return s
	}
	return tokenPattern.ReplaceAllLiteralString(s, "odo_<redacted>")
}

// openState is whether an Open handler still serves without keys: it does
// until a key exists, which it checks at most once per ttl. Between checks
// a request reads two atomics and takes no lock.
type openState struct {
	on   atomic.Bool
	next atomic.Int64 // when the next check is due, in time.Since(start)
	mu   sync.Mutex   // one check at a time
}

// start is the origin of openState.next; time.Since(start) is monotonic.
var start = time.Now()

// check reports whether requests are still served without keys.
func (o *openState) check(ctx context.Context, store odometer.KeyStore, ttl time.Duration) (bool, error) {
	if !o.on.Load() || time.Since(start) < time.Duration(o.next.Load()) {
		return o.on.Load(), nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Since(start)
	if !o.on.Load() || now < time.Duration(o.next.Load()) {
		return o.on.Load(), nil // another request checked meanwhile
	}
	keys, err := store.ListAPIKeys(ctx, "")
	if err != nil {
		return false, fmt.Errorf("check for API keys: %w", err)
	}
	o.next.Store(int64(now + ttl))
	if len(keys) > 0 {
		o.on.Store(false)
	}
	return o.on.Load(), nil
}

// close ends open serving: a key was made.
func (o *openState) close() { o.on.Store(false) }

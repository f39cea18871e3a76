package storetest

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
)

// The API keys (odometer.KeyStore). Beyond the interface's comments, the
// suite pins these behaviours:
//   - keys round-trip every field: Scopes in the order given, Salt and Hash
//     byte for byte (zero bytes included), RevokedAt nil or set, times to
//     the microsecond and in UTC whatever zone they were given in; a key
//     stored already revoked stays so;
//   - what comes back verifies: Verify accepts the secret of the token that
//     odometer.NewAPIKey returned, and rejects others;
//   - IDs compare byte for byte: case matters in lookups, and listings order
//     equal creation times by ID in byte order;
//   - CreateAPIKey refuses (EINVALID, naming the field, storing nothing) a
//     key without an ID or a namespace, or with scopes that
//     odometer.CheckScopes refuses; a taken ID is an ECONFLICT error even
//     from another namespace, and leaves the stored key as it was;
//   - ListAPIKeys("") orders every namespace's keys together by CreatedAt,
//     then ID, not namespace by namespace;
//   - RevokeAPIKey with another namespace, or with namespace "", is
//     ENOTFOUND, with the message a missing key gets, even for a revoked
//     key: it tells nothing of other tenants' keys. A failed revoke changes
//     nothing; a revoked key keeps its salt and hash;
//   - of concurrent creates of one ID, or concurrent revokes of one key,
//     exactly one succeeds and the others are ECONFLICT errors.

// apiKeyCreated is when the suite's keys are created (microseconds, as the
// stores keep them). apiKeyZone is a zone that is not UTC, for times the
// stores must return in UTC.
var (
	apiKeyCreated = time.Date(2025, 7, 1, 10, 20, 30, 123456000, time.UTC)
	apiKeyZone    = time.FixedZone("UTC+05:30", 5*3600+30*60)
)

// newAPIKey makes a key with odometer.NewAPIKey and returns it with its
// token.
func newAPIKey(t *testing.T, ns, name string, scopes []string, at time.Time) (string, *odometer.APIKey) {
	t.Helper()
	token, k, err := odometer.NewAPIKey(ns, name, scopes, at)
	if err != nil {
		t.Fatalf("NewAPIKey(%q, %q, %q): %v", ns, name, scopes, err)
	}
	return token, k
}

func mustCreateAPIKey(t *testing.T, s odometer.Store, k *odometer.APIKey) {
	t.Helper()
	if err := s.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatalf("CreateAPIKey(%q in %q): %v", k.ID, k.Namespace, err)
	}
}

func findAPIKey(t *testing.T, s odometer.Store, id string) *odometer.APIKey {
	t.Helper()
	k, err := s.FindAPIKey(t.Context(), id)
	if err != nil {
		t.Fatalf("FindAPIKey(%q): %v", id, err)
	}
	wantUTC(t, "FindAPIKey("+id+")", k)
	return k
}

// wantAPIKey checks that the store holds want.
func wantAPIKey(t *testing.T, s odometer.Store, want *odometer.APIKey) {
	t.Helper()
	if diff := cmp.Diff(want, findAPIKey(t, s, want.ID)); diff != "" {
		t.Errorf("FindAPIKey(%q) (-want +got):\n%s", want.ID, diff)
	}
}

func listAPIKeys(t *testing.T, s odometer.Store, ns string) []*odometer.APIKey {
	t.Helper()
	ks, err := s.ListAPIKeys(t.Context(), ns)
	if err != nil {
		t.Fatalf("ListAPIKeys(%q): %v", ns, err)
	}
	for _, k := range ks {
		wantUTC(t, fmt.Sprintf("ListAPIKeys(%q)", ns), k)
	}
	return ks
}

// apiKeyIDs returns the IDs of the namespace's keys in listing order, never
// nil.
func apiKeyIDs(t *testing.T, s odometer.Store, ns string) []string {
	t.Helper()
	ids := []string{}
	for _, k := range listAPIKeys(t, s, ns) {
		ids = append(ids, k.ID)
	}
	return ids
}

// wantUTC checks that k's times are in UTC: cmp compares times with
// time.Time.Equal, which ignores the zone.
func wantUTC(t *testing.T, what string, k *odometer.APIKey) {
	t.Helper()
	if k.CreatedAt.Location() != time.UTC {
		t.Errorf("%s: key %q: CreatedAt %v is not in UTC", what, k.ID, k.CreatedAt)
	}
	if k.RevokedAt != nil && k.RevokedAt.Location() != time.UTC {
		t.Errorf("%s: key %q: RevokedAt %v is not in UTC", what, k.ID, *k.RevokedAt)
	}
}

func testAPIKeyRoundTrip(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	if got := apiKeyIDs(t, s, ""); len(got) != 0 {
		t.Fatalf("ListAPIKeys on an empty store: %v", got)
	}

	// Scopes out of their usual order, a name beyond ASCII.
	token, made := newAPIKey(t, "ns", "CI — déploiement ✓", []string{odometer.ScopeRead, odometer.ScopeIngest}, apiKeyCreated)
	// Made by hand: a salt with zero bytes inside and at both ends and
	// bytes that are not UTF-8, times in another zone, stored revoked.
	const craftedSecret = "crafted-secret"
	salt := []byte{0, 0xff, 0, 0x80, 'a', 0, 0, 0xc3, 0x28, 1, 2, 3, 0xfe, 0, 0x7f, 0}
	hash := sha256.Sum256(append(salt[:len(salt):len(salt)], craftedSecret...))
	crafted := &odometer.APIKey{
		ID:        "crafted",
		Namespace: "ns",
		Scopes:    []string{odometer.ScopeAdmin, odometer.ScopeRead, odometer.ScopeIngest},
		Salt:      salt,
		Hash:      hash[:],
		CreatedAt: apiKeyCreated.Add(time.Microsecond).In(apiKeyZone),
		RevokedAt: tp(apiKeyCreated.Add(time.Hour).In(apiKeyZone)),
	}
	mustCreateAPIKey(t, s, made)
	mustCreateAPIKey(t, s, crafted)

	for _, want := range []*odometer.APIKey{made, crafted} {
		wantAPIKey(t, s, want)
	}
	if diff := cmp.Diff([]*odometer.APIKey{made, crafted}, listAPIKeys(t, s, "ns")); diff != "" {
		t.Errorf("ListAPIKeys(ns) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]*odometer.APIKey{made, crafted}, listAPIKeys(t, s, "")); diff != "" {
		t.Errorf("ListAPIKeys(\"\") (-want +got):\n%s", diff)
	}

	// The token finds its key, whose stored hash verifies the secret.
	id, secret, err := odometer.ParseToken(token)
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	got := findAPIKey(t, s, id)
	if !got.Verify(secret) {
		t.Errorf("the stored key %q does not verify its token's secret", id)
	}
	if got.Verify(secret[:len(secret)-1]) || got.Verify(craftedSecret) {
		t.Errorf("the stored key %q verifies a secret that is not its own", id)
	}
	if !got.Allows(odometer.ScopeRead) || got.Allows(odometer.ScopeAdmin) {
		t.Errorf("the stored key %q with scopes %q allows read %v, admin %v; want true, false",
			id, got.Scopes, got.Allows(odometer.ScopeRead), got.Allows(odometer.ScopeAdmin))
	}
	// Hash is SHA-256(Salt ‖ secret), whoever made the key.
	if got := findAPIKey(t, s, crafted.ID); !got.Verify(craftedSecret) || got.Verify(secret) {
		t.Errorf("the stored key %q does not verify its own secret, or verifies another's", crafted.ID)
	}

	_, err = s.FindAPIKey(ctx, "missing-id")
	wantErr(t, "FindAPIKey of an unknown id", err, odometer.ENOTFOUND, "missing-id")
	_, err = s.FindAPIKey(ctx, "")
	wantErr(t, "FindAPIKey of an empty id", err, odometer.ENOTFOUND)
	_, err = s.FindAPIKey(ctx, strings.ToUpper(crafted.ID))
	wantErr(t, "FindAPIKey of an id in other case", err, odometer.ENOTFOUND, strings.ToUpper(crafted.ID))
}

func testAPIKeyCreate(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	_, k := newAPIKey(t, "ns", "first", []string{odometer.ScopeRead}, apiKeyCreated)
	mustCreateAPIKey(t, s, k)

	// A taken ID, from the same namespace or another: nothing changes.
	for _, ns := range []string{"ns", "other"} {
		_, dup := newAPIKey(t, ns, "duplicate", []string{odometer.ScopeAdmin}, apiKeyCreated.Add(time.Minute))
		dup.ID = k.ID
		dup.RevokedAt = tp(apiKeyCreated.Add(time.Hour))
		wantErr(t, "CreateAPIKey with a taken id from namespace "+ns, s.CreateAPIKey(ctx, dup), odometer.ECONFLICT, k.ID)
	}
	wantAPIKey(t, s, k)
	if got := apiKeyIDs(t, s, "other"); len(got) != 0 {
		t.Errorf("ListAPIKeys(other) after a refused create = %v, want none", got)
	}

	tests := []struct {
		name   string
		change func(*odometer.APIKey)
		field  string
	}{
		{"no id", func(k *odometer.APIKey) { k.ID = "" }, "id"},
		{"no namespace", func(k *odometer.APIKey) { k.Namespace = "" }, "namespace"},
		{"nil scopes", func(k *odometer.APIKey) { k.Scopes = nil }, "scopes"},
		{"empty scopes", func(k *odometer.APIKey) { k.Scopes = []string{} }, "scopes"},
		{"unknown scope", func(k *odometer.APIKey) { k.Scopes = []string{odometer.ScopeRead, "write"} }, "scopes"},
		{"empty scope", func(k *odometer.APIKey) { k.Scopes = []string{""} }, "scopes"},
		{"scope in capitals", func(k *odometer.APIKey) { k.Scopes = []string{"READ"} }, "scopes"},
	}
	for _, tt := range tests {
		_, bad := newAPIKey(t, "ns", tt.name, []string{odometer.ScopeIngest}, apiKeyCreated)
		tt.change(bad)
		err := s.CreateAPIKey(ctx, bad)
		what := "CreateAPIKey with " + tt.name
		wantCode(t, what, err, odometer.EINVALID)
		if fields := odometer.ErrorFields(err); len(fields) != 1 || fields[0].Field != tt.field {
			t.Errorf("%s: fields %+v, want one about %q", what, fields, tt.field)
		}
		if bad.ID != "" {
			_, err := s.FindAPIKey(ctx, bad.ID)
			wantErr(t, "FindAPIKey after "+what, err, odometer.ENOTFOUND)
		}
	}
	if diff := cmp.Diff([]*odometer.APIKey{k}, listAPIKeys(t, s, "")); diff != "" {
		t.Errorf("ListAPIKeys(\"\") after refused creates (-want +got):\n%s", diff)
	}
}

func testAPIKeyList(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	at := func(us int) time.Time { return apiKeyCreated.Add(time.Duration(us) * time.Microsecond) }
	key := func(id, ns string, created time.Time) *odometer.APIKey {
		_, k := newAPIKey(t, ns, "key "+id, []string{odometer.ScopeRead}, created)
		k.ID = id
		return k
	}
	// Created out of order; equal times a microsecond apart from others;
	// "K-z" sorts before "k-a" in byte order, after it in case-insensitive
	// order.
	keys := map[string]*odometer.APIKey{}
	for _, k := range []*odometer.APIKey{
		key("k-b", "a", at(1)),
		key("k-a", "b", at(1)),
		key("K-z", "a", at(1)),
		key("k-c", "a", at(0)),
		key("k-e", "a", at(2)),
		key("k-d", "b", at(3600e6)),
	} {
		if k.ID == "k-d" {
			k.RevokedAt = tp(at(3601e6))
		}
		mustCreateAPIKey(t, s, k)
		keys[k.ID] = k
	}
	revoked, err := s.RevokeAPIKey(ctx, "a", "k-e", at(10))
	if err != nil {
		t.Fatalf("RevokeAPIKey(k-e): %v", err)
	}
	keys["k-e"] = revoked

	for _, tt := range []struct {
		ns   string
		want []string
	}{
		{"a", []string{"k-c", "K-z", "k-b", "k-e"}},
		{"b", []string{"k-a", "k-d"}},
		{"", []string{"k-c", "K-z", "k-a", "k-b", "k-e", "k-d"}},
		{"c", []string{}},
		{"A", []string{}},
	} {
		want := []*odometer.APIKey{}
		for _, id := range tt.want {
			want = append(want, keys[id])
		}
		got := listAPIKeys(t, s, tt.ns)
		if diff := cmp.Diff(tt.want, apiKeyIDsOf(got)); diff != "" {
			t.Errorf("ListAPIKeys(%q) ids (-want +got):\n%s", tt.ns, diff)
		} else if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ListAPIKeys(%q) (-want +got):\n%s", tt.ns, diff)
		}
	}
}

func apiKeyIDsOf(ks []*odometer.APIKey) []string {
	ids := []string{}
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	return ids
}

func testAPIKeyRevoke(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	token, k := newAPIKey(t, "ns", "to revoke", []string{odometer.ScopeIngest}, apiKeyCreated)
	mustCreateAPIKey(t, s, k)
	_, neighbour := newAPIKey(t, "other", "neighbour", []string{odometer.ScopeAdmin}, apiKeyCreated)
	mustCreateAPIKey(t, s, neighbour)
	at := apiKeyCreated.Add(24*time.Hour + time.Microsecond).In(apiKeyZone)

	// Another namespace can neither revoke the key nor learn that it
	// exists: its error is a missing key's.
	_, errMissing := s.RevokeAPIKey(ctx, "other", "missing-id", at)
	wantErr(t, "RevokeAPIKey of an unknown id", errMissing, odometer.ENOTFOUND, "missing-id")
	notFound := func(what string, err error) {
		t.Helper()
		wantErr(t, what, err, odometer.ENOTFOUND, k.ID)
		if got, want := strings.ReplaceAll(odometer.ErrorMessage(err), k.ID, "<id>"),
			strings.ReplaceAll(odometer.ErrorMessage(errMissing), "missing-id", "<id>"); got != want {
			t.Errorf("%s: message %q, want a missing key's %q", what, got, want)
		}
	}
	_, err := s.RevokeAPIKey(ctx, "other", k.ID, at)
	notFound("RevokeAPIKey from another namespace", err)
	_, err = s.RevokeAPIKey(ctx, "", k.ID, at)
	notFound("RevokeAPIKey with namespace \"\"", err)
	wantAPIKey(t, s, k)

	got, err := s.RevokeAPIKey(ctx, "ns", k.ID, at)
	if err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	want := *k
	want.RevokedAt = &at
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("RevokeAPIKey returned (-want +got):\n%s", diff)
	}
	wantUTC(t, "RevokeAPIKey", got)
	wantAPIKey(t, s, &want)
	// Revoking keeps the salt and hash: the secret still verifies, and
	// refusing a revoked key is the caller's check.
	_, secret, err := odometer.ParseToken(token)
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	if !findAPIKey(t, s, k.ID).Verify(secret) {
		t.Errorf("the revoked key %q does not verify its secret", k.ID)
	}

	// Revoked already: ECONFLICT in its namespace, RevokedAt unchanged;
	// still ENOTFOUND from another.
	_, err = s.RevokeAPIKey(ctx, "ns", k.ID, at.Add(time.Hour))
	wantErr(t, "RevokeAPIKey twice", err, odometer.ECONFLICT, k.ID)
	_, err = s.RevokeAPIKey(ctx, "other", k.ID, at.Add(time.Hour))
	notFound("RevokeAPIKey of a revoked key from another namespace", err)
	wantAPIKey(t, s, &want)

	// A key stored revoked is revoked already.
	_, born := newAPIKey(t, "ns", "born revoked", []string{odometer.ScopeRead}, apiKeyCreated)
	born.RevokedAt = tp(apiKeyCreated.Add(time.Second))
	mustCreateAPIKey(t, s, born)
	_, err = s.RevokeAPIKey(ctx, "ns", born.ID, at)
	wantErr(t, "RevokeAPIKey of a key stored revoked", err, odometer.ECONFLICT, born.ID)
	wantAPIKey(t, s, born)

	_, err = s.RevokeAPIKey(ctx, "ns", neighbour.ID, at)
	wantErr(t, "RevokeAPIKey of another namespace's key", err, odometer.ENOTFOUND, neighbour.ID)
	wantAPIKey(t, s, neighbour)
}

// testAPIKeyConcurrent races creates of one ID from several namespaces,
// then revokes of the key that won.
func testAPIKeyConcurrent(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	const n = 8
	_, base := newAPIKey(t, "ns0", "racer", []string{odometer.ScopeRead}, apiKeyCreated)
	keys := make([]*odometer.APIKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		k := *base
		k.Namespace, k.Name = fmt.Sprintf("ns%d", i), fmt.Sprintf("racer %d", i)
		keys[i] = &k
		wg.Go(func() { errs[i] = s.CreateAPIKey(ctx, keys[i]) })
	}
	wg.Wait()
	winner := onlyWinner(t, "CreateAPIKey", errs)
	wantAPIKey(t, s, keys[winner])
	if diff := cmp.Diff([]*odometer.APIKey{keys[winner]}, listAPIKeys(t, s, "")); diff != "" {
		t.Errorf("ListAPIKeys(\"\") after racing creates (-want +got):\n%s", diff)
	}

	ns := keys[winner].Namespace
	revokedAt := func(i int) time.Time { return apiKeyCreated.Add(time.Duration(i+1) * time.Hour) }
	revoked := make([]*odometer.APIKey, n)
	for i := range n {
		wg.Go(func() { revoked[i], errs[i] = s.RevokeAPIKey(ctx, ns, base.ID, revokedAt(i)) })
	}
	wg.Wait()
	winner = onlyWinner(t, "RevokeAPIKey", errs)
	want := findAPIKey(t, s, base.ID)
	if want.RevokedAt == nil || !want.RevokedAt.Equal(revokedAt(winner)) {
		t.Errorf("after racing revokes RevokedAt = %v, want the winner's %v", want.RevokedAt, revokedAt(winner))
	}
	if diff := cmp.Diff(want, revoked[winner]); diff != "" {
		t.Errorf("the winning RevokeAPIKey returned (-want +got):\n%s", diff)
	}
}

// onlyWinner checks that exactly one of errs is nil and the others are
// ECONFLICT errors, and returns the index of the nil one.
func onlyWinner(t *testing.T, what string, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch odometer.ErrorCode(err) {
		case "":
			if winner >= 0 {
				t.Errorf("%s: calls %d and %d both succeeded", what, winner, i)
			}
			winner = i
		case odometer.ECONFLICT:
		default:
			t.Errorf("%s %d: %v; want success or ECONFLICT", what, i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no call succeeded", what)
	}
	return winner
}

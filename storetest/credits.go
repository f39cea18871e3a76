package storetest

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
)

// The credit records (odometer.CreditStore). Beyond the interface's
// comments, the suite pins these behaviours:
//   - every record round-trips every field; nil maps and pointers stay nil,
//     empty maps stay empty; decimals come back exactly (18 fraction
//     digits, 21 integer digits) and decimals beyond those limits are an
//     EINVALID error;
//   - "before the last reset" is strict: a grant or void dated exactly at
//     the last reset is accepted; a reset must be strictly after it;
//   - CreateGrant refuses an archived feature (ECONFLICT) and a missing one
//     (ENOTFOUND), and refuses ParentID or ResetID (EINVALID: only
//     CreateReset stores rollover grants); CreateReset refuses rollover
//     grants that do not belong to the reset (EINVALID) or whose parent or
//     feature is missing (ENOTFOUND), and accepts archived features;
//   - ListGrants and ListResets of a missing ledger are ENOTFOUND errors;
//   - ListLedgers' SubjectLike matches literally, case-sensitively, and
//     Limit 0 or a negative Offset is an EINVALID error;
//   - failed writes change nothing, Version included;
//   - namespaces share nothing, not even the ID space.

// creditCreated is when the suite's credit records are created (microseconds, as
// the stores keep them); credit timelines start at c0, a whole minute.
var (
	creditCreated = time.Date(2025, 4, 30, 9, 15, 30, 123456000, time.UTC)
	c0            = time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
)

// minute returns c0 + n minutes.
func minute(n int) time.Time { return c0.Add(time.Duration(n) * time.Minute) }

// decimals compare by value: Decimal has no exported fields.
var decimals = cmp.Comparer(func(a, b odometer.Decimal) bool { return a.Cmp(b) == 0 })

func dec(s string) *odometer.Decimal {
	d := odometer.MustDecimal(s)
	return &d
}

func tp(t time.Time) *time.Time { return &t }

func feature(ns, key string) *odometer.Feature {
	return &odometer.Feature{
		ID:        odometer.NewID(creditCreated),
		Namespace: ns,
		Key:       key,
		Name:      key,
		MeterSlug: "tokens",
		CreatedAt: creditCreated,
		UpdatedAt: creditCreated,
	}
}

func ledger(ns, subject string) *odometer.Ledger {
	return &odometer.Ledger{
		ID:        odometer.NewID(creditCreated),
		Namespace: ns,
		Subject:   subject,
		CreatedAt: creditCreated,
	}
}

// grant returns a minimal grant of amount for f in l, effective at.
func grant(l *odometer.Ledger, f *odometer.Feature, amount string, at time.Time) *odometer.Grant {
	return &odometer.Grant{
		ID:          odometer.NewID(creditCreated),
		Namespace:   l.Namespace,
		LedgerID:    l.ID,
		FeatureID:   f.ID,
		Amount:      odometer.MustDecimal(amount),
		Priority:    1,
		EffectiveAt: at,
		CreatedAt:   creditCreated,
	}
}

// child returns a rollover grant of parent made by r.
func child(r *odometer.Reset, parent *odometer.Grant, start string) *odometer.Grant {
	return &odometer.Grant{
		ID:           odometer.NewID(r.EffectiveAt),
		Namespace:    r.Namespace,
		LedgerID:     r.LedgerID,
		FeatureID:    parent.FeatureID,
		Amount:       parent.Amount,
		Priority:     parent.Priority,
		EffectiveAt:  r.EffectiveAt,
		RolloverType: "REMAINING_AMOUNT",
		ParentID:     parent.ID,
		ResetID:      r.ID,
		StartBalance: dec(start),
		CreatedAt:    r.EffectiveAt,
	}
}

func reset(l *odometer.Ledger, at time.Time) *odometer.Reset {
	return &odometer.Reset{
		ID:          odometer.NewID(at),
		Namespace:   l.Namespace,
		LedgerID:    l.ID,
		EffectiveAt: at,
		CreatedAt:   creditCreated,
	}
}

func mustFeature(t *testing.T, s odometer.Store, f *odometer.Feature) *odometer.Feature {
	t.Helper()
	if err := s.CreateFeature(t.Context(), f); err != nil {
		t.Fatalf("CreateFeature(%q): %v", f.Key, err)
	}
	return f
}

func mustLedger(t *testing.T, s odometer.Store, l *odometer.Ledger) *odometer.Ledger {
	t.Helper()
	if err := s.CreateLedger(t.Context(), l); err != nil {
		t.Fatalf("CreateLedger(%q): %v", l.Subject, err)
	}
	return l
}

func mustGrant(t *testing.T, s odometer.Store, g *odometer.Grant) *odometer.Grant {
	t.Helper()
	if err := s.CreateGrant(t.Context(), g); err != nil {
		t.Fatalf("CreateGrant(%q, effective %s): %v", g.ID, g.EffectiveAt.Format(time.RFC3339), err)
	}
	return g
}

func mustReset(t *testing.T, s odometer.Store, r *odometer.Reset, version int64, rollover ...*odometer.Grant) *odometer.Reset {
	t.Helper()
	if err := s.CreateReset(t.Context(), r, rollover, version); err != nil {
		t.Fatalf("CreateReset(at %s, version %d): %v", r.EffectiveAt.Format(time.RFC3339), version, err)
	}
	return r
}

// wantVersion checks the ledger's Version: the number of changes so far.
func wantVersion(t *testing.T, s odometer.Store, l *odometer.Ledger, want int64) {
	t.Helper()
	got, err := s.FindLedger(t.Context(), l.Namespace, l.ID)
	if err != nil {
		t.Fatalf("FindLedger(%q): %v", l.ID, err)
	}
	if got.Version != want {
		t.Errorf("ledger %q: Version %d, want %d", l.ID, got.Version, want)
	}
}

// wantErr checks err's code and that its message names every one of names.
func wantErr(t *testing.T, what string, err error, code string, names ...string) {
	t.Helper()
	wantCode(t, what, err, code)
	for _, n := range names {
		if msg := odometer.ErrorMessage(err); !strings.Contains(msg, n) {
			t.Errorf("%s: message %q does not name %q", what, msg, n)
		}
	}
}

func wantGrant(t *testing.T, s odometer.Store, want *odometer.Grant) {
	t.Helper()
	got, err := s.FindGrant(t.Context(), want.Namespace, want.LedgerID, want.ID)
	if err != nil {
		t.Fatalf("FindGrant(%q): %v", want.ID, err)
	}
	if diff := cmp.Diff(want, got, decimals); diff != "" {
		t.Errorf("FindGrant(%q) (-want +got):\n%s", want.ID, diff)
	}
}

// listGrants returns the IDs ListGrants returns for f, in order.
func listGrants(t *testing.T, s odometer.Store, f odometer.GrantFilter) []string {
	t.Helper()
	gs, err := s.ListGrants(t.Context(), f)
	if err != nil {
		t.Fatalf("ListGrants(%+v): %v", f, err)
	}
	out := []string{}
	for _, g := range gs {
		out = append(out, g.ID)
	}
	return out
}

func listResets(t *testing.T, s odometer.Store, l *odometer.Ledger) []*odometer.Reset {
	t.Helper()
	rs, err := s.ListResets(t.Context(), l.Namespace, l.ID)
	if err != nil {
		t.Fatalf("ListResets(%q): %v", l.ID, err)
	}
	return rs
}

func featureKeys(t *testing.T, s odometer.Store, ns string, archived bool) []string {
	t.Helper()
	fs, err := s.ListFeatures(t.Context(), ns, archived)
	if err != nil {
		t.Fatalf("ListFeatures(%q, %v): %v", ns, archived, err)
	}
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Key+"/"+f.Name)
	}
	return out
}

func testFeatures(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	if got := featureKeys(t, s, "ns", true); len(got) != 0 {
		t.Fatalf("ListFeatures on an empty store: %v", got)
	}
	full := feature("ns", "gpt")
	full.Name = "GPT tokens"
	full.MeterGroupByFilters = map[string]string{"model": "gpt-4", "region": "eu"}
	full.Metadata = map[string]string{"team": "ai"}
	full.UpdatedAt = creditCreated.Add(time.Hour + time.Microsecond)
	minimal := feature("ns", "api")
	empty := feature("ns", "empty-maps")
	empty.MeterGroupByFilters, empty.Metadata = map[string]string{}, map[string]string{}
	for _, f := range []*odometer.Feature{full, minimal, empty} {
		mustFeature(t, s, f)
	}
	for _, f := range []*odometer.Feature{full, minimal, empty} {
		for _, idOrKey := range []string{f.ID, f.Key} {
			got, err := s.FindFeature(ctx, "ns", idOrKey)
			if err != nil {
				t.Fatalf("FindFeature(%q): %v", idOrKey, err)
			}
			if diff := cmp.Diff(f, got); diff != "" {
				t.Errorf("FindFeature(%q) (-want +got):\n%s", idOrKey, diff)
			}
		}
	}
	if diff := cmp.Diff([]string{"api/api", "empty-maps/empty-maps", "gpt/GPT tokens"}, featureKeys(t, s, "ns", false)); diff != "" {
		t.Errorf("ListFeatures (-want +got):\n%s", diff)
	}

	dup := feature("ns", "gpt")
	dup.Name = "duplicate"
	wantErr(t, "CreateFeature with a taken key", s.CreateFeature(ctx, dup), odometer.ECONFLICT, "gpt")
	sameID := feature("ns", "other")
	sameID.ID = full.ID
	wantErr(t, "CreateFeature with a taken id", s.CreateFeature(ctx, sameID), odometer.ECONFLICT, full.ID)
	wantErr(t, "CreateFeature without an id", s.CreateFeature(ctx, &odometer.Feature{Namespace: "ns", Key: "x"}), odometer.EINVALID)
	_, err := s.FindFeature(ctx, "ns", "nope")
	wantErr(t, "FindFeature of an unknown key", err, odometer.ENOTFOUND, "nope")

	// Archiving keeps the feature (by ID) but frees its key.
	at := creditCreated.Add(24 * time.Hour)
	archived, err := s.ArchiveFeature(ctx, "ns", full.ID, at)
	if err != nil {
		t.Fatalf("ArchiveFeature: %v", err)
	}
	want := *full
	want.ArchivedAt = &at
	if diff := cmp.Diff(&want, archived); diff != "" {
		t.Errorf("ArchiveFeature returned (-want +got):\n%s", diff)
	}
	if got, err := s.FindFeature(ctx, "ns", full.ID); err != nil || !cmp.Equal(&want, got) {
		t.Errorf("FindFeature of an archived feature by id = %+v, %v; want %+v", got, err, &want)
	}
	_, err = s.FindFeature(ctx, "ns", "gpt")
	wantErr(t, "FindFeature of an archived key", err, odometer.ENOTFOUND, "gpt")
	_, err = s.ArchiveFeature(ctx, "ns", full.ID, at.Add(time.Hour))
	wantErr(t, "ArchiveFeature twice", err, odometer.ECONFLICT, full.ID)
	_, err = s.ArchiveFeature(ctx, "ns", "missing-id", at)
	wantErr(t, "ArchiveFeature of an unknown id", err, odometer.ENOTFOUND, "missing-id")

	again := feature("ns", "gpt")
	again.Name = "GPT tokens v2"
	again.CreatedAt = creditCreated.Add(48 * time.Hour)
	mustFeature(t, s, again)
	if got, err := s.FindFeature(ctx, "ns", "gpt"); err != nil || got.ID != again.ID {
		t.Errorf("FindFeature(gpt) after re-creating = %+v, %v; want the new feature %s", got, err, again.ID)
	}
	if diff := cmp.Diff([]string{"api/api", "empty-maps/empty-maps", "gpt/GPT tokens v2"}, featureKeys(t, s, "ns", false)); diff != "" {
		t.Errorf("ListFeatures without archived (-want +got):\n%s", diff)
	}
	// Equal keys: the older first.
	if diff := cmp.Diff([]string{"api/api", "empty-maps/empty-maps", "gpt/GPT tokens", "gpt/GPT tokens v2"}, featureKeys(t, s, "ns", true)); diff != "" {
		t.Errorf("ListFeatures with archived (-want +got):\n%s", diff)
	}
	wantErr(t, "CreateFeature with the key of an unarchived feature again", s.CreateFeature(ctx, feature("ns", "gpt")), odometer.ECONFLICT, "gpt")
}

func testFeatureDelete(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	unused := mustFeature(t, s, feature("ns", "unused"))
	used := mustFeature(t, s, feature("ns", "used"))
	l := mustLedger(t, s, ledger("ns", "cust"))
	mustGrant(t, s, grant(l, used, "10", minute(0)))

	if err := s.DeleteFeature(ctx, "ns", unused.ID); err != nil {
		t.Fatalf("DeleteFeature of a feature without grants: %v", err)
	}
	_, err := s.FindFeature(ctx, "ns", unused.ID)
	wantErr(t, "FindFeature after DeleteFeature", err, odometer.ENOTFOUND, unused.ID)
	wantErr(t, "DeleteFeature twice", s.DeleteFeature(ctx, "ns", unused.ID), odometer.ENOTFOUND, unused.ID)

	wantErr(t, "DeleteFeature of a feature with grants", s.DeleteFeature(ctx, "ns", used.ID), odometer.ECONFLICT, used.ID, "archive")
	if _, err := s.ArchiveFeature(ctx, "ns", used.ID, creditCreated); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteFeature of an archived feature with grants", s.DeleteFeature(ctx, "ns", used.ID), odometer.ECONFLICT, used.ID)
	if _, err := s.FindFeature(ctx, "ns", used.ID); err != nil {
		t.Errorf("FindFeature after a refused DeleteFeature: %v", err)
	}

	// Grants need a feature that exists and takes grants.
	wantVersion(t, s, l, 1)
	wantErr(t, "CreateGrant for an archived feature", s.CreateGrant(ctx, grant(l, used, "1", minute(1))), odometer.ECONFLICT, used.ID)
	wantErr(t, "CreateGrant for a deleted feature", s.CreateGrant(ctx, grant(l, unused, "1", minute(1))), odometer.ENOTFOUND, unused.ID)
	wantVersion(t, s, l, 1)
}

func testLedgers(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	full := ledger("ns", "acme")
	full.Metadata = map[string]string{"plan": "pro"}
	full.ResetSchedule = &odometer.ResetSchedule{Interval: "MONTH", Anchor: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), TimeZone: "Europe/Berlin"}
	full.Version = 7 // ignored: a new ledger is at version 0
	utc := ledger("ns", "utc")
	utc.ResetSchedule = &odometer.ResetSchedule{Interval: "DAY", Anchor: minute(0)}
	utc.Metadata = map[string]string{}
	minimal := ledger("ns", "min")
	for _, l := range []*odometer.Ledger{full, utc, minimal} {
		mustLedger(t, s, l)
		if l.Version != 0 {
			t.Errorf("CreateLedger(%q) left Version %d, want 0", l.Subject, l.Version)
		}
		got, err := s.FindLedger(ctx, "ns", l.ID)
		if err != nil {
			t.Fatalf("FindLedger(%q): %v", l.ID, err)
		}
		if diff := cmp.Diff(l, got); diff != "" {
			t.Errorf("FindLedger(%q) (-want +got):\n%s", l.ID, diff)
		}
	}

	second := ledger("ns", "acme")
	wantErr(t, "CreateLedger for a subject with a ledger", s.CreateLedger(ctx, second), odometer.ECONFLICT, full.ID)
	sameID := ledger("ns", "other")
	sameID.ID = full.ID
	wantErr(t, "CreateLedger with a taken id", s.CreateLedger(ctx, sameID), odometer.ECONFLICT, full.ID)
	wantErr(t, "CreateLedger without an id", s.CreateLedger(ctx, &odometer.Ledger{Namespace: "ns", Subject: "x"}), odometer.EINVALID)
	_, err := s.FindLedger(ctx, "ns", second.ID)
	wantErr(t, "FindLedger of a refused ledger", err, odometer.ENOTFOUND, second.ID)
	_, err = s.FindLedger(ctx, "ns", "acme")
	wantErr(t, "FindLedger by subject", err, odometer.ENOTFOUND, "acme") // by ID only
}

func testLedgerList(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	// Byte order: '%' < '_' < 'a'…; "acme" < "acme-eu".
	for _, subj := range []string{"b", "acme-eu", "a_c", "abc", "acme", "a%c", "ACME"} {
		mustLedger(t, s, ledger("ns", subj))
	}
	mustLedger(t, s, ledger("other", "acme"))
	tests := []struct {
		name string
		f    odometer.LedgerFilter
		want []string
	}{
		{"all", odometer.LedgerFilter{}, []string{"ACME", "a%c", "a_c", "abc", "acme", "acme-eu", "b"}},
		{"descending", odometer.LedgerFilter{Descending: true}, []string{"b", "acme-eu", "acme", "abc", "a_c", "a%c", "ACME"}},
		{"subject exact", odometer.LedgerFilter{Subject: "acme"}, []string{"acme"}},
		{"subject unknown", odometer.LedgerFilter{Subject: "acm"}, []string{}},
		{"like substring", odometer.LedgerFilter{SubjectLike: "cme"}, []string{"acme", "acme-eu"}},
		{"like case-sensitive", odometer.LedgerFilter{SubjectLike: "CM"}, []string{"ACME"}},
		{"like percent literal", odometer.LedgerFilter{SubjectLike: "%"}, []string{"a%c"}},
		{"like underscore literal", odometer.LedgerFilter{SubjectLike: "a_"}, []string{"a_c"}},
		{"like and exact", odometer.LedgerFilter{Subject: "acme", SubjectLike: "eu"}, []string{}},
		{"limit", odometer.LedgerFilter{Limit: 2}, []string{"ACME", "a%c"}},
		{"offset", odometer.LedgerFilter{Limit: 2, Offset: 2}, []string{"a_c", "abc"}},
		{"offset descending", odometer.LedgerFilter{Limit: 2, Offset: 1, Descending: true}, []string{"acme-eu", "acme"}},
		{"offset past the end", odometer.LedgerFilter{Offset: 7}, []string{}},
		{"like with limit", odometer.LedgerFilter{SubjectLike: "c", Limit: 2, Offset: 1}, []string{"a_c", "abc"}},
		{"other namespace", odometer.LedgerFilter{Namespace: "other"}, []string{"acme"}},
		{"unknown namespace", odometer.LedgerFilter{Namespace: "nobody"}, []string{}},
	}
	for _, tt := range tests {
		f := tt.f
		if f.Namespace == "" {
			f.Namespace = "ns"
		}
		if f.Limit == 0 {
			f.Limit = 100
		}
		ls, err := s.ListLedgers(ctx, f)
		if err != nil {
			t.Errorf("%s: ListLedgers: %v", tt.name, err)
			continue
		}
		got := []string{}
		for _, l := range ls {
			got = append(got, l.Subject)
			if l.Namespace != f.Namespace {
				t.Errorf("%s: ledger %q of namespace %q listed", tt.name, l.ID, l.Namespace)
			}
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: subjects (-want +got):\n%s", tt.name, diff)
		}
	}
	_, err := s.ListLedgers(ctx, odometer.LedgerFilter{Namespace: "ns"})
	wantCode(t, "ListLedgers with Limit 0", err, odometer.EINVALID)
	_, err = s.ListLedgers(ctx, odometer.LedgerFilter{Namespace: "ns", Limit: 1, Offset: -1})
	wantCode(t, "ListLedgers with a negative Offset", err, odometer.EINVALID)
}

func testGrants(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	f := mustFeature(t, s, feature("ns", "tokens"))
	l := mustLedger(t, s, ledger("ns", "cust"))
	other := mustLedger(t, s, ledger("ns", "other"))

	full := grant(l, f, "999999999999999999999.999999999999999999", minute(0))
	full.Priority = 255
	full.ExpirationCount, full.ExpirationDuration, full.ExpiresAt = 3, "DAY", tp(minute(3*24*60))
	full.RolloverType, full.RolloverMaxAmount = "REMAINING_AMOUNT", dec("0.000000000000000001")
	full.RecurrenceInterval, full.RecurrenceAnchor = "MONTH", tp(time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC))
	full.Metadata = map[string]string{"source": "promo", "note": "héllo ✓"}
	tiny := grant(l, f, "0.000000000000000001", minute(1))
	tiny.CreatedAt = creditCreated.Add(time.Microsecond)
	negative := grant(l, f, "-999999999999999999999.5", minute(2)) // the store keeps, the engine judges
	negative.Metadata = map[string]string{}
	negative.RolloverMaxAmount = dec("0")
	for i, g := range []*odometer.Grant{full, tiny, negative} {
		mustGrant(t, s, g)
		wantVersion(t, s, l, int64(i+1))
	}
	for _, g := range []*odometer.Grant{full, tiny, negative} {
		wantGrant(t, s, g)
	}
	gs, err := s.ListGrants(ctx, odometer.GrantFilter{Namespace: "ns", LedgerID: l.ID})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*odometer.Grant{full, tiny, negative}, gs, decimals); diff != "" {
		t.Errorf("ListGrants (-want +got):\n%s", diff)
	}
	if got := listGrants(t, s, odometer.GrantFilter{Namespace: "ns", LedgerID: other.ID}); len(got) != 0 {
		t.Errorf("ListGrants of another ledger: %v", got)
	}

	// Failures change nothing.
	wantErr(t, "CreateGrant in a missing ledger", s.CreateGrant(ctx, grant(&odometer.Ledger{Namespace: "ns", ID: "no-ledger"}, f, "1", minute(0))),
		odometer.ENOTFOUND, "no-ledger")
	taken := grant(l, f, "1", minute(5))
	taken.ID = full.ID
	wantErr(t, "CreateGrant with a taken id", s.CreateGrant(ctx, taken), odometer.ECONFLICT, full.ID)
	wantErr(t, "CreateGrant without an id", s.CreateGrant(ctx, &odometer.Grant{Namespace: "ns", LedgerID: l.ID, FeatureID: f.ID, Amount: odometer.DecimalFromInt(1)}),
		odometer.EINVALID)
	for _, amount := range []string{"1000000000000000000000", "0.0000000000000000001", "-1000000000000000000000"} {
		wantCode(t, "CreateGrant of amount "+amount, s.CreateGrant(ctx, grant(l, f, amount, minute(5))), odometer.EINVALID)
	}
	big := grant(l, f, "1", minute(5))
	big.StartBalance = dec("1e21")
	wantCode(t, "CreateGrant with a start balance of 1e21", s.CreateGrant(ctx, big), odometer.EINVALID)
	withParent := grant(l, f, "1", minute(5))
	withParent.ParentID = full.ID
	wantCode(t, "CreateGrant with a parent", s.CreateGrant(ctx, withParent), odometer.EINVALID)
	withReset := grant(l, f, "1", minute(5))
	withReset.ResetID = "r"
	wantCode(t, "CreateGrant with a reset", s.CreateGrant(ctx, withReset), odometer.EINVALID)
	wantVersion(t, s, l, 3)
	wantVersion(t, s, other, 0)

	_, err = s.FindGrant(ctx, "ns", l.ID, "no-grant")
	wantErr(t, "FindGrant of an unknown id", err, odometer.ENOTFOUND, "no-grant")
	_, err = s.FindGrant(ctx, "ns", other.ID, full.ID)
	wantErr(t, "FindGrant in another ledger", err, odometer.ENOTFOUND, full.ID)
	_, err = s.ListGrants(ctx, odometer.GrantFilter{Namespace: "ns", LedgerID: "no-ledger"})
	wantErr(t, "ListGrants of a missing ledger", err, odometer.ENOTFOUND, "no-ledger")
}

func testGrantList(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	fa := mustFeature(t, s, feature("ns", "a"))
	fb := mustFeature(t, s, feature("ns", "b"))
	l := mustLedger(t, s, ledger("ns", "cust"))
	mk := func(id string, f *odometer.Feature, at time.Time, created time.Duration) *odometer.Grant {
		g := grant(l, f, "1", at)
		g.ID, g.CreatedAt = id, creditCreated.Add(created)
		return mustGrant(t, s, g)
	}
	// Created in an order unlike the listing order: by EffectiveAt, then
	// CreatedAt, then ID.
	mk("g5", fa, minute(20), 0)
	mk("g4", fb, minute(10), 2*time.Second)
	mk("g3", fa, minute(10), time.Second)
	mk("g2b", fb, minute(10), 0)
	mk("g2a", fa, minute(10), 0)
	mk("g1", fb, minute(0), 5*time.Second)
	if _, err := s.VoidGrant(ctx, "ns", l.ID, "g3", minute(15)); err != nil {
		t.Fatal(err)
	}
	wantVersion(t, s, l, 7)

	tests := []struct {
		name string
		f    odometer.GrantFilter
		want []string
	}{
		{"active", odometer.GrantFilter{}, []string{"g1", "g2a", "g2b", "g4", "g5"}},
		{"with void", odometer.GrantFilter{IncludeVoid: true}, []string{"g1", "g2a", "g2b", "g3", "g4", "g5"}},
		{"feature", odometer.GrantFilter{FeatureID: fa.ID, IncludeVoid: true}, []string{"g2a", "g3", "g5"}},
		{"feature active", odometer.GrantFilter{FeatureID: fa.ID}, []string{"g2a", "g5"}},
		{"from inclusive", odometer.GrantFilter{From: minute(10)}, []string{"g2a", "g2b", "g4", "g5"}},
		{"to exclusive", odometer.GrantFilter{To: minute(20), IncludeVoid: true}, []string{"g1", "g2a", "g2b", "g3", "g4"}},
		{"range", odometer.GrantFilter{From: minute(1), To: minute(11), FeatureID: fb.ID}, []string{"g2b", "g4"}},
		{"empty range", odometer.GrantFilter{From: minute(10), To: minute(10)}, []string{}},
		{"unknown feature", odometer.GrantFilter{FeatureID: "nope"}, []string{}},
	}
	for _, tt := range tests {
		f := tt.f
		f.Namespace, f.LedgerID = "ns", l.ID
		if diff := cmp.Diff(tt.want, listGrants(t, s, f)); diff != "" {
			t.Errorf("%s: ListGrants ids (-want +got):\n%s", tt.name, diff)
		}
	}
	empty := mustLedger(t, s, ledger("ns", "empty"))
	if got := listGrants(t, s, odometer.GrantFilter{Namespace: "ns", LedgerID: empty.ID, IncludeVoid: true}); len(got) != 0 {
		t.Errorf("ListGrants of an empty ledger: %v", got)
	}
}

func testVoid(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	f := mustFeature(t, s, feature("ns", "tokens"))
	l := mustLedger(t, s, ledger("ns", "cust"))
	a := mustGrant(t, s, grant(l, f, "10", minute(0)))
	b := mustGrant(t, s, grant(l, f, "20", minute(0)))
	c := mustGrant(t, s, grant(l, f, "30", minute(0)))

	voided, err := s.VoidGrant(ctx, "ns", l.ID, a.ID, minute(30))
	if err != nil {
		t.Fatalf("VoidGrant: %v", err)
	}
	want := *a
	want.VoidedAt = tp(minute(30))
	if diff := cmp.Diff(&want, voided, decimals); diff != "" {
		t.Errorf("VoidGrant returned (-want +got):\n%s", diff)
	}
	wantGrant(t, s, &want)
	wantVersion(t, s, l, 4)

	_, err = s.VoidGrant(ctx, "ns", l.ID, a.ID, minute(40))
	wantErr(t, "VoidGrant twice", err, odometer.ECONFLICT, a.ID)
	wantGrant(t, s, &want)
	_, err = s.VoidGrant(ctx, "ns", l.ID, "no-grant", minute(40))
	wantErr(t, "VoidGrant of an unknown grant", err, odometer.ENOTFOUND, "no-grant")
	_, err = s.VoidGrant(ctx, "ns", "no-ledger", a.ID, minute(40))
	wantErr(t, "VoidGrant in a missing ledger", err, odometer.ENOTFOUND, "no-ledger")
	other := mustLedger(t, s, ledger("ns", "other"))
	_, err = s.VoidGrant(ctx, "ns", other.ID, b.ID, minute(40))
	wantErr(t, "VoidGrant in another ledger", err, odometer.ENOTFOUND, b.ID)
	wantVersion(t, s, l, 4)

	// After a reset at minute 60, nothing may be dated before it; at it is
	// fine.
	mustReset(t, s, reset(l, minute(60)), 4)
	wantVersion(t, s, l, 5)
	_, err = s.VoidGrant(ctx, "ns", l.ID, b.ID, minute(59))
	wantErr(t, "VoidGrant before the last reset", err, odometer.ECONFLICT)
	wantErr(t, "CreateGrant before the last reset", s.CreateGrant(ctx, grant(l, f, "1", minute(59))), odometer.ECONFLICT)
	wantVersion(t, s, l, 5)
	if _, err := s.VoidGrant(ctx, "ns", l.ID, b.ID, minute(60)); err != nil {
		t.Errorf("VoidGrant at the last reset: %v", err)
	}
	if err := s.CreateGrant(ctx, grant(l, f, "1", minute(60))); err != nil {
		t.Errorf("CreateGrant at the last reset: %v", err)
	}
	// A grant of the old period may be voided after the reset.
	if _, err := s.VoidGrant(ctx, "ns", l.ID, c.ID, minute(61)); err != nil {
		t.Errorf("VoidGrant of an old grant after the reset: %v", err)
	}
	wantVersion(t, s, l, 8)
}

func testResets(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	f := mustFeature(t, s, feature("ns", "tokens"))
	l := mustLedger(t, s, ledger("ns", "cust"))
	if got := listResets(t, s, l); len(got) != 0 {
		t.Fatalf("ListResets of a new ledger: %v", got)
	}
	a := grant(l, f, "100", minute(0))
	a.RolloverType = "ORIGINAL_AMOUNT"
	mustGrant(t, s, a)
	b := mustGrant(t, s, grant(l, f, "50", minute(0)))
	wantVersion(t, s, l, 2)

	// IDs against the time order, so that listing by ID would fail.
	r1 := reset(l, minute(60))
	r1.ID = "reset-z"
	c1 := child(r1, a, "100")
	c1.Metadata = map[string]string{"rolled": "over"}
	c2 := child(r1, b, "0.000000000000000001")
	c2.RolloverMaxAmount = dec("25.5")
	// A stale version stores nothing.
	wantErr(t, "CreateReset at a stale version", s.CreateReset(ctx, r1, []*odometer.Grant{c1, c2}, 1), odometer.ECONFLICT, l.ID)
	wantVersion(t, s, l, 2)
	if got := listResets(t, s, l); len(got) != 0 {
		t.Fatalf("ListResets after a refused reset: %v", got)
	}
	_, err := s.FindGrant(ctx, "ns", l.ID, c1.ID)
	wantCode(t, "FindGrant of a refused rollover grant", err, odometer.ENOTFOUND)

	mustReset(t, s, r1, 2, c1, c2)
	wantVersion(t, s, l, 3) // once, however many grants rolled over
	wantGrant(t, s, c1)
	wantGrant(t, s, c2)
	if diff := cmp.Diff(sorted([]string{a.ID, b.ID, c1.ID, c2.ID}), sorted(listGrants(t, s, odometer.GrantFilter{Namespace: "ns", LedgerID: l.ID}))); diff != "" {
		t.Errorf("grants after the reset (-want +got):\n%s", diff)
	}

	// The next reset must be strictly after the last one, at the current
	// version.
	wantErr(t, "CreateReset at the last reset", s.CreateReset(ctx, reset(l, minute(60)), nil, 3), odometer.ECONFLICT)
	wantErr(t, "CreateReset before the last reset", s.CreateReset(ctx, reset(l, minute(30)), nil, 3), odometer.ECONFLICT)
	wantVersion(t, s, l, 3)
	r2 := reset(l, minute(61))
	r2.ID, r2.Automatic = "reset-a", true
	mustReset(t, s, r2, 3)
	wantVersion(t, s, l, 4)
	r3 := reset(l, minute(24*60))
	mustReset(t, s, r3, 4, child(r3, c1, "1"))
	wantVersion(t, s, l, 5)

	rs := listResets(t, s, l)
	if diff := cmp.Diff([]*odometer.Reset{r1, r2, r3}, rs); diff != "" {
		t.Errorf("ListResets (-want +got):\n%s", diff)
	}
	_, err = s.ListResets(ctx, "ns", "no-ledger")
	wantErr(t, "ListResets of a missing ledger", err, odometer.ENOTFOUND, "no-ledger")
	wantErr(t, "CreateReset of a missing ledger", s.CreateReset(ctx, reset(&odometer.Ledger{Namespace: "ns", ID: "no-ledger"}, minute(90)), nil, 0),
		odometer.ENOTFOUND, "no-ledger")
}

// testResetAtomic checks that a reset whose rollover fails stores nothing:
// neither the reset nor the rollover grants before the failing one.
func testResetAtomic(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	f := mustFeature(t, s, feature("ns", "tokens"))
	archived := mustFeature(t, s, feature("ns", "old"))
	l := mustLedger(t, s, ledger("ns", "cust"))
	other := mustLedger(t, s, ledger("ns", "other"))
	a := mustGrant(t, s, grant(l, f, "100", minute(0)))
	old := mustGrant(t, s, grant(l, archived, "5", minute(0)))
	elsewhere := mustGrant(t, s, grant(other, f, "1", minute(0)))
	if _, err := s.ArchiveFeature(ctx, "ns", archived.ID, minute(1)); err != nil {
		t.Fatal(err)
	}
	wantVersion(t, s, l, 2)

	r := reset(l, minute(60))
	good := child(r, a, "40")
	tests := []struct {
		name   string
		second func() *odometer.Grant
		code   string
		names  []string
	}{
		{"taken id", func() *odometer.Grant { g := child(r, a, "1"); g.ID = a.ID; return g }, odometer.ECONFLICT, []string{a.ID}},
		{"same id twice", func() *odometer.Grant { g := child(r, a, "1"); g.ID = good.ID; return g }, odometer.ECONFLICT, []string{good.ID}},
		{"missing parent", func() *odometer.Grant { g := child(r, a, "1"); g.ParentID = "no-parent"; return g }, odometer.ENOTFOUND, []string{"no-parent"}},
		{"parent in another ledger", func() *odometer.Grant { return child(r, elsewhere, "1") }, odometer.ENOTFOUND, []string{elsewhere.ID}},
		{"missing feature", func() *odometer.Grant { g := child(r, a, "1"); g.FeatureID = "no-feature"; return g }, odometer.ENOTFOUND, []string{"no-feature"}},
		{"no parent", func() *odometer.Grant { g := child(r, a, "1"); g.ParentID = ""; return g }, odometer.EINVALID, nil},
		{"other reset", func() *odometer.Grant { g := child(r, a, "1"); g.ResetID = "other-reset"; return g }, odometer.EINVALID, nil},
		{"other ledger", func() *odometer.Grant { g := child(r, a, "1"); g.LedgerID = other.ID; return g }, odometer.EINVALID, nil},
		{"before the reset", func() *odometer.Grant { g := child(r, a, "1"); g.EffectiveAt = minute(59); return g }, odometer.EINVALID, nil},
		{"start balance out of range", func() *odometer.Grant { return child(r, a, "0.0000000000000000001") }, odometer.EINVALID, nil},
	}
	for _, tt := range tests {
		err := s.CreateReset(ctx, r, []*odometer.Grant{good, tt.second()}, 2)
		wantErr(t, "CreateReset with a rollover grant with a "+tt.name, err, tt.code, tt.names...)
		if got := listResets(t, s, l); len(got) != 0 {
			t.Fatalf("%s: ListResets after a failed reset: %v", tt.name, got)
		}
		if _, err := s.FindGrant(ctx, "ns", l.ID, good.ID); odometer.ErrorCode(err) != odometer.ENOTFOUND {
			t.Fatalf("%s: the failed reset's first rollover grant: %v, want ENOTFOUND", tt.name, err)
		}
		wantVersion(t, s, l, 2)
	}
	// The same reset then succeeds; an archived feature's grant rolls over.
	mustReset(t, s, r, 2, good, child(r, old, "5"))
	wantVersion(t, s, l, 3)
	if got := listGrants(t, s, odometer.GrantFilter{Namespace: "ns", LedgerID: l.ID, FeatureID: archived.ID}); len(got) != 2 {
		t.Errorf("grants of the archived feature after the reset: %v, want the old one and its child", got)
	}
}

// testCreditNamespaces stores the same IDs, keys and subjects in two
// namespaces and checks that nothing of one is visible in, or changed by,
// the other.
func testCreditNamespaces(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	type records struct {
		f *odometer.Feature
		l *odometer.Ledger
		g *odometer.Grant
	}
	create := func(ns, name string) records {
		f := feature(ns, "tokens")
		f.ID, f.Name = "F1", name
		l := ledger(ns, "cust")
		l.ID, l.Metadata = "L1", map[string]string{"name": name}
		g := grant(l, f, "10", minute(0))
		g.ID = "G1"
		mustFeature(t, s, f)
		mustLedger(t, s, l)
		mustGrant(t, s, g)
		return records{f, l, g}
	}
	a, b := create("ns-a", "A"), create("ns-b", "B")
	for _, r := range []records{a, b} {
		ns := r.f.Namespace
		if got, err := s.FindFeature(ctx, ns, "tokens"); err != nil || got.Name != r.f.Name {
			t.Errorf("FindFeature(%s, tokens) = %+v, %v; want name %s", ns, got, err, r.f.Name)
		}
		if got, err := s.FindLedger(ctx, ns, "L1"); err != nil || got.Metadata["name"] != r.f.Name {
			t.Errorf("FindLedger(%s, L1) = %+v, %v", ns, got, err)
		}
		ls, err := s.ListLedgers(ctx, odometer.LedgerFilter{Namespace: ns, Limit: 10})
		if err != nil || len(ls) != 1 {
			t.Errorf("ListLedgers(%s) = %v, %v; want one ledger", ns, ls, err)
		}
		wantGrant(t, s, r.g)
	}

	// Changes in ns-a: a reset, a void, an archive.
	mustReset(t, s, reset(a.l, minute(60)), 1)
	if _, err := s.VoidGrant(ctx, "ns-a", "L1", "G1", minute(61)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ArchiveFeature(ctx, "ns-a", "F1", minute(62)); err != nil {
		t.Fatal(err)
	}
	wantVersion(t, s, a.l, 3)
	wantVersion(t, s, b.l, 1)
	wantGrant(t, s, b.g) // not voided
	if got := listResets(t, s, b.l); len(got) != 0 {
		t.Errorf("ns-b has resets: %v", got)
	}
	if _, err := s.FindFeature(ctx, "ns-b", "tokens"); err != nil {
		t.Errorf("ns-b's feature after archiving ns-a's: %v", err)
	}
	// ns-a's reset does not bind ns-b's ledger.
	early := grant(b.l, b.f, "1", minute(1))
	mustGrant(t, s, early)
	wantVersion(t, s, b.l, 2)

	// A ledger or feature of one namespace cannot be used from another.
	c := ledger("ns-c", "cust")
	c.ID = "L1"
	wantErr(t, "CreateGrant in a ledger of another namespace", s.CreateGrant(ctx, grant(c, a.f, "1", minute(0))), odometer.ENOTFOUND, "L1")
	mustLedger(t, s, c)
	wantErr(t, "CreateGrant for a feature of another namespace", s.CreateGrant(ctx, grant(c, a.f, "1", minute(0))), odometer.ENOTFOUND, "F1")
	_, err := s.FindGrant(ctx, "ns-c", "L1", "G1")
	wantCode(t, "FindGrant in another namespace", err, odometer.ENOTFOUND)
	wantErr(t, "DeleteFeature in another namespace", s.DeleteFeature(ctx, "ns-c", "F1"), odometer.ENOTFOUND, "F1")

	// Deleting ns-d's F1 ignores the grants of the other namespaces' F1.
	d := feature("ns-d", "tokens")
	d.ID = "F1"
	mustFeature(t, s, d)
	if err := s.DeleteFeature(ctx, "ns-d", "F1"); err != nil {
		t.Errorf("DeleteFeature(ns-d, F1): %v", err)
	}
	voided := *a.g
	voided.VoidedAt = tp(minute(61))
	wantGrant(t, s, &voided)
}

// testCreditsConcurrent changes one ledger from several goroutines at once
// — grants, voids, resets (each computed at the version it read, retried
// on ECONFLICT) — while others append events, and then checks that the
// store serialized the changes: every change counted once in Version,
// nothing lost or duplicated, and nothing dated before the reset that
// committed before it.
func testCreditsConcurrent(t *testing.T, s odometer.Store) {
	ctx := t.Context()
	f := mustFeature(t, s, feature("ns", "tokens"))
	l := mustLedger(t, s, ledger("ns", "cust"))
	seed := grant(l, f, "100", minute(0))
	seed.RolloverType = "REMAINING_AMOUNT"
	mustGrant(t, s, seed)

	const (
		granters, grantsEach = 2, 25
		voiders, voidsEach   = 2, 20
		resetters, resetsOf  = 2, 5
		appenders, batches   = 2, 10
		batchSize            = 5
	)
	// A reset's "before": the grants committed before it, and whether each
	// was voided then. Read at the version the reset was made at.
	type resetRecord struct {
		r      *odometer.Reset
		child  *odometer.Grant
		before map[string]bool
	}
	var (
		mu        sync.Mutex
		stored    = map[string]*odometer.Grant{seed.ID: seed} // created, by ID
		pickable  = []string{seed.ID}                         // for voiders to pick from
		voids     = map[string]time.Time{}                    // grant ID → VoidedAt
		refused   []*odometer.Grant                           // CreateGrant's ECONFLICTs
		resets    []resetRecord
		changes   = int64(1) // the seed
		lastReset atomic.Int64
	)
	// near returns a minute around the last reset known: some before it,
	// some at it, some after, so that changes race with resets.
	near := func(rng *rand.Rand) time.Time { return minute(int(lastReset.Load()) + rng.IntN(4) - 1) }

	var wg sync.WaitGroup
	for w := range granters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range grantsEach {
				g := grant(l, f, fmt.Sprintf("%d.25", rng.IntN(1000)+1), near(rng))
				g.RolloverType = "ORIGINAL_AMOUNT"
				err := s.CreateGrant(ctx, g)
				mu.Lock()
				switch odometer.ErrorCode(err) {
				case "":
					stored[g.ID], pickable, changes = g, append(pickable, g.ID), changes+1
				case odometer.ECONFLICT:
					refused = append(refused, g)
				default:
					t.Errorf("CreateGrant: %v", err)
				}
				mu.Unlock()
			}
		})
	}
	for w := range voiders {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for range voidsEach {
				mu.Lock()
				id := pickable[rng.IntN(len(pickable))]
				mu.Unlock()
				at := near(rng)
				g, err := s.VoidGrant(ctx, "ns", l.ID, id, at)
				mu.Lock()
				switch odometer.ErrorCode(err) {
				case "":
					if _, twice := voids[id]; twice {
						t.Errorf("VoidGrant(%s) succeeded twice", id)
					}
					if g.VoidedAt == nil || !g.VoidedAt.Equal(at) {
						t.Errorf("VoidGrant(%s, %s) returned VoidedAt %v", id, at, g.VoidedAt)
					}
					voids[id], changes = at, changes+1
				case odometer.ECONFLICT: // voided already, or before the last reset
				default:
					t.Errorf("VoidGrant: %v", err)
				}
				mu.Unlock()
			}
		})
	}
	for w := range resetters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for made, attempts := 0, 0; made < resetsOf; attempts++ {
				if attempts == 1000 {
					t.Errorf("resetter %d: made %d resets in %d attempts", w, made, attempts)
					return
				}
				// The version first: if it is the same after the reads, the
				// reads saw the ledger exactly at that version.
				before, err := s.FindLedger(ctx, "ns", l.ID)
				if err != nil {
					t.Errorf("FindLedger: %v", err)
					return
				}
				gs, err := s.ListGrants(ctx, odometer.GrantFilter{Namespace: "ns", LedgerID: l.ID, IncludeVoid: true})
				if err != nil {
					t.Errorf("ListGrants: %v", err)
					return
				}
				rs, err := s.ListResets(ctx, "ns", l.ID)
				if err != nil {
					t.Errorf("ListResets: %v", err)
					return
				}
				after, err := s.FindLedger(ctx, "ns", l.ID)
				if err != nil {
					t.Errorf("FindLedger: %v", err)
					return
				}
				if after.Version != before.Version {
					continue
				}
				at := minute(1 + rng.IntN(2))
				if len(rs) > 0 {
					at = rs[len(rs)-1].EffectiveAt.Add(time.Duration(1+rng.IntN(2)) * time.Minute)
				}
				r := reset(l, at)
				c := child(r, gs[rng.IntN(len(gs))], "1.5")
				err = s.CreateReset(ctx, r, []*odometer.Grant{c}, before.Version)
				if odometer.ErrorCode(err) == odometer.ECONFLICT {
					continue
				}
				if err != nil {
					t.Errorf("CreateReset: %v", err)
					return
				}
				snapshot := map[string]bool{}
				for _, g := range gs {
					snapshot[g.ID] = g.VoidedAt != nil
				}
				mu.Lock()
				resets = append(resets, resetRecord{r, c, snapshot})
				stored[c.ID], pickable, changes = c, append(pickable, c.ID), changes+1
				mu.Unlock()
				for {
					n := lastReset.Load()
					m := int64(at.Sub(c0) / time.Minute)
					if m <= n || lastReset.CompareAndSwap(n, m) {
						break
					}
				}
				made++
			}
		})
	}
	var events []string
	for w := range appenders {
		for b := range batches {
			for i := range batchSize {
				events = append(events, fmt.Sprintf("e-%d-%d-%d", w, b, i))
			}
		}
		wg.Go(func() {
			for b := range batches {
				var batch []odometer.Event
				for i := range batchSize {
					batch = append(batch, ev("ns", "src", fmt.Sprintf("e-%d-%d-%d", w, b, i), "tokens", "cust", minute(b), `{"v":1}`))
				}
				out, err := s.AppendEvents(ctx, batch)
				if err != nil {
					t.Errorf("AppendEvents: %v", err)
					continue
				}
				for i, o := range out {
					if o != odometer.Accepted {
						t.Errorf("event %s: %v, want accepted", batch[i].ID, o)
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every change counted once.
	wantVersion(t, s, l, changes)

	// Resets: the successful ones, strictly increasing.
	rs := listResets(t, s, l)
	if len(rs) != len(resets) {
		t.Errorf("ListResets: %d resets, want the %d that succeeded", len(rs), len(resets))
	}
	resetIDs := map[string]*odometer.Reset{}
	for i, r := range rs {
		resetIDs[r.ID] = r
		if i > 0 && !r.EffectiveAt.After(rs[i-1].EffectiveAt) {
			t.Errorf("reset %d at %s is not after reset %d at %s", i, r.EffectiveAt, i-1, rs[i-1].EffectiveAt)
		}
	}
	for _, rec := range resets {
		if got := resetIDs[rec.r.ID]; !cmp.Equal(rec.r, got) {
			t.Errorf("reset %s: stored %+v, want %+v", rec.r.ID, got, rec.r)
		}
	}

	// Grants: exactly the ones created, each once, voided as recorded.
	gs, err := s.ListGrants(ctx, odometer.GrantFilter{Namespace: "ns", LedgerID: l.ID, IncludeVoid: true})
	if err != nil {
		t.Fatal(err)
	}
	final := map[string]*odometer.Grant{}
	for _, g := range gs {
		if final[g.ID] != nil {
			t.Errorf("grant %s listed twice", g.ID)
		}
		final[g.ID] = g
	}
	if len(final) != len(stored) {
		t.Errorf("ListGrants: %d grants, want the %d created", len(final), len(stored))
	}
	for id, g := range stored {
		want := *g
		if at, ok := voids[id]; ok {
			want.VoidedAt = &at
		}
		if diff := cmp.Diff(&want, final[id], decimals); diff != "" {
			t.Errorf("grant %s (-want +got):\n%s", id, diff)
		}
		if g.ParentID != "" && (stored[g.ParentID] == nil || resetIDs[g.ResetID] == nil) {
			t.Errorf("rollover grant %s: parent %q or reset %q missing", id, g.ParentID, g.ResetID)
		}
	}
	for _, g := range refused {
		if final[g.ID] != nil {
			t.Errorf("grant %s was refused but is stored", g.ID)
		}
		// It was refused for a reset after its EffectiveAt.
		if len(rs) == 0 || !rs[len(rs)-1].EffectiveAt.After(g.EffectiveAt) {
			t.Errorf("grant %s effective %s was refused, but no reset is after it", g.ID, g.EffectiveAt)
		}
	}

	// Nothing is dated before the reset that committed before it: what a
	// reset had not seen at its version came later.
	for _, rec := range resets {
		for id, g := range final {
			if _, seen := rec.before[id]; !seen && id != rec.child.ID && g.EffectiveAt.Before(rec.r.EffectiveAt) {
				t.Errorf("grant %s effective %s committed after the reset at %s", id, g.EffectiveAt, rec.r.EffectiveAt)
			}
			if voidedThen, seen := rec.before[id]; g.VoidedAt != nil && !voidedThen && g.VoidedAt.Before(rec.r.EffectiveAt) {
				t.Errorf("grant %s voided at %s after the reset at %s (seen by it: %v)", id, g.VoidedAt, rec.r.EffectiveAt, seen)
			}
		}
		for id := range rec.before {
			if final[id] == nil {
				t.Errorf("grant %s, seen by the reset at %s, is lost", id, rec.r.EffectiveAt)
			}
		}
	}

	// Events: each stored once.
	if diff := cmp.Diff(sorted(events), sorted(ids(listAll(t, s, "ns")))); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}
	t.Logf("%d grants (%d refused), %d voids, %d resets, version %d", len(stored)-len(resets), len(refused), len(voids), len(resets), changes)
}

package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/odometerhq/odometer"
)

// subjectFixture stores events of several types, namespaces and subjects
// with odd bytes, and returns the subjects of namespace "ns" that the
// store holds, sorted: the model ListSubjects must agree with.
func subjectFixture(t *testing.T, s odometer.Store) []string {
	t.Helper()
	n := 0
	event := func(ns, typ, subject string, minutes int) odometer.Event {
		n++
		return ev(ns, "src", fmt.Sprint("e", n), typ, subject, t0.Add(time.Duration(minutes)*time.Minute), "")
	}
	plain := []string{
		"customer-1", "customer-10", "customer-2", "Customer-1", "CUSTOMER-3",
		"customer%", "customer%x", "customer_1", "customerX1", "customer-%", // LIKE wildcards
		"é-client", "éa", "e-client", "日本", "\u00ff", // non-ASCII; U+00FF is C3 BF
		"zz", "a",
	}
	var events []odometer.Event
	for i, subj := range plain {
		// Several events per subject, of up to three types: a subject is
		// listed once however many events and types it has.
		for j, typ := range []string{"tokens", "calls", "gpu"}[:1+i%3] {
			events = append(events, event("ns", typ, subj, j), event("ns", typ, subj, 60+j))
		}
	}
	// Subjects that exist in one type only, interleaved across types, so
	// that the merge of the types' subjects is exercised.
	for i := range 150 {
		typ := []string{"tokens", "calls", "gpu", "storage"}[i%4]
		events = append(events, event("ns", typ, fmt.Sprintf("bulk-%03d", i), i))
		if i%5 == 0 { // and some in two types
			events = append(events, event("ns", "tokens", fmt.Sprintf("bulk-%03d", i), i))
		}
	}
	// Other namespaces, including ones whose names extend "ns" or that
	// "ns" extends: none of their subjects may be listed for "ns".
	for _, ns := range []string{"other", "ns2", "n", "ns-"} {
		events = append(events, event(ns, "tokens", "customer-"+ns, 0), event(ns, "tokens", "zzz-"+ns, 0),
			event(ns, "tokens", "customer-1", 0))
	}
	mustAppend(t, s, events...)
	subjects := slices.Clone(plain)
	for i := range 150 {
		subjects = append(subjects, fmt.Sprintf("bulk-%03d", i))
	}

	// NUL bytes: stores that cannot hold them (PostgreSQL) refuse the
	// whole call with EINVALID, which storing nothing satisfies too.
	nul := []string{"nul", "nul\x00", "nul\x00a", "nul\x01"}
	var nulEvents []odometer.Event
	for _, subj := range nul {
		nulEvents = append(nulEvents, event("ns", "tokens", subj, 0))
	}
	if _, err := s.AppendEvents(t.Context(), nulEvents); err == nil {
		subjects = append(subjects, nul...)
	} else if odometer.ErrorCode(err) != odometer.EINVALID {
		t.Fatalf("AppendEvents with NUL in subjects: %v; want success or EINVALID", err)
	} else {
		t.Logf("the store refuses NUL in subjects (%v); the listing is checked without them", err)
		mustAppend(t, s, event("ns", "tokens", "nul", 0), event("ns", "tokens", "nul\x01", 0))
		subjects = append(subjects, "nul", "nul\x01")
	}
	slices.Sort(subjects)
	return subjects
}

// wantSubjects is what ListSubjects must return for f, given every subject
// of the namespace, sorted.
func wantSubjects(all []string, f odometer.SubjectFilter) []string {
	out := []string{}
	for _, subj := range all {
		if len(out) < f.Limit && strings.HasPrefix(subj, f.Prefix) && (f.After == "" || subj > f.After) {
			out = append(out, subj)
		}
	}
	return out
}

func listSubjects(t *testing.T, s odometer.Store, f odometer.SubjectFilter) []string {
	t.Helper()
	got, err := s.ListSubjects(t.Context(), f)
	if err != nil {
		t.Fatalf("ListSubjects(namespace %+q, prefix %+q, after %+q, limit %d): %v", f.Namespace, f.Prefix, f.After, f.Limit, err)
	}
	if got == nil {
		got = []string{}
	}
	return got
}

// testListSubjects checks ListSubjects against the model for many
// combinations of prefix, after and limit: exact byte prefixes (no
// wildcards, case-sensitive, partial UTF-8 sequences, NUL), after values
// that are and are not subjects, namespaces kept apart.
func testListSubjects(t *testing.T, s odometer.Store) {
	if got := listSubjects(t, s, odometer.SubjectFilter{Namespace: "ns", Limit: 10}); len(got) != 0 {
		t.Fatalf("ListSubjects of an empty store = %q, want none", got)
	}
	all := subjectFixture(t, s)
	prefixes := []string{
		"", "c", "customer", "customer-1", "Customer", "CUSTOMER", "customer%", "customer_", "customer-%",
		"é", "\xc3", "\xc3\xa9", "\xc3\xbf", "日", "\xe6", "\xff", "\xf4\x8f\xbf\xbf",
		"nul", "nul\x00", "nul\x00a", "bulk-0", "bulk-1", "zz", "zzz", "a", "ns",
	}
	afters := []string{
		"", "customer-1", "customer-10\x00", "customer-", "Customer-1", "a\xff", "\xc3", "é", "bulk-04", "bulk-049",
		"nul", "nul\x00", "zz", "\xff",
	}
	for _, prefix := range prefixes {
		for _, after := range afters {
			for _, limit := range []int{1, 3, 1000} {
				f := odometer.SubjectFilter{Namespace: "ns", Prefix: prefix, After: after, Limit: limit}
				if diff := cmp.Diff(wantSubjects(all, f), listSubjects(t, s, f)); diff != "" {
					t.Errorf("ListSubjects(prefix %+q, after %+q, limit %d) (-want +got):\n%s", prefix, after, limit, diff)
				}
			}
		}
	}

	// Paging: each page's last subject is the next page's After.
	for _, prefix := range []string{"", "bulk-", "customer"} {
		for _, limit := range []int{1, 7, 50} {
			var paged []string
			after := ""
			for pages := 0; ; pages++ {
				if pages > len(all)+1 {
					t.Fatalf("paging prefix %q by %d does not end", prefix, limit)
				}
				page := listSubjects(t, s, odometer.SubjectFilter{Namespace: "ns", Prefix: prefix, After: after, Limit: limit})
				paged = append(paged, page...)
				if len(page) < limit {
					break
				}
				after = page[len(page)-1]
			}
			want := wantSubjects(all, odometer.SubjectFilter{Prefix: prefix, Limit: len(all)})
			if diff := cmp.Diff(want, paged); diff != "" {
				t.Errorf("paging prefix %q by %d (-want +got):\n%s", prefix, limit, diff)
			}
		}
	}

	// Namespaces are apart; one without events lists nothing.
	for _, tt := range []struct {
		ns   string
		want []string
	}{
		{"other", []string{"customer-1", "customer-other", "zzz-other"}},
		{"n", []string{"customer-1", "customer-n", "zzz-n"}},
		{"empty", []string{}},
		{"", []string{}},
	} {
		got := listSubjects(t, s, odometer.SubjectFilter{Namespace: tt.ns, Limit: 100})
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ListSubjects of namespace %q (-want +got):\n%s", tt.ns, diff)
		}
	}

	for _, limit := range []int{0, -1} {
		_, err := s.ListSubjects(t.Context(), odometer.SubjectFilter{Namespace: "ns", Limit: limit})
		wantCode(t, fmt.Sprintf("ListSubjects with limit %d", limit), err, odometer.EINVALID)
		if f := odometer.ErrorFields(err); len(f) != 1 || f[0].Field != "limit" {
			t.Errorf("ListSubjects with limit %d: fields %+v, want limit", limit, f)
		}
	}
}

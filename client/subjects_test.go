package client_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/odometerhq/odometer/client"
)

func TestListSubjects(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newServer(t)
	page, err := c.ListSubjects(ctx, client.SubjectQuery{})
	if err != nil || page.Subjects == nil || len(page.Subjects) != 0 || page.Next != "" {
		t.Fatalf("ListSubjects of no events = %+v, %v", page, err)
	}
	var evs []client.Event
	for i, subj := range []string{"acme", "beta", "acme-eu", "Acme", "acme"} {
		evs = append(evs, event(string(rune('a'+i)), subj, `{}`, t0))
	}
	if _, err := c.Ingest(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// Page through the subjects that start with "acme", one at a time.
	var got []string
	q := client.SubjectQuery{Prefix: "acme", Limit: 1}
	for {
		page, err := c.ListSubjects(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page.Subjects...)
		if page.Next == "" {
			break
		}
		q.After = page.Next
	}
	if !slices.Equal(got, []string{"acme", "acme-eu"}) {
		t.Errorf("paged %q", got)
	}
	page, err = c.ListSubjects(ctx, client.SubjectQuery{})
	if err != nil || strings.Join(page.Subjects, ",") != "Acme,acme,acme-eu,beta" || page.Next != "" {
		t.Errorf("all: %+v, %v", page, err)
	}
	_, err = c.ListSubjects(ctx, client.SubjectQuery{Limit: 5000})
	if p := wantStatus(t, "limit 5000", err, http.StatusBadRequest); len(p.Errors) != 1 || p.Errors[0].Field != "limit" {
		t.Errorf("problem %+v", p)
	}
}

func TestEventOutcomes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newServer(t)
	if _, err := c.Ingest(ctx, []client.Event{event("ok", "acme", `{"n":1}`, t0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Ingest(ctx, []client.Event{event("ok", "acme", `{"n":2}`, t0)}); err != nil {
		t.Fatal(err)
	}
	_, err := c.IngestRaw(ctx, []json.RawMessage{
		json.RawMessage(`{"id":"bad","source":"test","type":"prompt","subject":"acme","time":"yesterday"}`),
		json.RawMessage(`{"id":"fine","source":"test","type":"prompt","subject":"acme"}`),
	})
	wantStatus(t, "a bad batch", err, http.StatusBadRequest)

	r, err := c.EventOutcomes(ctx, "ok", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "ok" || len(r.Stored) != 1 || r.Stored[0].Event.ID != "ok" || string(r.Stored[0].Event.Data) != `{"n":1}` ||
		r.Stored[0].IngestedAt.IsZero() || len(r.Recent) != 1 || r.Recent[0].Outcome != client.OutcomeDuplicate {
		t.Errorf("ok: %+v", r)
	}
	r, err = c.EventOutcomes(ctx, "bad", "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Stored) != 0 || len(r.Recent) != 1 || r.Recent[0].Outcome != client.OutcomeRejected ||
		len(r.Recent[0].Reasons) != 1 || r.Recent[0].Reasons[0].Field != "time" || r.Recent[0].ReceivedAt.IsZero() {
		t.Errorf("bad: %+v", r)
	}
	r, err = c.EventOutcomes(ctx, "fine", "")
	if err != nil || len(r.Recent) != 1 || r.Recent[0].Reasons[0].Field != "batch" {
		t.Errorf("fine: %+v, %v", r, err)
	}
	if r, err := c.EventOutcomes(ctx, "bad", "elsewhere"); err != nil || len(r.Stored)+len(r.Recent) != 0 {
		t.Errorf("bad from another source: %+v, %v", r, err)
	}
	_, err = c.EventOutcomes(ctx, "", "")
	wantStatus(t, "no id", err, http.StatusBadRequest)
}

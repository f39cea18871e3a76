package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/odometerhq/odometer"
	"github.com/odometerhq/odometer/ledger"
)

// The credit routes: features, ledgers, grants, balance, history, reset and
// the access check (docs/credits.md, "API"). The handlers decode and check
// the wire format; the business rules are ledger.Service's.

// featureDoc is a feature on the wire.
type featureDoc struct {
	ID                  string            `json:"id"`
	Key                 string            `json:"key"`
	Name                string            `json:"name"`
	MeterSlug           string            `json:"meterSlug"`
	MeterGroupByFilters map[string]string `json:"meterGroupByFilters,omitempty"`
	Metadata            map[string]string `json:"metadata,omitempty"`
	CreatedAt           time.Time         `json:"createdAt"`
	UpdatedAt           time.Time         `json:"updatedAt"`
	ArchivedAt          *time.Time        `json:"archivedAt,omitempty"`
}

func newFeatureDoc(f *odometer.Feature) featureDoc {
	return featureDoc{ID: f.ID, Key: f.Key, Name: f.Name, MeterSlug: f.MeterSlug, MeterGroupByFilters: f.MeterGroupByFilters,
		Metadata: f.Metadata, CreatedAt: f.CreatedAt.UTC(), UpdatedAt: f.UpdatedAt.UTC(), ArchivedAt: utcPtr(f.ArchivedAt)}
}

// createFeature handles POST /api/v1/features.
func (h *handler) createFeature(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	var in struct {
		Key                 string          `json:"key"`
		Name                string          `json:"name"`
		Meter               string          `json:"meter"`     // slug or id
		MeterSlug           string          `json:"meterSlug"` // OpenMeter's name for it
		MeterGroupByFilters json.RawMessage `json:"meterGroupByFilters"`
		Metadata            json.RawMessage `json:"metadata"`
	}
	if err := h.readJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	meter := in.Meter
	switch {
	case meter == "":
		meter = in.MeterSlug
	case in.MeterSlug != "" && in.MeterSlug != in.Meter:
		fields = append(fields, odometer.FieldError{Index: -1, Field: "meterSlug",
			Reason: fmt.Sprintf("names meter %q but meter names %q; give one of them", in.MeterSlug, in.Meter)})
	}
	fin := ledger.FeatureInput{
		Key: in.Key, Name: in.Name, Meter: meter,
		MeterGroupByFilters: decodeMap[string](in.MeterGroupByFilters, "meterGroupByFilters", "a string", &fields),
		Metadata:            decodeMap[string](in.Metadata, "metadata", "a string", &fields),
	}
	if err := fieldsError("invalid feature", fields); err != nil {
		return err
	}
	f, err := h.credits.CreateFeature(r.Context(), namespace(r), fin)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/features/"+url.PathEscape(f.ID))
	return writeJSON(w, http.StatusCreated, newFeatureDoc(f))
}

// listFeatures handles GET /api/v1/features: by key; archived ones with
// includeArchived=true.
func (h *handler) listFeatures(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"includeArchived"})
	archived := p.bool("includeArchived")
	if err := p.err(); err != nil {
		return err
	}
	fs, err := h.credits.ListFeatures(r.Context(), namespace(r), archived)
	if err != nil {
		return err
	}
	out := make([]featureDoc, len(fs))
	for i, f := range fs {
		out[i] = newFeatureDoc(f)
	}
	return writeJSON(w, http.StatusOK, out)
}

// getFeature handles GET /api/v1/features/{featureIdOrKey}.
func (h *handler) getFeature(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	f, err := h.credits.GetFeature(r.Context(), namespace(r), r.PathValue("featureIdOrKey"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newFeatureDoc(f))
}

// deleteFeature handles DELETE /api/v1/features/{featureIdOrKey}; 409 if
// grants refer to it (archive it instead).
func (h *handler) deleteFeature(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	if err := h.credits.DeleteFeature(r.Context(), namespace(r), r.PathValue("featureIdOrKey")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// archiveFeature handles POST /api/v1/features/{featureId}/archive.
func (h *handler) archiveFeature(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	f, err := h.credits.ArchiveFeature(r.Context(), namespace(r), r.PathValue("featureId"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newFeatureDoc(f))
}

// ledgerDoc is a ledger on the wire.
type ledgerDoc struct {
	ID            string            `json:"id"`
	Subject       string            `json:"subject"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	ResetSchedule *scheduleDoc      `json:"resetSchedule,omitempty"`
	CreatedAt     time.Time         `json:"createdAt"`
}

type scheduleDoc struct {
	Interval string    `json:"interval"`
	Anchor   time.Time `json:"anchor"`
	TimeZone string    `json:"timeZone"`
}

func newLedgerDoc(l *odometer.Ledger) ledgerDoc {
	d := ledgerDoc{ID: l.ID, Subject: l.Subject, Metadata: l.Metadata, CreatedAt: l.CreatedAt.UTC()}
	if rs := l.ResetSchedule; rs != nil {
		d.ResetSchedule = &scheduleDoc{Interval: rs.Interval, Anchor: rs.Anchor.UTC(), TimeZone: rs.TimeZone}
		if d.ResetSchedule.TimeZone == "" {
			d.ResetSchedule.TimeZone = "UTC"
		}
	}
	return d
}

// createLedger handles POST /api/v1/ledgers; 409, naming the existing
// ledger, if the subject has one.
func (h *handler) createLedger(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	var in struct {
		Subject       string          `json:"subject"`
		Metadata      json.RawMessage `json:"metadata"`
		ResetSchedule *struct {
			Interval string  `json:"interval"`
			Anchor   *string `json:"anchor"`
			TimeZone string  `json:"timeZone"`
		} `json:"resetSchedule"`
	}
	if err := h.readJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	lin := ledger.LedgerInput{Subject: in.Subject, Metadata: decodeMap[string](in.Metadata, "metadata", "a string", &fields)}
	if rs := in.ResetSchedule; rs != nil {
		tz := rs.TimeZone
		if tz == "UTC" {
			tz = "" // as stored: "" is UTC
		}
		lin.ResetSchedule = &odometer.ResetSchedule{Interval: rs.Interval, TimeZone: tz,
			Anchor: bodyTime(&fields, "resetSchedule.anchor", rs.Anchor)}
	}
	if err := fieldsError("invalid ledger", fields); err != nil {
		return err
	}
	l, err := h.credits.CreateLedger(r.Context(), namespace(r), lin)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/ledgers/"+url.PathEscape(l.ID))
	return writeJSON(w, http.StatusCreated, newLedgerDoc(l))
}

// listLedgers handles GET /api/v1/ledgers: by subject (order=DESC reverses),
// filtered by an exact subject or a substring of it, limit (default 100)
// and offset.
func (h *handler) listLedgers(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"subject", "subjectLike", "limit", "offset", "order"})
	f := odometer.LedgerFilter{
		Namespace:   namespace(r),
		Subject:     p.one("subject"),
		SubjectLike: p.one("subjectLike"),
		Limit:       p.int("limit", 100, 1, 1000),
		Offset:      p.int("offset", 0, 0, 1<<30),
	}
	switch order := p.one("order"); strings.ToUpper(order) {
	case "", "ASC":
	case "DESC":
		f.Descending = true
	default:
		p.bad("order", "must be ASC or DESC; got %q", order)
	}
	if err := p.err(); err != nil {
		return err
	}
	ls, err := h.credits.ListLedgers(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]ledgerDoc, len(ls))
	for i, l := range ls {
		out[i] = newLedgerDoc(l)
	}
	return writeJSON(w, http.StatusOK, out)
}

// getLedger handles GET /api/v1/ledgers/{ledgerId}.
func (h *handler) getLedger(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	l, err := h.credits.GetLedger(r.Context(), namespace(r), r.PathValue("ledgerId"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newLedgerDoc(l))
}

// grantDoc is a grant on the wire.
type grantDoc struct {
	ID           string            `json:"id"`
	LedgerID     string            `json:"ledgerId"`
	FeatureID    string            `json:"featureId"`
	Amount       odometer.Decimal  `json:"amount"`
	Priority     int               `json:"priority"`
	EffectiveAt  time.Time         `json:"effectiveAt"`
	Expiration   *expirationDoc    `json:"expiration,omitempty"`
	ExpiresAt    *time.Time        `json:"expiresAt,omitempty"`
	Rollover     *rolloverDoc      `json:"rollover,omitempty"`
	Recurrence   *recurrenceDoc    `json:"recurrence,omitempty"`
	ParentID     string            `json:"parentId,omitempty"`
	ResetID      string            `json:"resetId,omitempty"`
	StartBalance *odometer.Decimal `json:"startBalance,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	CreatedAt    time.Time         `json:"createdAt"`
	VoidedAt     *time.Time        `json:"voidedAt,omitempty"`
}

type expirationDoc struct {
	Count    int    `json:"count"`
	Duration string `json:"duration"`
}

type rolloverDoc struct {
	Type      string            `json:"type"`
	MaxAmount *odometer.Decimal `json:"maxAmount,omitempty"`
}

type recurrenceDoc struct {
	Interval string    `json:"interval"`
	Anchor   time.Time `json:"anchor"`
}

func newGrantDoc(g *odometer.Grant) grantDoc {
	d := grantDoc{ID: g.ID, LedgerID: g.LedgerID, FeatureID: g.FeatureID, Amount: g.Amount, Priority: g.Priority,
		EffectiveAt: g.EffectiveAt.UTC(), ExpiresAt: utcPtr(g.ExpiresAt), ParentID: g.ParentID, ResetID: g.ResetID,
		StartBalance: g.StartBalance, Metadata: g.Metadata, CreatedAt: g.CreatedAt.UTC(), VoidedAt: utcPtr(g.VoidedAt)}
	if g.ExpirationCount > 0 {
		d.Expiration = &expirationDoc{Count: g.ExpirationCount, Duration: g.ExpirationDuration}
	}
	if g.RolloverType != "" {
		d.Rollover = &rolloverDoc{Type: g.RolloverType, MaxAmount: g.RolloverMaxAmount}
	}
	if g.RecurrenceInterval != "" && g.RecurrenceAnchor != nil {
		d.Recurrence = &recurrenceDoc{Interval: g.RecurrenceInterval, Anchor: g.RecurrenceAnchor.UTC()}
	}
	return d
}

func newGrantDocs(gs []*odometer.Grant) []grantDoc {
	out := make([]grantDoc, len(gs))
	for i, g := range gs {
		out[i] = newGrantDoc(g)
	}
	return out
}

// createGrant handles POST /api/v1/ledgers/{ledgerId}/grants. Times are
// truncated to the whole minute.
func (h *handler) createGrant(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	var in struct {
		Feature     string          `json:"feature"`
		Amount      json.RawMessage `json:"amount"`
		Priority    *int            `json:"priority"`
		EffectiveAt *string         `json:"effectiveAt"`
		Expiration  *struct {
			Count    int    `json:"count"`
			Duration string `json:"duration"`
		} `json:"expiration"`
		Rollover *struct {
			Type      string          `json:"type"`
			MaxAmount json.RawMessage `json:"maxAmount"`
		} `json:"rollover"`
		Recurrence *struct {
			Interval string  `json:"interval"`
			Anchor   *string `json:"anchor"`
		} `json:"recurrence"`
		Metadata json.RawMessage `json:"metadata"`
	}
	if err := h.readJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	gin := ledger.GrantInput{
		Feature:     in.Feature,
		Priority:    in.Priority,
		EffectiveAt: bodyTime(&fields, "effectiveAt", in.EffectiveAt),
		Metadata:    decodeMap[string](in.Metadata, "metadata", "a string", &fields),
	}
	if a := bodyDecimal(&fields, "amount", in.Amount); a != nil {
		gin.Amount = *a
	} else if len(in.Amount) == 0 || string(in.Amount) == "null" {
		fields = append(fields, odometer.FieldError{Index: -1, Field: "amount", Reason: "required: a positive decimal"})
	}
	if x := in.Expiration; x != nil {
		gin.Expiration = &ledger.Expiration{Count: x.Count, Duration: x.Duration}
	}
	if ro := in.Rollover; ro != nil {
		gin.Rollover = &ledger.Rollover{Type: ro.Type, MaxAmount: bodyDecimal(&fields, "rollover.maxAmount", ro.MaxAmount)}
	}
	if rc := in.Recurrence; rc != nil {
		gin.Recurrence = &ledger.Recurrence{Interval: rc.Interval, Anchor: bodyTime(&fields, "recurrence.anchor", rc.Anchor)}
	}
	if err := fieldsError("invalid grant", fields); err != nil {
		return err
	}
	ledgerID := r.PathValue("ledgerId")
	g, err := h.credits.CreateGrant(r.Context(), namespace(r), ledgerID, gin)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/ledgers/"+url.PathEscape(ledgerID)+"/grants/"+url.PathEscape(g.ID))
	return writeJSON(w, http.StatusCreated, newGrantDoc(g))
}

// listGrants handles GET /api/v1/ledgers/{ledgerId}/grants: by effectiveAt;
// feature (key or id), includeVoid, and [from, to) on effectiveAt.
func (h *handler) listGrants(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"feature", "includeVoid", "from", "to"})
	q := ledger.GrantQuery{Feature: p.one("feature"), IncludeVoid: p.bool("includeVoid"), From: p.time("from"), To: p.time("to")}
	p.fields = checkRange(p.fields, "from", q.From, "to", q.To)
	if err := p.err(); err != nil {
		return err
	}
	gs, err := h.credits.ListGrants(r.Context(), namespace(r), r.PathValue("ledgerId"), q)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newGrantDocs(gs))
}

// getGrant handles GET /api/v1/ledgers/{ledgerId}/grants/{grantId}.
func (h *handler) getGrant(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	g, err := h.credits.GetGrant(r.Context(), namespace(r), r.PathValue("ledgerId"), r.PathValue("grantId"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newGrantDoc(g))
}

// voidGrant handles POST /api/v1/ledgers/{ledgerId}/grants/{grantId}/void
// with an optional body {"at"} (default now).
func (h *handler) voidGrant(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	var in struct {
		At *string `json:"at"`
	}
	if err := h.readOptionalJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	at := bodyTime(&fields, "at", in.At)
	if err := fieldsError("invalid void", fields); err != nil {
		return err
	}
	g, err := h.credits.VoidGrant(r.Context(), namespace(r), r.PathValue("ledgerId"), r.PathValue("grantId"), at)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newGrantDoc(g))
}

// balanceDoc answers GET /api/v1/ledgers/{ledgerId}/balance.
type balanceDoc struct {
	At          time.Time           `json:"at"`
	PeriodStart *time.Time          `json:"periodStart,omitempty"`
	Features    []featureBalanceDoc `json:"features"`
}

type featureBalanceDoc struct {
	Feature   string            `json:"feature"`
	FeatureID string            `json:"featureId"`
	Balance   odometer.Decimal  `json:"balance"`
	Usage     odometer.Decimal  `json:"usage"`
	Overage   odometer.Decimal  `json:"overage"`
	Grants    []grantBalanceDoc `json:"grants"`
}

type grantBalanceDoc struct {
	ID      string           `json:"id"`
	Balance odometer.Decimal `json:"balance"`
	Active  bool             `json:"active"`
}

// getBalance handles GET /api/v1/ledgers/{ledgerId}/balance?at=.
func (h *handler) getBalance(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"at"})
	at := p.time("at")
	if err := p.err(); err != nil {
		return err
	}
	b, err := h.credits.Balance(r.Context(), namespace(r), r.PathValue("ledgerId"), at)
	if err != nil {
		return err
	}
	out := balanceDoc{At: b.At, Features: make([]featureBalanceDoc, len(b.Features))}
	if !b.PeriodStart.IsZero() {
		out.PeriodStart = &b.PeriodStart
	}
	for i, f := range b.Features {
		fd := featureBalanceDoc{Feature: f.Feature.Key, FeatureID: f.Feature.ID, Balance: f.Balance, Usage: f.Usage, Overage: f.Overage,
			Grants: make([]grantBalanceDoc, len(f.Grants))}
		for j, g := range f.Grants {
			fd.Grants[j] = grantBalanceDoc{ID: g.GrantID, Balance: g.Balance, Active: g.Active}
		}
		out.Features[i] = fd
	}
	return writeJSON(w, http.StatusOK, out)
}

// historyDoc answers GET /api/v1/ledgers/{ledgerId}/history.
type historyDoc struct {
	From       *time.Time        `json:"from,omitempty"`
	To         time.Time         `json:"to"`
	TotalCount int               `json:"totalCount"`
	Entries    []historyEntryDoc `json:"entries"`
}

type historyEntryDoc struct {
	Kind          ledger.EntryKind  `json:"kind"`
	At            time.Time         `json:"at"`
	Feature       string            `json:"feature,omitempty"`
	FeatureID     string            `json:"featureId,omitempty"`
	GrantID       string            `json:"grantId,omitempty"`
	ParentGrantID string            `json:"parentGrantId,omitempty"`
	ResetID       string            `json:"resetId,omitempty"`
	Automatic     *bool             `json:"automatic,omitempty"`
	Amount        *odometer.Decimal `json:"amount,omitempty"`
	From          *time.Time        `json:"from,omitempty"`
	To            *time.Time        `json:"to,omitempty"`
}

// getHistory handles GET /api/v1/ledgers/{ledgerId}/history.
func (h *handler) getHistory(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"from", "to", "limit", "offset"})
	q := ledger.HistoryQuery{From: p.time("from"), To: p.time("to"), Limit: p.int("limit", 100, 1, 1000), Offset: p.int("offset", 0, 0, 1<<30)}
	p.fields = checkRange(p.fields, "from", q.From, "to", q.To)
	if err := p.err(); err != nil {
		return err
	}
	hist, err := h.credits.History(r.Context(), namespace(r), r.PathValue("ledgerId"), q)
	if err != nil {
		return err
	}
	out := historyDoc{To: hist.To, TotalCount: hist.Total, Entries: make([]historyEntryDoc, len(hist.Entries))}
	if !hist.From.IsZero() {
		out.From = &hist.From
	}
	for i, e := range hist.Entries {
		d := historyEntryDoc{Kind: e.Kind, At: e.At, GrantID: e.GrantID, ParentGrantID: e.ParentGrantID, ResetID: e.ResetID, Amount: e.Amount}
		if e.Feature != nil {
			d.Feature, d.FeatureID = e.Feature.Key, e.Feature.ID
		}
		if e.Kind == ledger.KindReset {
			d.Automatic = &e.Automatic
		}
		if !e.From.IsZero() {
			d.From, d.To = &e.From, &e.To
		}
		out.Entries[i] = d
	}
	return writeJSON(w, http.StatusOK, out)
}

// resetDoc answers POST /api/v1/ledgers/{ledgerId}/reset: the reset and the
// grants its rollover made.
type resetDoc struct {
	ID          string     `json:"id"`
	LedgerID    string     `json:"ledgerId"`
	EffectiveAt time.Time  `json:"effectiveAt"`
	CreatedAt   time.Time  `json:"createdAt"`
	Automatic   bool       `json:"automatic"`
	Grants      []grantDoc `json:"grants"`
}

// resetLedger handles POST /api/v1/ledgers/{ledgerId}/reset with an
// optional body {"effectiveAt"} (default now).
func (h *handler) resetLedger(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	var in struct {
		EffectiveAt *string `json:"effectiveAt"`
	}
	if err := h.readOptionalJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	at := bodyTime(&fields, "effectiveAt", in.EffectiveAt)
	if err := fieldsError("invalid reset", fields); err != nil {
		return err
	}
	res, err := h.credits.Reset(r.Context(), namespace(r), r.PathValue("ledgerId"), at)
	if err != nil {
		return err
	}
	rs := res.Reset
	return writeJSON(w, http.StatusCreated, resetDoc{ID: rs.ID, LedgerID: rs.LedgerID, EffectiveAt: rs.EffectiveAt.UTC(),
		CreatedAt: rs.CreatedAt.UTC(), Automatic: rs.Automatic, Grants: newGrantDocs(res.Grants)})
}

// accessDoc answers GET /api/v1/ledgers/{ledgerId}/access.
type accessDoc struct {
	Feature   string           `json:"feature"`
	FeatureID string           `json:"featureId"`
	At        time.Time        `json:"at"`
	HasAccess bool             `json:"hasAccess"`
	Balance   odometer.Decimal `json:"balance"`
	Usage     odometer.Decimal `json:"usage"`
	Overage   odometer.Decimal `json:"overage"`
}

// checkAccess handles GET /api/v1/ledgers/{ledgerId}/access?feature=&softLimit=.
func (h *handler) checkAccess(w http.ResponseWriter, r *http.Request) error {
	p := newParams(r, []string{"feature", "softLimit"})
	feature := p.one("feature")
	if feature == "" {
		p.bad("feature", "required: the key (or id) of the feature to check")
	}
	soft := p.bool("softLimit")
	if err := p.err(); err != nil {
		return err
	}
	a, err := h.credits.Access(r.Context(), namespace(r), r.PathValue("ledgerId"), feature, soft)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, accessDoc{Feature: a.Feature.Key, FeatureID: a.Feature.ID, At: a.At, HasAccess: a.HasAccess,
		Balance: a.Balance, Usage: a.Usage, Overage: a.Overage})
}

// readOptionalJSON is readJSON for bodies that may be left out: an empty
// body leaves v as it is.
func (h *handler) readOptionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := h.readBody(w, r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	mt, err := mediaType(r)
	if err != nil {
		return err
	}
	if mt != "" && mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return errUnsupportedMediaType("Content-Type must be application/json, got %q", mt)
	}
	return decodeJSON(body, v)
}

// bool parses name as true or false; false when absent.
func (p *params) bool(name string) bool {
	switch v := p.one(name); v {
	case "", "false":
		return false
	case "true":
		return true
	default:
		p.bad(name, "must be true or false; got %q", v)
		return false
	}
}

// bodyTime parses an optional RFC 3339 member of a body; zero when absent.
func bodyTime(fields *[]odometer.FieldError, name string, s *string) time.Time {
	if s == nil || *s == "" {
		return time.Time{}
	}
	t, err := parseTime(*s)
	if err != nil {
		*fields = append(*fields, odometer.FieldError{Index: -1, Field: name, Reason: err.Error()})
	}
	return t
}

// bodyDecimal parses an optional decimal member of a body, a JSON number or
// a string of decimal text; nil when absent or bad (a problem is added).
func bodyDecimal(fields *[]odometer.FieldError, name string, raw json.RawMessage) *odometer.Decimal {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var d odometer.Decimal
	if err := d.UnmarshalJSON(raw); err != nil {
		*fields = append(*fields, odometer.FieldError{Index: -1, Field: name, Reason: fmt.Sprintf("must be a decimal number (a JSON number or a string of decimal text); got %s", raw)})
		return nil
	}
	return &d
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

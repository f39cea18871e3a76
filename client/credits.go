package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Ledger holds one subject's credits.
type Ledger struct {
	ID        string            `json:"id"`
	Subject   string            `json:"subject"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	CreatedAt time.Time         `json:"createdAt"`
}

// Balance is a ledger's balance at a time, per feature.
type Balance struct {
	At          time.Time        `json:"at"`
	PeriodStart *time.Time       `json:"periodStart,omitempty"`
	Features    []FeatureBalance `json:"features"`
}

// FeatureBalance is one feature's balance. The amounts are the server's
// exact decimal text.
type FeatureBalance struct {
	Feature   string         `json:"feature"`
	FeatureID string         `json:"featureId"`
	Balance   json.Number    `json:"balance"`
	Usage     json.Number    `json:"usage"`
	Overage   json.Number    `json:"overage"`
	Grants    []GrantBalance `json:"grants"`
}

// GrantBalance is what remains of one grant.
type GrantBalance struct {
	ID      string      `json:"id"`
	Balance json.Number `json:"balance"`
	Active  bool        `json:"active"`
}

// Access answers "may this subject use this feature now?".
type Access struct {
	Feature   string      `json:"feature"`
	FeatureID string      `json:"featureId"`
	At        time.Time   `json:"at"`
	HasAccess bool        `json:"hasAccess"`
	Balance   json.Number `json:"balance"`
	Usage     json.Number `json:"usage"`
	Overage   json.Number `json:"overage"`
}

// LedgerOf returns the subject's ledger; a *Problem with Status 404 if it
// has none.
func (c *Client) LedgerOf(ctx context.Context, subject string) (*Ledger, error) {
	var ls []Ledger
	if err := c.do(ctx, http.MethodGet, "/api/v1/ledgers", url.Values{"subject": {subject}}, "", nil, "application/json", &ls); err != nil {
		return nil, fmt.Errorf("ledger of subject %q: %w", subject, err)
	}
	if len(ls) == 0 {
		return nil, &Problem{Status: http.StatusNotFound, Title: "Not Found", Detail: "subject " + strconv.Quote(subject) + " has no ledger"}
	}
	return &ls[0], nil
}

// Balance returns the ledger's balance at at (the zero time: now).
func (c *Client) Balance(ctx context.Context, ledgerID string, at time.Time) (*Balance, error) {
	q := url.Values{}
	if !at.IsZero() {
		q.Set("at", at.UTC().Format(time.RFC3339Nano))
	}
	var b Balance
	if err := c.do(ctx, http.MethodGet, "/api/v1/ledgers/"+url.PathEscape(ledgerID)+"/balance", q, "", nil, "application/json", &b); err != nil {
		return nil, fmt.Errorf("balance of ledger %q: %w", ledgerID, err)
	}
	return &b, nil
}

// Access checks whether the ledger's subject may use the feature (its key
// or id) now. With softLimit, access holds while a grant is active even if
// the balance is used up, and the answer reports the overage.
func (c *Client) Access(ctx context.Context, ledgerID, feature string, softLimit bool) (*Access, error) {
	q := url.Values{"feature": {feature}}
	if softLimit {
		q.Set("softLimit", "true")
	}
	var a Access
	if err := c.do(ctx, http.MethodGet, "/api/v1/ledgers/"+url.PathEscape(ledgerID)+"/access", q, "", nil, "application/json", &a); err != nil {
		return nil, fmt.Errorf("access of ledger %q to %q: %w", ledgerID, feature, err)
	}
	return &a, nil
}

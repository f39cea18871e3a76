package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Scopes of an API key: what its holder may do in its namespace.
const (
	ScopeIngest = "ingest" // send events
	ScopeRead   = "read"   // read meters, usage, events, credits and exports
	ScopeAdmin  = "admin"  // everything of the namespace, keys included
	// ScopeMetrics reads GET /metrics, which describes every namespace;
	// admin does not include it, and only the operator can grant it
	// (keys declared in the server's config file).
	ScopeMetrics = "metrics"
)

// Key is an API key of the caller's namespace. Token, the secret to send
// with WithAPIKey, is set only in what CreateKey returns: the server keeps
// a hash of it, never the token itself.
type Key struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Namespace string     `json:"namespace"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	Token     string     `json:"token,omitempty"`
}

// CreateKey makes an API key in the caller's namespace with the given
// scopes (ScopeIngest, ScopeRead, ScopeAdmin) and returns it with its
// token, which no later call can return again. It needs an admin key.
func (c *Client) CreateKey(ctx context.Context, name string, scopes []string) (*Key, error) {
	body, err := json.Marshal(struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}{name, scopes})
	if err != nil {
		return nil, fmt.Errorf("create API key %q: %w", name, err)
	}
	var k Key
	if err := c.do(ctx, http.MethodPost, "/api/v1/keys", nil, "application/json", body, "application/json", &k); err != nil {
		return nil, fmt.Errorf("create API key %q: %w", name, err)
	}
	return &k, nil
}

// ListKeys returns the keys of the caller's namespace, revoked ones too,
// oldest first, without their tokens. It needs an admin key.
func (c *Client) ListKeys(ctx context.Context) ([]Key, error) {
	var ks []Key
	if err := c.do(ctx, http.MethodGet, "/api/v1/keys", nil, "", nil, "application/json", &ks); err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return ks, nil
}

// RevokeKey revokes the key with this id and returns it. The server
// refuses it at once, and every node of a cluster within its key cache
// TTL (2 s by default). A *Problem with status 404 if the caller's
// namespace has no such key, 409 if it is revoked already. It needs an
// admin key.
func (c *Client) RevokeKey(ctx context.Context, id string) (*Key, error) {
	var k Key
	if err := c.do(ctx, http.MethodDelete, "/api/v1/keys/"+url.PathEscape(id), nil, "", nil, "application/json", &k); err != nil {
		return nil, fmt.Errorf("revoke API key %q: %w", id, err)
	}
	return &k, nil
}

package odometer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// API keys (docs/security.md). A key is bound to one namespace and has
// scopes. The secret part of a key is shown once, when the key is made;
// stores keep only a salted SHA-256 of it. The secret is 256 random bits,
// so a fast hash is enough: there is nothing to guess that a slow hash
// would protect.

// Scopes of an API key.
const (
	ScopeIngest  = "ingest"  // POST /api/v1/events
	ScopeRead    = "read"    // every GET, and usage queries sent by POST
	ScopeAdmin   = "admin"   // everything of its namespace, keys included
	ScopeMetrics = "metrics" // GET /metrics, which spans every namespace
)

// Scopes lists the scopes in the order they are shown.
var Scopes = []string{ScopeIngest, ScopeRead, ScopeAdmin, ScopeMetrics}

// APIKey is a stored key, without its secret.
type APIKey struct {
	ID        string // public; the middle part of the token
	Namespace string
	Name      string // a label for people
	Scopes    []string
	// Salt and Hash: Hash is SHA-256(Salt ‖ secret).
	Salt      []byte
	Hash      []byte
	CreatedAt time.Time
	RevokedAt *time.Time
}

// tokenPrefix starts every token, so that leaked keys are easy to find
// with secret scanners.
const tokenPrefix = "odo_"

// Allows reports whether the key's scopes allow scope. Admin allows
// every scope but metrics: the server's metrics describe every namespace
// (their export destinations among them), so one namespace's
// administrator does not read them unless the operator grants that
// explicitly.
func (k *APIKey) Allows(scope string) bool {
	if slices.Contains(k.Scopes, scope) {
		return true
	}
	return scope != ScopeMetrics && slices.Contains(k.Scopes, ScopeAdmin)
}

// Verify reports whether secret is this key's, in constant time.
func (k *APIKey) Verify(secret string) bool {
	h := hashSecret(k.Salt, secret)
	return subtle.ConstantTimeCompare(h, k.Hash) == 1
}

func hashSecret(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// CheckScopes refuses an empty or unknown scope list.
func CheckScopes(scopes []string) error {
	if len(scopes) == 0 {
		return FieldErrorf("scopes", "list at least one of %s", strings.Join(Scopes, ", "))
	}
	for _, s := range scopes {
		if !slices.Contains(Scopes, s) {
			return FieldErrorf("scopes", "unknown scope %q (known: %s)", s, strings.Join(Scopes, ", "))
		}
	}
	return nil
}

// NewAPIKey makes a key for namespace with a fresh secret and returns the
// token to give to its user (shown once) and the key to store.
func NewAPIKey(namespace, name string, scopes []string, now time.Time) (token string, k *APIKey, err error) {
	if err := CheckScopes(scopes); err != nil {
		return "", nil, err
	}
	var secret [32]byte
	_, _ = rand.Read(secret[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	s := base64.RawURLEncoding.EncodeToString(secret[:])
	id := strings.ToLower(NewID(now))
	k = &APIKey{
		ID: id, Namespace: namespace, Name: name, Scopes: slices.Clone(scopes),
		Salt: salt, Hash: hashSecret(salt, s), CreatedAt: now,
	}
	return tokenPrefix + id + "_" + s, k, nil
}

// ParseToken splits a token into the key's id and its secret. The error
// says only that the token is malformed, never what it held.
func ParseToken(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if ok {
		id, secret, ok = strings.Cut(rest, "_")
	}
	if !ok || len(id) != 26 || secret == "" {
		return "", "", Errorf(EINVALID, "malformed API key: want %s<id>_<secret>", tokenPrefix)
	}
	return id, secret, nil
}

// FormatKeyHash writes what the config file needs to declare k: its salt
// and hash, as "sha256:<salt hex>:<hash hex>".
func FormatKeyHash(k *APIKey) string {
	return "sha256:" + hex.EncodeToString(k.Salt) + ":" + hex.EncodeToString(k.Hash)
}

// ParseKeyHash reads what FormatKeyHash wrote.
func ParseKeyHash(s string) (salt, hash []byte, err error) {
	alg, rest, ok := strings.Cut(s, ":")
	saltHex, hashHex, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || alg != "sha256" {
		return nil, nil, fmt.Errorf("key hash must be sha256:<salt hex>:<hash hex> (from odometer keys create)")
	}
	if salt, err = hex.DecodeString(saltHex); err != nil || len(salt) < 16 {
		return nil, nil, fmt.Errorf("key hash: the salt must be at least 16 bytes of hex")
	}
	if hash, err = hex.DecodeString(hashHex); err != nil || len(hash) != sha256.Size {
		return nil, nil, fmt.Errorf("key hash: the hash must be %d bytes of hex", sha256.Size)
	}
	return salt, hash, nil
}

// CheckStorable refuses what no store keeps: a key without an ID or a
// namespace, or with scopes CheckScopes refuses.
func (k *APIKey) CheckStorable() error {
	if k.ID == "" {
		return FieldErrorf("id", "required")
	}
	if k.Namespace == "" {
		return FieldErrorf("namespace", "required")
	}
	return CheckScopes(k.Scopes)
}

// ErrAPIKeyNotFound is ENOTFOUND for a key, the same for a key that does
// not exist and for one of another namespace, so that it tells nothing of
// other tenants.
func ErrAPIKeyNotFound(id string) error {
	return Errorf(ENOTFOUND, "API key %q not found", id)
}

// KeyStore keeps API keys. Key IDs are unique across namespaces.
type KeyStore interface {
	// CreateAPIKey stores k; ECONFLICT if its ID exists (in any
	// namespace); EINVALID without an ID or a namespace, or with scopes
	// that CheckScopes refuses.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// FindAPIKey returns the key with this id, in any namespace, revoked
	// or not. ENOTFOUND if missing.
	FindAPIKey(ctx context.Context, id string) (*APIKey, error)
	// ListAPIKeys returns a namespace's keys ("" = every namespace's),
	// revoked ones too, by creation, then ID.
	ListAPIKeys(ctx context.Context, namespace string) ([]*APIKey, error)
	// RevokeAPIKey sets RevokedAt. ENOTFOUND if the namespace has no such
	// key; ECONFLICT if it is revoked already.
	RevokeAPIKey(ctx context.Context, namespace, id string, at time.Time) (*APIKey, error)
}

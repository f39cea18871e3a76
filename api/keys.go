package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/odometerhq/odometer"
)

// The key routes (admin scope): make, list and revoke the API keys of the
// caller's namespace. A key's token is in the answer that makes it and
// nowhere else; stores keep only a salted hash of its secret.

// keyDoc is a key on the wire. Token is set only in the answer to
// POST /api/v1/keys.
type keyDoc struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Namespace string     `json:"namespace"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"createdAt"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
	Token     string     `json:"token,omitempty"`
}

func newKeyDoc(k *odometer.APIKey) keyDoc {
	d := keyDoc{ID: k.ID, Name: k.Name, Namespace: k.Namespace, Scopes: k.Scopes, CreatedAt: k.CreatedAt.UTC()}
	if d.Scopes == nil {
		d.Scopes = []string{}
	}
	if k.RevokedAt != nil {
		t := k.RevokedAt.UTC()
		d.RevokedAt = &t
	}
	return d
}

// maxKeyName bounds a key's name, in bytes.
const maxKeyName = 200

// createKey handles POST /api/v1/keys: a key of the caller's namespace.
// The answer (201) holds the token, once.
func (h *handler) createKey(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	var in struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := h.readJSON(w, r, &in); err != nil {
		return err
	}
	var fields []odometer.FieldError
	if len(in.Name) > maxKeyName {
		fields = append(fields, odometer.FieldError{Index: -1, Field: "name", Reason: fmt.Sprintf("longer than %d bytes", maxKeyName)})
	}
	if err := odometer.CheckScopes(in.Scopes); err != nil {
		fields = append(fields, odometer.ErrorFields(err)...)
	}
	if err := fieldsError("invalid API key", fields); err != nil {
		return err
	}
	// A key grants only what its maker holds: admin does not hold metrics
	// (it spans every namespace), so only the operator makes such keys,
	// in the config file or while the server is open.
	if c := callerOf(r); c.key != nil {
		for _, s := range in.Scopes {
			if !c.allows(s) {
				return &odometer.Error{Code: odometer.EFORBIDDEN,
					Message: fmt.Sprintf("this API key cannot grant the %q scope, which it does not hold", s),
					Fields: []odometer.FieldError{{Index: -1, Field: "scopes",
						Reason: fmt.Sprintf("%q is not this key's to grant; the operator declares such keys in the config file (docs/security.md)", s)}}}
			}
		}
	}
	token, k, err := odometer.NewAPIKey(namespace(r), in.Name, in.Scopes, h.clock())
	if err != nil {
		return err
	}
	if err := h.store.CreateAPIKey(r.Context(), k); err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	h.keys.forget(k.ID)
	h.open.close() // from now on every request needs a key
	d := newKeyDoc(k)
	d.Token = token
	w.Header().Set("Cache-Control", "no-store") // the token must not linger in caches
	return writeJSON(w, http.StatusCreated, d)
}

// listKeys handles GET /api/v1/keys: the caller's namespace's keys,
// revoked ones too, by creation.
func (h *handler) listKeys(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	keys, err := h.store.ListAPIKeys(r.Context(), namespace(r))
	if err != nil {
		return fmt.Errorf("list API keys: %w", err)
	}
	out := make([]keyDoc, len(keys))
	for i, k := range keys {
		out[i] = newKeyDoc(k)
	}
	return writeJSON(w, http.StatusOK, out)
}

// revokeKey handles DELETE /api/v1/keys/{keyId}: the key stops working at
// once on this node and within KeyCacheTTL on the others. 404 for a key of
// another namespace, 409 for one revoked already.
func (h *handler) revokeKey(w http.ResponseWriter, r *http.Request) error {
	if err := newParams(r, nil).err(); err != nil {
		return err
	}
	id := r.PathValue("keyId")
	if _, _, err := odometer.ParseToken(id); err == nil {
		// A token sent for its id: say so without repeating it.
		return odometer.FieldErrorf("keyId", "send the key's id, not its token")
	}
	k, err := h.store.RevokeAPIKey(r.Context(), namespace(r), id, h.clock())
	if err != nil {
		return fmt.Errorf("revoke API key %q: %w", id, err)
	}
	h.keys.forget(k.ID)
	return writeJSON(w, http.StatusOK, newKeyDoc(k))
}

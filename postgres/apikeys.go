package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/odometerhq/odometer"
)

// The API keys (odometer.KeyStore).
//
// The primary key on id is what makes IDs unique across namespaces, so two
// creates of one ID, on any nodes, cannot both succeed. RevokeAPIKey locks
// the key's row (SELECT … FOR UPDATE) before it checks that the key is not
// revoked: a revoke that waited for another reads the row as that one
// committed it, and so finds the key revoked (ECONFLICT).
//
// As for credits, a lost commit is an EUNAVAILABLE error whose outcome is
// unknown; repeating the call is safe, since a key that was stored or
// revoked makes the repeat fail with ECONFLICT.

// CreateAPIKey stores k. ECONFLICT if a key of any namespace has k's ID;
// EINVALID without an ID or a namespace, or with scopes that
// odometer.CheckScopes refuses.
func (s *Store) CreateAPIKey(ctx context.Context, k *odometer.APIKey) error {
	op := fmt.Sprintf("create API key %q", k.ID)
	scopes, err := apiKeyScopes(k)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.inTx(ctx, op, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			k.ID, k.Namespace, k.Name, scopes, k.Salt, k.Hash, k.CreatedAt, k.RevokedAt)
		if uniqueViolation(err) != "" {
			return odometer.Errorf(odometer.ECONFLICT, "an API key with id %q already exists", k.ID)
		}
		return err
	})
}

// FindAPIKey returns the key with this ID, in any namespace, revoked or
// not. ENOTFOUND if there is none.
func (s *Store) FindAPIKey(ctx context.Context, id string) (*odometer.APIKey, error) {
	op := fmt.Sprintf("find API key %q", id)
	var ks []*odometer.APIKey
	err := s.read(ctx, op, func(ctx context.Context) (err error) {
		ks, err = scanAPIKeys(s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`, id))
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%s: %w", op, odometer.ErrAPIKeyNotFound(id))
	}
	return ks[0], nil
}

// ListAPIKeys returns the namespace's keys, or with namespace "" every
// namespace's, revoked ones too, ordered by CreatedAt and then ID (byte
// order); an empty, non-nil slice if there are none.
func (s *Store) ListAPIKeys(ctx context.Context, namespace string) ([]*odometer.APIKey, error) {
	q := `SELECT ` + apiKeyColumns + ` FROM api_keys`
	var args []any
	if namespace != "" {
		q += ` WHERE namespace = $1`
		args = append(args, namespace)
	}
	q += ` ORDER BY created_at, id`
	var ks []*odometer.APIKey
	err := s.read(ctx, "list API keys", func(ctx context.Context) (err error) {
		ks, err = scanAPIKeys(s.pool.Query(ctx, q, args...))
		return err
	})
	return ks, err
}

// RevokeAPIKey sets the key's RevokedAt to at and returns the key.
// ENOTFOUND if the namespace has no key with this ID (whether or not
// another namespace has); ECONFLICT if it is revoked already.
func (s *Store) RevokeAPIKey(ctx context.Context, namespace, id string, at time.Time) (*odometer.APIKey, error) {
	var k *odometer.APIKey
	err := s.inTx(ctx, fmt.Sprintf("revoke API key %q", id), func(ctx context.Context, tx pgx.Tx) error {
		var revoked *time.Time
		err := tx.QueryRow(ctx, `SELECT revoked_at FROM api_keys WHERE namespace = $1 AND id = $2 FOR UPDATE`,
			namespace, id).Scan(&revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return odometer.ErrAPIKeyNotFound(id)
		}
		if err != nil {
			return err
		}
		if revoked != nil {
			return odometer.Errorf(odometer.ECONFLICT, "API key %q is revoked already (at %s)",
				id, revoked.UTC().Format(time.RFC3339Nano))
		}
		ks, err := scanAPIKeys(tx.Query(ctx, `UPDATE api_keys SET revoked_at = $3
			WHERE namespace = $1 AND id = $2 RETURNING `+apiKeyColumns, namespace, id, at))
		if err != nil {
			return err
		}
		if len(ks) != 1 {
			return &noRetryError{fmt.Errorf("the locked key's update changed %d rows", len(ks))}
		}
		k = ks[0]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

const apiKeyColumns = `id, namespace, name, scopes, salt, hash, created_at, revoked_at`

// apiKeyScopes checks what the store requires of k and returns its scopes
// as JSON.
func apiKeyScopes(k *odometer.APIKey) ([]byte, error) {
	if err := k.CheckStorable(); err != nil {
		return nil, err
	}
	return json.Marshal(k.Scopes)
}

func scanAPIKeys(rows pgx.Rows, err error) ([]*odometer.APIKey, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ks := []*odometer.APIKey{}
	for rows.Next() {
		var k odometer.APIKey
		var scopes []byte
		if err := rows.Scan(&k.ID, &k.Namespace, &k.Name, &scopes, &k.Salt, &k.Hash, &k.CreatedAt, &k.RevokedAt); err != nil {
			return nil, &noRetryError{err}
		}
		if err := json.Unmarshal(scopes, &k.Scopes); err != nil {
			return nil, &noRetryError{fmt.Errorf("API key %q: scopes: %w", k.ID, err)}
		}
		k.CreatedAt, k.RevokedAt = k.CreatedAt.UTC(), utcOrNil(k.RevokedAt)
		ks = append(ks, &k)
	}
	return ks, rows.Err()
}

package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/odometerhq/odometer"
)

// The API keys (odometer.KeyStore). As for credits, every write runs in one
// transaction on the single writer connection, which BEGINs IMMEDIATE: a
// revoke's check that the key is not revoked yet and its update cannot be
// separated by another revoke, in this process or any other.

// CreateAPIKey stores k. ECONFLICT if a key of any namespace has k's ID;
// EINVALID without an ID or a namespace, or with scopes that
// odometer.CheckScopes refuses.
func (s *Store) CreateAPIKey(ctx context.Context, k *odometer.APIKey) error {
	op := fmt.Sprintf("create API key %q", k.ID)
	scopes, err := apiKeyScopes(k)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Namespace, k.Name, scopes, k.Salt, k.Hash, k.CreatedAt.UnixMicro(), microsOrNull(k.RevokedAt))
		if isUniqueViolation(err) {
			return odometer.Errorf(odometer.ECONFLICT, "an API key with id %q already exists", k.ID)
		}
		return err
	})
	return wrapOp(op, err)
}

// FindAPIKey returns the key with this ID, in any namespace, revoked or
// not. ENOTFOUND if there is none.
func (s *Store) FindAPIKey(ctx context.Context, id string) (*odometer.APIKey, error) {
	op := fmt.Sprintf("find API key %q", id)
	rows, err := s.query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ks, err := scanAPIKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
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
		q += ` WHERE namespace = ?`
		args = append(args, namespace)
	}
	rows, err := s.query(ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	ks, err := scanAPIKeys(rows)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return ks, nil
}

// RevokeAPIKey sets the key's RevokedAt to at and returns the key.
// ENOTFOUND if the namespace has no key with this ID (whether or not
// another namespace has); ECONFLICT if it is revoked already.
func (s *Store) RevokeAPIKey(ctx context.Context, namespace, id string, at time.Time) (*odometer.APIKey, error) {
	var k *odometer.APIKey
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE api_keys SET revoked_at = ?
			WHERE namespace = ? AND id = ? AND revoked_at IS NULL
			RETURNING `+apiKeyColumns, at.UnixMicro(), namespace, id)
		if err != nil {
			return err
		}
		ks, err := scanAPIKeys(rows)
		if err != nil {
			return err
		}
		if len(ks) == 1 {
			k = ks[0]
			return nil
		}
		var revoked sql.NullInt64
		err = tx.QueryRowContext(ctx, `SELECT revoked_at FROM api_keys WHERE namespace = ? AND id = ?`,
			namespace, id).Scan(&revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return odometer.ErrAPIKeyNotFound(id)
		}
		if err != nil {
			return err
		}
		return odometer.Errorf(odometer.ECONFLICT, "API key %q is revoked already (at %s)",
			id, fromMicros(revoked.Int64).Format(time.RFC3339Nano))
	})
	if err != nil {
		return nil, fmt.Errorf("revoke API key %q: %w", id, err)
	}
	return k, nil
}

const apiKeyColumns = `id, namespace, name, scopes, salt, hash, created_at, revoked_at`

// apiKeyScopes checks what the store requires of k and returns its scopes
// as JSON text.
func apiKeyScopes(k *odometer.APIKey) (string, error) {
	if err := k.CheckStorable(); err != nil {
		return "", err
	}
	b, err := json.Marshal(k.Scopes)
	return string(b), err
}

func scanAPIKeys(rows *sql.Rows) ([]*odometer.APIKey, error) {
	defer rows.Close()
	ks := []*odometer.APIKey{}
	for rows.Next() {
		var k odometer.APIKey
		var scopes string
		var created int64
		var revoked sql.NullInt64
		if err := rows.Scan(&k.ID, &k.Namespace, &k.Name, &scopes, &k.Salt, &k.Hash, &created, &revoked); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
			return nil, fmt.Errorf("API key %q: scopes: %w", k.ID, err)
		}
		k.CreatedAt, k.RevokedAt = fromMicros(created), timeOrNil(revoked)
		ks = append(ks, &k)
	}
	return ks, rows.Err()
}

-- API keys (odometer.KeyStore, docs/security.md).
--
-- A key's id is unique across namespaces: a token names its key by id alone,
-- before the namespace is known. The secret is never stored, only salt and
-- hash = SHA-256(salt ‖ secret). scopes is a JSON array of strings, in the
-- order given. Times are microseconds since the Unix epoch, UTC; revoked_at
-- is NULL until the key is revoked. Keys are never deleted.
CREATE TABLE api_keys (
	id         TEXT    NOT NULL PRIMARY KEY,
	namespace  TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	scopes     TEXT    NOT NULL CHECK (json_valid(scopes) AND json_type(scopes) = 'array'),
	salt       BLOB    NOT NULL,
	hash       BLOB    NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
) STRICT, WITHOUT ROWID;

-- ListAPIKeys: a namespace's keys in the listing order, without a sort.
CREATE INDEX api_keys_namespace ON api_keys (namespace, created_at, id);

-- API keys (odometer.KeyStore, docs/security.md).
--
-- A key's id is unique across namespaces: a token names its key by id alone,
-- before the namespace is known. Ids and namespaces compare byte for byte
-- (COLLATE "C"), as in the SQLite store. The secret is never stored, only
-- salt and hash = SHA-256(salt ‖ secret). scopes is a jsonb array of
-- strings, in the order given. revoked_at is NULL until the key is revoked;
-- RevokeAPIKey locks the row (SELECT … FOR UPDATE) before it checks it, so
-- of two revokes of a key, on any nodes, the second finds it revoked. Keys
-- are never deleted.
CREATE TABLE api_keys (
	id         text COLLATE "C" PRIMARY KEY,
	namespace  text COLLATE "C" NOT NULL,
	name       text NOT NULL,
	scopes     jsonb NOT NULL CHECK (jsonb_typeof(scopes) = 'array'),
	salt       bytea NOT NULL,
	hash       bytea NOT NULL,
	created_at timestamptz NOT NULL,
	revoked_at timestamptz
);

-- ListAPIKeys: a namespace's keys in the listing order.
CREATE INDEX api_keys_namespace ON api_keys (namespace, created_at, id);

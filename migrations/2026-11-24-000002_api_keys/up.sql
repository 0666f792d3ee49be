-- R8: API keys. Only a hash of the secret is kept; the unique index finds a key in one lookup.
CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    name text NOT NULL,
    -- The first characters of the key, to tell keys apart in a list; not enough to use it.
    prefix text NOT NULL,
    secret_hash text NOT NULL UNIQUE,
    scopes text[] NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

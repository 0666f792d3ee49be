-- SPEC section 8: the billing page's one-time links and sessions (only hashes of their tokens).
CREATE TABLE page_links (
    token_hash text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    created_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX page_links_account ON page_links (account_id);

CREATE TABLE page_sessions (
    id_hash text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    csrf text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX page_sessions_account ON page_sessions (account_id);
CREATE INDEX page_sessions_expiry ON page_sessions (expires_at);

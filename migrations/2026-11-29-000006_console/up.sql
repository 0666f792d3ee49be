-- SPEC section 8: operator-console sessions (only a hash of the cookie's token). The bootstrap
-- admin token has no operator row, hence a null operator_id.
CREATE TABLE console_sessions (
    id_hash text PRIMARY KEY,
    operator_id uuid REFERENCES operators (id),
    operator_name text NOT NULL,
    operator_role text NOT NULL CHECK (operator_role IN ('sales', 'support', 'admin')),
    csrf text NOT NULL,
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_operator ON console_sessions (operator_id);

-- R22 auto top-up, R23 balance alerts, section 9 outbound webhooks.

-- R23: the threshold an account set, and where its balance stood after the last change (kept so
-- each crossing is told once). R22: its auto top-up settings, and whether a pack checkout saved a
-- card at Stripe.
ALTER TABLE accounts
    ADD COLUMN low_balance_threshold bigint CHECK (low_balance_threshold >= 1),
    ADD COLUMN balance_level text NOT NULL DEFAULT 'normal' CHECK (balance_level IN ('normal', 'low', 'depleted')),
    ADD COLUMN auto_topup_enabled boolean NOT NULL DEFAULT false,
    ADD COLUMN auto_topup_threshold bigint CHECK (auto_topup_threshold >= 1),
    ADD COLUMN auto_topup_pack text,
    ADD COLUMN auto_topup_monthly_limit integer NOT NULL DEFAULT 4
        CHECK (auto_topup_monthly_limit BETWEEN 1 AND 31),
    ADD COLUMN card_saved_at timestamptz,
    ADD CONSTRAINT accounts_auto_topup_complete
        CHECK (NOT auto_topup_enabled OR (auto_topup_threshold IS NOT NULL AND auto_topup_pack IS NOT NULL));

-- R23: a bucket's credits.expiring notice is sent once.
ALTER TABLE buckets ADD COLUMN expiry_noticed_at timestamptz;
CREATE INDEX buckets_expiry_notice ON buckets (expires_at)
    WHERE expiry_noticed_at IS NULL AND expires_at IS NOT NULL;

-- R22: one auto top-up: written in the capture's transaction, its off-session PaymentIntent made
-- by a worker (idempotency key: the id), its pack granted once when Stripe reports it paid.
CREATE TABLE auto_topups (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    pack_id text NOT NULL,
    credits bigint NOT NULL CHECK (credits > 0),
    expiry_days integer NOT NULL CHECK (expiry_days > 0),
    amount bigint NOT NULL CHECK (amount >= 0),
    currency text NOT NULL,
    -- pending: the PaymentIntent is still to be made; processing: made, Stripe has not said it
    -- is paid; succeeded: the pack is granted; failed: declined or needing the customer.
    status text NOT NULL CHECK (status IN ('pending', 'processing', 'succeeded', 'failed')),
    payment_intent_id text UNIQUE,
    bucket_id uuid REFERENCES buckets (id),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    created_at timestamptz NOT NULL,
    finished_at timestamptz
);
-- Never two open at once, whatever races.
CREATE UNIQUE INDEX auto_topups_one_open ON auto_topups (account_id) WHERE status IN ('pending', 'processing');
CREATE INDEX auto_topups_due ON auto_topups (next_attempt_at) WHERE status = 'pending';
CREATE INDEX auto_topups_account ON auto_topups (account_id, created_at);
CREATE INDEX auto_topups_bucket ON auto_topups (bucket_id);

-- Section 9. The signing secret is kept sealed (XChaCha20-Poly1305 under webhooks.encryption_key,
-- the endpoint id as associated data), never in clear.
CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    url text NOT NULL,
    events text[] NOT NULL,
    description text,
    secret_sealed bytea NOT NULL,
    created_at timestamptz NOT NULL,
    -- Since when every attempt has failed (a success clears it); 5 days of it disables.
    failing_since timestamptz,
    disabled_at timestamptz
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id);

-- An event, written in the transaction of the change that caused it. `id` is the webhook-id;
-- `body` is the exact JSON signed and sent on every attempt.
CREATE TABLE webhook_events (
    id text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    event_type text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX webhook_events_account ON webhook_events (account_id, created_at);

-- One event to one endpoint: pending until a 2xx (delivered) or its 3 days are over (failed).
CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY,
    event_id text NOT NULL REFERENCES webhook_events (id),
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    first_attempt_at timestamptz,
    created_at timestamptz NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

-- Every attempt, for GET /v1/webhook-endpoints/{id}/deliveries.
CREATE TABLE webhook_attempts (
    id bigserial PRIMARY KEY,
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL,
    response_code integer,
    error text,
    delivered boolean NOT NULL,
    next_attempt_at timestamptz
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

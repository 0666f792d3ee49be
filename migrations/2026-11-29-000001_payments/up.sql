-- Payments without leaks (R14, R17, R18, R19, SPEC section 5).

ALTER TABLE accounts
    -- R14: when the renewal's first payment failed (its invoice.payment_failed); with
    -- billing.past_due_grace_days after it the account is judged as Free until the invoice is paid.
    ADD COLUMN past_due_since timestamptz,
    -- R19: set while the account is restricted (by a dispute or an operator); the reasons are in
    -- account_restrictions.
    ADD COLUMN restricted_at timestamptz,
    -- How many of the account's Stripe customers were deleted at Stripe: the next customer is made
    -- under a new idempotency key.
    ADD COLUMN stripe_customer_generation integer NOT NULL DEFAULT 0;
ALTER TABLE accounts DROP CONSTRAINT IF EXISTS accounts_plan_status_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_plan_status_check
    CHECK (plan_status IN ('active', 'past_due', 'unpaid', 'canceling'));

-- R18: a session keeps what it sold, so a pack is granted as sold whatever the catalog says later.
ALTER TABLE checkout_sessions
    ADD COLUMN credits bigint,
    ADD COLUMN expiry_days integer,
    ADD COLUMN amount bigint,
    ADD COLUMN currency text;
ALTER TABLE checkout_sessions DROP CONSTRAINT checkout_sessions_status_check;
ALTER TABLE checkout_sessions ADD CONSTRAINT checkout_sessions_status_check
    CHECK (status IN ('open', 'completed', 'paid', 'failed', 'expired'));
CREATE INDEX checkout_sessions_open ON checkout_sessions (account_id, created_at) WHERE status = 'open';

-- R18: a second subscription reported paid for an account is recorded as such, granted nothing,
-- cancelled and refunded at Stripe.
ALTER TABLE subscriptions ADD COLUMN duplicate_of text REFERENCES subscriptions (id);
CREATE INDEX subscriptions_duplicate_of ON subscriptions (duplicate_of);

-- R17/R19: what each subscription invoice granted, so a refund or a dispute takes its share back.
ALTER TABLE invoice_grants
    ADD COLUMN credits bigint NOT NULL DEFAULT 0,
    ADD COLUMN amount_paid bigint NOT NULL DEFAULT 0,
    ADD COLUMN refunded_amount bigint NOT NULL DEFAULT 0,
    ADD COLUMN clawed_back bigint NOT NULL DEFAULT 0;

-- Section 5: an event the service cannot apply by its own configuration is kept, not applied,
-- for an admin to apply again once the configuration is fixed.
ALTER TABLE stripe_events
    ADD COLUMN status text NOT NULL DEFAULT 'applied' CHECK (status IN ('applied', 'failed')),
    ADD COLUMN payload text,
    ADD COLUMN error text,
    ADD COLUMN attempts integer NOT NULL DEFAULT 1;
CREATE INDEX stripe_events_failed ON stripe_events (received_at) WHERE status = 'failed';

-- R19: why an account is restricted; lifted rows stay as the history.
CREATE TABLE account_restrictions (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    source text NOT NULL CHECK (source IN ('dispute', 'operator')),
    dispute_id text,
    reason text NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    lifted_at timestamptz,
    lifted_by text,
    lift_reason text
);
CREATE INDEX account_restrictions_account ON account_restrictions (account_id);

-- R19: each dispute, what it clawed back from which bucket, and how it ended.
CREATE TABLE disputes (
    id text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    payment_intent_id text,
    bucket_id uuid REFERENCES buckets (id),
    bucket_kind text,
    bucket_expires_at timestamptz,
    clawed_back bigint NOT NULL DEFAULT 0,
    status text NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    created_at timestamptz NOT NULL,
    closed_at timestamptz
);
CREATE INDEX disputes_account ON disputes (account_id);
CREATE INDEX disputes_bucket ON disputes (bucket_id);

-- Calls to Stripe that a change decided (cancel and refund a second subscription): written in the
-- change's transaction, carried out by a worker with an idempotency key each, so none is lost.
CREATE TABLE payment_jobs (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    kind text NOT NULL CHECK (kind IN ('cancel_subscription', 'refund_invoice')),
    subject text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    created_at timestamptz NOT NULL,
    done_at timestamptz,
    UNIQUE (kind, subject)
);
CREATE INDEX payment_jobs_due ON payment_jobs (next_attempt_at) WHERE status = 'pending';
CREATE INDEX payment_jobs_account ON payment_jobs (account_id);

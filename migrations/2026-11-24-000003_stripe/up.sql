-- Stripe: customers, checkout sessions, subscriptions, the events applied, what each payment
-- granted (one allowance per invoice, one pack per checkout session), and the mail outbox.

ALTER TABLE accounts
    ADD COLUMN stripe_customer_id text UNIQUE,
    -- Set when a business verification is approved (R13).
    ADD COLUMN business_verified_at timestamptz,
    -- A plan change waiting for the period's end: a downgrade ('plan:<id>') or 'cancel'.
    ADD COLUMN pending_change text,
    -- A cancelled subscription ends the plan here (R14); the sweep moves the account to Free.
    ADD COLUMN plan_ends_at timestamptz;
CREATE INDEX accounts_plan_ends ON accounts (plan_ends_at) WHERE plan_ends_at IS NOT NULL;

-- Every Checkout Session this service made, so an event can only grant what was sold.
CREATE TABLE checkout_sessions (
    id text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    mode text NOT NULL CHECK (mode IN ('subscription', 'payment')),
    item_id text NOT NULL,
    stripe_price_id text NOT NULL,
    url text,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'completed', 'paid', 'failed')),
    created_at timestamptz NOT NULL
);
CREATE INDEX checkout_sessions_account ON checkout_sessions (account_id);

CREATE TABLE subscriptions (
    id text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    customer_id text NOT NULL,
    stripe_status text NOT NULL,
    price_id text,
    item_id text,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    current_period_start timestamptz,
    current_period_end timestamptz,
    -- The created time of the newest event applied: an older one never rolls state back.
    last_event_at timestamptz,
    ended_at timestamptz,
    created_at timestamptz NOT NULL
);
CREATE INDEX subscriptions_account ON subscriptions (account_id);

-- Each Stripe event is applied at most once.
CREATE TABLE stripe_events (
    id text PRIMARY KEY,
    event_type text NOT NULL,
    created timestamptz NOT NULL,
    outcome text NOT NULL,
    received_at timestamptz NOT NULL
);

-- One invoice grants at most one allowance.
CREATE TABLE invoice_grants (
    invoice_id text PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    subscription_id text NOT NULL REFERENCES subscriptions (id),
    billing_reason text NOT NULL,
    bucket_id uuid REFERENCES buckets (id),
    created_at timestamptz NOT NULL
);
CREATE INDEX invoice_grants_account ON invoice_grants (account_id);
CREATE INDEX invoice_grants_subscription ON invoice_grants (subscription_id);
CREATE INDEX invoice_grants_bucket ON invoice_grants (bucket_id);

-- One paid checkout session grants at most one pack; refunds claw back from it (R17).
CREATE TABLE topup_purchases (
    session_id text PRIMARY KEY REFERENCES checkout_sessions (id),
    account_id uuid NOT NULL REFERENCES accounts (id),
    pack_id text NOT NULL,
    bucket_id uuid NOT NULL REFERENCES buckets (id),
    credits bigint NOT NULL CHECK (credits > 0),
    payment_intent_id text UNIQUE,
    amount bigint NOT NULL,
    currency text NOT NULL,
    -- The charge's cumulative amount_refunded already clawed back for, and the credits taken.
    refunded_amount bigint NOT NULL DEFAULT 0,
    clawed_back bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL
);
CREATE INDEX topup_purchases_account ON topup_purchases (account_id);
CREATE INDEX topup_purchases_bucket ON topup_purchases (bucket_id);

-- Mail caused by a change, written in the same transaction; a worker sends it (the email issue).
CREATE TABLE outbox (
    id uuid PRIMARY KEY,
    -- What caused it, unique: one change never mails twice.
    dedupe_key text NOT NULL UNIQUE,
    kind text NOT NULL,
    account_id uuid REFERENCES accounts (id),
    recipient text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    created_at timestamptz NOT NULL,
    sent_at timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_account ON outbox (account_id);

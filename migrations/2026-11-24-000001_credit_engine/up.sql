-- The credit engine: accounts, buckets, runs and their holds, the ledger, trials,
-- idempotency records, operators and their audit trail, the shared test clock.

CREATE TABLE accounts (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL,
    plan_id text NOT NULL,
    plan_status text NOT NULL DEFAULT 'active' CHECK (plan_status IN ('active', 'past_due', 'canceling')),
    period_start timestamptz,
    period_end timestamptz,
    contract_monthly_credits bigint CHECK (contract_monthly_credits > 0),
    contract_runs_per_minute integer CHECK (contract_runs_per_minute > 0),
    contract_starts_at timestamptz,
    created_at timestamptz NOT NULL,
    CHECK ((period_start IS NULL) = (period_end IS NULL))
);
CREATE INDEX accounts_contract_due ON accounts (period_end) WHERE contract_monthly_credits IS NOT NULL;

-- A grant of credits. remaining is the sum of the bucket's ledger entries (R15), kept here so
-- the burn-down reads one row per bucket; the CHECK is the last guard against an overdraft.
CREATE TABLE buckets (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    kind text NOT NULL CHECK (kind IN ('lifetime', 'allowance', 'topup', 'adjustment')),
    granted bigint NOT NULL CHECK (granted > 0),
    remaining bigint NOT NULL CHECK (remaining >= 0 AND remaining <= granted),
    expires_at timestamptz,
    reference text,
    created_at timestamptz NOT NULL
);
CREATE INDEX buckets_account ON buckets (account_id) WHERE remaining > 0;
CREATE INDEX buckets_account_all ON buckets (account_id);
CREATE INDEX buckets_to_expire ON buckets (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
-- R2: one lifetime grant per account, ever.
CREATE UNIQUE INDEX buckets_one_lifetime ON buckets (account_id) WHERE kind = 'lifetime';

CREATE TABLE runs (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    model_id text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('canvas', 'api')),
    workflow_id text,
    images bigint,
    duration_seconds bigint,
    cost bigint NOT NULL CHECK (cost >= 0),
    status text NOT NULL CHECK (status IN ('held', 'captured', 'released')),
    captured_credits bigint CHECK (captured_credits >= 0),
    captured_images bigint,
    captured_duration_seconds bigint,
    trial_kind text CHECK (trial_kind IN ('count', 'window')),
    trial_generations bigint NOT NULL DEFAULT 0,
    trial_window_opens_at timestamptz,
    trial_window_closes_at timestamptz,
    hold_expires_at timestamptz,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    release_reason text,
    CHECK ((status = 'held') = (finished_at IS NULL))
);
-- R12's rolling window reads the account's newest runs.
CREATE INDEX runs_account_created ON runs (account_id, created_at DESC);
CREATE INDEX runs_held_expiry ON runs (hold_expires_at) WHERE status = 'held';

-- What a hold reserves in each bucket (no ledger entry until the capture).
CREATE TABLE run_reservations (
    run_id uuid NOT NULL REFERENCES runs (id),
    bucket_id uuid NOT NULL REFERENCES buckets (id),
    account_id uuid NOT NULL REFERENCES accounts (id),
    credits bigint NOT NULL CHECK (credits > 0),
    open boolean NOT NULL DEFAULT true,
    PRIMARY KEY (run_id, bucket_id)
);
CREATE INDEX run_reservations_bucket ON run_reservations (bucket_id);
CREATE INDEX run_reservations_open ON run_reservations (account_id) WHERE open;

-- R15: every change to a bucket, immutable. seq orders the ledger (newest first) and pages it.
CREATE TABLE ledger_entries (
    seq bigserial PRIMARY KEY,
    id uuid NOT NULL UNIQUE,
    account_id uuid NOT NULL REFERENCES accounts (id),
    bucket_id uuid NOT NULL REFERENCES buckets (id),
    entry_type text NOT NULL CHECK (entry_type IN ('grant', 'debit', 'expire', 'clawback', 'adjustment')),
    credits bigint NOT NULL CHECK (credits <> 0),
    run_id uuid REFERENCES runs (id),
    reference text,
    reason text,
    created_at timestamptz NOT NULL
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, seq DESC);
CREATE INDEX ledger_entries_bucket ON ledger_entries (bucket_id);
CREATE INDEX ledger_entries_run ON ledger_entries (run_id) WHERE run_id IS NOT NULL;

CREATE FUNCTION ledger_entries_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable';
END;
$$;
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_immutable();

-- R9: what an account used of a model's trial.
CREATE TABLE trial_usage (
    account_id uuid NOT NULL REFERENCES accounts (id),
    model_id text NOT NULL,
    used bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    window_opens_at timestamptz,
    PRIMARY KEY (account_id, model_id)
);

-- R11: the first successful response to a key, per caller scope, for 24 hours.
CREATE TABLE idempotency_records (
    scope text NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    response_status smallint NOT NULL,
    response_body text NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_records_created ON idempotency_records (created_at);

CREATE TABLE operators (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('sales', 'support', 'admin')),
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    disabled_at timestamptz
);

-- Every operator action: who, what, on which account, when.
CREATE TABLE operator_actions (
    id bigserial PRIMARY KEY,
    operator_id uuid REFERENCES operators (id),
    operator_name text NOT NULL,
    operator_role text NOT NULL,
    action text NOT NULL,
    account_id uuid REFERENCES accounts (id),
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL
);
CREATE INDEX operator_actions_operator ON operator_actions (operator_id);
CREATE INDEX operator_actions_account ON operator_actions (account_id);

-- clock.mode = "test": one offset from the real clock, shared by every instance.
CREATE TABLE test_clock (
    id smallint PRIMARY KEY CHECK (id = 1),
    offset_micros bigint NOT NULL DEFAULT 0
);
INSERT INTO test_clock (id, offset_micros) VALUES (1, 0);

-- SPEC section 6 / R13: business-verification requests and the sales team's decisions.
CREATE TABLE business_verifications (
    id uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id),
    company_name text NOT NULL,
    website text NOT NULL,
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    tax_id text,
    contact_name text NOT NULL,
    contact_email text NOT NULL,
    intended_use text NOT NULL,
    expected_monthly_credits bigint CHECK (expected_monthly_credits >= 0),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    reason text,
    note text,
    decided_by_id uuid REFERENCES operators (id),
    decided_by text,
    decided_at timestamptz,
    created_at timestamptz NOT NULL,
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK (status <> 'rejected' OR reason IS NOT NULL)
);
CREATE INDEX business_verifications_account ON business_verifications (account_id, created_at DESC);
CREATE INDEX business_verifications_queue ON business_verifications (status, created_at);
CREATE INDEX business_verifications_decided_by ON business_verifications (decided_by_id);
-- One open request per account, whatever the interleaving.
CREATE UNIQUE INDEX business_verifications_one_open ON business_verifications (account_id) WHERE status = 'pending';

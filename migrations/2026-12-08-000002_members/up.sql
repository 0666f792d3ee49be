-- Teams (SPEC section 11, R24-R27): the people who spend one account's credits.
-- Keyed by the account first, as every table that is ready for Citus (docs/scale-out.md).
CREATE TABLE members (
    account_id uuid NOT NULL REFERENCES accounts (id),
    id uuid NOT NULL,
    email text NOT NULL,
    name text NOT NULL,
    role text NOT NULL CHECK (role IN ('owner', 'admin', 'billing', 'member')),
    -- R26: credits the member's runs may hold or capture a calendar month (UTC); NULL: no cap.
    monthly_credit_limit bigint CHECK (monthly_credit_limit IS NULL OR monthly_credit_limit > 0),
    created_at timestamptz NOT NULL,
    -- Kept for history (runs still name them); the same email may be added again.
    removed_at timestamptz,
    -- R26: the notices of the month that starts at `noticed_month`: 80 after the 80% mail, 100
    -- after the 100% one.
    noticed_month timestamptz,
    noticed_percent integer NOT NULL DEFAULT 0 CHECK (noticed_percent IN (0, 80, 100)),
    PRIMARY KEY (account_id, id)
);
-- R24: an email is at most one current member of an account.
CREATE UNIQUE INDEX members_current_email ON members (account_id, lower(email)) WHERE removed_at IS NULL;

-- The account's own email is its first member, an owner (existing accounts too).
INSERT INTO members (account_id, id, email, name, role, created_at)
SELECT id, gen_random_uuid(), email, name, 'owner', created_at FROM accounts;

-- R25: who ran it, and whose key it is. A run's member has no foreign key: members are never
-- deleted (removal sets removed_at), the run writer checks the member under the account's lock,
-- and `credits check` audits every run's member; a foreign key's check would take a KEY SHARE
-- lock on the member's row for every run (docs/decisions.md, "Teams").
ALTER TABLE runs ADD COLUMN member_id uuid;
CREATE INDEX runs_member ON runs (account_id, member_id, created_at) WHERE member_id IS NOT NULL;
ALTER TABLE api_keys ADD COLUMN member_id uuid;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_member FOREIGN KEY (account_id, member_id) REFERENCES members (account_id, id);

-- R27: a billing page opened for a member acts as that member.
ALTER TABLE page_links ADD COLUMN member_id uuid;
ALTER TABLE page_sessions ADD COLUMN member_id uuid;

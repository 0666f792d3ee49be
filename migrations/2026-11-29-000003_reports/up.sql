-- Section 10: usage breakdowns, the ledger export, the liability report.

-- What a paid bucket was sold for, recorded when it is granted (a pack's price for its credits, a
-- plan's price for its monthly credits), so later catalog changes never rewrite the report.
ALTER TABLE buckets
    ADD COLUMN value_amount bigint CHECK (value_amount >= 0),
    ADD COLUMN value_credits bigint CHECK (value_credits > 0),
    ADD COLUMN currency text;

-- GET /v1/usage reads an account's debits of a span: by time, with what it sums.
CREATE INDEX ledger_debits_by_time ON ledger_entries (account_id, created_at) INCLUDE (credits, run_id)
    WHERE entry_type = 'debit';
-- GET /v1/ledger/export reads an account's entries of a span in order.
CREATE INDEX ledger_entries_account_time ON ledger_entries (account_id, created_at, seq);
-- The liability report reads every entry up to a moment.
CREATE INDEX ledger_entries_time ON ledger_entries (created_at);

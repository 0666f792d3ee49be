DROP INDEX ledger_entries_time;
DROP INDEX ledger_entries_account_time;
DROP INDEX ledger_debits_by_time;
ALTER TABLE buckets DROP COLUMN currency, DROP COLUMN value_credits, DROP COLUMN value_amount;

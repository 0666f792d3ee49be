DROP TABLE payment_jobs;
DROP TABLE disputes;
DROP TABLE account_restrictions;
DROP INDEX stripe_events_failed;
ALTER TABLE stripe_events DROP COLUMN attempts, DROP COLUMN error, DROP COLUMN payload, DROP COLUMN status;
ALTER TABLE invoice_grants
    DROP COLUMN clawed_back, DROP COLUMN refunded_amount, DROP COLUMN amount_paid, DROP COLUMN credits;
DROP INDEX subscriptions_duplicate_of;
ALTER TABLE subscriptions DROP COLUMN duplicate_of;
DROP INDEX checkout_sessions_open;
UPDATE checkout_sessions SET status = 'failed' WHERE status = 'expired';
ALTER TABLE checkout_sessions DROP CONSTRAINT checkout_sessions_status_check;
ALTER TABLE checkout_sessions ADD CONSTRAINT checkout_sessions_status_check
    CHECK (status IN ('open', 'completed', 'paid', 'failed'));
ALTER TABLE checkout_sessions DROP COLUMN currency, DROP COLUMN amount, DROP COLUMN expiry_days, DROP COLUMN credits;
ALTER TABLE accounts DROP CONSTRAINT accounts_plan_status_check;
UPDATE accounts SET plan_status = 'past_due' WHERE plan_status = 'unpaid';
ALTER TABLE accounts ADD CONSTRAINT accounts_plan_status_check
    CHECK (plan_status IN ('active', 'past_due', 'canceling'));
ALTER TABLE accounts DROP COLUMN stripe_customer_generation, DROP COLUMN restricted_at, DROP COLUMN past_due_since;

DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhook_endpoints;
DROP TABLE auto_topups;
DROP INDEX buckets_expiry_notice;
ALTER TABLE buckets DROP COLUMN expiry_noticed_at;
ALTER TABLE accounts
    DROP CONSTRAINT accounts_auto_topup_complete,
    DROP COLUMN card_saved_at,
    DROP COLUMN auto_topup_monthly_limit,
    DROP COLUMN auto_topup_pack,
    DROP COLUMN auto_topup_threshold,
    DROP COLUMN auto_topup_enabled,
    DROP COLUMN balance_level,
    DROP COLUMN low_balance_threshold;

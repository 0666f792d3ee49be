ALTER TABLE buckets RESET (fillfactor);
DROP INDEX buckets_to_expire;
ALTER TABLE buckets DROP COLUMN expiry_swept;
CREATE INDEX buckets_to_expire ON buckets (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE INDEX buckets_account ON buckets (account_id) WHERE remaining > 0;

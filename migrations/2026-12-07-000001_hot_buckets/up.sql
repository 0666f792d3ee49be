-- A capture moves its bucket's `remaining`. No index may depend on that column, so that the
-- update stays HOT (no new index entries; the old row version is pruned in place): every
-- bucket update made an entry in each of the table's indexes, and left the indexes bloated
-- until a vacuum. `buckets_account` (remaining > 0) goes: `buckets_account_all` finds an
-- account's few buckets. The expiry sweep finds its due buckets by a flag it sets once, when an
-- expired bucket is empty (an expired bucket's credits only go down: what a hold returns to it
-- expires at once).
DROP INDEX buckets_account;
DROP INDEX buckets_to_expire;
ALTER TABLE buckets ADD COLUMN expiry_swept boolean NOT NULL DEFAULT false;
CREATE INDEX buckets_to_expire ON buckets (expires_at) WHERE expires_at IS NOT NULL AND NOT expiry_swept;
-- Room on each page for a row's next version: HOT needs it on the same page.
ALTER TABLE buckets SET (fillfactor = 80);

ALTER TABLE api_keys DROP COLUMN monthly_credit_limit;
DROP INDEX runs_api_key;
ALTER TABLE runs DROP COLUMN api_key_id;

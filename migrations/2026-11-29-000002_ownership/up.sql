-- R20: a run records the API key that started it (the channel is already kept); R21: a key may
-- cap the credits its runs use in a calendar month.
ALTER TABLE runs ADD COLUMN api_key_id uuid REFERENCES api_keys (id);
-- What a key's runs used this month is read under the account's lock on every capped run.
CREATE INDEX runs_api_key ON runs (api_key_id, created_at) WHERE api_key_id IS NOT NULL;
ALTER TABLE api_keys ADD COLUMN monthly_credit_limit bigint CHECK (monthly_credit_limit > 0);

ALTER TABLE console_sessions DROP COLUMN bootstrap_token_hash;
DELETE FROM topup_purchases WHERE auto_topup_id IS NOT NULL;
ALTER TABLE topup_purchases DROP CONSTRAINT topup_purchases_paid_one_way;
ALTER TABLE topup_purchases DROP COLUMN auto_topup_id;
ALTER TABLE topup_purchases DROP CONSTRAINT topup_purchases_session_id_key;
ALTER TABLE topup_purchases ALTER COLUMN session_id SET NOT NULL;
ALTER TABLE topup_purchases DROP CONSTRAINT topup_purchases_pkey;
ALTER TABLE topup_purchases DROP COLUMN id;
ALTER TABLE topup_purchases ADD PRIMARY KEY (session_id);

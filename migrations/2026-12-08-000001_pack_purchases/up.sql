-- R22: an auto top-up's payment is a pack purchase like a checkout's. One record per pack payment,
-- whichever way it was paid (a checkout session or an auto top-up's PaymentIntent), found by its
-- PaymentIntent when Stripe reports a refund (R17) or a dispute (R19).
ALTER TABLE topup_purchases DROP CONSTRAINT topup_purchases_pkey;
ALTER TABLE topup_purchases ADD COLUMN id uuid;
UPDATE topup_purchases SET id = gen_random_uuid();
ALTER TABLE topup_purchases ALTER COLUMN id SET NOT NULL;
ALTER TABLE topup_purchases ADD PRIMARY KEY (account_id, id);
ALTER TABLE topup_purchases ALTER COLUMN session_id DROP NOT NULL;
ALTER TABLE topup_purchases ADD CONSTRAINT topup_purchases_session_id_key UNIQUE (session_id);
ALTER TABLE topup_purchases ADD COLUMN auto_topup_id uuid REFERENCES auto_topups (id);
ALTER TABLE topup_purchases ADD CONSTRAINT topup_purchases_auto_topup_id_key UNIQUE (auto_topup_id);
ALTER TABLE topup_purchases ADD CONSTRAINT topup_purchases_paid_one_way
    CHECK ((session_id IS NULL) <> (auto_topup_id IS NULL));

-- The auto top-ups granted before this migration get their purchase record.
INSERT INTO topup_purchases (id, session_id, auto_topup_id, account_id, pack_id, bucket_id, credits,
                             payment_intent_id, amount, currency, created_at)
SELECT gen_random_uuid(), NULL, t.id, t.account_id, t.pack_id, t.bucket_id, t.credits,
       t.payment_intent_id, t.amount, t.currency, COALESCE(t.finished_at, t.created_at)
  FROM auto_topups t
 WHERE t.status = 'succeeded' AND t.bucket_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM topup_purchases p WHERE p.payment_intent_id = t.payment_intent_id);

-- Section 7: a console session opened with the bootstrap admin token keeps the hash of that token,
-- and ends when it is no longer the configured one (sessions opened before this have none: ended).
ALTER TABLE console_sessions ADD COLUMN bootstrap_token_hash text;

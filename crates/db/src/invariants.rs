//! The invariant checker (`credits check`): what must hold for every account after any failure.

use chrono::{DateTime, Utc};
use credits_domain::error::StoreError;
use credits_domain::runs::RunStatus;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz};

use crate::PgPool;

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Violation {
    #[diesel(sql_type = Text)]
    pub account: String,
    #[diesel(sql_type = Text)]
    pub problem: String,
}

/// Each check: a query returning (account, problem) for every violation.
const CHECKS: &[&str] = &[
    // R15: a bucket's remaining is the sum of its entries.
    "SELECT b.account_id::text AS account,
            'bucket ' || b.id || ' remaining ' || b.remaining || ' but its entries sum to ' || COALESCE(s.total, 0) AS problem
       FROM buckets b LEFT JOIN (SELECT bucket_id, sum(credits) AS total FROM ledger_entries GROUP BY bucket_id) s
         ON s.bucket_id = b.id
      WHERE b.remaining <> COALESCE(s.total, 0)",
    // R6: no bucket below zero, none above what it granted.
    "SELECT account_id::text, 'bucket ' || id || ' remaining ' || remaining || ' outside 0..' || granted
       FROM buckets WHERE remaining < 0 OR remaining > granted",
    // R6: live holds never reserve more than a bucket holds.
    "SELECT r.account_id::text, 'bucket ' || r.bucket_id || ' has ' || sum(r.credits) || ' reserved but ' || b.remaining || ' left'
       FROM run_reservations r JOIN runs u ON u.id = r.run_id JOIN buckets b ON b.id = r.bucket_id
      WHERE r.open AND u.status = $2 AND u.hold_expires_at > $1
      GROUP BY r.account_id, r.bucket_id, b.remaining HAVING sum(r.credits) > b.remaining",
    // A held run (not a trial) reserves its cost.
    "SELECT u.account_id::text, 'held run ' || u.id || ' costs ' || u.cost || ' but reserves ' || COALESCE(sum(r.credits), 0)
       FROM runs u LEFT JOIN run_reservations r ON r.run_id = u.id AND r.open
      WHERE u.status = $2 AND u.trial_kind IS NULL
      GROUP BY u.id, u.account_id, u.cost HAVING COALESCE(sum(r.credits), 0) <> u.cost",
    // Every captured run has its debit entries, for exactly what it captured.
    "SELECT u.account_id::text, 'captured run ' || u.id || ' captured ' || u.captured_credits || ' but its debits sum to ' || COALESCE(-sum(e.credits), 0)
       FROM runs u LEFT JOIN ledger_entries e ON e.run_id = u.id AND e.entry_type = 'debit'
      WHERE u.status = $3
      GROUP BY u.id, u.account_id, u.captured_credits HAVING COALESCE(-sum(e.credits), 0) <> COALESCE(u.captured_credits, 0)",
    // A released run charged nothing; a closed run keeps no open reservation.
    "SELECT u.account_id::text, 'released run ' || u.id || ' has debit entries'
       FROM runs u JOIN ledger_entries e ON e.run_id = u.id AND e.entry_type = 'debit'
      WHERE u.status = $4 GROUP BY u.id, u.account_id",
    "SELECT u.account_id::text, 'finished run ' || u.id || ' still has an open reservation'
       FROM runs u JOIN run_reservations r ON r.run_id = u.id AND r.open
      WHERE u.status <> $2 GROUP BY u.id, u.account_id",
    // R11: a key's recorded answer and its effect were written together: the run it answered exists, once.
    "SELECT substring(i.scope FROM 9), 'idempotency key ' || i.key || ' answered run ' || (i.response_body::jsonb ->> 'id') || ' which is not there'
       FROM idempotency_records i
      WHERE i.scope LIKE 'account:%' AND i.response_status = 201 AND (i.response_body::jsonb ? 'cost')
        AND NOT EXISTS (SELECT 1 FROM runs u WHERE u.id::text = i.response_body::jsonb ->> 'id'
                          AND u.account_id::text = substring(i.scope FROM 9))",
    // R4 and R17: a pack's bucket is the pack; a refund never claws back more than it granted.
    "SELECT t.account_id::text, 'top-up ' || COALESCE(t.session_id, 'auto top-up ' || t.auto_topup_id) || ' granted ' || b.granted || ' for a pack of ' || t.credits
       FROM topup_purchases t JOIN buckets b ON b.id = t.bucket_id
      WHERE b.granted <> t.credits OR t.clawed_back > t.credits",
    // R17, R19: an invoice's refunds and disputes never take back more than it granted.
    "SELECT g.account_id::text, 'invoice ' || g.invoice_id || ' clawed back ' || g.clawed_back || ' of the ' || g.credits || ' it granted'
       FROM invoice_grants g WHERE g.clawed_back > g.credits OR g.clawed_back < 0",
    // R19: an account is restricted exactly while one of its restrictions stands.
    "SELECT a.id::text, 'restricted_at ' || COALESCE(a.restricted_at::text, 'null') || ' disagrees with its restrictions'
       FROM accounts a
      WHERE (a.restricted_at IS NOT NULL) <> EXISTS (SELECT 1 FROM account_restrictions r
                                                      WHERE r.account_id = a.id AND r.lifted_at IS NULL)",
    // R25: a run's member is a member of its account (runs carry no foreign key to members).
    "SELECT u.account_id::text, 'run ' || u.id || ' names member ' || u.member_id || ', not one of its account'
       FROM runs u WHERE u.member_id IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM members m WHERE m.account_id = u.account_id AND m.id = u.member_id)",
    // R24: an account has an owner among its current members (every account made since teams).
    "SELECT a.id::text, 'account has no current owner'
       FROM accounts a WHERE EXISTS (SELECT 1 FROM members m WHERE m.account_id = a.id)
        AND NOT EXISTS (SELECT 1 FROM members m WHERE m.account_id = a.id AND m.removed_at IS NULL AND m.role = $5)",
    // One invoice, one allowance; one lifetime grant per account.
    "SELECT account_id::text, 'account has ' || count(*) || ' lifetime buckets'
       FROM buckets WHERE kind = 'lifetime' GROUP BY account_id HAVING count(*) > 1",
];

/// Every violation in the database, by account; empty when all holds.
pub fn check(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<Violation>, StoreError> {
    let mut conn = pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))?;
    conn.build_transaction()
        .read_only()
        .repeatable_read()
        .run(|conn| {
            // An audit reads whole tables: hash and merge joins are its plans. Statistics from when
            // a table was small (before autovacuum's next ANALYZE) must not make it a nested loop
            // over every run times every ledger entry.
            conn.batch_execute("SET LOCAL enable_nestloop = off")?;
            let mut all = Vec::new();
            for sql in CHECKS {
                // Every check is given the same parameters: the time, the run statuses' spellings
                // and the owner role's.
                let found: Vec<Violation> = diesel::sql_query(*sql)
                    .bind::<Timestamptz, _>(now)
                    .bind::<Text, _>(RunStatus::Held.as_str())
                    .bind::<Text, _>(RunStatus::Captured.as_str())
                    .bind::<Text, _>(RunStatus::Released.as_str())
                    .bind::<Text, _>(credits_domain::members::Role::Owner.as_str())
                    .load(conn)?;
                all.extend(found);
            }
            Ok::<_, diesel::result::Error>(all)
        })
        .map_err(crate::store_error)
}

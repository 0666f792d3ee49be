//! The hot statements, written once and run as cached prepared statements. `diesel::sql_query`
//! never caches (each call is a prepare and an execute, planned anew); these types have a static
//! query id, so PostgreSQL prepares each once per connection: one round trip per call.
//!
//! A prepared statement may run a generic plan made from the statistics of its first executions.
//! So a run is reached from its reservation by primary key (a correlated subquery), never by a
//! join the planner might turn into a scan of every run when `runs` was small at the last ANALYZE.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, SmallInt, Text, Timestamptz, Untyped, Uuid as SqlUuid};
use diesel::{QueryResult, RunQueryDsl};
use uuid::Uuid;

/// Split `sql` at `$n` placeholders: the text between them, in order.
fn pieces(sql: &'static str) -> impl Iterator<Item = &'static str> {
    let mut rest = sql;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find('$') {
            Some(i) => {
                let piece = &rest[..i];
                let digits = rest[i + 1..].find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len() - i - 1);
                rest = &rest[i + 1 + digits..];
                Some(piece)
            }
            None => {
                let piece = rest;
                rest = "";
                Some(piece)
            }
        }
    })
}

macro_rules! prepared {
    ($(#[$doc:meta])* $name:ident, $sql:expr, { $($field:ident : $ty:ty => $st:ty),* $(,)? }) => {
        $(#[$doc])*
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl $name {
            /// The statement, and its fields in the order they bind to `$1`, `$2`, ….
            pub const SQL: &'static str = $sql;
            #[cfg(test)]
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
        }

        impl QueryId for $name {
            type QueryId = $name;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl Query for $name {
            type SqlType = Untyped;
        }

        impl<C> RunQueryDsl<C> for $name {}

        impl QueryFragment<Pg> for $name {
            fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
                let mut pieces = pieces(Self::SQL);
                $(
                    out.push_sql(pieces.next().unwrap_or_default());
                    out.push_bind_param::<$st, _>(&self.$field)?;
                )*
                for rest in pieces {
                    out.push_sql(rest);
                }
                Ok(())
            }
        }
    };
}

prepared!(
    /// One ledger entry and its bucket's move by the same credits, in one statement.
    PostEntry,
    "WITH e AS (INSERT INTO ledger_entries
                  (id, account_id, bucket_id, entry_type, credits, run_id, reference, reason, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING bucket_id, credits)
     UPDATE buckets SET remaining = buckets.remaining + e.credits FROM e WHERE buckets.id = e.bucket_id",
    {
        id: Uuid => SqlUuid,
        account_id: Uuid => SqlUuid,
        bucket_id: Uuid => SqlUuid,
        entry_type: String => Text,
        credits: i64 => BigInt,
        run_id: Option<Uuid> => Nullable<SqlUuid>,
        reference: Option<String> => Nullable<Text>,
        reason: Option<String> => Nullable<Text>,
        created_at: DateTime<Utc> => Timestamptz,
    }
);

prepared!(
    /// Accounts' buckets with anything left and their open reservations (the burn-down's input),
    /// for one account or a batch's.
    WalletQuery,
    "SELECT b.account_id, 'b' AS source, b.id, NULL::uuid AS bucket_id, b.kind, b.granted, b.remaining AS credits,
            b.expires_at AS at, b.created_at
       FROM buckets b WHERE b.account_id = ANY($1) AND b.remaining > 0
     UNION ALL
     SELECT r.account_id, 'r', r.run_id, r.bucket_id, NULL, NULL, r.credits,
            (SELECT u.hold_expires_at FROM runs u WHERE u.id = r.run_id), NULL
       FROM run_reservations r WHERE r.account_id = ANY($2) AND r.open",
    { accounts: Vec<Uuid> => Array<SqlUuid>, accounts_again: Vec<Uuid> => Array<SqlUuid> }
);

prepared!(
    /// Accounts, their live buckets with what live holds reserve in each, and all that live holds
    /// reserve per account: the balances of many accounts in one statement (one snapshot).
    BalanceQuery,
    "WITH live AS (SELECT r.account_id, r.bucket_id, r.credits FROM run_reservations r
                    WHERE r.account_id = ANY($1) AND r.open
                      AND (SELECT u.hold_expires_at FROM runs u WHERE u.id = r.run_id) > $2),
          per_bucket AS (SELECT bucket_id, sum(credits) AS credits FROM live GROUP BY bucket_id),
          per_account AS (SELECT account_id, sum(credits) AS credits FROM live GROUP BY account_id)
     SELECT a.id AS account_id, a.plan_id, a.period_end, b.id AS bucket_id, b.kind, b.granted, b.remaining,
            b.expires_at, b.created_at,
            COALESCE(pb.credits, 0)::bigint AS reserved, COALESCE(pa.credits, 0)::bigint AS held
       FROM accounts a
       LEFT JOIN buckets b ON b.account_id = a.id AND (b.expires_at IS NULL OR b.expires_at > $3)
       LEFT JOIN per_bucket pb ON pb.bucket_id = b.id
       LEFT JOIN per_account pa ON pa.account_id = a.id
      WHERE a.id = ANY($4)",
    {
        accounts: Vec<Uuid> => Array<SqlUuid>,
        now: DateTime<Utc> => Timestamptz,
        now_again: DateTime<Utc> => Timestamptz,
        accounts_again: Vec<Uuid> => Array<SqlUuid>,
    }
);

prepared!(
    /// R11: a key's advisory lock, waited for: requests with one key, on every instance, one at
    /// a time.
    LockKey,
    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
    { name: String => Text }
);

prepared!(
    /// R11: of several keys' advisory locks, those that were free, taken (never waited for).
    TryLockKeys,
    "SELECT name FROM unnest($1::text[]) AS name WHERE pg_try_advisory_xact_lock(hashtextextended(name, 0))",
    { names: Vec<String> => Array<Text> }
);

prepared!(
    /// What `notify::settle` judges of the accounts a transaction locked: their alert and auto
    /// top-up settings, whether a top-up is open (in one of the statuses `open`), and how many
    /// started this month.
    SettleQuery,
    "SELECT a.id, a.email, a.name, a.plan_id, a.restricted_at IS NOT NULL AS restricted,
            a.low_balance_threshold, a.balance_level, a.auto_topup_enabled, a.auto_topup_threshold,
            a.auto_topup_pack, a.auto_topup_monthly_limit,
            EXISTS (SELECT 1 FROM auto_topups t WHERE t.account_id = a.id
                      AND t.status = ANY($1)) AS open_topup,
            (SELECT count(*) FROM auto_topups t WHERE t.account_id = a.id AND t.created_at >= $2)
              AS started_this_month
       FROM accounts a WHERE a.id = ANY($3)",
    {
        open: Vec<&'static str> => Array<Text>,
        month_start: DateTime<Utc> => Timestamptz,
        accounts: Vec<Uuid> => Array<SqlUuid>,
    }
);

prepared!(
    /// What a batch of runs (or one request) wrote, in one statement over arrays: the runs that
    /// start (their rows, the reservations of holds), the held runs that finish (captured or
    /// released: their rows updated, their reservations closed), the debit entries of both in
    /// arrival order, and each bucket's move summed (foreign keys are checked at its end). The
    /// finished runs' reservations are reached by primary key (`closing_runs`: the finished ids
    /// again, the macro binds each placeholder once): when they were closed through the `finished`
    /// CTE, the generic plan scanned every open reservation of every account.
    #[derive(Default)]
    WriteRuns,
    "WITH run AS (INSERT INTO runs (id, account_id, model_id, channel, workflow_id, images, duration_seconds, cost,
                    status, captured_credits, captured_images, captured_duration_seconds, trial_kind,
                    trial_generations, trial_window_opens_at, trial_window_closes_at, hold_expires_at, created_at,
                    finished_at, api_key_id, member_id)
                  SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                    $7::bigint[], $8::bigint[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[],
                    $14::bigint[], $15::timestamptz[], $16::timestamptz[], $17::timestamptz[], $18::timestamptz[],
                    $19::timestamptz[], $20::uuid[], $21::uuid[])),
          held AS (INSERT INTO run_reservations (run_id, bucket_id, account_id, credits)
                   SELECT * FROM unnest($22::uuid[], $23::uuid[], $24::uuid[], $25::bigint[])),
          finished AS (UPDATE runs SET status = f.status, captured_credits = f.captured_credits,
                              captured_images = f.captured_images,
                              captured_duration_seconds = f.captured_duration_seconds,
                              finished_at = f.finished_at, release_reason = f.release_reason
                         FROM unnest($26::uuid[], $27::text[], $28::bigint[], $29::bigint[], $30::bigint[],
                                     $31::timestamptz[], $32::text[])
                              AS f (id, status, captured_credits, captured_images, captured_duration_seconds,
                                    finished_at, release_reason)
                        WHERE runs.id = f.id),
          debits AS (INSERT INTO ledger_entries (id, account_id, bucket_id, entry_type, credits, run_id, reason, created_at)
                     SELECT d.id, d.account_id, d.bucket_id, 'debit', d.credits, d.run_id, 'run captured', d.created_at
                       FROM unnest($33::uuid[], $34::uuid[], $35::uuid[], $36::bigint[], $37::uuid[], $38::timestamptz[])
                            WITH ORDINALITY AS d (id, account_id, bucket_id, credits, run_id, created_at, n)
                      ORDER BY d.n
                     RETURNING bucket_id, credits),
          closed AS (UPDATE run_reservations SET open = false WHERE run_id = ANY($39::uuid[]) AND open)
     UPDATE buckets SET remaining = buckets.remaining + moved.credits
       FROM (SELECT bucket_id, sum(credits)::bigint AS credits FROM debits GROUP BY bucket_id) moved
      WHERE buckets.id = moved.bucket_id",
    {
        ids: Vec<Uuid> => Array<SqlUuid>,
        account_ids: Vec<Uuid> => Array<SqlUuid>,
        model_ids: Vec<String> => Array<Text>,
        channels: Vec<String> => Array<Text>,
        workflow_ids: Vec<Option<String>> => Array<Nullable<Text>>,
        images: Vec<Option<i64>> => Array<Nullable<BigInt>>,
        duration_seconds: Vec<Option<i64>> => Array<Nullable<BigInt>>,
        costs: Vec<i64> => Array<BigInt>,
        statuses: Vec<String> => Array<Text>,
        captured_credits: Vec<Option<i64>> => Array<Nullable<BigInt>>,
        captured_images: Vec<Option<i64>> => Array<Nullable<BigInt>>,
        captured_duration_seconds: Vec<Option<i64>> => Array<Nullable<BigInt>>,
        trial_kinds: Vec<Option<String>> => Array<Nullable<Text>>,
        trial_generations: Vec<i64> => Array<BigInt>,
        trial_window_opens_at: Vec<Option<DateTime<Utc>>> => Array<Nullable<Timestamptz>>,
        trial_window_closes_at: Vec<Option<DateTime<Utc>>> => Array<Nullable<Timestamptz>>,
        hold_expires_at: Vec<Option<DateTime<Utc>>> => Array<Nullable<Timestamptz>>,
        created_at: Vec<DateTime<Utc>> => Array<Timestamptz>,
        finished_at: Vec<Option<DateTime<Utc>>> => Array<Nullable<Timestamptz>>,
        api_key_ids: Vec<Option<Uuid>> => Array<Nullable<SqlUuid>>,
        member_ids: Vec<Option<Uuid>> => Array<Nullable<SqlUuid>>,
        held_runs: Vec<Uuid> => Array<SqlUuid>,
        held_buckets: Vec<Uuid> => Array<SqlUuid>,
        held_accounts: Vec<Uuid> => Array<SqlUuid>,
        held_credits: Vec<i64> => Array<BigInt>,
        finished_ids: Vec<Uuid> => Array<SqlUuid>,
        finished_statuses: Vec<String> => Array<Text>,
        finished_captured_credits: Vec<Option<i64>> => Array<Nullable<BigInt>>,
        finished_captured_images: Vec<Option<i64>> => Array<Nullable<BigInt>>,
        finished_captured_duration_seconds: Vec<Option<i64>> => Array<Nullable<BigInt>>,
        finished_at_times: Vec<Option<DateTime<Utc>>> => Array<Nullable<Timestamptz>>,
        finished_release_reasons: Vec<Option<String>> => Array<Nullable<Text>>,
        debit_ids: Vec<Uuid> => Array<SqlUuid>,
        debit_accounts: Vec<Uuid> => Array<SqlUuid>,
        debit_buckets: Vec<Uuid> => Array<SqlUuid>,
        debit_credits: Vec<i64> => Array<BigInt>,
        debit_runs: Vec<Uuid> => Array<SqlUuid>,
        debit_at: Vec<DateTime<Utc>> => Array<Timestamptz>,
        closing_runs: Vec<Uuid> => Array<SqlUuid>,
    }
);

prepared!(
    /// R11: the records of a batch's keys, in one round trip.
    LookupKeys,
    "SELECT r.scope, r.key, r.fingerprint, r.response_status, r.response_body, r.created_at
       FROM idempotency_records r
       JOIN unnest($1::text[], $2::text[]) AS k (scope, key) ON r.scope = k.scope AND r.key = k.key",
    { scopes: Vec<String> => Array<Text>, keys: Vec<String> => Array<Text> }
);

prepared!(
    /// R11: the records a batch's requests wrote, in one round trip (a record older than 24 hours
    /// no longer counts: replaced).
    #[derive(Default)]
    SaveKeys,
    "INSERT INTO idempotency_records (scope, key, fingerprint, response_status, response_body, created_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::text[], $6::timestamptz[])
     ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint,
        response_status = excluded.response_status, response_body = excluded.response_body,
        created_at = excluded.created_at",
    {
        scopes: Vec<String> => Array<Text>,
        keys: Vec<String> => Array<Text>,
        fingerprints: Vec<String> => Array<Text>,
        statuses: Vec<i16> => Array<SmallInt>,
        bodies: Vec<String> => Array<Text>,
        created_at: Vec<DateTime<Utc>> => Array<Timestamptz>,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The `$n` placeholders of `sql`, in the order they appear.
    fn placeholders(sql: &str) -> Vec<usize> {
        sql.split('$')
            .skip(1)
            .map(|after| {
                let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap_or_else(|_| panic!("a '$' that is no placeholder in {sql}"))
            })
            .collect()
    }

    /// `prepared!` binds its fields in order, whatever number each `$n` says: so each statement's
    /// placeholders must be exactly `$1` … `$n` in order, one per field.
    #[test]
    fn every_statement_binds_its_fields_to_its_placeholders_in_order() {
        let statements = [
            ("PostEntry", PostEntry::SQL, PostEntry::FIELDS),
            ("WalletQuery", WalletQuery::SQL, WalletQuery::FIELDS),
            ("BalanceQuery", BalanceQuery::SQL, BalanceQuery::FIELDS),
            ("SettleQuery", SettleQuery::SQL, SettleQuery::FIELDS),
            ("LockKey", LockKey::SQL, LockKey::FIELDS),
            ("TryLockKeys", TryLockKeys::SQL, TryLockKeys::FIELDS),
            ("WriteRuns", WriteRuns::SQL, WriteRuns::FIELDS),
            ("LookupKeys", LookupKeys::SQL, LookupKeys::FIELDS),
            ("SaveKeys", SaveKeys::SQL, SaveKeys::FIELDS),
        ];
        let declared = include_str!("prepared.rs").matches("\nprepared!(").count();
        assert_eq!(statements.len(), declared, "every prepared! statement is checked here");
        for (name, sql, fields) in statements {
            let expected: Vec<usize> = (1..=fields.len()).collect();
            assert_eq!(placeholders(sql), expected, "{name}: its fields {fields:?}");
        }
    }

    #[test]
    fn a_placeholder_out_of_order_is_caught() {
        assert_eq!(placeholders("SELECT $2, $1"), [2, 1]);
        assert_eq!(placeholders("SELECT $1 WHERE a = $10"), [1, 10]);
    }

    #[test]
    fn placeholders_split_the_text() {
        let p: Vec<&str> = pieces("SELECT $1, x FROM t WHERE a = $2 AND b = $10 LIMIT 1").collect();
        assert_eq!(p, ["SELECT ", ", x FROM t WHERE a = ", " AND b = ", " LIMIT 1"]);
    }
}

//! The hot statements, written once and run as cached prepared statements. `diesel::sql_query`
//! never caches (each call is a prepare and an execute, planned anew); these types have a static
//! query id, so PostgreSQL prepares each once per connection: one round trip per call.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Untyped, Uuid as SqlUuid};
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
                const SQL: &str = $sql;
                let mut pieces = pieces(SQL);
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
    /// An account's buckets with anything left and its open reservations (the burn-down's input).
    WalletQuery,
    "SELECT 'b' AS source, b.id, NULL::uuid AS bucket_id, b.kind, b.granted, b.remaining AS credits,
            b.expires_at AS at, b.created_at
       FROM buckets b WHERE b.account_id = $1 AND b.remaining > 0
     UNION ALL
     SELECT 'r', r.run_id, r.bucket_id, NULL, NULL, r.credits, u.hold_expires_at, NULL
       FROM run_reservations r JOIN runs u ON u.id = r.run_id WHERE r.account_id = $2 AND r.open",
    { account: Uuid => SqlUuid, account_again: Uuid => SqlUuid }
);

prepared!(
    /// Accounts, their live buckets with what live holds reserve in each, and all that live holds
    /// reserve per account: the balances of many accounts in one statement (one snapshot).
    BalanceQuery,
    "WITH live AS (SELECT r.account_id, r.bucket_id, r.credits FROM run_reservations r JOIN runs u ON u.id = r.run_id
                    WHERE r.account_id = ANY($1) AND r.open AND u.hold_expires_at > $2),
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

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn placeholders_split_the_text() {
        let p: Vec<&str> = pieces("SELECT $1, x FROM t WHERE a = $2 AND b = $10 LIMIT 1").collect();
        assert_eq!(p, ["SELECT ", ", x FROM t WHERE a = ", " AND b = ", " LIMIT 1"]);
    }
}

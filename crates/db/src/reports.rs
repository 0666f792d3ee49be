//! Section 10's reads: usage from the ledger's debits, the ledger export a chunk at a time, and the
//! sums the liability report is made of (`credits_domain::reports::liability` makes it).

use chrono::{DateTime, Utc};
use credits_domain::burn::BucketKind;
use credits_domain::credits::Credits;
use credits_domain::error::{AccountError, StoreError};
use credits_domain::ids::AccountId;
use credits_domain::ports::ReportStore;
use credits_domain::reports::{BucketAsOf, ExportRow, Flow, GroupBy, MonthFlow, Span, UnitValue, UsageGroup};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::rows::{EntryRow, NewEntryRow, undecodable};
use crate::schema::{accounts, buckets, ledger_entries, runs};
use crate::{PgStore, read_tx};

#[derive(QueryableByName)]
struct GroupRow {
    #[diesel(sql_type = Nullable<Text>)]
    key: Option<String>,
    #[diesel(sql_type = BigInt)]
    credits: i64,
    #[diesel(sql_type = BigInt)]
    runs: i64,
}

#[derive(QueryableByName)]
struct BucketSum {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    value_amount: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    value_credits: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    currency: Option<String>,
    #[diesel(sql_type = BigInt)]
    balance: i64,
    #[diesel(sql_type = BigInt)]
    expired: i64,
}

#[derive(QueryableByName)]
struct FlowSum {
    #[diesel(sql_type = Text)]
    month: String,
    #[diesel(sql_type = Text)]
    flow: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    value_amount: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    value_credits: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    currency: Option<String>,
    #[diesel(sql_type = BigInt)]
    credits: i64,
}

fn unit(amount: Option<i64>, credits: Option<i64>, currency: Option<String>) -> Option<UnitValue> {
    Some(UnitValue { amount: amount?, credits: credits?, currency: currency.unwrap_or_default() })
}

fn exists(conn: &mut PgConnection, account: AccountId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(accounts::table.find(account.0))).get_result(conn)
}

impl ReportStore for PgStore {
    fn usage(&self, account: AccountId, group_by: GroupBy, span: Span) -> Result<Vec<UsageGroup>, AccountError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| {
            if !exists(conn, account)? {
                return Err(crate::Fail::Rule(AccountError::NotFound));
            }
            // The debits of the span, from ledger_debits_by_time (which carries their credits and
            // runs). By day no run is read: the day is the entry's, grouped as a date and named
            // once per group. Otherwise each debit reaches its run among the account's own runs
            // (runs_account_created): never a scan of every account's runs.
            let by_run = |key: &str| {
                format!(
                    "SELECT {key} AS key, (-sum(e.credits))::bigint AS credits, count(DISTINCT e.run_id)::bigint AS runs
                       FROM ledger_entries e JOIN runs r ON r.id = e.run_id AND r.account_id = $1
                      WHERE e.account_id = $1 AND e.entry_type = 'debit' AND e.created_at >= $2 AND e.created_at < $3
                      GROUP BY 1 ORDER BY 1"
                )
            };
            let sql = match group_by {
                GroupBy::Day => "SELECT to_char(d, 'YYYY-MM-DD') AS key, credits, runs
                   FROM (SELECT (e.created_at AT TIME ZONE 'UTC')::date AS d, (-sum(e.credits))::bigint AS credits,
                                count(DISTINCT e.run_id)::bigint AS runs
                           FROM ledger_entries e
                          WHERE e.account_id = $1 AND e.entry_type = 'debit' AND e.run_id IS NOT NULL
                            AND e.created_at >= $2 AND e.created_at < $3
                          GROUP BY 1) g
                  ORDER BY 1"
                    .to_string(),
                GroupBy::Model => by_run("r.model_id"),
                GroupBy::ApiKey => by_run("r.api_key_id::text"),
                GroupBy::Workflow => by_run("r.workflow_id"),
                GroupBy::Member => by_run("r.member_id::text"),
            };
            let rows: Vec<GroupRow> = diesel::sql_query(sql)
                .bind::<SqlUuid, _>(account.0)
                .bind::<Timestamptz, _>(span.from)
                .bind::<Timestamptz, _>(span.to)
                .load(conn)?;
            Ok(rows
                .into_iter()
                .map(|r| UsageGroup { key: r.key, credits: Credits::new(r.credits), runs: r.runs })
                .collect())
        })
    }

    fn ledger_chunk(
        &self,
        account: AccountId,
        span: Span,
        after: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ExportRow>, AccountError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| {
            if after.is_none() && !exists(conn, account)? {
                return Err(crate::Fail::Rule(AccountError::NotFound));
            }
            let mut q = ledger_entries::table
                .inner_join(buckets::table)
                .left_join(runs::table)
                .filter(ledger_entries::account_id.eq(account.0))
                .filter(ledger_entries::created_at.ge(span.from))
                .filter(ledger_entries::created_at.lt(span.to))
                .select((ledger_entries::seq, NewEntryRow::as_select(), buckets::kind, runs::member_id.nullable()))
                .order(ledger_entries::seq.asc())
                .limit(limit)
                .into_boxed();
            if let Some(seq) = after {
                q = q.filter(ledger_entries::seq.gt(seq));
            }
            Ok(q.load::<(i64, NewEntryRow, String, Option<Uuid>)>(conn)?
                .into_iter()
                .map(|(seq, entry, bucket_kind, member_id)| {
                    Ok(ExportRow { seq, entry: EntryRow { seq, entry, bucket_kind }.to_view()?, member_id })
                })
                .collect::<QueryResult<_>>()?)
        })
    }

    fn liability_sums(&self, at: DateTime<Utc>) -> Result<(Vec<BucketAsOf>, Vec<MonthFlow>), StoreError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| -> Result<_, crate::Fail<StoreError>> {
            // Buckets as of `at`, summed by what the report tells apart: kind, unit value, and
            // when they expire (the month, if they have; else the window of 30, 60, 90 days, if
            // within one), so the answer's size does not grow with the number of buckets.
            let buckets: Vec<BucketSum> = diesel::sql_query(
                "WITH per_bucket AS (
                   SELECT b.kind, b.expires_at, b.value_amount, b.value_credits, b.currency,
                          sum(e.credits) AS balance,
                          -COALESCE(sum(e.credits) FILTER (WHERE e.entry_type = 'expire'), 0) AS expired
                     FROM ledger_entries e JOIN buckets b ON b.id = e.bucket_id
                    WHERE e.created_at <= $1
                    GROUP BY b.id)
                 SELECT kind,
                        CASE WHEN expires_at <= $1 THEN date_trunc('month', expires_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                             WHEN expires_at <= $1 + interval '30 days' THEN $1 + interval '30 days'
                             WHEN expires_at <= $1 + interval '60 days' THEN $1 + interval '60 days'
                             WHEN expires_at <= $1 + interval '90 days' THEN $1 + interval '90 days'
                             ELSE NULL END AS expires_at,
                        value_amount, value_credits, currency,
                        sum(balance)::bigint AS balance, sum(expired)::bigint AS expired
                   FROM per_bucket GROUP BY 1, 2, 3, 4, 5",
            )
            .bind::<Timestamptz, _>(at)
            .load(conn)?;
            let flows: Vec<FlowSum> = diesel::sql_query(
                "SELECT to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
                        CASE WHEN e.entry_type = 'grant' OR (e.entry_type = 'adjustment' AND e.credits > 0) THEN 'granted'
                             WHEN e.entry_type = 'clawback' THEN 'clawed_back'
                             ELSE 'used' END AS flow,
                        b.value_amount, b.value_credits, b.currency, sum(e.credits)::bigint AS credits
                   FROM ledger_entries e JOIN buckets b ON b.id = e.bucket_id
                  WHERE e.created_at <= $1 AND e.entry_type <> 'expire'
                  GROUP BY 1, 2, 3, 4, 5",
            )
            .bind::<Timestamptz, _>(at)
            .load(conn)?;
            let buckets = buckets
                .into_iter()
                .map(|b| {
                    Ok(BucketAsOf {
                        kind: BucketKind::parse(&b.kind).ok_or_else(|| undecodable("bucket kind", &b.kind))?,
                        expires_at: b.expires_at,
                        value: unit(b.value_amount, b.value_credits, b.currency),
                        balance: b.balance,
                        expired_by_entries: b.expired,
                    })
                })
                .collect::<QueryResult<Vec<_>>>()?;
            let flows = flows
                .into_iter()
                .map(|f| MonthFlow {
                    month: f.month,
                    flow: match f.flow.as_str() {
                        "granted" => Flow::Granted,
                        "clawed_back" => Flow::ClawedBack,
                        _ => Flow::Used,
                    },
                    value: unit(f.value_amount, f.value_credits, f.currency),
                    credits: f.credits,
                })
                .collect();
            Ok((buckets, flows))
        })
    }
}

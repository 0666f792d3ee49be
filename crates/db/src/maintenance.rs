//! Background work: release holds past their TTL (R10), expire buckets (R16), refresh
//! Enterprise allowances (R3), forget old idempotency records (R11). Each claims one account at
//! a time with `FOR UPDATE SKIP LOCKED`, so several instances share the work and never do the
//! same piece twice.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use credits_domain::error::StoreError;
use credits_domain::idempotency::IDEMPOTENCY_TTL_HOURS;
use credits_domain::ids::AccountId;
use credits_domain::jobs::MailStatus;
use credits_domain::operator::due_contract_period;
use credits_domain::ports::{Maintenance, StoreStats};
use credits_domain::runs::RunStatus;
use credits_domain::views::EntryType;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};
use uuid::Uuid;

use crate::ledger::{EntryMeta, TxLog, grant_contract_allowance, load_wallet, post_all, try_lock_account};
use crate::rows::RunRow;
use crate::runs::release;
use crate::schema::{accounts, idempotency_records, outbox, runs};
use crate::{Fail, PgStore};

#[derive(QueryableByName)]
pub(crate) struct AccountIdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub(crate) account_id: Uuid,
}

impl PgStore {
    /// Run `work` for each account, each in its own transaction with the account claimed;
    /// an account locked elsewhere is left for the next round.
    pub(crate) fn per_account(
        &self,
        accounts: Vec<Uuid>,
        now: DateTime<Utc>,
        work: impl Fn(&mut PgConnection, &mut TxLog, AccountId) -> QueryResult<usize>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let mut done = 0;
        for id in accounts.into_iter().collect::<BTreeSet<_>>() {
            done += self.write_tx(&mut conn, now, |conn, log| -> Result<usize, Fail<StoreError>> {
                if try_lock_account(conn, log, id)?.is_none() {
                    return Ok(0);
                }
                Ok(work(conn, log, AccountId(id))?)
            })?;
        }
        Ok(done)
    }
}

impl Maintenance for PgStore {
    fn release_expired_holds(&self, now: DateTime<Utc>, batch: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let due: Vec<Uuid> = runs::table
            .filter(runs::status.eq(RunStatus::Held.as_str()))
            .filter(runs::hold_expires_at.le(now))
            .order(runs::hold_expires_at.asc())
            .limit(batch)
            .select(runs::account_id)
            .load(&mut conn)
            .map_err(crate::store_error)?;
        drop(conn);
        self.per_account(due, now, |conn, log, account| {
            let held: Vec<RunRow> = runs::table
                .filter(runs::account_id.eq(account.0))
                .filter(runs::status.eq(RunStatus::Held.as_str()))
                .filter(runs::hold_expires_at.le(now))
                .select(RunRow::as_select())
                .load(conn)?;
            let mut wallet = load_wallet(conn, account)?;
            for row in &held {
                let generations = row.trial_generations;
                // Released at the end of its TTL, which is when it stopped reserving anything.
                let at = row.hold_expires_at.unwrap_or(now);
                release(conn, log, &mut wallet, row, generations, "expired", at.min(now))?;
            }
            Ok(held.len())
        })
    }

    fn expire_buckets(&self, now: DateTime<Utc>, batch: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        // Expired buckets that are empty are swept for good: they leave `buckets_to_expire`, so
        // each round reads only the buckets that may still have credits to expire. (An expired
        // bucket's credits only go down; the flag is not `remaining > 0` itself so that a
        // capture's update of `remaining` stays HOT: migrations/2026-12-07-000001_hot_buckets.)
        // A bucket another transaction holds is left for the next round: this never waits.
        diesel::sql_query(
            "UPDATE buckets SET expiry_swept = true \
             WHERE id IN (SELECT id FROM buckets \
                           WHERE NOT expiry_swept AND expires_at IS NOT NULL AND expires_at <= $1 AND remaining = 0 \
                           FOR UPDATE SKIP LOCKED)",
        )
        .bind::<Timestamptz, _>(now)
        .execute(&mut conn)
        .map_err(crate::store_error)?;
        // Accounts with an expired bucket that still holds more than its live holds reserve.
        let due: Vec<AccountIdRow> = diesel::sql_query(
            "SELECT DISTINCT b.account_id FROM buckets b \
             WHERE NOT b.expiry_swept AND b.expires_at IS NOT NULL AND b.remaining > 0 AND b.expires_at <= $1 \
               AND b.remaining > COALESCE((SELECT sum(r.credits) FROM run_reservations r JOIN runs u ON u.id = r.run_id \
                                           WHERE r.bucket_id = b.id AND r.open AND u.hold_expires_at > $1), 0) \
             LIMIT $2",
        )
        .bind::<Timestamptz, _>(now)
        .bind::<BigInt, _>(batch)
        .load(&mut conn)
        .map_err(crate::store_error)?;
        drop(conn);
        self.per_account(due.into_iter().map(|r| r.account_id).collect(), now, |conn, log, account| {
            let wallet = load_wallet(conn, account)?;
            let due = wallet.expirations(now, None);
            post_all(conn, log, account, &due, &EntryMeta::new(EntryType::Expire, "bucket expired"), now)?;
            Ok(due.len())
        })
    }

    fn refresh_contracts(&self, now: DateTime<Utc>, batch: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        let due: Vec<Uuid> = accounts::table
            .filter(accounts::contract_monthly_credits.is_not_null())
            .filter(accounts::plan_id.eq(credits_domain::catalog::ENTERPRISE_PLAN))
            .filter(accounts::period_end.le(now))
            .limit(batch)
            .select(accounts::id)
            .load(&mut conn)
            .map_err(crate::store_error)?;
        drop(conn);
        self.per_account(due, now, |conn, log, id| {
            let Some(row) = crate::ledger::read_account(conn, id)? else {
                return Ok(0);
            };
            let account = row.to_domain()?;
            let (Some(period), Some(contract)) = (due_contract_period(&account, now), account.contract) else {
                return Ok(0);
            };
            grant_contract_allowance(conn, log, id, contract.monthly_credits, &period, now)?;
            diesel::update(accounts::table.find(id.0))
                .set((accounts::period_start.eq(Some(period.start)), accounts::period_end.eq(Some(period.end))))
                .execute(conn)?;
            Ok(1)
        })
    }

    fn end_plans(&self, now: DateTime<Utc>, batch: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        // R14: an ended subscription's paid period, or the period a cancellation waits for.
        let due: Vec<Uuid> = accounts::table
            .filter(
                accounts::plan_ends_at.le(now).or(accounts::pending_change
                    .eq(credits_domain::payments::PendingChange::Cancel.to_text())
                    .and(accounts::period_end.le(now))),
            )
            .limit(batch)
            .select(accounts::id)
            .load(&mut conn)
            .map_err(crate::store_error)?;
        drop(conn);
        self.per_account(due, now, |conn, log, id| {
            let Some(row) = crate::ledger::read_account(conn, id)? else { return Ok(0) };
            let account = row.to_domain()?;
            // Judged again under the lock: the same rule as every request's (`Account::as_of`).
            if account.as_of(now).plan == account.plan {
                return Ok(0);
            }
            crate::payments::to_free(conn, log, id, now)?;
            Ok(1)
        })
    }

    fn purge_idempotency(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut conn = self.conn()?;
        diesel::delete(
            idempotency_records::table
                .filter(idempotency_records::created_at.lt(now - Duration::hours(IDEMPOTENCY_TTL_HOURS))),
        )
        .execute(&mut conn)
        .map_err(crate::store_error)
    }

    fn stats(&self, now: DateTime<Utc>) -> Result<StoreStats, StoreError> {
        let state = self.pool.state();
        let mut conn = self.conn()?;
        let (open_holds, overdue_holds): (i64, i64) = runs::table
            .filter(runs::status.eq(RunStatus::Held.as_str()))
            .select((
                diesel::dsl::count_star(),
                diesel::dsl::sql::<BigInt>("count(*) FILTER (WHERE hold_expires_at <= ")
                    .bind::<Timestamptz, _>(now)
                    .sql(")"),
            ))
            .first(&mut conn)
            .map_err(crate::store_error)?;
        let (outbox_pending, outbox_dead): (i64, i64) = outbox::table
            .select((
                diesel::dsl::sql::<BigInt>("count(*) FILTER (WHERE status = ")
                    .bind::<diesel::sql_types::Text, _>(MailStatus::Pending.as_str())
                    .sql(")"),
                diesel::dsl::sql::<BigInt>("count(*) FILTER (WHERE status = ")
                    .bind::<diesel::sql_types::Text, _>(MailStatus::Dead.as_str())
                    .sql(")"),
            ))
            .first(&mut conn)
            .map_err(crate::store_error)?;
        Ok(StoreStats {
            outbox_pending,
            outbox_dead,
            pool_connections: state.connections,
            pool_idle: state.idle_connections,
            pool_max: self.pool.max_size(),
            open_holds,
            overdue_holds,
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        diesel::sql_query("SELECT 1").execute(&mut conn).map(|_| ()).map_err(crate::store_error)
    }
}

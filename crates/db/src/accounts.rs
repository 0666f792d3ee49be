//! Accounts, balances, the ledger and trials.

use chrono::{DateTime, Utc};
use credits_domain::account::{Account, BillingRules, PlanStatus};
use credits_domain::burn::{Bucket, BucketKind, Reservation, Wallet};
use credits_domain::catalog::{Catalog, FREE_PLAN};
use credits_domain::credits::Credits;
use credits_domain::error::{AccountError, StoreError};
use credits_domain::idempotency::{IdempotencyKey, Replayable};
use credits_domain::ids::{AccountId, BucketId, RunId};
use credits_domain::ports::{AccountStore, NewAccount};
use credits_domain::runs::RATE_WINDOW_SECONDS;
use credits_domain::trial::{self, TrialUsage, TrialView};
use credits_domain::views::{
    AccountView, BalanceView, BucketView, ContractView, EntryType, LedgerPage, LedgerQuery, RateLimitView,
    VerificationSummary,
};
use diesel::prelude::*;
use uuid::Uuid;

use crate::ledger::{Grant, grant, read_account};
use crate::rows::{AccountRow, EntryRow, NewEntryRow};
use crate::schema::{accounts, buckets, ledger_entries, trial_usage};
use crate::{Fail, PgStore, read_tx};

/// `GET /v1/account`: the account as it stands at `now` (R14: a plan whose end has come is Free),
/// with the capabilities, API access and rate limit it is judged by (R14: Free while past_due
/// beyond the grace, or unpaid, though it keeps its plan and status).
pub fn account_view(
    catalog: &Catalog,
    rules: &BillingRules,
    account: &Account,
    verification: Option<VerificationSummary>,
    now: DateTime<Utc>,
) -> AccountView {
    let shown = account.as_of(now);
    let judged = account.judged(now, rules);
    let plan = judged.plan(catalog);
    AccountView {
        id: shown.id,
        email: shown.email.clone(),
        name: shown.name.clone(),
        plan: shown.plan.clone(),
        status: shown.status,
        period_start: shown.period.map(|p| p.start),
        period_end: shown.period.map(|p| p.end),
        capabilities: plan.capabilities.iter().copied().collect(),
        api_access: plan.api_access,
        business_verification: verification,
        rate_limit: RateLimitView {
            runs_per_minute: judged.runs_per_minute(catalog),
            window_seconds: RATE_WINDOW_SECONDS,
        },
        enterprise_contract: shown.contract.filter(|_| shown.plan == credits_domain::catalog::ENTERPRISE_PLAN).map(
            |c| ContractView {
                monthly_credits: c.monthly_credits,
                runs_per_minute: c.runs_per_minute,
                starts_at: c.starts_at,
            },
        ),
        pending_change: shown.pending_change.clone(),
        restricted: shown.restricted,
        created_at: shown.created_at,
    }
}

#[derive(QueryableByName)]
struct BalanceRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    account_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    plan_id: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    period_end: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    bucket_id: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    kind: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    granted: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    remaining: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    expires_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    created_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    reserved: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    held: i64,
}

/// R6's figures and the buckets that still count, in one statement (one consistent snapshot,
/// one round trip): the account, its live buckets with what live holds reserve in each, and all
/// that live holds reserve. `None`: no such account.
pub fn balance_of(
    conn: &mut PgConnection,
    catalog: &Catalog,
    id: AccountId,
    now: DateTime<Utc>,
) -> QueryResult<Option<BalanceView>> {
    Ok(balances_of(conn, catalog, &[id], now)?.pop().flatten())
}

/// The balances of many accounts in one statement, in the order asked (`None`: no such account).
pub fn balances_of(
    conn: &mut PgConnection,
    catalog: &Catalog,
    ids: &[AccountId],
    now: DateTime<Utc>,
) -> QueryResult<Vec<Option<BalanceView>>> {
    let accounts: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    let rows: Vec<BalanceRow> =
        crate::prepared::BalanceQuery { accounts: accounts.clone(), now, now_again: now, accounts_again: accounts }
            .load(conn)?;
    let mut by_account: std::collections::HashMap<Uuid, Vec<BalanceRow>> = std::collections::HashMap::new();
    for row in rows {
        by_account.entry(row.account_id).or_default().push(row);
    }
    ids.iter().map(|id| by_account.get(&id.0).map(|rows| balance_view(catalog, *id, rows, now)).transpose()).collect()
}

/// One account's balance from its rows of the balance statement (at least one: the account's).
fn balance_view(catalog: &Catalog, id: AccountId, rows: &[BalanceRow], now: DateTime<Utc>) -> QueryResult<BalanceView> {
    let first = &rows[0];
    let (plan, period_end, held) = (catalog.plan_or_free(&first.plan_id).id.clone(), first.period_end, first.held);
    // The rules read reservations: one per live bucket for what live holds reserve in it, and
    // one in no live bucket for what they reserve in buckets that expired meanwhile (R10).
    let (mut buckets, mut reservations, mut in_live) = (Vec::new(), Vec::new(), 0i64);
    let reservation = |bucket: Uuid, credits: i64| Reservation {
        run_id: RunId(Uuid::nil()),
        bucket_id: BucketId(bucket),
        credits: Credits::new(credits),
        hold_expires_at: DateTime::<Utc>::MAX_UTC,
    };
    for r in rows {
        let (Some(bucket), Some(kind)) = (r.bucket_id, r.kind.as_deref()) else { continue };
        buckets.push(Bucket {
            id: BucketId(bucket),
            kind: crate::rows::bucket_kind(kind)?,
            granted: Credits::new(r.granted.unwrap_or(0)),
            remaining: Credits::new(r.remaining.unwrap_or(0)),
            expires_at: r.expires_at,
            created_at: r.created_at.unwrap_or(now),
        });
        if r.reserved > 0 {
            in_live += r.reserved;
            reservations.push(reservation(bucket, r.reserved));
        }
    }
    if held > in_live {
        reservations.push(reservation(Uuid::nil(), held - in_live));
    }
    let wallet = Wallet::new(buckets, reservations);
    let balance = wallet.balance(now);
    Ok(BalanceView {
        account_id: id,
        available: balance.available,
        held: balance.held,
        total: balance.total,
        plan,
        period_end,
        buckets: wallet
            .buckets
            .iter()
            .map(|b| BucketView {
                id: b.id,
                kind: b.kind,
                granted: b.granted,
                remaining: b.remaining,
                held: wallet.reserved_in(b.id, now),
                expires_at: b.expires_at,
                created_at: b.created_at,
            })
            .collect(),
    })
}

fn found(row: Option<AccountRow>) -> Result<Account, Fail<AccountError>> {
    row.map(|r| r.to_domain()).transpose()?.ok_or(Fail::Rule(AccountError::NotFound))
}

pub fn ledger_page(conn: &mut PgConnection, account: AccountId, query: &LedgerQuery) -> QueryResult<LedgerPage> {
    let mut q = ledger_entries::table
        .inner_join(buckets::table)
        .filter(ledger_entries::account_id.eq(account.0))
        .select((ledger_entries::seq, NewEntryRow::as_select(), buckets::kind))
        .order(ledger_entries::seq.desc())
        .limit(query.limit + 1)
        .into_boxed();
    if let Some(cursor) = query.cursor {
        q = q.filter(ledger_entries::seq.lt(cursor));
    }
    let mut rows: Vec<EntryRow> = q
        .load::<(i64, NewEntryRow, String)>(conn)?
        .into_iter()
        .map(|(seq, entry, bucket_kind)| EntryRow { seq, entry, bucket_kind })
        .collect();
    let more = rows.len() as i64 > query.limit;
    rows.truncate(query.limit as usize);
    Ok(LedgerPage {
        next_cursor: if more { rows.last().map(|r| r.seq.to_string()) } else { None },
        entries: rows.iter().map(EntryRow::to_view).collect::<QueryResult<_>>()?,
    })
}

impl AccountStore for PgStore {
    fn create_account(
        &self,
        new: &NewAccount,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<AccountView>, AccountError> {
        let catalog = &self.catalog;
        self.once_tx(
            idem,
            now,
            || AccountError::IdempotencyKeyReused,
            |conn, log| {
                let row = AccountRow {
                    id: AccountId::generate().0,
                    email: new.email.clone(),
                    name: new.name.clone(),
                    plan_id: FREE_PLAN.to_string(),
                    plan_status: PlanStatus::Active.as_str().to_string(),
                    period_start: None,
                    period_end: None,
                    contract_monthly_credits: None,
                    contract_runs_per_minute: None,
                    contract_starts_at: None,
                    created_at: now,
                    stripe_customer_id: None,
                    business_verified_at: None,
                    pending_change: None,
                    plan_ends_at: None,
                    past_due_since: None,
                    restricted_at: None,
                    stripe_customer_generation: 0,
                };
                diesel::insert_into(accounts::table).values(&row).execute(conn)?;
                let account = row.to_domain()?;
                // R24: the account's own email is its first member, an owner.
                crate::members::add_owner(conn, account.id, &row.email, &row.name, now)?;
                // R2: the one-time lifetime grant (a unique index keeps it one per account, ever).
                if let Some(credits) = catalog.free().lifetime_credits {
                    grant(
                        conn,
                        log,
                        Grant {
                            account: account.id,
                            kind: BucketKind::Lifetime,
                            credits,
                            expires_at: None,
                            entry_type: EntryType::Grant,
                            reference: Some("lifetime"),
                            reason: Some("Free plan lifetime grant"),
                            value: None,
                        },
                        now,
                    )?;
                }
                // A new account has no verification request yet.
                Ok(account_view(catalog, &self.billing, &account, None, now))
            },
        )
    }

    fn account_view(&self, id: AccountId, now: DateTime<Utc>) -> Result<AccountView, AccountError> {
        let mut conn = self.conn()?;
        let catalog = &self.catalog;
        read_tx(&mut conn, |conn| {
            let account = found(read_account(conn, id)?)?;
            let verification = crate::verification::summary(conn, id)?;
            Ok(account_view(catalog, &self.billing, &account, verification, now))
        })
    }

    fn balances(&self, ids: &[AccountId], now: DateTime<Utc>) -> Result<Vec<Option<BalanceView>>, StoreError> {
        let mut conn = self.conn()?;
        balances_of(&mut conn, &self.catalog, ids, now).map_err(crate::store_error)
    }

    fn ledger(&self, id: AccountId, query: &LedgerQuery) -> Result<LedgerPage, AccountError> {
        let mut conn = self.conn()?;
        read_tx(&mut conn, |conn| {
            found(read_account(conn, id)?)?;
            Ok(ledger_page(conn, id, query)?)
        })
    }

    fn trials(&self, id: AccountId, now: DateTime<Utc>) -> Result<Vec<TrialView>, AccountError> {
        let mut conn = self.conn()?;
        let catalog = &self.catalog;
        read_tx(&mut conn, |conn| {
            let account = found(read_account(conn, id)?)?;
            let usage: Vec<(String, i64, Option<DateTime<Utc>>)> = trial_usage::table
                .filter(trial_usage::account_id.eq(id.0))
                .select((trial_usage::model_id, trial_usage::used, trial_usage::window_opens_at))
                .load(conn)?;
            let overdue = overdue_trial_generations(conn, id, now)?;
            let plan = account.plan(catalog);
            Ok(catalog
                .models()
                .iter()
                .filter_map(|m| {
                    let spec = m.trial?;
                    let u = usage
                        .iter()
                        .find(|(model, _, _)| model == &m.id)
                        .map(|(_, used, opens)| TrialUsage { used: *used, window_opens_at: *opens })
                        .unwrap_or_default();
                    let u = minus_overdue(u, &m.id, &overdue);
                    Some(trial::view(plan, m, spec, u, now))
                })
                .collect())
        })
    }
}

/// The account's use of one model's trial at `now`.
pub fn trial_usage_of(
    conn: &mut PgConnection,
    account: AccountId,
    model: &str,
    now: DateTime<Utc>,
) -> QueryResult<TrialUsage> {
    let usage = trial_usage::table
        .find((account.0, model))
        .select((trial_usage::used, trial_usage::window_opens_at))
        .first::<(i64, Option<DateTime<Utc>>)>(conn)
        .optional()?
        .map(|(used, window_opens_at)| TrialUsage { used, window_opens_at })
        .unwrap_or_default();
    let overdue = overdue_trial_generations(conn, account, now)?;
    Ok(minus_overdue(usage, model, &overdue))
}

/// R9 with R10: generations of trial runs whose hold ran out and that the sweep has not released
/// yet, by model. Such a run is released from the moment its TTL is over (`HeldRun::effective_status`),
/// so its generations are given back from that moment too.
fn overdue_trial_generations(
    conn: &mut PgConnection,
    account: AccountId,
    now: DateTime<Utc>,
) -> QueryResult<Vec<(String, i64)>> {
    use crate::schema::runs;
    let rows: Vec<(String, i64)> = runs::table
        .filter(runs::account_id.eq(account.0))
        .filter(runs::status.eq(credits_domain::runs::RunStatus::Held.as_str()))
        .filter(runs::trial_kind.is_not_null())
        .filter(runs::hold_expires_at.le(now))
        .select((runs::model_id, runs::trial_generations))
        .load(conn)?;
    Ok(rows)
}

fn minus_overdue(usage: TrialUsage, model: &str, overdue: &[(String, i64)]) -> TrialUsage {
    let back: i64 = overdue.iter().filter(|(m, _)| m == model).map(|(_, g)| g).sum();
    TrialUsage { used: (usage.used - back).max(0), ..usage }
}

/// Move a trial's used generations by `delta`; open its window at `opens` if not yet open.
pub fn record_trial(
    conn: &mut PgConnection,
    account: AccountId,
    model: &str,
    delta: i64,
    opens: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    diesel::insert_into(trial_usage::table)
        .values((
            trial_usage::account_id.eq(account.0),
            trial_usage::model_id.eq(model),
            trial_usage::used.eq(delta.max(0)),
            trial_usage::window_opens_at.eq(opens),
        ))
        .on_conflict((trial_usage::account_id, trial_usage::model_id))
        .do_update()
        .set((
            trial_usage::used.eq(trial_usage::used + delta),
            trial_usage::window_opens_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >(
                "COALESCE(trial_usage.window_opens_at, excluded.window_opens_at)"
            )),
        ))
        .execute(conn)?;
    Ok(())
}

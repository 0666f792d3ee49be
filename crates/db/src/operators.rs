//! Operators: tokens (stored as hashes), adjustments, account reads, Enterprise contracts; every
//! action recorded with who and when, in the same transaction as the action.

use chrono::{DateTime, Utc};
use credits_domain::burn::{BucketKind, Insufficient};
use credits_domain::catalog::ENTERPRISE_PLAN;
use credits_domain::error::{AdminError, StoreError};
use credits_domain::idempotency::{IdempotencyKey, Replayable};
use credits_domain::ids::{AccountId, BucketId, OperatorId};
use credits_domain::jobs::MailStatus;
use credits_domain::operator::{
    Adjustment, AdjustmentEffect, ContractChange, ContractTerms, Operator, Role, decide_adjustment, decide_contract,
};
use credits_domain::payments::SubscriptionStatus;
use credits_domain::ports::{AccountSummary, AuditEntry, DeadMail, OperatorRecord, OperatorStore, RunSummary};
use credits_domain::views::{AccountView, AdjustmentView, AdminAccountView, EntryType};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

use crate::accounts::{account_view, balance_of};
use crate::audit::record_action;
use crate::ledger::{
    EntryMeta, Grant, TxLog, end_allowances, grant, grant_contract_allowance, load_wallet, lock_account, post_all,
    read_account,
};
use crate::rows::{AccountRow, EntryRow};
use crate::schema::{accounts, buckets, operator_actions, operators, outbox, runs, subscriptions};
use crate::{Fail, PgStore};

fn locked(conn: &mut PgConnection, log: &mut TxLog, id: AccountId) -> Result<AccountRow, Fail<AdminError>> {
    lock_account(conn, log, id)?.ok_or(Fail::Rule(AdminError::NotFound))
}

fn entry_views(
    rows: Vec<crate::rows::NewEntryRow>,
    kind: &str,
) -> QueryResult<Vec<credits_domain::views::LedgerEntryView>> {
    rows.into_iter().map(|entry| EntryRow { seq: 0, entry, bucket_kind: kind.to_string() }.to_view()).collect()
}

impl PgStore {
    /// The account as an operator's action left it, read in that action's transaction.
    fn account_after(
        &self,
        conn: &mut PgConnection,
        id: AccountId,
        now: DateTime<Utc>,
    ) -> Result<AccountView, Fail<AdminError>> {
        let account = read_account(conn, id)?.ok_or(Fail::Rule(AdminError::NotFound))?.to_domain()?;
        let verification = crate::verification::summary(conn, id)?;
        Ok(account_view(&self.catalog, &self.billing, &account, verification, now))
    }
}

impl OperatorStore for PgStore {
    fn operator_by_token_hash(&self, token_hash: &str) -> Result<Option<Operator>, StoreError> {
        let mut conn = self.conn()?;
        let found: Option<(Uuid, String, String)> = operators::table
            .filter(operators::token_hash.eq(token_hash))
            .filter(operators::disabled_at.is_null())
            .select((operators::id, operators::name, operators::role))
            .first(&mut conn)
            .optional()
            .map_err(crate::store_error)?;
        Ok(found.and_then(|(id, name, role)| {
            Role::parse(&role).map(|role| Operator { id: Some(OperatorId(id)), name, role })
        }))
    }

    fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        let mut conn = self.conn()?;
        type Row = (Uuid, String, String, DateTime<Utc>, Option<DateTime<Utc>>);
        let rows: Vec<Row> = operators::table
            .order((operators::created_at.asc(), operators::id.asc()))
            .select((operators::id, operators::name, operators::role, operators::created_at, operators::disabled_at))
            .load(&mut conn)
            .map_err(crate::store_error)?;
        rows.into_iter()
            .map(|(id, name, role, created_at, revoked_at)| {
                let role = Role::parse(&role)
                    .ok_or_else(|| StoreError::Internal(format!("unknown operator role {role:?} in the database")))?;
                Ok(OperatorRecord { id, name, role, created_at, revoked_at })
            })
            .collect()
    }

    fn revoke_operator(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        let revoked = diesel::update(operators::table.find(id).filter(operators::disabled_at.is_null()))
            .set(operators::disabled_at.eq(Some(now)))
            .execute(&mut conn)
            .map_err(crate::store_error)?;
        Ok(revoked == 1)
    }

    fn create_operator(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Operator, StoreError> {
        let mut conn = self.conn()?;
        let id = OperatorId::generate();
        diesel::insert_into(operators::table)
            .values((
                operators::id.eq(id.0),
                operators::name.eq(name),
                operators::role.eq(role.as_str()),
                operators::token_hash.eq(token_hash),
                operators::created_at.eq(now),
            ))
            .execute(&mut conn)
            .map_err(crate::store_error)?;
        Ok(Operator { id: Some(id), name: name.to_string(), role })
    }

    fn adjust(
        &self,
        by: &Operator,
        account: AccountId,
        adj: &Adjustment,
        now: DateTime<Utc>,
        idem: Option<&IdempotencyKey>,
    ) -> Result<Replayable<AdjustmentView>, AdminError> {
        self.once_tx(
            idem,
            now,
            || AdminError::IdempotencyKeyReused,
            |conn, log| {
                locked(conn, log, account)?;
                let wallet = load_wallet(conn, account)?;
                let effect = decide_adjustment(&wallet, adj, now).map_err(|Insufficient { required, available }| {
                    Fail::Rule(AdminError::InvalidParameters {
                        message: format!("cannot remove {required} credits: {available} are available"),
                        available: Some(available),
                    })
                })?;
                let reference = format!("operator:{}", by.name);
                let (bucket_id, entries) = match effect {
                    AdjustmentEffect::Grant { credits, expires_at } => {
                        let (bucket, entry) = grant(
                            conn,
                            log,
                            Grant {
                                account,
                                kind: BucketKind::Adjustment,
                                credits,
                                expires_at,
                                entry_type: EntryType::Adjustment,
                                reference: Some(&reference),
                                reason: Some(&adj.reason),
                                value: None,
                            },
                            now,
                        )?;
                        (Some(BucketId(bucket.id)), entry_views(vec![entry], "adjustment")?)
                    }
                    AdjustmentEffect::Take(portions) => {
                        let meta = EntryMeta::new(EntryType::Adjustment, &adj.reason).reference(&reference);
                        let rows = post_all(conn, log, account, &portions, &meta, now)?;
                        let kinds: Vec<(Uuid, String)> = buckets::table
                            .filter(buckets::id.eq_any(portions.iter().map(|p| p.bucket_id.0).collect::<Vec<_>>()))
                            .select((buckets::id, buckets::kind))
                            .load(conn)?;
                        let views = rows
                            .into_iter()
                            .map(|entry| {
                                let kind = kinds.iter().find(|(id, _)| *id == entry.bucket_id).map(|(_, k)| k.clone());
                                EntryRow { seq: 0, entry, bucket_kind: kind.unwrap_or_default() }.to_view()
                            })
                            .collect::<QueryResult<_>>()?;
                        (None, views)
                    }
                };
                record_action(
                    conn,
                    by,
                    "account.adjust",
                    Some(account),
                    json!({"credits": adj.credits, "reason": adj.reason, "expires_at": adj.expires_at}),
                    now,
                )?;
                Ok(AdjustmentView {
                    account_id: account,
                    credits: adj.credits,
                    reason: adj.reason.clone(),
                    expires_at: adj.expires_at,
                    bucket_id,
                    entries,
                    created_by: by.name.clone(),
                })
            },
        )
    }

    fn find_accounts(&self, by: &Operator, query: &str, now: DateTime<Utc>) -> Result<Vec<AccountSummary>, StoreError> {
        let query = query.trim().to_string();
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, _| -> Result<Vec<AccountSummary>, Fail<StoreError>> {
            let by_id = uuid::Uuid::parse_str(&query).ok();
            let rows: Vec<(uuid::Uuid, String, String, String)> = accounts::table
                .filter(
                    accounts::id
                        .nullable()
                        .eq(by_id)
                        .or(diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = lower(")
                            .bind::<diesel::sql_types::Text, _>(query.clone())
                            .sql(")"))
                        .or(accounts::stripe_customer_id.eq(&query)),
                )
                .order(accounts::created_at.desc())
                .limit(20)
                .select((accounts::id, accounts::email, accounts::name, accounts::plan_id))
                .load(conn)?;
            record_action(conn, by, "account.search", None, json!({"query": query, "found": rows.len()}), now)?;
            Ok(rows
                .into_iter()
                .map(|(id, email, name, plan)| AccountSummary { id: AccountId(id), email, name, plan })
                .collect())
        })
    }

    fn dead_mail(&self, limit: i64) -> Result<Vec<DeadMail>, StoreError> {
        let mut conn = self.conn()?;
        type Row = (uuid::Uuid, String, String, i32, Option<String>, DateTime<Utc>);
        let rows: Vec<Row> = outbox::table
            .filter(outbox::status.eq(MailStatus::Dead.as_str()))
            .order(outbox::created_at.desc())
            .limit(limit)
            .select((
                outbox::id,
                outbox::kind,
                outbox::recipient,
                outbox::attempts,
                outbox::last_error,
                outbox::created_at,
            ))
            .load(&mut conn)
            .map_err(crate::store_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, kind, recipient, attempts, last_error, created_at)| DeadMail {
                id,
                kind,
                recipient,
                attempts,
                last_error,
                created_at,
            })
            .collect())
    }

    fn resend_mail(&self, by: &Operator, id: uuid::Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, _| -> Result<bool, Fail<StoreError>> {
            let account: Option<Option<uuid::Uuid>> =
                diesel::update(outbox::table.find(id).filter(outbox::status.eq(MailStatus::Dead.as_str())))
                    .set((
                        outbox::status.eq(MailStatus::Pending.as_str()),
                        outbox::attempts.eq(0),
                        outbox::next_attempt_at.eq(now),
                    ))
                    .returning(outbox::account_id)
                    .get_result(conn)
                    .optional()?;
            let Some(account) = account else { return Ok(false) };
            record_action(conn, by, "mail.resend", account.map(AccountId), json!({"mail": id}), now)?;
            Ok(true)
        })
    }

    fn account_activity(
        &self,
        account: AccountId,
        limit: i64,
    ) -> Result<(Vec<RunSummary>, Vec<AuditEntry>), StoreError> {
        let mut conn = self.conn()?;
        crate::read_tx(&mut conn, |conn| -> Result<_, Fail<StoreError>> {
            type RunRow = (uuid::Uuid, String, String, String, i64, Option<i64>, DateTime<Utc>);
            let recent: Vec<RunRow> = runs::table
                .filter(runs::account_id.eq(account.0))
                .order(runs::created_at.desc())
                .limit(limit)
                .select((
                    runs::id,
                    runs::model_id,
                    runs::status,
                    runs::channel,
                    runs::cost,
                    runs::captured_credits,
                    runs::created_at,
                ))
                .load(conn)?;
            type ActionRow = (String, String, String, serde_json::Value, DateTime<Utc>);
            let actions: Vec<ActionRow> = operator_actions::table
                .filter(operator_actions::account_id.eq(account.0))
                .order(operator_actions::id.desc())
                .limit(limit)
                .select((
                    operator_actions::operator_name,
                    operator_actions::operator_role,
                    operator_actions::action,
                    operator_actions::details,
                    operator_actions::created_at,
                ))
                .load(conn)?;
            Ok((
                recent
                    .into_iter()
                    .map(|(id, model, status, channel, cost, captured, created_at)| RunSummary {
                        id: credits_domain::ids::RunId(id),
                        model,
                        status,
                        channel,
                        cost: credits_domain::credits::Credits::new(cost),
                        captured: captured.map(credits_domain::credits::Credits::new),
                        created_at,
                    })
                    .collect(),
                actions
                    .into_iter()
                    .map(|(operator, role, action, details, at)| AuditEntry {
                        operator,
                        role,
                        action,
                        details: details.to_string(),
                        at,
                    })
                    .collect(),
            ))
        })
    }

    fn admin_account(&self, by: &Operator, id: AccountId, now: DateTime<Utc>) -> Result<AdminAccountView, AdminError> {
        let mut conn = self.conn()?;
        let catalog = &self.catalog;
        self.write_tx(&mut conn, now, |conn, _| {
            let account = read_account(conn, id)?.ok_or(Fail::Rule(AdminError::NotFound))?.to_domain()?;
            let balance = balance_of(conn, catalog, id, now)?.ok_or(Fail::Rule(AdminError::NotFound))?;
            // Support reads customer data: that is recorded too.
            record_action(conn, by, "account.read", Some(id), json!({}), now)?;
            let verification = crate::verification::summary(conn, id)?;
            Ok(AdminAccountView { account: account_view(catalog, &self.billing, &account, verification, now), balance })
        })
    }

    fn set_enterprise(
        &self,
        by: &Operator,
        id: AccountId,
        terms: ContractTerms,
        now: DateTime<Utc>,
    ) -> Result<AccountView, AdminError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| {
            let account = locked(conn, log, id)?.to_domain()?;
            // R18 (decided by decide_contract): the account's live Stripe subscription, if any.
            let live: Option<String> = subscriptions::table
                .filter(subscriptions::account_id.eq(id.0))
                .filter(subscriptions::ended_at.is_null())
                .filter(subscriptions::duplicate_of.is_null())
                .filter(subscriptions::stripe_status.eq_any(SubscriptionStatus::live().map(SubscriptionStatus::as_str)))
                .select(subscriptions::id)
                .first(conn)
                .optional()?;
            let change = decide_contract(&account, live.as_deref(), terms, now)
                .map_err(|m| Fail::Rule(AdminError::Conflict(m)))?;
            match change {
                ContractChange::Amend { runs_per_minute } => {
                    diesel::update(accounts::table.find(id.0))
                        .set(accounts::contract_runs_per_minute.eq(runs_per_minute.map(|n| n as i32)))
                        .execute(conn)?;
                }
                ContractChange::Start { starts_at, period, grant: credits } => {
                    // The allowance of the old plan or contract ends now (R3: no rollover).
                    end_allowances(conn, log, id, now)?;
                    grant_contract_allowance(conn, log, id, credits, &period, now)?;
                    diesel::update(accounts::table.find(id.0))
                        .set((
                            accounts::plan_id.eq(ENTERPRISE_PLAN),
                            accounts::plan_status.eq(credits_domain::account::PlanStatus::Active.as_str()),
                            accounts::period_start.eq(Some(period.start)),
                            accounts::period_end.eq(Some(period.end)),
                            accounts::contract_monthly_credits.eq(Some(terms.monthly_credits.get())),
                            accounts::contract_runs_per_minute.eq(terms.runs_per_minute.map(|n| n as i32)),
                            accounts::contract_starts_at.eq(Some(starts_at)),
                        ))
                        .execute(conn)?;
                }
            }
            record_action(
                conn,
                by,
                "account.enterprise",
                Some(id),
                json!({"monthly_credits": terms.monthly_credits, "runs_per_minute": terms.runs_per_minute}),
                now,
            )?;
            self.account_after(conn, id, now)
        })
    }

    fn restrict(
        &self,
        by: &Operator,
        id: AccountId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<AccountView, AdminError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| {
            locked(conn, log, id)?;
            crate::payments::restrict(conn, id, "operator", None, reason, &by.name, now)?;
            record_action(conn, by, "account.restrict", Some(id), json!({"reason": reason}), now)?;
            self.account_after(conn, id, now)
        })
    }

    fn lift_restriction(
        &self,
        by: &Operator,
        id: AccountId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<AccountView, AdminError> {
        let mut conn = self.conn()?;
        self.write_tx(&mut conn, now, |conn, log| {
            locked(conn, log, id)?;
            let lifted = crate::payments::lift(conn, id, None, &by.name, reason, now)?;
            record_action(
                conn,
                by,
                "account.lift_restriction",
                Some(id),
                json!({"reason": reason, "lifted": lifted}),
                now,
            )?;
            self.account_after(conn, id, now)
        })
    }
}

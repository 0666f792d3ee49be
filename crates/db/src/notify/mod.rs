//! R22, R23 and section 9 in the store: the judgement made before every commit of a transaction that locked an
//! account (`settle`: balance alerts, plan and restriction changes, the start of an auto top-up),
//! and the use cases of the endpoints, the alerts and auto top-up settings (`store`). The
//! delivery and auto top-up workers' claims and records are jobs (`crate::jobs`).

pub(crate) mod autotopup;
mod store;

use chrono::{DateTime, Utc};
use credits_domain::catalog::Catalog;
use credits_domain::credits::Credits;
use credits_domain::ids::AccountId;
use credits_domain::jobs::AutoTopupStatus;
use credits_domain::mail::Mail;
use credits_domain::notify::alerts::{BalanceLevel, after_change};
use credits_domain::notify::autotopup::{AutoTopupSettings, StartDecision, after_capture, month_start};
use credits_domain::notify::mails::{self, Recipient};
use credits_domain::notify::payloads::{AccountState, Payload, account_changes};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Int4, Nullable, Text, Uuid as SqlUuid};

use crate::events::emit;
use crate::ledger::Locked;
use crate::rows::undecodable;

/// What notices need from the configuration.
#[derive(Debug, Clone, Default)]
pub struct NotifySettings {
    /// R22: the billing page a mail links to (`billing.page_url`).
    pub billing_url: String,
}

/// Queue `mail` for the account with the facts every notice shows.
pub(crate) fn notice(
    conn: &mut PgConnection,
    settings: &NotifySettings,
    mail: Mail,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let mail = mail.fact("billing_url", settings.billing_url.clone());
    crate::jobs::enqueue(conn, crate::jobs::NewJob::Mail(&mail), now)
}

#[derive(QueryableByName)]
struct SettleRow {
    #[diesel(sql_type = SqlUuid)]
    id: uuid::Uuid,
    #[diesel(sql_type = Text)]
    email: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    plan_id: String,
    #[diesel(sql_type = Bool)]
    restricted: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    low_balance_threshold: Option<i64>,
    #[diesel(sql_type = Text)]
    balance_level: String,
    #[diesel(sql_type = Bool)]
    auto_topup_enabled: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    auto_topup_threshold: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    auto_topup_pack: Option<String>,
    #[diesel(sql_type = Int4)]
    auto_topup_monthly_limit: i32,
    #[diesel(sql_type = Bool)]
    open_topup: bool,
    #[diesel(sql_type = BigInt)]
    started_this_month: i64,
}

/// Before the commit of a transaction that locked `locked` (still locked): what its changes tell.
/// R23 from `available` before (the level kept on the account) and after; `plan.changed`,
/// `account.restricted` / `.unrestricted` from the account as it was locked and as it is; R22's
/// start of an auto top-up when the transaction `captured` credits.
pub(crate) fn settle(
    conn: &mut PgConnection,
    catalog: &Catalog,
    settings: &NotifySettings,
    locked: &[Locked],
    captured: &dyn Fn(uuid::Uuid) -> bool,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    if locked.is_empty() {
        return Ok(());
    }
    // Two statements for every account locked (a batch of runs locks many): their settings and
    // their balances, read together.
    let ids: Vec<uuid::Uuid> = locked.iter().map(|l| l.id).collect();
    let rows: Vec<SettleRow> = crate::prepared::SettleQuery {
        month_start: month_start(now),
        accounts: ids.clone(),
        open: vec![AutoTopupStatus::Pending.as_str(), AutoTopupStatus::Processing.as_str()],
    }
    .load(conn)?;
    let accounts: Vec<AccountId> = ids.iter().copied().map(AccountId).collect();
    let balances = crate::accounts::balances_of(conn, catalog, &accounts, now)?;
    for (before, balance) in locked.iter().zip(balances) {
        let Some(row) = rows.iter().find(|r| r.id == before.id) else { continue };
        settle_one(conn, catalog, settings, before, Found { row, balance, captured: captured(before.id) }, now)?;
    }
    Ok(())
}

/// What `settle` read of one account.
struct Found<'a> {
    row: &'a SettleRow,
    balance: Option<credits_domain::views::BalanceView>,
    captured: bool,
}

fn settle_one(
    conn: &mut PgConnection,
    catalog: &Catalog,
    settings: &NotifySettings,
    before: &Locked,
    found: Found<'_>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let Found { row, balance, captured } = found;
    let id = before.id;
    let account = AccountId(id);

    let (was, is) = (
        AccountState { plan: &before.plan, restricted: before.restricted },
        AccountState { plan: &row.plan_id, restricted: row.restricted },
    );
    for payload in account_changes(id, &was, &is) {
        emit(conn, id, &payload, now)?;
    }

    let Some(balance) = balance else {
        return Ok(());
    };
    let available = balance.available;
    let threshold = row.low_balance_threshold.map(Credits::new);
    let level =
        BalanceLevel::parse(&row.balance_level).ok_or_else(|| undecodable("balance level", &row.balance_level))?;
    let (next, alerts) = after_change(threshold, level, available);
    if next != level {
        diesel::update(crate::schema::accounts::table.find(id))
            .set(crate::schema::accounts::balance_level.eq(next.as_str()))
            .execute(conn)?;
    }
    for alert in alerts {
        let event = emit(conn, id, &Payload::balance(id, alert, available), now)?;
        let who = Recipient { account, email: &row.email, name: &row.name };
        notice(conn, settings, mails::balance_alert(who, alert, available, threshold, &event), now)?;
    }

    if captured {
        let settings = AutoTopupSettings {
            enabled: row.auto_topup_enabled,
            threshold: row.auto_topup_threshold.map(Credits::new),
            pack: row.auto_topup_pack.clone(),
            monthly_limit: u32::try_from(row.auto_topup_monthly_limit).unwrap_or(0),
        };
        let started = u32::try_from(row.started_this_month).unwrap_or(u32::MAX);
        match after_capture(Some(&settings), available, row.open_topup, started) {
            StartDecision::Start => autotopup::start(conn, catalog, account, &settings, now)?,
            StartDecision::MonthlyLimitReached { limit } => {
                tracing::info!(account = %id, limit, "auto top-up not started: this month's limit is reached");
            }
            StartDecision::Disabled | StartDecision::NotBelow | StartDecision::AlreadyOpen => {}
        }
    }
    Ok(())
}
